"""Checkpoint and resume: interrupted runs end bit-identical to uninterrupted ones, and
faults (corrupted checkpoints, NaN losses, failed writes, other configs) are clear errors
that lose nothing already saved.

The command-line tests share one module-scoped sequence of runs and the session's JAX
compilation cache (conftest.py), so only the first process compiles; the in-process tests
share one learner.
"""

import contextlib
import dataclasses
import errno
import glob
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import pytest

from autoseed_jax import continual, runner
from autoseed_jax.streams.synthetic import make_synthetic_stream
from autoseed_jax.tools import checkpoint
from experiments.configs.common import method_config
from helpers import TEST_XLA_FLAGS, disks
from helpers.resume_checks import copy_up_to

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 40  # steps per task on the command line: 2 chunks of 20, a checkpoint after each
CLI_ARGS = ["--config.methods=('zeroshot', 'autoseed')", f'--config.steps_per_task={STEPS}',
            '--config.steps_per_chunk=20', '--config.meta_steps=2',
            '--config.adapter_hidden=32', '--config.generator_hidden=32',
            '--config.stream.num_tasks=3', '--config.stream.dim=16',
            '--config.stream.train_per_class=40', '--config.stream.test_per_class=20']


# ---------------------------------------------------------------------------------------
# The command line: Ctrl-C, SIGKILL, reruns.


def start(workdir, env, name, *extra):
  """Starts the demo on ``workdir``; stdout/stderr go to files named after ``name``."""
  out = open(f'{workdir}.{name}.out', 'w')
  err = open(f'{workdir}.{name}.err', 'w')
  cmd = [sys.executable, '-m', 'autoseed_jax.main',
         '--config', os.path.join(ROOT, 'experiments/configs/synthetic.py'),
         '--workdir', str(workdir), *CLI_ARGS, *extra]
  proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=err)
  proc.log_paths = (out.name, err.name)
  return proc


def finish(proc, timeout=300):
  """(return code, stdout, stderr) once ``proc`` ends."""
  rc = proc.wait(timeout=timeout)
  return rc, open(proc.log_paths[0]).read(), open(proc.log_paths[1]).read()


def checkpoint_ids(workdir, method):
  directory = os.path.join(workdir, 'methods', method, 'checkpoints')
  if not os.path.isdir(directory):
    return []
  return sorted(int(name) for name in os.listdir(directory) if name.isdigit())


def checkpoint_meta(workdir, method, ckpt_id):
  path = os.path.join(workdir, 'methods', method, 'checkpoints', str(ckpt_id), 'meta',
                      'metadata')
  return json.load(open(path))


def assert_resumed_in_task_two(cli, steps):
  """The rerun of a run killed inside task 2 (of 3, ``steps`` steps each, a checkpoint
  after every chunk) ended well and resumed from the newest checkpoint the kill left;
  returns its (return code, stdout, stderr)."""
  newest = cli['after_kill'][-1]
  tasks_done, steps_in_task = divmod(newest, steps + 1)
  assert tasks_done == 1 and 0 < steps_in_task <= steps, cli['after_kill']
  rc, out, err = cli['final']
  assert rc == 0, err[-3000:]
  assert f'resuming from checkpoint {newest} (task 2 of 3, {steps_in_task}/{steps} steps)' in out
  return rc, out, err


def wait_until(proc, condition, what, timeout=240):
  deadline = time.time() + timeout
  while not condition():
    if proc.poll() is not None:
      rc, out, err = finish(proc)
      pytest.fail(f'the run ended (rc={rc}) before {what}:\n{out[-2000:]}\n{err[-3000:]}')
    if time.time() > deadline:
      proc.kill()
      pytest.fail(f'timed out waiting for {what}')
    time.sleep(0.01)


def without_seconds(results):
  return {m: {k: v for k, v in r.items() if k != 'seconds'}
          for m, r in results['methods'].items()}


@pytest.fixture(scope='module')
def reference(tmp_path_factory):
  """An uninterrupted run: {'dir', 'env', 'result': (rc, stdout, stderr)}."""
  # One device (the tests' flags, no device count): bit-identical reruns.
  env = dict(os.environ, JAX_PLATFORMS='cpu', XLA_FLAGS=TEST_XLA_FLAGS)
  directory = tmp_path_factory.mktemp('cli') / 'reference'
  result = finish(start(directory, env, 'run'))
  assert result[0] == 0, result[2][-3000:]
  return {'dir': directory, 'env': env, 'result': result}


