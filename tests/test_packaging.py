"""The package as users install it: the wheel carries the assets and the dependency
metadata, the declared ranges hold the pinned set and cover every import, a fresh
environment runs the README's composition program, and the test suite does not depend
on the name ``tests`` (avalanche-lib, the bench extra, installs a top-level ``tests``)."""

import ast
import graphlib
import importlib.metadata
import os
import pathlib
import subprocess
import sys
import tomllib
import zipfile

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from helpers.check_install import copy_source

ROOT = pathlib.Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / 'pyproject.toml').read_text())['project']
ASSETS = ROOT / 'autoseed_jax' / 'models' / 'assets'
# Imported only where needed and optional: torch by clip.py's open_clip parity helper, the
# repository's `experiments` package by main.py for experiment configs (run from a clone).
OPTIONAL_IMPORTS = {'torch', 'experiments'}


def _requirements(lines) -> dict[str, Requirement]:
  reqs = [Requirement(line) for line in lines]
  return {canonicalize_name(r.name): r for r in reqs}


def _pins(path: pathlib.Path) -> dict[str, str]:
  pins = {}
  for line in path.read_text().splitlines():
    line = line.split('#', 1)[0].strip()
    if line:
      name, version = line.split('==')
      pins[canonicalize_name(name)] = version
  return pins


@pytest.fixture(scope='module')
def wheel(tmp_path_factory) -> zipfile.ZipFile:
  source, out = tmp_path_factory.mktemp('src'), tmp_path_factory.mktemp('wheel')
  copy_source(source)  # building writes build/ and *.egg-info next to the sources
  proc = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-index',
                         '--no-build-isolation', '--disable-pip-version-check', '-q', '-w',
                         str(out), str(source)], capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, (
      f'{proc.stdout[-2000:]}{proc.stderr[-2000:]}\n(the build backend comes from '
      'requirements.txt: run `make setup`)')
  [path] = out.glob('autoseed_jax-*.whl')
  with zipfile.ZipFile(path) as archive:
    yield archive


def test_wheel_carries_the_assets(wheel):
  names = set(wheel.namelist())
  assets = [p for p in ASSETS.rglob('*') if p.is_file()]
  assert len(assets) >= 10  # LiT checkpoint files, config, BPE vocabulary and its licence
  for path in assets:
    name = path.relative_to(ROOT).as_posix()
    assert name in names, f'{name} is not in the wheel'
    assert wheel.getinfo(name).file_size == path.stat().st_size, name
  modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / 'autoseed_jax').rglob('*.py')}
  assert modules <= names
  assert not [n for n in names if n.startswith(('tests/', 'experiments/'))]


def test_wheel_declares_the_dependencies_and_extras(wheel):
  [metadata_name] = [n for n in wheel.namelist() if n.endswith('.dist-info/METADATA')]
  metadata = wheel.read(metadata_name).decode()
  declared = [line.split(': ', 1)[1] for line in metadata.splitlines()
              if line.startswith('Requires-Dist: ')]
  assert sorted(declared) == sorted(
      PYPROJECT['dependencies'] + [f'{r}; extra == "{extra}"'
                                   for extra, reqs in PYPROJECT['optional-dependencies'].items()
                                   for r in reqs])
  for name in ('jax', 'flax', 'optax', 'orbax-checkpoint', 'tensorflow-datasets', 'grain'):
    assert any(line.startswith(f'{name}~=') for line in declared), name
  assert 'Provides-Extra: bench' in metadata and 'Provides-Extra: test' in metadata


def test_the_pinned_sets_lie_in_the_declared_ranges():
  for group, path in (('dependencies', 'requirements.txt'), ('test', 'requirements.txt'),
                      ('bench', 'requirements-bench.txt')):
    lines = (PYPROJECT['dependencies'] if group == 'dependencies'
             else PYPROJECT['optional-dependencies'][group])
    pinned = _pins(ROOT / path)
    for name, requirement in _requirements(lines).items():
      assert name in pinned, f'{name} ({group}) is not pinned in {path}'
      assert requirement.specifier.contains(pinned[name]), (
          f'{path} pins {name}=={pinned[name]}, outside the declared {requirement}')


def _imported_top_level_modules() -> set[str]:
  modules = set()
  for path in (ROOT / 'autoseed_jax').rglob('*.py'):
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, ast.Import):
        modules.update(alias.name.split('.')[0] for alias in node.names)
      elif isinstance(node, ast.ImportFrom) and node.level == 0:
        modules.add(node.module.split('.')[0])
  return modules - set(sys.stdlib_module_names) - {'autoseed_jax', '__future__'}


def test_every_imported_distribution_is_declared():
  declared = set(_requirements(PYPROJECT['dependencies']))
  providers = importlib.metadata.packages_distributions()
  missing = {}
  for module in _imported_top_level_modules() - OPTIONAL_IMPORTS:
    distributions = {canonicalize_name(d) for d in providers.get(module, [module])}
    if not distributions & declared:
      missing[module] = sorted(distributions)
  assert not missing, f'imported but not declared in pyproject.toml: {missing}'


def _module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(ROOT).with_suffix('').parts
  return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def test_no_import_cycles_between_modules():
  modules = {_module_name(p): p for p in (ROOT / 'autoseed_jax').rglob('*.py')}
  graph = {}
  for name, path in modules.items():
    imported = set()
    for node in ast.parse(path.read_text()).body:  # module level: what importing runs
      if isinstance(node, ast.Import):
        imported.update(alias.name for alias in node.names)
      elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        imported.update(f'{node.module}.{alias.name}' if f'{node.module}.{alias.name}' in
                        modules else node.module for alias in node.names)
    graph[name] = {m for m in imported if m in modules and m != name}
  graphlib.TopologicalSorter(graph).prepare()  # raises CycleError naming the cycle
  assert 'autoseed_jax.main' not in set().union(*graph.values())  # nothing imports main


def test_fresh_environment_installs_the_checkout_and_runs_the_readme_program():
  proc = subprocess.run([sys.executable, str(ROOT / 'tests' / 'helpers' / 'check_install.py')],
                        capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  assert 'assets loaded from' in proc.stdout and 'venv' in proc.stdout
  assert 'install check passed' in proc.stdout


def test_suite_does_not_depend_on_the_name_tests(tmp_path):
  # What avalanche-lib 0.6.0 installs: a top-level `tests` package (and, for good measure,
  # a top-level `helpers`), found before ours would be if we imported `tests.helpers`.
  for package in ('tests', 'helpers'):
    (tmp_path / package).mkdir()
    (tmp_path / package / '__init__.py').write_text(
        f'raise ImportError("the foreign top-level {package!r} package was imported")\n')
  env = dict(os.environ, PYTHONPATH=str(tmp_path))
  shadow = subprocess.run([sys.executable, '-c', 'import tests'], cwd=tmp_path.parent,
                          env=env, capture_output=True, text=True)
  assert 'foreign top-level' in shadow.stderr  # the fake does shadow the name
  tests = sorted(str(p.relative_to(ROOT)) for p in (ROOT / 'tests').glob('test_*.py'))
  proc = subprocess.run([sys.executable, '-m', 'pytest', '--collect-only', '-q',
                         '-p', 'no:cacheprovider', *tests], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  summary = proc.stdout.strip().splitlines()[-1]
  assert ' collected in ' in summary and 'error' not in summary, summary
