"""The commands of the README and the docs pages as a new user would take them: every
config, module and script they name exists, and docs/LIBRARY.md's "your own embeddings"
script runs and leaves plots in its workdir."""

import json
import os
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = [ROOT / 'README.md', ROOT / 'experiments' / 'README.md',
         *sorted((ROOT / 'docs').glob('*.md'))]
TEXT = '\n'.join(page.read_text() for page in PAGES)


def test_every_config_module_and_script_the_pages_name_exists():
  configs = set(re.findall(r'--config (experiments/configs/[\w./]+?\.py)(?::[\w-]+)?\b', TEXT))
  assert {'experiments/configs/demo.py', 'experiments/configs/exp_main.py',
          'experiments/configs/exp_all.py'} <= configs
  for config in configs:
    assert (ROOT / config).exists(), config
  modules = set(re.findall(r'python -m ((?:autoseed_jax|experiments)[\w.]*)', TEXT))
  assert {'autoseed_jax.main', 'experiments.paper', 'experiments.bench'} <= modules
  for module in modules:
    path = ROOT / module.replace('.', '/')
    assert path.with_suffix('.py').exists() or (path / '__main__.py').exists(), module
  for script in set(re.findall(r'python (experiments/\w+\.py)', TEXT)):
    assert (ROOT / script).exists(), script


def own_embeddings_script() -> str:
  page = (ROOT / 'docs' / 'LIBRARY.md').read_text()
  blocks = re.findall(r'```python\n(.*?)```', page, re.S)
  found = [b for b in blocks if 'tasks.build_stream(' in b and 'runner.run_workdir(' in b]
  assert len(found) == 1, 'docs/LIBRARY.md has one "your own embeddings" script'
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
  # The report command later redraws everything from the workdir's files, the seed
  # projection of a stream of your own included.
  (workdir / 'seed_projection.png').unlink()
  report = subprocess.run([sys.executable, '-m', 'autoseed_jax.report', '--workdir',
                           str(workdir)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
  assert report.returncode == 0, report.stderr[-3000:]
  for name in ('accuracy_matrix.png', 'seed_projection.png'):
    assert f'wrote {workdir / name}' in report.stdout, name
