"""The experiment configs through their entry point ``python -m experiments.paper``: --help,
the configs' documentation, a bad experiment config stopping with one line and exit
status 2 before any run, and ``autoseed_jax.main`` refusing experiment configs.

Running the quick suite is tests/test_experiments.py.
"""

import importlib
import os
import pathlib
import subprocess
import sys

import pytest

from experiments.configs import exp_common

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIGS = ROOT / 'experiments' / 'configs'
EXPERIMENT_CONFIGS = ('exp_main', 'exp_ablation', 'exp_memory', 'exp_seeds', 'exp_fwt',
                      'exp_all')


def run_paper(*args, cwd=ROOT, env=None, workdir=None, module='experiments.paper'):
  cmd = [sys.executable, '-m', module, *args]
  if workdir is not None:
    cmd += ['--workdir', str(workdir)]
  return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_help_lists_the_flags():
  proc = run_paper('--help')  # the module docstring and the flags
  assert proc.returncode == 0, proc.stderr
  assert proc.stdout.startswith("The paper suite's command line"), proc.stdout[:200]
  for text in ('--config', '--workdir', '--claims_only', 'exp_*.py', ':quick'):
    assert text in proc.stdout, text


@pytest.mark.parametrize('name', EXPERIMENT_CONFIGS)
def test_each_config_starts_with_its_main_command_and_documents_its_fields(name):
  path = CONFIGS / f'{name}.py'
  first = path.read_text().splitlines()[0]
  assert first == (f'# COMMAND: python -m experiments.paper --config '
                   f'experiments/configs/{name}.py --workdir experiments/results')
  module = importlib.import_module(f'experiments.configs.{name}')
  common = set(exp_common.experiment_config('main', None)) if name != 'exp_all' else set()
  for arg in (None, 'quick'):
    fields = set(module.get_config(arg)) - common
    documented = module.__doc__ if fields else ''
    for field in fields:
      assert f'\n  {field} ' in documented, f'{name}.py does not document {field}'
  for field in common:
    assert f'\n  {field} ' in exp_common.__doc__, f'exp_common.py does not document {field}'


@pytest.mark.parametrize('args, message', [
    (['experiments/configs/exp_main.py:fast'], "experiment config argument 'fast'"),
    (['experiments/configs/exp_nope.py'], 'No such file'),
    (['experiments/configs/exp_main.py:quick', "--config.methods=('zeroshot', 'nope')"],
     "methods has unknown labels ['nope']"),
    (['experiments/configs/exp_main.py:quick', "--config.streams=('cifar100',)"],
     "streams=('cifar100',): give one or more of ('animals-ci', 'animals-digits', "
     "'vl-scenes')"),
    (['experiments/configs/exp_main.py:quick', '--config.experiment=nope'],
     "config.experiment='nope': use one of"),
    (['experiments/configs/exp_ablation.py:quick', '--config.base.memory_budget=0'],
     'memory_budget=0 must be > 0'),
    (['experiments/configs/exp_memory.py:quick', "--config.seeds_per_class=(0,)"],
     'seeds_per_class=(0,) must be one or more values > 0'),
    (['experiments/configs/exp_all.py:quick', "--config.experiment_names=('main', 'x')"],
     "unknown: ['x']"),
    (['experiments/configs/exp_main.py:quick', '--config.seeds=()'], 'give at least one'),
])
def test_bad_experiment_config_is_one_line_and_exit_2(tmp_path, args, message):
  proc = run_paper('--config', *args, workdir=tmp_path / 'out')
  assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
  assert message in proc.stderr, proc.stderr
  assert proc.stderr.startswith('error: ') and 'Traceback' not in proc.stderr
  assert not (tmp_path / 'out' / 'main').exists()  # nothing ran


def library_only(tmp_path):
  """An environment where autoseed_jax imports but the repository's experiments do not,
  as after installing the library alone: (cwd, env)."""
  site = tmp_path / 'site'
  site.mkdir()
  os.symlink(ROOT / 'autoseed_jax', site / 'autoseed_jax')
  env = dict(os.environ, PYTHONPATH=str(site))
  return tmp_path, env


def test_main_refuses_an_experiment_config_naming_its_command(tmp_path):
  """The library's command line runs run configs only: an experiment config (even one of
  your own, with the library installed alone) is refused in one line naming the suite's
  command, before anything runs."""
  cwd, env = library_only(tmp_path)
  config = tmp_path / 'my_experiment.py'
  config.write_text('import ml_collections\n\ndef get_config():\n'
                    '  return ml_collections.ConfigDict(dict(experiment="main"))\n')
  for where, path in (((cwd, env), config), ((ROOT, None), CONFIGS / 'exp_main.py:quick')):
    proc = run_paper('--config', str(path), cwd=where[0], env=where[1],
                     workdir=tmp_path / 'out', module='autoseed_jax.main')
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "config.experiment='main': this is an experiment config" in proc.stderr
    assert 'python -m experiments.paper --config' in proc.stderr
    assert 'Traceback' not in proc.stderr and not (tmp_path / 'out').exists()


def test_config_that_imports_the_experiments_package_from_elsewhere_names_the_fix(tmp_path):
  cwd, env = library_only(tmp_path)
  proc = run_paper('--config', str(CONFIGS / 'exp_main.py:quick'), cwd=cwd, env=env,
                   workdir=tmp_path / 'out', module='autoseed_jax.main')
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert "No module named 'experiments'" in proc.stderr
  assert 'run the command from the root of the repository' in proc.stderr
  assert 'Traceback' not in proc.stderr
