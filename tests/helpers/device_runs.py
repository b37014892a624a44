"""Shared steps of the engine tests: learning a stream while counting compilations, and
running a helper script on 8 simulated CPU devices."""

import json
import os
import signal
import subprocess
import sys
import time
import warnings

import jax

from autoseed_jax.tools.profiling import count_compilations
from helpers import TEST_XLA_FLAGS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def learn_all_tasks(learner, stream, key=None):
  """Every task of ``stream`` from ``learner.init``; returns (state, compilations while
  learning tasks 2..T)."""
  test = learner.put_test(stream.test)
  state = learner.init(jax.random.PRNGKey(0) if key is None else key, test)
  state = learner.learn_task(state, learner.put_task(stream.tasks[0]), test=test)
  with count_compilations() as later:
    for task in stream.tasks[1:]:
      state = learner.learn_task(state, learner.put_task(task), test=test)
  return state, later.count


# 8 simulated CPU devices. On a loaded machine (2 cores shared by test workers) a device
# thread can reach a collective more than XLA's default 40 s after the others, which
# aborts the process: wait longer.
EIGHT_DEVICES_ENV = {
    'JAX_PLATFORMS': 'cpu',
    'XLA_FLAGS': (f'{TEST_XLA_FLAGS} --xla_force_host_platform_device_count=8 '
                  '--xla_cpu_collective_call_terminate_timeout_seconds=900 '
                  '--xla_cpu_collective_call_warn_stuck_timeout_seconds=600'),
}


# Runs a helper script with faulthandler listening on SIGUSR1, so that a hung attempt can
# say where its Python threads were before it is killed.
_LAUNCHER = ('import faulthandler, os, runpy, signal, sys; '
             'faulthandler.register(signal.SIGUSR1, all_threads=True); '
             'sys.argv = sys.argv[1:]; sys.path[0] = os.path.dirname(sys.argv[0]); '
             'runpy.run_path(sys.argv[0], run_name="__main__")')


def run_on_eight_devices(script: str, *args: str, timeout: int = 180, attempts: int = 3) -> dict:
  """Runs ``tests/helpers/<script> [args]`` with 8 simulated CPU devices; returns the JSON
  of its last ``RESULT`` line (the test fails with its stderr if it exits non-zero).

  An attempt that runs past ``timeout`` seconds (the slowest check, Auto-Seed's 8 run seeds
  on 1 and 8 devices, takes about 50 s while the other test worker runs) is stopped and the
  same deterministic script runs again, up to ``attempts`` times; the test fails when every
  attempt hangs. Two deadlocks of the host simulation are fixed (docs/DEVICES.md); the
  retry stays so that an unknown one costs minutes rather than the CI's budget, and each
  hung attempt is reported as a warning (in pytest's summary) with the Python stacks of
  the child's threads, so that it can be found."""
  env = dict(os.environ, **EIGHT_DEVICES_ENV)
  command = [sys.executable, '-c', _LAUNCHER, os.path.join(ROOT, 'tests', 'helpers', script),
             *args]
  for attempt in range(1, attempts + 1):
    with subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as proc:
      try:
        stdout, stderr = proc.communicate(timeout=timeout)
        break
      except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGUSR1)  # faulthandler writes every thread's stack
        time.sleep(2)
        proc.kill()
        _, stderr = proc.communicate()
    message = (f'{script} {" ".join(args)}: attempt {attempt} of {attempts} gave no result '
               f'after {timeout} s on 8 simulated devices (a hang of the host simulation); '
               f'its threads:\n{stderr[-2500:]}')
    if attempt == attempts:
      raise AssertionError(message)
    warnings.warn(message)
  assert proc.returncode == 0, stderr[-3000:]
  line = [l for l in stdout.splitlines() if l.startswith('RESULT ')][-1]
  return json.loads(line[len('RESULT '):])
