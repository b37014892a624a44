"""Test-session set-up; pytest imports it before any test module.

XLA's backend optimisations are off in the test session and every process it starts
(``helpers.TEST_XLA_FLAGS``): tests pin behaviour, not speed.

Compile once: the session and every process it starts (the command-line tests, the
multi-device and two-process scripts) share JAX's persistent compilation cache
(autoseed_jax/tools/compilation_cache.py), so a program compiled by one test is loaded by the
next one that needs it, in this session and in later ones. The directory is the command
line's: ``$AUTOSEED_COMPILATION_CACHE_DIR`` when set (``none`` turns the cache off, a
fresh directory measures a cold start), else ``~/.cache/autoseed_jax/jax_compilation_cache``.
"""

import os

from autoseed_jax.tools import compilation_cache
from helpers import TEST_XLA_FLAGS


def pytest_configure(config):
  del config
  # Before JAX starts a backend, here and in every child (helpers/__init__.py says why).
  flags = os.environ.get('XLA_FLAGS', '')
  if TEST_XLA_FLAGS not in flags:
    os.environ['XLA_FLAGS'] = f'{flags} {TEST_XLA_FLAGS}'.strip()
  directory = compilation_cache.configure_compilation_cache()  # before anything compiles in this process
  os.environ.update(compilation_cache.environment(directory))  # and in every child
  if directory is None:
    os.environ.pop('JAX_COMPILATION_CACHE_DIR', None)
