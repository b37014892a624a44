"""Continual-learning methods as hooks into the shared engine (see ``methods.base``).

``METHODS`` maps a config's ``method`` name to a builder ``Context -> Method``.
"""

from autoseed_jax.methods.autoseed import autoseed
from autoseed_jax.methods.base import Context, Method, finetune, zeroshot

METHODS = {
    'autoseed': autoseed,
    'finetune': finetune,
    'zeroshot': zeroshot,
}


def get_method(name: str, context: Context) -> Method:
  """Builds method ``name``; an unknown name is a ValueError listing the known ones."""
  if name not in METHODS:
    raise ValueError(f'invalid config: method={name!r}; choose one of {tuple(METHODS)}.')
  return METHODS[name](context)
