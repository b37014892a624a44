"""Test-session set-up; pytest imports it before any test module.

Compile once: the session and every process it starts (the command-line tests, the
multi-device and two-process scripts) share JAX's persistent compilation cache
(autoseed_jax/tools/compilation_cache.py), so a program compiled by one test is loaded by the
next one that needs it, in this session and in later ones. The directory is the command
line's: ``$AUTOSEED_COMPILATION_CACHE_DIR`` when set (``none`` turns the cache off, a
fresh directory measures a cold start), else ``~/.cache/autoseed_jax/jax_compilation_cache``.
"""

import os

from autoseed_jax.tools import compilation_cache


def pytest_configure(config):
  del config
  directory = compilation_cache.configure_compilation_cache()  # before anything compiles in this process
  os.environ.update(compilation_cache.environment(directory))  # and in every child
  if directory is None:
    os.environ.pop('JAX_COMPILATION_CACHE_DIR', None)