@pytest.fixture(scope='module')
def cli(reference, tmp_path_factory):
  """Beside the uninterrupted run, on another workdir: Ctrl-C in autoseed's first task,
  SIGKILL in its second task, then the same command once more to the end."""
  base = tmp_path_factory.mktemp('cli')
  env = reference['env']
  runs = {'reference_dir': reference['dir'], 'work': base / 'work', 'env': env,
          'reference': reference['result']}
  work = runs['work']

  in_task = lambda task: lambda: any(  # a checkpoint inside autoseed's task ``task``
      task * (STEPS + 1) < i < (task + 1) * (STEPS + 1) for i in checkpoint_ids(work, 'autoseed'))
  proc = start(work, env, 'sigint')
  wait_until(proc, in_task(0), 'a checkpoint inside autoseed task 1')
  proc.send_signal(signal.SIGINT)
  runs['sigint'] = finish(proc)
  runs['after_sigint'] = checkpoint_ids(work, 'autoseed')

  proc = start(work, env, 'sigkill')
  wait_until(proc, in_task(1), 'a checkpoint inside autoseed task 2')
  proc.kill()
  runs['sigkill'] = finish(proc)
  runs['after_kill'] = checkpoint_ids(work, 'autoseed')
  runs['result_after_kill'] = os.path.exists(work / 'methods/autoseed/result.json')

  runs['final'] = finish(start(work, env, 'final'))
  return runs


def test_ctrl_c_saves_a_checkpoint_exits_130_and_the_rerun_resumes_from_it(cli):
  rc, out, err = cli['sigint']
  assert rc == 130, err[-3000:]
  match = re.search(r"interrupted by SIGINT: method 'autoseed' saved checkpoint (\d+) "
                    rf'\(task 1 of 3, (\d+)/{STEPS} steps\)', err)
  assert match, err[-3000:]
  assert 'Rerun the same command to resume' in err and 'Traceback' not in err
  ckpt_id = int(match[1])
  assert ckpt_id in cli['after_sigint']
  assert 0 < int(match[2]) <= STEPS and ckpt_id == int(match[2])  # id = step + tasks_done
  rc, out, _ = cli['sigkill']
  zeroshot_part = out.split('== zeroshot ==')[1].split('== autoseed ==')[0]
  assert 'finished in an earlier run' in zeroshot_part  # not rerun
  assert f'resuming from checkpoint {ckpt_id} (task 1 of 3, {ckpt_id}/{STEPS} steps)' in out


def test_sigkill_mid_task_then_rerun_gives_bit_identical_results(cli):
  rc, _, _ = cli['sigkill']
  assert rc == -signal.SIGKILL
  assert not cli['result_after_kill']
  _, out, _ = assert_resumed_in_task_two(cli, STEPS)
  reference = json.load(open(cli['reference_dir'] / 'results.json'))
  resumed = json.load(open(cli['work'] / 'results.json'))
  assert without_seconds(resumed) == without_seconds(reference)
  # Bit-identical final states (parameters, optimiser, seed memory, generator, ...).
  for method, last in (('zeroshot', 3), ('autoseed', 3 * (STEPS + 1))):
    assert checkpoint_ids(cli['reference_dir'], method)[-1] == last
    assert checkpoint_ids(cli['work'], method)[-1] == last
    assert (checkpoint_meta(cli['work'], method, last)['digest']
            == checkpoint_meta(cli['reference_dir'], method, last)['digest'])


@pytest.mark.skipif(not disks.small_disks_work(),
                    reason='needs a user namespace that may mount a tmpfs (unshare -rm)')
