"""The experiment suite in its quick form, run as a user would through its entry point
(``python -m experiments.paper --config experiments/configs/exp_all.py:quick``), one
experiment config on the same run cache, and the results page built from its files
(experiments/update_readme.py).

The quick form runs every experiment on 10% of animals-ci with tiny steps and one seed;
these tests check that each output file is written with the expected columns and numbers
and that the README section is rebuilt from them — not the values of the numbers.
"""

import csv
import json
import math
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

from experiments import suite, update_readme
from experiments.paper import claims as paper_claims
from experiments.paper import configs as paper_configs
from experiments.paper import seeds as paper_seeds
from experiments.configs.exp_common import base_config

METRIC_COLUMNS = [f'{m}_{s}' for m in ('final_avg_acc', 'avg_incremental_acc', 'forgetting',
                                       'bwt', 'fwt', 'memory_bytes') for s in ('mean', 'std')]
EXPECTED = {
    'main': ['stream', 'method', 'n_seeds', 'crashed'] + METRIC_COLUMNS,
    'ablation': ['stream', 'method', 'drop_vs_full', 'paper_avg_acc', 'paper_drop'] + METRIC_COLUMNS,
    'memory': ['stream', 'method', 'budget'] + METRIC_COLUMNS,
    'seeds': ['stream', 'class_mean_split', 'seed_cosine_mean', 'seed_cosine_std',
              'seed_var_relevant_mean', 'seed_var_irrelevant_mean',
              'real_var_relevant_mean', 'real_var_irrelevant_mean'],
    'fwt': ['stream', 'method', 'fwt_mean', 'fwt_std', 'fwt_task2_mean', 'fwt_task5_mean'],
}
RUN_COLUMNS = ['stream', 'method', 'seed', 'final_avg_acc', 'fwt', 'memory_bytes', 'error']


ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def quick(tmp_path_factory):
  """The quick suite through ``experiments.paper``; (root, suite.json, stdout)."""
  root = tmp_path_factory.mktemp('experiments')
  cmd = [sys.executable, '-m', 'experiments.paper',
         '--config', 'experiments/configs/exp_all.py:quick',
         '--workdir', str(root / 'results'), f'--config.cache_dir={root / "cache"}']
  proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stderr[-3000:]
  info = json.loads((root / 'results' / 'suite.json').read_text())
  return root, info, proc.stdout


def read_csv(path):
  with open(path, newline='') as f:
    rows = list(csv.DictReader(f))
  with open(path, newline='') as f:
    header = next(csv.reader(f))
  return header, rows


@pytest.mark.parametrize('name', paper_configs.EXPERIMENTS)
def test_each_experiment_writes_json_csv_markdown_and_plots(quick, name):
  root, _, _ = quick
  directory = root / 'results' / name
  header, rows = read_csv(directory / f'{name}.csv')
  assert set(EXPECTED[name]) <= set(header), sorted(set(EXPECTED[name]) - set(header))
  assert rows, f'{name}.csv has no rows'
  record = json.loads((directory / f'{name}.json').read_text())
  assert record['experiment'] == name and record['tables'] and record['figures']
  markdown = (directory / f'{name}.md').read_text()
  for table in record['tables']:
    assert table['markdown'] in markdown
  for figure in record['figures']:
    png = (directory / figure).read_bytes()
    assert png[:8] == b'\x89PNG\r\n\x1a\n' and len(png) > 1000, figure
    assert f']({figure})' in markdown
  if name in ('main', 'ablation', 'memory'):
    header, runs = read_csv(directory / f'{name}_runs.csv')
    assert set(RUN_COLUMNS) <= set(header)
    assert runs and all(r['error'] == '' for r in runs), [r['error'] for r in runs]
    for row in rows + runs:  # every run finished with an accuracy in [0, 100]
      acc = float(row.get('final_avg_acc_mean') or row['final_avg_acc'])
      assert math.isfinite(acc) and 0.0 <= acc <= 100.0, row


def test_main_table_has_every_quick_method_and_er_matches_the_seed_memory(quick):
  root, _, _ = quick
  _, rows = read_csv(root / 'results' / 'main' / 'main.csv')
  methods = [r['method'] for r in rows]
  assert methods == list(paper_configs.load_experiment_config(
      paper_configs.CONFIG_DIR / 'exp_main.py', quick=True).methods)
  memory = {r['method']: float(r['memory_bytes_mean']) for r in rows}
  per_example = 4 * 384 + 4
  assert 0 < memory['autoseed'] - memory['er_1x'] < per_example  # same bytes, whole exemplars
  assert 10 * memory['autoseed'] - memory['er_10x'] < per_example


