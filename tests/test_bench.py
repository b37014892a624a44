"""experiments/bench (``python -m experiments.bench``): the quick run has every section and recompiles nothing after task 1;
the peers comparison is skipped cleanly without the optional extra; the helpers that turn
measurements into numbers (log-log exponent, replay bytes at equal accuracy) are right.

No timing is asserted: the machine is shared.
"""

import json
import math
import os
import pathlib
import subprocess
import sys

import pytest

from experiments.bench import common
from experiments.bench import memory as memory_lib
from experiments.bench import peers as peers_lib

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def quick_run(tmp_path_factory):
  out = tmp_path_factory.mktemp('bench') / 'bench.json'
  env = dict(os.environ)  # with the tests' XLA flags (tests/conftest.py)
  proc = subprocess.run(
      [sys.executable, '-m', 'experiments.bench', '--quick', '--out', str(out)],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
  assert proc.returncode == 0, proc.stderr[-4000:]
  return json.loads(out.read_text()), out, proc.stdout


def test_quick_run_has_every_section(quick_run):
  report, _, _ = quick_run
  assert report['mode'] == 'quick'
  missing = [s for s in common.SECTIONS if s not in report]
  assert not missing, missing


def test_learning_tasks_2_to_T_compiles_nothing(quick_run):
  compile_section = quick_run[0]['compile']
  assert compile_section['recompilations_tasks_2_to_T'] == 0
  assert set(compile_section['functions']) == {'init', 'begin_task', 'adapt', 'consolidate',
                                               'end_task'}
  for times in compile_section['functions'].values():
    assert times['lower_s'] > 0 and times['compile_s'] > 0


def test_measurements_are_filled_in(quick_run):
  report = quick_run[0]
  assert report['matmul']['flops_per_s'] > 0
  for point in report['online_adaptation']['points']:
    assert point['steps_per_s'] > 0
    assert point['examples_per_s'] == pytest.approx(point['steps_per_s'] * point['batch_size'])
    assert point['flops_per_step'] > 0
    assert point['flops_source'] in ('xla_cost_analysis', 'analytic')
    assert point['fraction_of_matmul'] > 0
  meta = report['meta_update']
  assert [p['inner_steps'] for p in meta['points']] == list(common.QUICK.inner_steps)
  assert 0 < meta['seed_update_share']['median_fraction'] < 1
  embedding = report['embedding_extraction']
  for backbone in ('offline_lit_minilm', 'clip_vit_b32_random'):
    for kind in ('images', 'texts'):
      assert embedding[backbone][kind]['rows_per_s'] > 0
  for sweep, key, values in (('classes', 'num_classes', common.QUICK.growth_classes),
                             ('memory_capacity', 'memory_capacity',
                              common.QUICK.growth_capacity)):
    growth = report['cost_growth'][sweep]
    assert [p[key] for p in growth['points']] == list(values)
    assert math.isfinite(growth['exponent'])


def test_memory_and_peers_say_what_they_need(quick_run):
  report = quick_run[0]
  assert report['memory']['status'] == 'needs results'
  assert '--memory-results' in report['memory']['message']
  peers = report['peers']
  if peers_lib.peers_unavailable() is not None:  # CI: the extra is not installed
    assert 'requirements-bench.txt' in peers['skipped']
  else:
    assert peers['implementations']['ours']['epoch_s_median'] > 0
    assert peers['speedup_vs_torch']['vs_best'] > 0


def test_seed_axis_section_times_vmapped_and_sequential_runs(quick_run):
  from experiments.bench import seeds as bench_seeds  # pylint: disable=import-outside-toplevel
  section = quick_run[0]['seeds']
  assert list(section['methods']) == list(bench_seeds.QUICK.methods)
  for method in section['methods'].values():
    assert method['one_run_s'] > 0
    assert [p['seeds'] for p in method['points']] == list(bench_seeds.QUICK.seed_counts)
    for p in method['points']:
      assert p['vmapped_s'] > 0 and p['sequential_s'] > 0
      assert p['vmapped_runs_per_s'] == pytest.approx(p['seeds'] / p['vmapped_s'])
      assert p['speedup'] == pytest.approx(p['sequential_s'] / p['vmapped_s'])
  assert set(section['target']['met']) == set(bench_seeds.QUICK.methods)
  devices = section['devices']
  assert devices['devices'] == bench_seeds.QUICK.device_count
  assert set(devices['seconds']) == set(bench_seeds.PLACEMENTS)
  assert devices['fastest'] in bench_seeds.PLACEMENTS


def test_markdown_table_is_written_and_printed(quick_run):
  _, out, stdout = quick_run
  table = out.with_suffix('.md').read_text()
  assert table.startswith('| section | measurement | value |')
  assert '| compile | recompilations learning tasks 2..3 | 0 |' in table
  for section in ('matmul', 'online adaptation', 'meta-update', 'embedding', 'cost growth',
                  'memory', 'peers', 'seeds'):
    assert f'| {section} |' in table, section
  assert table.strip() in stdout


def test_log_log_exponent():
  assert common.log_log_exponent([10, 100, 1000], [2, 20, 200]) == pytest.approx(1.0)
  assert common.log_log_exponent([1e3, 1e4, 1e5], [5, 5, 5]) == pytest.approx(0.0, abs=1e-12)
  assert common.log_log_exponent([2, 4, 8], [1, 4, 16]) == pytest.approx(2.0)


def test_replay_bytes_at_equal_accuracy():
  er = [{'memory_bytes': 1_000, 'final_avg_acc': 50.0},
        {'memory_bytes': 10_000, 'final_avg_acc': 70.0},
        {'memory_bytes': 100_000, 'final_avg_acc': 65.0}]  # worse with more memory: noise
  # Halfway between 50% and 70% is halfway in log(bytes): sqrt(1e3 * 1e4).
  assert memory_lib.replay_bytes_at_accuracy(er, 60.0)['bytes'] == pytest.approx(10 ** 3.5)
  assert memory_lib.replay_bytes_at_accuracy(er, 70.0)['bytes'] == pytest.approx(10_000)
  low = memory_lib.replay_bytes_at_accuracy(er, 40.0)
  assert low['bytes'] == 1_000 and low['bound'].startswith('at most')
  high = memory_lib.replay_bytes_at_accuracy(er, 80.0)
  assert high['bytes'] is None and 'at most 70.00%' in high['reason']


def _results_json(path, methods):
  path.write_text(json.dumps({'stream': 'synthetic', 'methods': {
      name: {'memory_bytes': b, 'metrics': {'final_avg_acc': acc}}
      for name, (b, acc) in methods.items()}}))
  return path


def test_memory_section_reads_runner_results(tmp_path):
  small = tmp_path / 'small'
  small.mkdir()
  _results_json(small / 'results.json', {'autoseed': (24_000, 60.0), 'er': (1_000, 50.0),
                                         'finetune': (0, 20.0)})
  big = _results_json(tmp_path / 'big.json', {'er': (10_000, 70.0)})
  section = memory_lib.memory_section([str(small), str(big)])  # a workdir and a file
  assert section['status'] == 'ok'
  assert sorted(p['method'] for p in section['points']) == ['autoseed', 'er', 'er']
  (comparison,) = section['comparisons']
  assert comparison['seed_bytes'] == 24_000
  assert comparison['replay_bytes_at_equal_acc'] == pytest.approx(10 ** 3.5)
  assert comparison['replay_to_seed_ratio'] == pytest.approx(10 ** 3.5 / 24_000)


def test_memory_section_reads_the_memory_experiment_per_stream(tmp_path):
  def row(stream, method, budget, nbytes, acc):
    return {'stream': stream, 'method': method, 'budget': budget,
            'memory_bytes': {'mean': nbytes}, 'final_avg_acc': {'mean': acc}}

  path = tmp_path / 'memory.json'
  path.write_text(json.dumps({'experiment': 'memory', 'summary': [
      row('a', 'autoseed', 'k=1', 24_000, 60.0), row('a', 'er', '1x', 1_000, 50.0),
      row('a', 'er', '10x', 10_000, 70.0),
      # Stream b's ER reaches 60% with little memory; it must not count for stream a.
      row('b', 'er', '1x', 100, 90.0), row('b', 'autoseed', 'k=1', 5_000, 95.0)]}))
  section = memory_lib.memory_section([str(path)])
  by_stream = {c['stream']: c for c in section['comparisons']}
  assert by_stream['a']['replay_bytes_at_equal_acc'] == pytest.approx(10 ** 3.5)
  assert by_stream['b']['replay_bytes_at_equal_acc'] is None  # ER at most 90% on b


def test_memory_section_without_results_invents_nothing(tmp_path):
  assert memory_lib.memory_section([])['status'] == 'needs results'
  only_seeds = _results_json(tmp_path / 'r.json', {'autoseed': (24_000, 60.0)})
  section = memory_lib.memory_section([str(only_seeds)])
  assert section['status'] == 'needs results' and 'comparisons' not in section
  with pytest.raises(FileNotFoundError, match='does not exist'):
    memory_lib.memory_section([str(tmp_path / 'missing.json')])
  bad = tmp_path / 'bad.json'
  bad.write_text('[1, 2]')
  with pytest.raises(ValueError, match='neither a results.json'):
    memory_lib.memory_section([str(bad)])
