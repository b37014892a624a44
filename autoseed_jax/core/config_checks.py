"""Checks of numeric config fields, each refused with one line that names the field.

A rule is ``(field, condition, meaning)``; ``condition`` is one of ``CONDITIONS``
('> 0', '>= 0', 'in [0, 1]', ...). ``check_fields`` raises

    ValueError: invalid config: sketch_dim=0 must be > 0 (m, the size of the sketched
    task gradient u_c).

for the first field whose value breaks its rule, so the message says what the field is
and which values it takes. Methods list their rules beside their own ``validate``;
``autoseed_jax.continual.validate_config`` runs the engine's and the method's before
anything is built.
"""

from __future__ import annotations

from typing import Callable, Iterable

CONDITIONS: dict[str, Callable[[float], bool]] = {
    '> 0': lambda v: v > 0,
    '>= 0': lambda v: v >= 0,
    '>= 2': lambda v: v >= 2,
    '>= -1': lambda v: v >= -1,
    'in [0, 1]': lambda v: 0 <= v <= 1,
    'in [0, 1)': lambda v: 0 <= v < 1,
    'in (0, 1]': lambda v: 0 < v <= 1,
}


def check_fields(values, rules: Iterable[tuple[str, str, str]], *, prefix: str = '') -> None:
  """Raises ValueError for the first rule whose field in ``values`` breaks its condition.

  Args:
    values: a ConfigDict or dict holding the fields (a field it lacks is skipped).
    rules: ``(field, condition, meaning)``, condition a key of ``CONDITIONS``.
    prefix: written before the field name (``'stream.'`` for the stream block).
  """
  for field, condition, meaning in rules:
    if field not in values:
      continue
    value = values[field]
    if not CONDITIONS[condition](value):
      raise ValueError(f'invalid config: {prefix}{field}={value!r} must be {condition} '
                       f'({meaning}).')
