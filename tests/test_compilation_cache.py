"""Compile once: where the persistent compilation cache lives, and a second process
loading what the first compiled (autoseed_jax/tools/compilation_cache.py)."""

import os
import pathlib
import subprocess
import sys

import pytest

from autoseed_jax.tools import compilation_cache

ROOT = pathlib.Path(__file__).resolve().parents[1]
PROGRAM = '''
import sys
import jax, jax.numpy as jnp
import autoseed_jax as asj
from autoseed_jax.tools import profiling
asj.configure_compilation_cache(sys.argv[1])
with profiling.count_compilations() as compiles:
  jax.jit(lambda x: jnp.tanh(x) @ x.T)(jnp.ones((8, 8))).block_until_ready()
print(compiles.compiled, compiles.loaded)
'''


def test_config_field_then_variables_then_the_default(monkeypatch, tmp_path):
  for name in (compilation_cache.CACHE_DIR_ENV, compilation_cache.JAX_CACHE_DIR_ENV):
    monkeypatch.delenv(name, raising=False)
  default = pathlib.Path.home() / '.cache' / 'autoseed_jax' / 'jax_compilation_cache'
  assert compilation_cache.resolve_cache_dir(None) == default
  monkeypatch.setenv(compilation_cache.JAX_CACHE_DIR_ENV, str(tmp_path / 'jax'))
  assert compilation_cache.resolve_cache_dir('') == tmp_path / 'jax'
  monkeypatch.setenv(compilation_cache.CACHE_DIR_ENV, str(tmp_path / 'ours'))
  assert compilation_cache.resolve_cache_dir(None) == tmp_path / 'ours'
  assert compilation_cache.resolve_cache_dir(str(tmp_path / 'field')) == tmp_path / 'field'
  assert compilation_cache.resolve_cache_dir('none') is None
  monkeypatch.setenv(compilation_cache.CACHE_DIR_ENV, 'None')
  assert compilation_cache.resolve_cache_dir(None) is None
  assert compilation_cache.resolve_cache_dir('~/x') == pathlib.Path.home() / 'x'


def _run(setting: str) -> tuple[int, int]:
  env = {k: v for k, v in os.environ.items() if not k.startswith(('JAX_', 'AUTOSEED_'))}
  proc = subprocess.run([sys.executable, '-c', PROGRAM, setting], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  compiled, loaded = map(int, proc.stdout.split())
  return compiled, loaded


def test_a_second_process_loads_what_the_first_compiled(tmp_path):
  cache = tmp_path / 'cache'
  first_compiled, first_loaded = _run(str(cache))
  assert first_compiled >= 1 and first_loaded == 0
  entries = sorted(p.name for p in cache.iterdir())
  assert entries
  assert _run(str(cache)) == (0, first_compiled)  # everything loaded, nothing compiled
  assert _run('none') == (first_compiled, 0)  # off: compiled again, nothing written
  assert sorted(p.name for p in cache.iterdir()) == entries


@pytest.mark.parametrize('setting', [None, 'none'])
def test_environment_hands_the_setting_to_child_processes(setting, tmp_path):
  directory = None if setting == 'none' else tmp_path
  env = compilation_cache.environment(directory)
  assert env[compilation_cache.CACHE_DIR_ENV] == ('none' if directory is None else str(tmp_path))
  assert env['JAX_ENABLE_COMPILATION_CACHE'] == ('false' if directory is None else 'true')
