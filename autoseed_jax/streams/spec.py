"""What a named stream is to the registry: its protocol in one paragraph, the function that
builds it, and the config fields that function takes."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Callable

from autoseed_jax.core.tasks import TaskStream

# The numeric fields every named stream takes, and the values they take.
STREAM_RULES = (
    ('val_fraction', 'in [0, 1)', "share of each task's training data held out as D_t^val"),
    ('train_fraction', 'in (0, 1]', "share of each class's training images used"),
)


@dataclasses.dataclass(frozen=True)
class StreamSpec:
  """A named stream.

  Attributes:
    name: the stream's name (``config.stream.name``).
    description: its protocol in one paragraph (printed by every run).
    build: ``(backbone, *, data_dir, cache_dir, seed, val_fraction, train_fraction,
      pixels, **own fields) -> TaskStream``.
    datasets: the embedded datasets it reads, with the offset of their labels in the
      stream (empty for user-prepared data).
  """

  name: str
  description: str
  build: Callable[..., TaskStream]
  datasets: tuple[tuple[str, int], ...] = ()

  @property
  def fields(self) -> tuple[str, ...]:
    """The fields a ``config.stream`` block of this stream may hold beside ``name``: the
    builder's parameters (``backbone`` is the backbone's spec string there)."""
    bound = getattr(self.build, 'keywords', {})  # fixed by a functools.partial
    return tuple(p for p in inspect.signature(self.build).parameters if p not in bound)