def test_a_full_disk_is_one_line_and_the_rerun_with_space_resumes_bit_identical(
    reference, tmp_path):
  """The workdir on a real 900 KB file system (a tmpfs): it fills up during autoseed's
  checkpoints; the disk then grows and the same command resumes."""
  disk, out = tmp_path / 'disk', tmp_path / 'out'
  disk.mkdir()
  out.mkdir()
  command = ' '.join(shlex.quote(a) for a in [
      sys.executable, '-m', 'autoseed_jax.main',
      '--config', os.path.join(ROOT, 'experiments/configs/synthetic.py'),
      '--workdir', str(disk / 'run'), *CLI_ARGS])
  proc = disks.on_small_disk(disk, '900k', f"""
{command} > {out}/full.out 2> {out}/full.err; echo $? > {out}/full.rc
cp -r {disk}/run {out}/after_failure
grow 64m
{command} > {out}/rerun.out 2> {out}/rerun.err; echo $? > {out}/rerun.rc
cp -r {disk}/run {out}/rerun
""", env=reference['env'], cwd=ROOT)
  assert proc.returncode == 0, proc.stderr[-3000:]
  err = (out / 'full.err').read_text()
  assert (out / 'full.rc').read_text().strip() == '1', err[-3000:]
  assert len(err.splitlines()) == 1 and 'Traceback' not in err, err[-3000:]
  match = re.fullmatch(
      rf'error: saving checkpoint (\d+) into {disk}/run/methods/(\w+)/checkpoints failed: '
      r'no space left on the device \([\d.]+ KB free\)\. The checkpoints \[([\d, ]+)\] are '
      r'intact\. Fix: free disk space there .*, then rerun the same command: it resumes '
      r'from the last checkpoint\.\n', err)
  assert match, err
  method, intact = match[2], [int(i) for i in match[3].split(', ')]
  assert checkpoint_ids(out / 'after_failure', method) == intact  # nothing half-written
  rerun_err = (out / 'rerun.err').read_text()
  assert (out / 'rerun.rc').read_text().strip() == '0', rerun_err[-3000:]
  assert f'resuming from checkpoint {intact[-1]} ' in (out / 'rerun.out').read_text()
  resumed = json.load(open(out / 'rerun' / 'results.json'))
  assert without_seconds(resumed) == without_seconds(
      json.load(open(reference['dir'] / 'results.json')))
  for method, last in (('zeroshot', 3), ('autoseed', 3 * (STEPS + 1))):
    assert (checkpoint_meta(out / 'rerun', method, last)['digest']
            == checkpoint_meta(reference['dir'], method, last)['digest'])


def test_metrics_log_reads_back_as_the_uninterrupted_run(cli):
  lines = [json.loads(line) for line in open(cli['work'] / 'metrics.jsonl')]
  assert [r['phase'] for r in lines].count('resume') == 2
  reference = runner.read_metrics(cli['reference_dir'] / 'metrics.jsonl')
  resumed = runner.read_metrics(cli['work'] / 'metrics.jsonl')
  assert len(lines) > len(resumed)  # chunks after a checkpoint were logged twice
  assert resumed == reference


def test_other_config_on_the_same_workdir_is_refused_naming_the_field(cli):
  before = open(cli['work'] / 'results.json').read()
  rc, out, err = finish(start(cli['work'], cli['env'], 'other', '--config.learning_rate=0.01'))
  assert rc == 2, err[-3000:]
  assert 'learning_rate: 0.001 in the workdir, 0.01 now' in err
  assert 'methods zeroshot, autoseed' in err and 'Use another --workdir' in err
  assert 'Traceback' not in err
  assert open(cli['work'] / 'results.json').read() == before


def test_corrupted_results_files_are_reported_and_rebuilt_without_training(cli, tmp_path):
  work = tmp_path / 'copy'
  shutil.copytree(cli['work'], work)
  open(work / 'results.json', 'w').write('{"stream": "synth')  # cut short
  open(work / 'methods/autoseed/result.json', 'w').write('\x00garbage')
  lines_before = open(work / 'metrics.jsonl').read().count('\n')
  rc, out, err = finish(start(work, cli['env'], 'rebuild'))
  assert rc == 0, err[-3000:]
  assert f'warning: {work}/results.json is unreadable' in out
  assert f'warning: {work}/methods/autoseed/result.json is unreadable' in out
  assert 'resuming from checkpoint 123 (all 3 tasks done)' in out
  new_lines = open(work / 'metrics.jsonl').read().splitlines()[lines_before:]
  assert [json.loads(line)['phase'] for line in new_lines] == ['resume']  # no training
  reference = json.load(open(cli['reference_dir'] / 'results.json'))
  assert without_seconds(json.load(open(work / 'results.json'))) == without_seconds(reference)
  assert json.load(open(work / 'methods/autoseed/result.json'))['acc_matrix'] == \
      reference['methods']['autoseed']['acc_matrix']


# ---------------------------------------------------------------------------------------
# In process: the checkpointed loop against the engine's own loop, and injected faults.

SMALL_STEPS = 20  # 2 chunks of 10 per task; checkpoint ids per task t: 21t+10, 21t+20, 21(t+1)


@dataclasses.dataclass
class Small:
  stream: object
  config: object
  learner: continual.Learner
  reference_digest: str


