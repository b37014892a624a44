"""Shared steps of the engine tests: learning a stream while counting compilations, and
running a helper script on 8 simulated CPU devices."""

import json
import os
import subprocess
import sys

import jax

from autoseed_jax.tools.profiling import count_compilations

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


def run_on_eight_devices(script: str) -> dict:
  """Runs ``tests/helpers/<script>`` with 8 simulated CPU devices; returns the JSON of its
  last ``RESULT`` line (the test fails with its stderr if it exits non-zero)."""
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=8',
             JAX_PLATFORMS='cpu')
  proc = subprocess.run([sys.executable, os.path.join(ROOT, 'tests', 'helpers', script)],
                        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stderr[-3000:]
  line = [l for l in proc.stdout.splitlines() if l.startswith('RESULT ')][-1]
  return json.loads(line[len('RESULT '):])
