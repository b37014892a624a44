"""One run per workdir: a second run is refused naming the first; a dead run's lock is
taken over with a warning (autoseed_jax/tools/workdir_lock.py)."""

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import pytest

from autoseed_jax.tools import workdir_lock

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_a_second_holder_is_refused_naming_the_first(tmp_path):
  first = workdir_lock._acquire(str(tmp_path), warn=pytest.fail)
  try:
    holder = json.loads((tmp_path / workdir_lock.LOCK_FILE).read_text())
    assert holder['pid'] == os.getpid() and holder['host'] == socket.gethostname()
    with pytest.raises(workdir_lock.WorkdirBusyError) as refused:
      workdir_lock._acquire(str(tmp_path), warn=pytest.fail)  # another open file: busy
    message = str(refused.value)
    assert f'pid {os.getpid()} on host {socket.gethostname()} since {holder["since"]}' in message
    assert f'kill {os.getpid()}' in message and 'another --workdir' in message
  finally:
    workdir_lock._release(first)
  assert (tmp_path / workdir_lock.LOCK_FILE).read_text() == ''  # released: nobody holds it


def test_holding_is_reentrant_within_a_process_and_warns_on_a_dead_holder(tmp_path):
  dead = {'host': 'gone-host', 'pid': 99999999, 'since': '2026-01-01T00:00:00+00:00',
          'command': 'python -m autoseed_jax.main ...'}
  (tmp_path / workdir_lock.LOCK_FILE).write_text(json.dumps(dead))  # left by a kill -9
  warnings = []
  with workdir_lock.hold(str(tmp_path), warn=warnings.append):
    with workdir_lock.hold(str(tmp_path), warn=warnings.append):  # main, then run_workdir
      pass
    assert json.loads((tmp_path / workdir_lock.LOCK_FILE).read_text())['pid'] == os.getpid()
  assert len(warnings) == 1
  assert 'locked by pid 99999999 on host gone-host since 2026-01-01' in warnings[0]
  assert 'taking the lock over' in warnings[0]
  assert (tmp_path / workdir_lock.LOCK_FILE).read_text() == ''


def test_an_experiment_suite_refuses_a_busy_workdir(tmp_path):
  from experiments.paper import configs, driver  # pylint: disable=import-outside-toplevel
  config = configs.load_experiment_config(
      pathlib.Path(ROOT) / 'experiments' / 'configs' / 'exp_seeds.py', quick=True)
  other = workdir_lock._acquire(str(tmp_path), warn=pytest.fail)  # another run's lock
  try:
    with pytest.raises(workdir_lock.WorkdirBusyError, match=f'pid {os.getpid()} on host'):
      driver.run_configs([config], tmp_path, cache_dir=None, log=pytest.fail)
  finally:
    workdir_lock._release(other)
  assert sorted(p.name for p in tmp_path.iterdir()) == [workdir_lock.LOCK_FILE]  # no run


def _wait_for_holder(lock_file, pid, timeout=300):
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    try:
      if json.loads(lock_file.read_text()).get('pid') == pid:
        return
    except (OSError, ValueError):
      pass
    time.sleep(0.1)
  raise AssertionError(f'pid {pid} never took {lock_file}')


def test_two_runs_on_one_workdir_then_a_dead_run_is_taken_over(tmp_path):
  workdir = tmp_path / 'run'
  cmd = [sys.executable, '-m', 'autoseed_jax.main', '--config',
         'experiments/configs/synthetic.py', '--workdir', str(workdir),
         '--config.methods=("finetune",)', '--config.steps_per_task=4',
         '--config.steps_per_chunk=4', '--config.stream.train_per_class=20',
         '--config.stream.test_per_class=10', '--config.stream.num_tasks=2']
  first = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
  try:
    _wait_for_holder(workdir / workdir_lock.LOCK_FILE, first.pid)
    os.kill(first.pid, signal.SIGSTOP)  # the first run is busy for as long as we like
    second = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert second.returncode == 1, second.stderr[-2000:]
    assert f'is in use by another run: pid {first.pid} on host {socket.gethostname()}' in (
        second.stderr)
    assert 'Traceback' not in second.stderr
    assert 'stream synthetic' not in second.stdout  # refused before loading anything
  finally:
    first.kill()  # SIGKILL: the lock file still names it, nothing was released
    first.communicate()
  third = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert third.returncode == 0, third.stderr[-3000:]
  assert f'locked by pid {first.pid} on host {socket.gethostname()}' in third.stdout + third.stderr
  assert 'taking the lock over' in third.stdout + third.stderr
  assert (workdir / 'results.json').exists()
  assert (workdir / workdir_lock.LOCK_FILE).read_text() == ''
