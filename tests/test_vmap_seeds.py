"""Many run seeds in one compiled program (``autoseed_jax.seed_axis``): equal to the same
seeds run one after the other, resumable after SIGKILL, composable with devices.

Small shapes and few steps: each method compiles one single-seed and one 3-seed learner;
the command-line runs use the same stream and config as the in-process ones, so they load
the 3-seed Auto-Seed programs from the session's compilation cache (conftest.py).
"""

import dataclasses
import json
import os
import signal
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from autoseed_jax.tools import checkpoint
from autoseed_jax import continual, methods, runner, seed_axis
from autoseed_jax.methods import base
from autoseed_jax.tools.profiling import count_compilations
from autoseed_jax.streams.synthetic import make_synthetic_stream
from experiments.configs import synthetic as synthetic_config
from experiments.configs.common import method_config
from helpers import TEST_XLA_FLAGS
from helpers.device_runs import run_on_eight_devices
from helpers.small_runs import SMALL, STREAM
from test_resume import (ROOT, assert_resumed_in_task_two, checkpoint_ids, checkpoint_meta,
                         finish, wait_until)

SEEDS = (0, 1, 2)
# Largest |vmapped - sequential| measured on this file's stream and config (2 cores, CPU):
# accuracy matrices (percent) and trained parameters. docs/SEEDS_AXIS.md has the table.
ACC_TOLERANCE = {'er': 0.0, 'kmeans_seeds': 0.0, 'autoseed_plus': 0.0, 'autoseed': 0.0}
PARAM_TOLERANCE = 1e-5



@pytest.fixture(scope='module')
def stream():
  return make_synthetic_stream(**STREAM)


def small_config(method, **overrides):
  c = method_config()
  c.method = method
  c.seeds = SEEDS
  for k, v in {**SMALL, **overrides}.items():
    c[k] = v
  return c


def _max_diff(a, b):
  return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.fixture(scope='module', params=sorted(ACC_TOLERANCE))
def runs(request, stream):
  """(method, the 3-seed learner, its per-seed results, the sequential results)."""
  config = small_config(request.param)
  learner = seed_axis.build_seeds_learner(config, stream)
  records = []
  vmapped = seed_axis.run_sequences(config, stream, learner=learner, log=records.append)
  single = continual.build_learner(seed_axis.seed_config(config, SEEDS[0]), stream)
  sequential = seed_axis.run_sequences(config, stream, learner=single)
  return request.param, learner, vmapped, sequential, records


def test_vmapped_seeds_equal_sequential_runs(runs):
  method, learner, vmapped, sequential, _ = runs
  assert isinstance(learner, seed_axis.SeedsLearner)  # not the one-at-a-time fallback
  assert [r.seed for r in vmapped] == [r.seed for r in sequential] == list(SEEDS)
  for v, s in zip(vmapped, sequential):
    np.testing.assert_allclose(v.acc_matrix, s.acc_matrix, atol=ACC_TOLERANCE[method], rtol=0)
    np.testing.assert_allclose(v.initial_acc, s.initial_acc, atol=1e-4, rtol=0)
    assert _max_diff(v.state.params, s.state.params) < PARAM_TOLERANCE, method
    assert v.memory_bytes == s.memory_bytes
    assert v.metrics == pytest.approx(s.metrics, abs=max(ACC_TOLERANCE[method], 1e-6))
  # The seeds are really different runs (each seed has its own key).
  assert _max_diff(vmapped[0].state.params, vmapped[1].state.params) > 1e-3


def test_each_seed_starts_from_the_key_of_its_single_run(runs, stream):
  _, learner, _, _, _ = runs
  test = learner.put_test(stream.test)
  stacked = learner.init(learner.run_key(None), test)
  single = continual.build_learner(
      seed_axis.seed_config(small_config(learner.name), 0), stream)
  for i, seed in enumerate(SEEDS):
    alone = single.init(jax.random.PRNGKey(seed), single.put_test(stream.test))
    mine = learner.seed_state(stacked, i)
    assert np.array_equal(np.asarray(mine.key), np.asarray(alone.key))  # the same key
    # The same draws, to float rounding: XLA may compile the initialisers' arithmetic
    # differently under vmap (measured: 0 at its default optimisation, 9e-8 with the
    # tests' backend optimisations off).
    assert _max_diff(mine.params, alone.params) <= 1e-6
    if alone.gen_params is not None:
      assert _max_diff(mine.gen_params, alone.gen_params) <= 1e-6


