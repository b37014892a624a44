"""`python -m autoseed_jax.report --workdir ...` on a finished run, as the README shows it:
it rebuilds the plots (the seed projection too, which reloads the stream) and the table."""

import os
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY = ['--config.steps_per_task=10', '--config.steps_per_chunk=10', '--config.meta_steps=1',
        '--config.adapter_hidden=16', '--config.generator_hidden=16',
        '--config.stream.num_tasks=2', '--config.stream.dim=16',
        '--config.stream.train_per_class=20', '--config.stream.test_per_class=10',
        "--config.methods=('autoseed',)"]
PLOTS = ('accuracy_matrix.png', 'accuracy_after_each_task.png', 'seed_projection.png')


def test_report_rebuilds_the_plots_and_table_of_a_run_with_seeds(tmp_path):
  workdir = tmp_path / 'run'
  run = subprocess.run(
      [sys.executable, '-m', 'autoseed_jax.main', '--config',
       'experiments/configs/synthetic.py', '--workdir', str(workdir), *TINY],
      cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert run.returncode == 0, run.stderr[-3000:]
  assert (workdir / 'methods' / 'autoseed' / 'seeds.npz').exists()
  for name in PLOTS + ('results.md',):
    os.remove(workdir / name)
  report = subprocess.run([sys.executable, '-m', 'autoseed_jax.report', '--workdir',
                           str(workdir)], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
  assert report.returncode == 0, report.stderr[-3000:]
  for name in PLOTS:
    png = (workdir / name).read_bytes()
    assert png[:8] == b'\x89PNG\r\n\x1a\n' and len(png) > 1000, name
    assert f'wrote {workdir / name}' in report.stdout
  assert '| autoseed |' in (workdir / 'results.md').read_text()
  assert 'final avg acc' in report.stdout and 'autoseed' in report.stdout
  assert not re.search(r'^I\d{4} ', report.stderr, re.M)  # no INFO lines (orbax, TFDS)


def test_report_on_an_empty_workdir_names_the_command(tmp_path):
  report = subprocess.run([sys.executable, '-m', 'autoseed_jax.report', '--workdir',
                           str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
  assert report.returncode == 2
  assert 'results.json does not exist: run `python -m autoseed_jax.main' in report.stderr
  assert 'Traceback' not in report.stderr