def test_claims_and_suite_record(quick):
  root, info, _ = quick
  claims = json.loads((root / 'results' / 'claims.json').read_text())
  assert len(claims) >= 5
  assert all(c['verdict'] in ('holds', 'does not hold', 'partly', 'within the spread',
                              'not measured')
             for c in claims)
  assert '| paper claim |' in (root / 'results' / 'claims.md').read_text()
  assert info['quick'] and info['experiments'] == list(paper_configs.EXPERIMENTS)
  assert info['command'].startswith('python -m experiments.paper --config '
                                    'experiments/configs/exp_all.py:quick')
  # Runs shared between experiments ran once: quick main has 5 runs, quick ablation adds
  # one switched row of each method, memory autoseed_plus at its budget's bytes and one
  # larger ER budget (ER at the budget is ER at the bytes autoseed held, already run);
  # seeds and fwt reuse main's runs.
  assert info['runs_executed'] == 9


def test_main_prints_each_table_and_the_claims(quick):
  root, info, stdout = quick
  for name in paper_configs.EXPERIMENTS:
    record = json.loads((root / 'results' / name / f'{name}.json').read_text())
    assert record['tables'][0]['markdown'] in stdout, name
    assert re.search(rf'\n{name}: \d+ s; wrote \d+ files into '
                     rf'{re.escape(str(root / "results" / name))}\n', stdout), name
  assert '| paper claim |' in stdout
  assert f'({info["runs_executed"]} runs executed, 0 read from the cache)' in stdout


