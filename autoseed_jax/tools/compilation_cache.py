"""Compile once per machine: JAX's persistent compilation cache for our commands.

XLA programs (the adaptation scan, the seed update, evaluation, ...) take seconds to tens
of seconds each to compile on a CPU, and every new process compiled them again. With the
persistent cache, a compiled program is written to disk and a later process (a rerun, a
resumed run, the next config, the next test) loads it instead of compiling it again.

Where the cache lives (first that is set wins):

  1. the config field ``compilation_cache_dir`` (every shipped config has it; on the
     command line ``--config.compilation_cache_dir=DIR``),
  2. the environment variable ``AUTOSEED_COMPILATION_CACHE_DIR``,
  3. JAX's own ``JAX_COMPILATION_CACHE_DIR``,
  4. ``~/.cache/autoseed_jax/jax_compilation_cache`` (beside the embedding cache).

The value ``none`` (in the field or the variable) disables it. ``autoseed_jax.main``
calls ``configure`` before anything compiles; library users call it themselves (or set
JAX's own ``jax_compilation_cache_dir``). The cache is keyed by the program, the JAX
and XLA versions, the devices and the XLA flags, so a stale entry is never used; deleting
the directory is always safe.
"""

from __future__ import annotations

import os
import pathlib

import jax

CACHE_DIR_ENV = 'AUTOSEED_COMPILATION_CACHE_DIR'
JAX_CACHE_DIR_ENV = 'JAX_COMPILATION_CACHE_DIR'
DISABLED = 'none'
# Every program is written, however fast it compiled (JAX's default skips those under 1 s):
# on a CPU loading one takes about 10 ms, and compiling even the small programs of eager
# operations takes 50-100 ms each (measured: the README's composition program compiles 186
# programs in 14 s, and loads them in 1.7 s).
MIN_COMPILE_SECONDS = 0.0


def default_cache_dir() -> pathlib.Path:
  """``~/.cache/autoseed_jax/jax_compilation_cache``."""
  return pathlib.Path.home() / '.cache' / 'autoseed_jax' / 'jax_compilation_cache'


def resolve_cache_dir(setting: str | None = None) -> pathlib.Path | None:
  """The cache directory for a config value ``setting`` (None or '': unset), or None
  when disabled (``'none'``); see the module doc for the order."""
  for value in (setting, os.environ.get(CACHE_DIR_ENV), os.environ.get(JAX_CACHE_DIR_ENV)):
    if value:
      return None if value.strip().lower() == DISABLED else pathlib.Path(value).expanduser()
  return default_cache_dir()


def configure_compilation_cache(setting: str | None = None) -> pathlib.Path | None:
  """Points JAX's persistent compilation cache at ``resolve_cache_dir(setting)`` (or
  turns it off when that is None); returns the directory. Call it before the first
  compilation of the process: JAX decides once per process whether to use the cache.
  """
  directory = resolve_cache_dir(setting)
  if directory is None:
    jax.config.update('jax_enable_compilation_cache', False)  # also JAX's own settings
    return None
  jax.config.update('jax_enable_compilation_cache', True)
  jax.config.update('jax_compilation_cache_dir', str(directory))
  jax.config.update('jax_persistent_cache_min_compile_time_secs', MIN_COMPILE_SECONDS)
  return directory


def environment(directory: pathlib.Path | None) -> dict[str, str]:
  """Environment variables that give a child process the cache ``directory`` (None: off),
  whether it runs our command line (which reads ``AUTOSEED_COMPILATION_CACHE_DIR``) or
  plain JAX code (which reads JAX's own ``JAX_*`` variables)."""
  if directory is None:
    return {CACHE_DIR_ENV: DISABLED, 'JAX_ENABLE_COMPILATION_CACHE': 'false'}
  return {CACHE_DIR_ENV: str(directory), 'JAX_ENABLE_COMPILATION_CACHE': 'true',
          JAX_CACHE_DIR_ENV: str(directory),
          'JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS': str(MIN_COMPILE_SECONDS)}


def __getattr__(name: str):
  """Old names of this module (release 0.1), deprecated: ``autoseed_jax.RENAMED``."""
  import autoseed_jax  # pylint: disable=import-outside-toplevel
  return autoseed_jax.renamed_attribute('tools.compilation_cache', name)