@pytest.fixture(scope='module')
def small():
  stream = make_synthetic_stream(num_tasks=3, classes_per_task=2, dim=16,
                                 train_per_class=40, test_per_class=20, seed=0)
  config = method_config()
  config.method = 'finetune'
  config.steps_per_task = SMALL_STEPS
  config.steps_per_chunk = 10
  config.adapter_hidden = 32
  learner = continual.build_learner(config, stream)
  reference = continual.run_sequence(config, stream, learner=learner)  # the engine's loop
  return Small(stream, config, learner, checkpoint.state_digest(reference.state))


def run(small, directory, *, learner=None, keep=3):
  """run_method on ``directory``; returns (result, output lines)."""
  lines = []
  store = checkpoint.CheckpointStore(str(directory), keep=keep)
  try:
    result = runner.run_method(small.config, small.stream, learner or small.learner, store,
                               out=lines.append)
  finally:
    store.close()
  return result, lines


def test_resuming_from_every_checkpoint_matches_the_engine_bit_for_bit(small, tmp_path):
  full = tmp_path / 'full'
  result, lines = run(small, full, keep=100)
  assert checkpoint.state_digest(result.state) == small.reference_digest
  assert not any('resuming' in line for line in lines)
  ids = checkpoint.CheckpointStore(str(full), keep=100).ids()
  assert ids == [10, 20, 21, 31, 41, 42, 52, 62, 63]
  # Resume mid-task (31), at a task boundary (42), with adaptation done (62).
  for ckpt_id in (31, 42, 62):
    partial = tmp_path / f'upto{ckpt_id}'
    copy_up_to(full, partial, ids, ckpt_id)
    resumed, lines = run(small, partial)
    assert any(line.startswith(f'resuming from checkpoint {ckpt_id} ') for line in lines)
    assert checkpoint.state_digest(resumed.state) == small.reference_digest, ckpt_id