def test_one_experiment_config_reads_the_runs_of_main_back_from_the_cache(quick, tmp_path):
  """One experiment's config on the same cache: fwt reuses main's runs."""
  root, _, _ = quick
  proc = subprocess.run(
      [sys.executable, '-m', 'experiments.paper', '--config',
       'experiments/configs/exp_fwt.py:quick', '--workdir', str(tmp_path),
       f'--config.cache_dir={root / "cache"}'], cwd=ROOT, capture_output=True, text=True,
      timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  saved = json.loads((tmp_path / 'suite.json').read_text())
  assert saved['experiments'] == ['fwt'] and saved['runs_executed'] == 0
  assert saved['runs_from_cache'] == 5  # the quick main table's five runs
  _, rows = read_csv(tmp_path / 'fwt' / 'fwt.csv')
  _, expected = read_csv(root / 'results' / 'fwt' / 'fwt.csv')
  assert rows == expected


def test_cached_runs_are_read_back_not_rerun(quick):
  root, _, _ = quick
  cached = suite.Suite(root / 'cache', out=lambda line: None)
  config = suite.run_config(base_config(quick=True), method='zeroshot', seed=0)
  record = cached.run('animals-ci', config, label='zeroshot', train_fraction=0.1)
  assert cached.runs_from_cache == 1 and cached.runs_done == 0
  _, rows = read_csv(root / 'results' / 'main' / 'main_runs.csv')
  zeroshot = next(r for r in rows if r['method'] == 'zeroshot')
  assert record.metrics['final_avg_acc'] == pytest.approx(float(zeroshot['final_avg_acc']))


def test_results_page_and_readme_headline_are_rebuilt_from_the_files(quick, tmp_path):
  root, _, _ = quick
  readme = tmp_path / 'README.md'
  readme.write_text('# project\n\nintro\n')
  first = update_readme.update_readme(readme, root / 'results')
  assert first.startswith('# project\n\nintro\n')
  assert first.count(update_readme.START) == 1 and first.rstrip().endswith(update_readme.END)
  claims = json.loads((root / 'results' / 'claims.json').read_text())
  assert all(c['claim'] in first and f'**{c["verdict"]}**' in first for c in claims)
  assert '--quick' in first and '**Which method to use:**' in first
  results_link = pathlib.Path(os.path.relpath(root / 'results', tmp_path)).as_posix()
  assert f'({results_link}/README.md)' in first  # the page, relative to the README
  page = (root / 'results' / 'README.md').read_text()
  main = json.loads((root / 'results' / 'main' / 'main.json').read_text())
  assert main['tables'][0]['markdown'] in page and claims[0]['measured'] in page
  assert f'(./main/{main["figures"][0]})' in page  # relative to the page
  readme.write_text(first + '\nafter the section\n')
  second = update_readme.update_readme(readme, root / 'results')
  assert second == first + '\nafter the section\n'  # replaced in place, text around kept


def test_best_method_is_the_most_accurate_within_the_byte_budget():
  def row(stream, method, acc, nbytes):
    return {'stream': stream, 'method': method, 'final_avg_acc': {'mean': acc, 'std': 1.0},
            'memory_bytes': {'mean': nbytes}}
  main = {'summary': [
      row('a', 'er_budget', 70.0, 1000), row('b', 'er_budget', 60.0, 1000),
      row('a', 'joint', 90.0, 10 ** 6), row('b', 'joint', 90.0, 10 ** 6),
      row('a', 'er_10x', 85.0, 10_000), row('b', 'er_10x', 85.0, 10_000),
      row('a', 'seeds', 80.0, 990), row('b', 'seeds', 61.0, 990),
      row('a', 'stats', 72.0, 0), row('b', 'stats', 65.0, 0),
      row('v', 'seeds', 99.0, 0)], 'vl_tasks': {'v': []}}
  best = update_readme.best_method(main)
  assert best['method'] == 'seeds' and best['budget'] == 1000  # 70.5 on a and b, not 68.5
  assert best['runner_up_method'] == 'stats' and set(best['streams']) == {'a', 'b'}


def test_generation_is_crucial_only_when_it_beats_random_seeds_and_its_centres():
  def row(stream, name, acc, std=1.0):
    return {'stream': stream, 'row': name, 'final_avg_acc': {'mean': acc, 'std': std,
                                                             'min': acc - 1}}
  paper = {'full': 82.2, 'random_seeds': 68.9}
  beats_both = [row('a', 'full', 80.0), row('a', 'random_seeds', 70.0),
                row('a', 'plus_full', 80.0), row('a', 'plus_centres', 78.0)]
  assert paper_claims.generation_claim(beats_both, paper)['verdict'] == 'holds'
  within_spread = beats_both[:3] + [row('a', 'plus_centres', 79.5)]  # random seeds lose
  claim = paper_claims.generation_claim(within_spread, paper)
  assert claim['verdict'] == 'does not hold' and 'starting centres' in claim['measured']
  two_streams = beats_both + [row('b', 'full', 80.0), row('b', 'random_seeds', 70.0),
                              row('b', 'plus_full', 77.0), row('b', 'plus_centres', 80.0)]
  assert paper_claims.generation_claim(two_streams, paper)['verdict'] == 'partly'
  assert paper_claims.generation_claim([], paper)['verdict'] == 'not measured'


def test_readme_is_short_and_answers_first():
  """The README's first 40 lines hold the two commands, the claims' verdicts and the
  method to use; the whole README is at most 200 lines."""
  lines = (ROOT / 'README.md').read_text().splitlines()
  assert len(lines) <= 200, len(lines)
  first = '\n'.join(lines[:40])
  for text in ('make demo', 'make test', '| paper claim |', '**Which method to use:**'):
    assert text in first, text


@pytest.mark.parametrize('text', [
    f'a\n{update_readme.START}\nno end\n',
    f'a\n{update_readme.END}\n{update_readme.START}\n',
    f'{update_readme.START}\n{update_readme.END}\n{update_readme.START}\n{update_readme.END}\n'])
def test_malformed_markers_are_refused(text):
  with pytest.raises(ValueError, match='markers'):
    update_readme.replace_section(text, 'section\n')


def test_missing_results_name_the_command(tmp_path):
  with pytest.raises(FileNotFoundError, match='experiments/configs/exp_all.py'):
    update_readme.results_page(tmp_path / 'nothing')


def test_seed_statistics_of_seeds_at_the_class_means():
  rng = np.random.default_rng(0)
  means = np.eye(3, 8) * 3
  y = np.repeat(np.arange(3), 50)
  x = means[y] + 0.1 * rng.normal(size=(150, 8))
  seeds = {'v': x.reshape(3, 50, 8).mean(axis=1), 'w': means, 'label': np.arange(3)}
  stats = paper_seeds.seed_statistics(seeds, x, y, class_text=means)
  np.testing.assert_allclose(stats['cosines'], 1.0, atol=1e-6)
  assert stats['relevant_dims'] == 2
  # Seeds at the class means vary only inside the span of the class means.
  assert stats['seed_var_irrelevant'] < 1e-12 and stats['seed_irrelevant_share'] < 1e-10
  assert stats['seed_var_relevant'] > 1.0
  # Real examples add isotropic noise of variance 0.01 per direction everywhere.
  assert stats['real_var_irrelevant'] == pytest.approx(0.01, rel=0.3)
  assert stats['real_example_cosine']['mean'] < 1.0


def test_mean_std_and_format():
  assert suite.mean_std([1.0, 3.0, None]) == {'mean': 2.0, 'std': pytest.approx(1.41421),
                                               'min': 1.0, 'n': 2}
  assert suite.mean_std([]) == {'mean': None, 'std': None, 'min': None, 'n': 0}
  assert suite.mean_std([2e-5, 4e-5])['mean'] == pytest.approx(3e-5)
  assert suite.fmt(suite.mean_std([1.0, 3.0])) == '2.00 ± 1.41'
  assert suite.fmt(suite.mean_std([5.0])) == '5.00'
  assert suite.fmt(suite.mean_std([80.0, 42.5, 79.0]), with_min=True) == '67.17 ± 21.37 (min 42.50)'
