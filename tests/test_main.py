"""The command-line entry point, run as a user would."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ['--config.steps_per_task=20', '--config.steps_per_chunk=10', '--config.meta_steps=2',
        '--config.adapter_hidden=32', '--config.generator_hidden=32',
        '--config.stream.num_tasks=3', '--config.stream.dim=16',
        '--config.stream.train_per_class=40', '--config.stream.test_per_class=20']


def run_main(workdir, *extra):
  cmd = [sys.executable, '-m', 'autoseed_jax.main',
         '--config', os.path.join(ROOT, 'experiments/configs/synthetic.py'),
         '--workdir', str(workdir), *TINY, *extra]
  return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_demo_config_runs_end_to_end_and_writes_results(tmp_path):
  proc = run_main(tmp_path, '--config.memory_budget=24')
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'synthetic embedding benchmark' in proc.stdout
  assert 'final avg acc' in proc.stdout and 'after \\ on' in proc.stdout
  assert re.search(r'XLA: \d+ programs compiled in [\d.]+ s, \d+ loaded from the '
                   r'compilation cache', proc.stdout.splitlines()[-1])
  results = json.load(open(tmp_path / 'results.json'))
  assert results['config']['memory_budget'] == 24
  assert set(results['methods']) == {'zeroshot', 'finetune', 'autoseed'}
  acc = results['methods']['autoseed']['acc_matrix']
  assert len(acc) == 3 and all(len(row) == 3 for row in acc)
  assert 0 < results['methods']['autoseed']['memory_bytes']
  records = [json.loads(line) for line in open(tmp_path / 'metrics.jsonl')]
  assert {r['phase'] for r in records} == {'adapt', 'consolidate'}


@pytest.mark.parametrize('flag, message', [
    ('--config.memory_budgett=3', 'memory_budgett'),
    ('--config.memory_budget=abc', 'memory_budget'),
])
def test_unknown_key_or_wrong_type_is_a_clear_error(tmp_path, flag, message):
  proc = run_main(tmp_path, flag)
  assert proc.returncode != 0
  assert message in proc.stderr
  assert 'Traceback' not in proc.stderr


def test_invalid_value_is_one_line_without_traceback(tmp_path):
  proc = run_main(tmp_path, '--config.seeds_per_class=0')
  assert proc.returncode == 2
  assert 'seeds_per_class=0 must be > 0' in proc.stderr
  assert 'Traceback' not in proc.stderr


def test_unwritable_workdir_is_one_line_before_any_work(tmp_path):
  blocker = tmp_path / 'a_file'
  blocker.write_text('a regular file where a directory is expected')
  proc = run_main(blocker / 'run')
  assert proc.returncode == 1
  assert f'error: cannot write to --workdir {blocker}/run' in proc.stderr
  assert 'Traceback' not in proc.stderr
  assert 'stream' not in proc.stdout  # refused before the stream is loaded


def test_demo_config_runs_on_real_images_and_writes_plots(tmp_path):
  """The real demo config (animals-ci, offline backbone) end to end, with tiny settings."""
  env = dict(os.environ, AUTOSEED_CACHE_DIR=str(tmp_path / 'cache'),
             AUTOSEED_DATA_DIR=str(tmp_path / 'data'))
  cmd = [sys.executable, '-m', 'autoseed_jax.main',
         '--config', os.path.join(ROOT, 'experiments/configs/demo.py'),
         '--workdir', str(tmp_path / 'run'), '--config.steps_per_task=20',
         '--config.steps_per_chunk=20', '--config.meta_steps=2', '--config.plus_meta_steps=2',
         '--config.stream.train_fraction=0.2']
  proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'animals-ci' in proc.stdout and 'synthetic' not in proc.stdout
  # The first run builds the animals into the fresh data dir and says so in one line,
  # without TFDS's download messages (nothing is downloaded) or its warnings.
  assert (f'building animal_mnist from the installed package animal-mnist into '
          f'{tmp_path}/data/animal_mnist/1.0.0: 10,000 images') in proc.stdout
  for noise in ('Downloading', 'Unknown size', 'Variant folder', 'Generating splits'):
    assert noise not in proc.stdout + proc.stderr, noise
  results = json.load(open(tmp_path / 'run/results.json'))
  assert len(results['methods']['autoseed']['acc_matrix']) == 5
  assert len(results['methods']['autoseed_plus']['acc_matrix']) == 5
  for name in ('accuracy_matrix.png', 'accuracy_after_each_task.png', 'seed_projection.png',
               'results.md'):
    assert (tmp_path / 'run' / name).stat().st_size > 0, name
  seeds = np.load(tmp_path / 'run/methods/autoseed/seeds.npz')
  assert seeds['v'].shape[1] == 384 and len(set(seeds['label'].tolist())) == 10


def test_streams_carry_training_images_only_for_runs_that_replay_images(tmp_path):
  import ml_collections  # pylint: disable=import-outside-toplevel
  from autoseed_jax import methods  # pylint: disable=import-outside-toplevel
  from autoseed_jax.streams import load_stream  # pylint: disable=import-outside-toplevel
  stream_config = ml_collections.ConfigDict(
      dict(name='animals-ci', train_fraction=0.05, cache_dir=str(tmp_path)))
  assert methods.needs_pixels(('finetune', 'dgr_pixel'))
  assert not methods.needs_pixels(('finetune', 'autoseed'))
  with_images = load_stream(stream_config, pixels=True)
  without = load_stream(stream_config, pixels=False)
  assert with_images.tasks[0].train_pixels.shape[1:] == (32, 32, 1)
  assert without.tasks[0].train_pixels is None
  np.testing.assert_array_equal(with_images.tasks[0].train_x, without.tasks[0].train_x)


def test_cifar_stream_without_prepared_data_names_how_to_prepare_it(tmp_path):
  cmd = [sys.executable, '-m', 'autoseed_jax.main',
         '--config', os.path.join(ROOT, 'experiments/configs/demo.py'),
         '--config.stream.name=cifar100-10', f'--config.stream.data_dir={tmp_path / "data"}',
         '--workdir', str(tmp_path / 'run')]
  proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert proc.returncode != 0
  assert f'tfds build cifar100 --data_dir {tmp_path / "data"}' in proc.stderr
  assert 'Traceback' not in proc.stderr