def _truncate_data_files(step_dir):
  for path in glob.glob(f'{step_dir}/state/**/d/*', recursive=True):
    os.truncate(path, os.path.getsize(path) // 2)


def _flip_one_byte(step_dir):
  path = max(glob.glob(f'{step_dir}/state/**/d/*', recursive=True), key=os.path.getsize)
  data = bytearray(open(path, 'rb').read())
  data[len(data) // 2] ^= 0xFF
  open(path, 'wb').write(bytes(data))


def _remove_array_metadata(step_dir):
  os.remove(f'{step_dir}/state/_METADATA')


@pytest.mark.parametrize('corrupt', [_truncate_data_files, _flip_one_byte,
                                     _remove_array_metadata])
def test_corrupted_latest_checkpoint_falls_back_to_the_previous_one(small, tmp_path, corrupt):
  directory = tmp_path / 'ckpt'
  run(small, directory)
  corrupt(directory / '63')
  resumed, lines = run(small, directory)
  assert any(line.startswith(f'warning: checkpoint 63 in {directory} is unreadable')
             for line in lines), lines
  assert any(line.startswith('resuming from checkpoint 62 ') for line in lines), lines
  assert checkpoint.state_digest(resumed.state) == small.reference_digest
  assert len(glob.glob(f'{directory}.corrupt/63-*')) == 1  # set aside, not deleted
  # Checkpoint 63 was written again and now reads back cleanly.
  again, lines = run(small, directory)
  assert not any('warning' in line for line in lines)
  assert any(line.startswith('resuming from checkpoint 63 (all 3 tasks done)') for line in lines)


@pytest.mark.parametrize('poison', ['loss', 'params'])
def test_non_finite_training_stops_naming_the_step_and_keeps_the_last_good_checkpoint(
    small, tmp_path, poison):
  calls = []

  def poisoned_adapt(state, task, n):
    state, terms = small.learner.adapt(state, task, n)
    calls.append(n)
    if len(calls) == 4:  # task 2, steps 11..20
      if poison == 'loss':
        terms = dict(terms, total=terms['total'].at[2].set(jnp.nan))
      else:
        state = state.replace(params=jax.tree.map(lambda x: x * jnp.nan, state.params))
    return state, terms

  learner = dataclasses.replace(small.learner, adapt=poisoned_adapt)
  directory = tmp_path / 'ckpt'
  with pytest.raises(runner.NonFiniteLossError) as error:
    run(small, directory, learner=learner)
  message = str(error.value)
  if poison == 'loss':
    assert 'non-finite loss (total) at step 13/20 of task 2 (run step 33)' in message
  else:
    assert 'params became non-finite by task 2 of 3, 20/20 steps (run step 40)' in message
  assert f'The last good checkpoint is 31 in {directory}' in message
  store = checkpoint.CheckpointStore(str(directory))
  assert store.ids() == [20, 21, 31]  # nothing of the bad chunk was saved
  warnings = []
  target = small.learner.init(jax.random.PRNGKey(small.config.seed), small.stream.test)
  restored = store.restore_latest(target, warn=warnings.append)
  assert not warnings and restored.checkpoint_id == 31
  assert int(restored.state.tasks_done) == 1 and int(restored.state.step) == 30


def test_a_failed_save_keeps_earlier_checkpoints_and_the_rerun_resumes(
    small, tmp_path, monkeypatch):
  from orbax.checkpoint._src.path import async_path
  write_text = async_path.write_text

  async def disk_full_for_checkpoint_41(path, text):
    if '/41.orbax-checkpoint-tmp' in str(path):
      raise OSError(errno.ENOSPC, 'No space left on device')
    return await write_text(path, text)

  monkeypatch.setattr(async_path, 'write_text', disk_full_for_checkpoint_41)
  directory = tmp_path / 'ckpt'
  with pytest.raises(checkpoint.CheckpointError) as error:
    run(small, directory)
  message = str(error.value)
  assert f'saving checkpoint 41 into {directory} failed: no space left on the device' in message
  assert 'checkpoints [20, 21, 31] are intact' in message and '\n' not in message
  assert 'Fix: free disk space there' in message and 'rerun the same command' in message
  monkeypatch.undo()
  resumed, lines = run(small, directory)
  assert any(line.startswith('resuming from checkpoint 31 ') for line in lines), lines
  assert checkpoint.state_digest(resumed.state) == small.reference_digest


def test_a_save_cut_short_is_cleaned_up_and_never_counted(tmp_path):
  directory = tmp_path / 'ckpt'
  (directory / '41.orbax-checkpoint-tmp-1700000000').mkdir(parents=True)
  (directory / '41.orbax-checkpoint-tmp-1700000000' / 'half_written').write_text('x')
  store = checkpoint.CheckpointStore(str(directory))
  assert store.ids() == []
  assert os.listdir(directory) == []
  assert store.restore_latest({'unused': 0}) is None


def test_an_unwritable_workdir_is_reported_before_anything_runs(tmp_path, monkeypatch):
  blocker = tmp_path / 'a_file'
  blocker.write_text('not a directory')
  with pytest.raises(runner.WorkdirError, match=rf'cannot write to --workdir {blocker}/run'):
    runner.prepare_workdir(str(blocker / 'run'))

  def read_only(*args, **kwargs):
    raise OSError(errno.EROFS, 'Read-only file system')

  monkeypatch.setattr(runner.tempfile, 'TemporaryFile', read_only)
  with pytest.raises(runner.WorkdirError, match='Read-only file system. Choose a writable'):
    runner.prepare_workdir(str(tmp_path / 'ro'))


@pytest.mark.skipif(not os.path.exists('/dev/full'), reason='needs /dev/full')
def test_a_full_disk_while_logging_is_a_clear_error(small, tmp_path):
  full = open('/dev/full', 'a')
  store = checkpoint.CheckpointStore(str(tmp_path / 'ckpt'))
  with pytest.raises(runner.WorkdirError,
                     match='appending to /dev/full failed: no space left on the device'):
    runner.run_method(small.config, small.stream, small.learner, store,
                      log=runner.metrics_logger(full, 'finetune'), out=lambda line: None)
  with contextlib.suppress(OSError):
    full.close()  # the unwritten line is still buffered


def test_read_metrics_keeps_the_newest_record_per_step_and_skips_cut_lines(tmp_path):
  path = tmp_path / 'metrics.jsonl'
  records = [{'method': 'm', 'phase': 'adapt', 'task': 0, 'step': 10, 'total': 1.0},
             {'method': 'm', 'phase': 'adapt', 'task': 0, 'step': 20, 'total': 2.0}]
  path.write_text(''.join(json.dumps(r) + '\n' for r in records) + '{"method": "m", "pha')
  log_file = runner._open_log(str(path))  # ends the cut line first
  log = runner.metrics_logger(log_file, 'm')
  log({'phase': 'resume', 'task': 0, 'step': 10, 'checkpoint': 10})
  log({'phase': 'adapt', 'task': 0, 'step': 20, 'total': 2.5})
  log({'phase': 'adapt', 'task': 0, 'step': 30, 'total': 3.0})
  log_file.close()
  assert [(r['step'], r['total']) for r in runner.read_metrics(str(path))] == [
      (10, 1.0), (20, 2.5), (30, 3.0)]
