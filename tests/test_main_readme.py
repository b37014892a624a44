"""The README's commands as a new user would take them: every config and module it names
exists, and its "your own embeddings" script runs and leaves plots in its workdir."""

import json
import os
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / 'README.md').read_text()


def test_every_config_and_module_the_readme_names_exists():
  configs = set(re.findall(r'--config (experiments/configs/[\w./]+?\.py)(?::\w+)?\b', README))
  assert {'experiments/configs/demo.py', 'experiments/configs/exp_main.py',
          'experiments/configs/experiments.py'} <= configs
  for config in configs:
    assert (ROOT / config).exists(), config
  for module in set(re.findall(r'python -m (autoseed_jax\.\w+)', README)):
    assert (ROOT / (module.replace('.', '/') + '.py')).exists(), module
  for script in set(re.findall(r'python (experiments/\w+\.py)', README)):
    assert (ROOT / script).exists(), script


def own_embeddings_script() -> str:
  blocks = re.findall(r'```python\n(.*?)```', README, re.S)
  found = [b for b in blocks if 'tasks.build_stream(' in b and 'runner.run_workdir(' in b]
  assert len(found) == 1, 'the README has one "your own embeddings" script'
  return found[0]


def test_own_embeddings_script_runs_and_writes_plots(tmp_path):
  script = own_embeddings_script()
  line = 'config = get_config()'
  assert line in script
  tiny = ('; config.steps_per_task = 10; config.steps_per_chunk = 10; '
          'config.meta_steps = 1; config.adapter_hidden = 16; config.generator_hidden = 16; '
          "config.methods = ('autoseed',)")
  (tmp_path / 'my_run.py').write_text(script.replace(line, line + tiny, 1))
  env = dict(os.environ, PYTHONPATH=str(ROOT))
  proc = subprocess.run([sys.executable, 'my_run.py'], cwd=tmp_path, env=env,
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  workdir = tmp_path / 'runs' / 'mine'
  results = json.loads((workdir / 'results.json').read_text())
  assert set(results['methods']) == {'autoseed'}
  for method in results['methods'].values():
    acc = method['acc_matrix']
    assert len(acc) == 3 and all(0.0 <= a <= 100.0 for row in acc for a in row if a is not None)
  for name in ('accuracy_matrix.png', 'accuracy_after_each_task.png', 'seed_projection.png'):
    assert (workdir / name).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n', name
    assert f'wrote runs/mine/{name}' in proc.stdout
  # The report command later redraws everything but the projection of a stream of your own.
  report = subprocess.run([sys.executable, '-m', 'autoseed_jax.report', '--workdir',
                           str(workdir)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
  assert report.returncode == 0, report.stderr[-3000:]
  assert "seed_projection.png not redrawn: the run's stream ('mine') cannot be rebuilt" in (
      report.stdout)
  assert f'wrote {workdir / "accuracy_matrix.png"}' in report.stdout