def test_logs_one_record_per_seed_and_chunk(runs, stream):
  _, learner, _, _, records = runs
  adapt = [r for r in records if r['phase'] == 'adapt']
  assert len(adapt) == len(SEEDS) * stream.num_tasks * len(learner.chunks())
  assert [r['seed'] for r in adapt[:3]] == list(SEEDS)
  consolidate = [r for r in records if r['phase'] == 'consolidate']
  assert len(consolidate) == len(SEEDS) * stream.num_tasks


def test_later_tasks_compile_nothing_and_seeds_out_of_step_are_refused(stream):
  config = small_config('er')
  learner = seed_axis.build_seeds_learner(config, stream)
  test = learner.put_test(stream.test)
  state = learner.init(learner.run_key(config), test)
  state = learner.learn_task(state, learner.put_task(stream.tasks[0]), test=test)
  with count_compilations() as later:
    state = learner.learn_task(state, learner.put_task(stream.tasks[1]), test=test)
  assert later.count == 0
  assert learner.position(state) == (2, 0)
  skewed = state.replace(step=state.step.at[1].add(1))
  with pytest.raises(checkpoint.SeedsOutOfStep, match='different positions'):
    learner.position(skewed)


def finetune_with_host_callback(context):
  """Fine-tuning whose consolidation calls the host without a batching rule: it runs
  under jit, not under vmap."""

  def consolidate(state, task, *, axis_name=None):
    del task, axis_name
    seen = jax.pure_callback(lambda s: np.asarray(s.sum(), np.int32),
                             jax.ShapeDtypeStruct((), jnp.int32), state.seen)
    return state, {'classes_seen': seen}

  return dataclasses.replace(base.finetune(context), consolidate=consolidate)


def test_a_method_that_cannot_be_vmapped_runs_its_seeds_one_at_a_time(stream, monkeypatch,
                                                                       tmp_path):
  monkeypatch.setitem(methods.METHODS, 'finetune', finetune_with_host_callback)
  config = small_config('finetune')
  with pytest.raises(seed_axis.CannotMapSeeds, match="'finetune'.*consolidate phase.*vmap"):
    seed_axis.build_seeds_learner(config, stream)
  lines = []
  results = seed_axis.run_sequences(config, stream, out=lines.append)
  assert lines == [l for l in lines if 'running seeds 0, 1, 2 one at a time' in l] and lines
  assert [r.seed for r in results] == list(SEEDS)
  # In a workdir: one directory and one results entry per seed, each a plain single run.
  with config.unlocked():
    config.methods = ('finetune',)
  records = runner.run_workdir(config, stream, str(tmp_path), out=lines.append)
  assert list(records) == [seed_axis.entry_name('finetune', s) for s in SEEDS]
  for r in results:
    entry = records[seed_axis.entry_name('finetune', r.seed)]
    assert entry['seed'] == r.seed and entry['method'] == 'finetune'
    assert entry['acc_matrix'] == np.round(r.acc_matrix, 4).tolist()
    saved = json.load(open(tmp_path / 'methods' / f'finetune@seed{r.seed}' / 'signature.json'))
    assert saved['config']['seed'] == r.seed and 'seeds' not in saved['config']


def test_bad_seed_fields_are_refused_naming_the_field():
  for seeds, match in (((0, 0), 'lists a seed twice'), ((-1,), 'seeds=')):
    with pytest.raises(ValueError, match=match):
      seed_axis.validate(small_config('er', seeds=seeds))
  with pytest.raises(ValueError, match='seed_sharding'):
    seed_axis.validate(small_config('er', seed_sharding='devices'))
  with pytest.raises(ValueError, match="parallel='jit'"):
    seed_axis.validate(small_config('er', seed_sharding='seeds', parallel='pmap'))


# ---------------------------------------------------------------------------------------
# The command line: a 3-seed run in a workdir, killed mid-task and resumed.

STEPS = SMALL['steps_per_task']  # 2 chunks: checkpoint ids of task t: 13t+6, 13t+12, 13(t+1)
CLI_ARGS = (["--config.methods=('autoseed',)", f'--config.seeds={SEEDS}']
            + [f'--config.{k}={v}' for k, v in SMALL.items()]
            + [f'--config.stream.{k}={v}' for k, v in STREAM.items()])


