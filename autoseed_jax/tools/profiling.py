"""Counting XLA compilations, to show that learning tasks 2..T compiles nothing new.

With the persistent compilation cache on (``autoseed_jax.tools.compilation_cache``) a program
that is not in JAX's in-memory caches is either compiled or loaded from disk; both count,
so "compiles nothing" means the same with the cache on or off.
"""

from __future__ import annotations

import contextlib
import dataclasses

import jax

_BACKEND_COMPILE_EVENT = '/jax/core/compile/backend_compile_duration'
_CACHE_HIT_EVENT = '/jax/compilation_cache/cache_hits'
_CACHE_RETRIEVAL_EVENT = '/jax/compilation_cache/cache_retrieval_time_sec'


@dataclasses.dataclass
class CompileCount:
  """Programs that needed an executable: compiled by XLA or loaded from the persistent
  compilation cache.

  Attributes:
    count: programs compiled or loaded.
    seconds: time spent getting their executables (compiling or loading).
    loaded: programs loaded from the persistent compilation cache.
    load_seconds: time spent loading them.
  """

  count: int = 0
  seconds: float = 0.0
  loaded: int = 0
  load_seconds: float = 0.0

  @property
  def compiled(self) -> int:
    """Programs XLA compiled."""
    return self.count - self.loaded

  @property
  def compile_seconds(self) -> float:
    return max(self.seconds - self.load_seconds, 0.0)

  def summary(self) -> str:
    """E.g. ``XLA: 41 programs compiled in 52.3 s, 12 loaded from the compilation cache
    in 0.4 s``."""
    return (f'XLA: {self.compiled} programs compiled in {self.compile_seconds:.1f} s, '
            f'{self.loaded} loaded from the compilation cache in {self.load_seconds:.1f} s')


@contextlib.contextmanager
def count_compilations():
  """Counts every XLA compilation (jit, eager ops, anything) and every program loaded
  from the persistent compilation cache in the block.

  Usage::

    with count_compilations() as compiles:
      state = learner.learn_task(state, task, test=test)
    assert compiles.count == 0
  """
  result = CompileCount()

  def on_duration(event, duration, **_):
    if event == _BACKEND_COMPILE_EVENT:  # around compiling or loading (JAX 0.10)
      result.count += 1
      result.seconds += duration
    elif event == _CACHE_RETRIEVAL_EVENT:
      result.load_seconds += duration

  def on_event(event, **_):
    if event == _CACHE_HIT_EVENT:
      result.loaded += 1

  jax.monitoring.register_event_duration_secs_listener(on_duration)
  jax.monitoring.register_event_listener(on_event)
  try:
    yield result
  finally:
    jax.monitoring.unregister_event_duration_listener(on_duration)
    jax.monitoring.unregister_event_listener(on_event)
