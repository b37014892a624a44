"""Continual-learning methods as hooks into the shared engine (see ``methods.base``).

``METHODS`` maps a config's ``method`` name to a builder ``Context -> Method``.
"""

from autoseed_jax.methods.autoseed import autoseed
from autoseed_jax.methods.autoseed_plus import autoseed_plus
from autoseed_jax.methods.base import Context, Method, finetune, zeroshot
from autoseed_jax.methods.coop import coop
from autoseed_jax.methods.dgr import dgr, dgr_pixel
from autoseed_jax.methods.er import er
from autoseed_jax.methods.ewc import ewc
from autoseed_jax.methods.hnet import hnet
from autoseed_jax.methods.joint import joint
from autoseed_jax.methods.lwf import lwf
from autoseed_jax.methods.maple import maple
from autoseed_jax.methods.summary_seeds import kmeans_seeds, refined_seeds

METHODS = {
    'autoseed': autoseed,
    'finetune': finetune,
    'zeroshot': zeroshot,
    'joint': joint,
    'er': er,
    'lwf': lwf,
    'ewc': ewc,
    'dgr': dgr,
    'dgr_pixel': dgr_pixel,
    'hnet': hnet,
    'coop': coop,
    'maple': maple,
    'autoseed_plus': autoseed_plus,
    'kmeans_seeds': kmeans_seeds,
    'refined_seeds': refined_seeds,
}


def get_method(name: str, context: Context) -> Method:
  """Builds method ``name``; an unknown name is a ValueError listing the known ones."""
  if name not in METHODS:
    raise ValueError(f'invalid config: method={name!r}; choose one of {tuple(METHODS)}.')
  return METHODS[name](context)