def start(workdir, env, name):
  """Starts the synthetic config's run of ``CLI_ARGS`` on ``workdir``."""
  out, err = open(f'{workdir}.{name}.out', 'w'), open(f'{workdir}.{name}.err', 'w')
  cmd = [sys.executable, '-m', 'autoseed_jax.main', '--config',
         os.path.join(ROOT, 'experiments/configs/synthetic.py'), '--workdir', str(workdir),
         *CLI_ARGS]
  proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=err)
  proc.log_paths = (out.name, err.name)
  return proc


@pytest.fixture(scope='module')
def cli(tmp_path_factory, stream):
  """The 3-seed run uninterrupted (in this process: the same programs as the command
  line's); on another workdir the command line's run killed (SIGKILL) in its second task,
  then the same command once more to the end."""
  base = tmp_path_factory.mktemp('seeds_cli')
  # One device and this process's XLA flags: the reference below runs in this process.
  env = dict(os.environ, JAX_PLATFORMS='cpu', XLA_FLAGS=TEST_XLA_FLAGS)
  runs = {'reference_dir': base / 'reference', 'work': base / 'work'}
  config = synthetic_config.get_config()
  config.methods = ('autoseed',)
  config.seeds = SEEDS
  for k, v in SMALL.items():
    config[k] = v
  config.stream.update(STREAM)
  runner.run_workdir(config, stream, str(runs['reference_dir']), out=lambda line: None)
  work = runs['work']
  proc = start(work, env, 'sigkill')
  wait_until(proc, lambda: any(STEPS + 1 < i < 2 * (STEPS + 1)
                               for i in checkpoint_ids(work, 'autoseed')),
             'a checkpoint inside task 2')
  proc.kill()
  runs['sigkill'] = finish(proc)
  runs['after_kill'] = checkpoint_ids(work, 'autoseed')
  runs['final'] = finish(start(work, env, 'final'))
  return runs


def test_a_killed_vmapped_run_resumes_bit_identically(cli):
  assert cli['sigkill'][0] == -signal.SIGKILL
  _, out, err = assert_resumed_in_task_two(cli, STEPS)
  assert 'taking the lock over' in out + err  # the killed run's lock
  last = 3 * (STEPS + 1)
  assert checkpoint_ids(cli['reference_dir'], 'autoseed')[-1] == last
  assert (checkpoint_meta(cli['work'], 'autoseed', last)['digest']
          == checkpoint_meta(cli['reference_dir'], 'autoseed', last)['digest'])
  reference = json.load(open(cli['reference_dir'] / 'results.json'))['methods']
  resumed = json.load(open(cli['work'] / 'results.json'))['methods']
  assert list(resumed) == [seed_axis.entry_name('autoseed', s) for s in SEEDS]
  for name, record in resumed.items():
    assert record['method'] == 'autoseed' and record['seed'] == int(name.split('seed')[-1])
    assert record['acc_matrix'] == reference[name]['acc_matrix']
    assert record['metrics'] == reference[name]['metrics']
  # Reports read it: one row per seed; each seed's memory kept.
  for s in SEEDS:
    assert (cli['work'] / 'methods' / 'autoseed' / f'seeds@seed{s}.npz').exists()
  assert (cli['work'] / 'results.md').read_text().count('autoseed@seed') == len(SEEDS)
  metrics = runner.read_metrics(cli['work'] / 'metrics.jsonl')
  assert metrics == runner.read_metrics(cli['reference_dir'] / 'metrics.jsonl')
  assert {r['seed'] for r in metrics} == set(SEEDS)


# ---------------------------------------------------------------------------------------
# Devices: the seed axis on 8 simulated CPU devices.


@pytest.fixture(scope='module')
def devices():
  return run_on_eight_devices('seed_axis_devices.py')


@pytest.mark.parametrize('form', ['jit8', 'pmap8', 'seeds4'])
def test_seed_axis_on_several_devices_matches_one_device(devices, form):
  np.testing.assert_allclose(devices[form]['acc_matrix'], devices['one']['acc_matrix'],
                             atol=1e-4)
  assert devices[form]['params_max_diff'] < 1e-5


def test_seed_sharding_puts_each_seed_on_its_own_device(devices):
  assert "'data': 4" in devices['seeds4']['state_sharding']
  assert "P('data'" in devices['seeds4']['state_sharding']
  assert "'data': 8" in devices['jit8']['train_x_sharding']
