"""Counting XLA compilations, to show that learning tasks 2..T compiles nothing new."""

from __future__ import annotations

import contextlib
import dataclasses

import jax

_BACKEND_COMPILE_EVENT = '/jax/core/compile/backend_compile_duration'


@dataclasses.dataclass
class CompileCount:
  """Number of backend (XLA) compilations and their total seconds."""

  count: int = 0
  seconds: float = 0.0


@contextlib.contextmanager
def count_compilations():
  """Counts every XLA compilation in the block (jit, eager ops, anything).

  Usage::

    with count_compilations() as compiles:
      state = learner.learn_task(state, task, test=test)
    assert compiles.count == 0
  """
  result = CompileCount()

  def listener(event, duration, **_):
    if event == _BACKEND_COMPILE_EVENT:
      result.count += 1
      result.seconds += duration

  jax.monitoring.register_event_duration_secs_listener(listener)
  try:
    yield result
  finally:
    jax.monitoring.unregister_event_duration_listener(listener)
