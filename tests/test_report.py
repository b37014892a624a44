"""Plots and tables rebuilt from a work directory."""

import json
import subprocess
import sys

import numpy as np
import pytest

from autoseed_jax.report import plots
from autoseed_jax import report


def _results():
  acc = [[90.0, 10.0], [40.0, 95.0]]
  record = {'acc_matrix': acc, 'initial_acc': [50.0, 20.0],
            'metrics': {'final_avg_acc': 67.5, 'avg_incremental_acc': 78.75,
                        'forgetting': 50.0, 'bwt': -50.0, 'fwt': -10.0},
            'memory_bytes': 1234, 'seconds': 1.0}
  return {'stream': 'toy', 'description': 'two tasks', 'config': {},
          'methods': {'finetune': record, 'autoseed': dict(record, memory_bytes=99)}}


def test_write_report_makes_pngs_and_markdown(tmp_path):
  rng = np.random.default_rng(0)
  seed_inputs = (rng.normal(size=(40, 8)), np.repeat([0, 1], 20), rng.normal(size=(4, 8)),
                 np.array([0, 0, 1, 1]))
  written = report.write_report(str(tmp_path), _results(), seed_inputs=seed_inputs)
  names = {p.split('/')[-1] for p in written}
  assert names == {'accuracy_matrix.png', 'accuracy_after_each_task.png',
                   'seed_projection.png', 'results.md'}
  for p in written:
    if p.endswith('.png'):
      assert open(p, 'rb').read(8) == b'\x89PNG\r\n\x1a\n'
  md = (tmp_path / 'results.md').read_text()
  assert '| autoseed | 67.50 | 78.75 | 50.00 | -50.00 | -10.00 | 99 |' in md


def test_corrupted_or_missing_results_are_clear_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match='run `python -m autoseed_jax.main'):
    report.load_results(str(tmp_path))
  (tmp_path / 'results.json').write_text('{"methods": {')
  with pytest.raises(ValueError, match='corrupted'):
    report.load_results(str(tmp_path))


def test_report_command_rebuilds_from_workdir(tmp_path):
  (tmp_path / 'results.json').write_text(json.dumps(_results()))
  proc = subprocess.run([sys.executable, '-m', 'autoseed_jax.report', '--workdir',
                         str(tmp_path)], capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert 'final avg acc' in proc.stdout
  assert (tmp_path / 'accuracy_matrix.png').exists()
  (tmp_path / 'results.json').write_text('not json')
  proc = subprocess.run([sys.executable, '-m', 'autoseed_jax.report', '--workdir',
                         str(tmp_path)], capture_output=True, text=True, timeout=300)
  assert proc.returncode == 2 and 'corrupted' in proc.stderr and 'Traceback' not in proc.stderr
  proc = subprocess.run([sys.executable, '-m', 'autoseed_jax.report', '--help'],
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0 and '--workdir' in proc.stdout, proc.stderr


def test_heatmap_handles_single_method(tmp_path):
  path = plots.accuracy_heatmaps({'x': _results()['methods']['finetune']},
                                 str(tmp_path / 'h.png'))
  assert (tmp_path / 'h.png').stat().st_size > 1000 and path.endswith('h.png')


def test_seed_projection_legend_names_classes_by_name(tmp_path, monkeypatch):
  figures = []
  monkeypatch.setattr(plots, 'save_figure', lambda fig, path: figures.append(fig) or path)
  rng = np.random.default_rng(0)
  seed_inputs = (rng.normal(size=(40, 8)), np.repeat([0, 2], 20), rng.normal(size=(4, 8)),
                 np.array([0, 0, 2, 2]), ('bear', 'bird', 'cat'))
  report.write_report(str(tmp_path), _results(), seed_inputs=seed_inputs)
  legend = figures[-1].axes[0].get_legend()
  assert [t.get_text() for t in legend.get_texts()] == ['bear', 'cat']
  report.write_report(str(tmp_path), _results(), seed_inputs=seed_inputs[:4])  # no names
  assert [t.get_text() for t in figures[-1].axes[0].get_legend().get_texts()] == ['0', '2']
  for fig in figures:
    plots.plt.close(fig)
