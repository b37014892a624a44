"""The command-line entry point, run as a user would."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ['--config.steps_per_task=20', '--config.steps_per_chunk=10', '--config.meta_steps=2',
        '--config.adapter_hidden=32', '--config.generator_hidden=32',
        '--config.stream.num_tasks=3', '--config.stream.dim=16',
        '--config.stream.train_per_class=40', '--config.stream.test_per_class=20']


def run_main(workdir, *extra):
  cmd = [sys.executable, '-m', 'autoseed_jax.main',
         '--config', os.path.join(ROOT, 'experiments/configs/demo.py'),
         '--workdir', str(workdir), *TINY, *extra]
  return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_demo_config_runs_end_to_end_and_writes_results(tmp_path):
  proc = run_main(tmp_path, '--config.memory_budget=24')
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'synthetic embedding benchmark' in proc.stdout
  assert 'final avg acc' in proc.stdout and 'after \\ on' in proc.stdout
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
