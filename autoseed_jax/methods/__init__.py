"""Continual-learning methods as hooks into the shared engine (see ``methods.base``).

``METHODS`` maps a config's ``method`` name to a builder ``Context -> Method``;
``VALIDATORS`` maps it to the check of its own config fields that needs no stream
(``validate_config``), so a bad value is refused before any data is loaded.
"""

from autoseed_jax.methods.autoseed import autoseed, validate as validate_autoseed
from autoseed_jax.methods.autoseed_plus import autoseed_plus, validate as validate_autoseed_plus
from autoseed_jax.methods.base import Context, Method, finetune, zeroshot
from autoseed_jax.methods.class_gaussian import (fetril, gauss_replay,
                                                validate as validate_class_gaussian)
from autoseed_jax.methods.coop import coop, validate as validate_coop
from autoseed_jax.methods.dgr import PIXEL_METHODS, dgr, dgr_pixel, validate as validate_dgr
from autoseed_jax.methods.er import er, validate as validate_er
from autoseed_jax.methods.ewc import ewc, validate as validate_ewc
from autoseed_jax.methods.frozen_heads import (ncm, ncm_text, ranpac,
                                              validate as validate_frozen_heads)
from autoseed_jax.methods.hnet import hnet, validate as validate_hnet
from autoseed_jax.methods.joint import joint, validate as validate_joint
from autoseed_jax.methods.lwf import lwf, validate as validate_lwf
from autoseed_jax.methods.maple import maple, validate as validate_maple
from autoseed_jax.methods.summary_seeds import (kmeans_seeds, refined_seeds,
                                               validate as validate_summary)

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
    'gauss_replay': gauss_replay,
    'fetril': fetril,
    'ncm': ncm,
    'ncm_text': ncm_text,
    'ranpac': ranpac,
}


VALIDATORS = {
    'autoseed': validate_autoseed,
    'joint': validate_joint,
    'er': validate_er,
    'lwf': validate_lwf,
    'ewc': validate_ewc,
    'dgr': validate_dgr,
    'dgr_pixel': validate_dgr,
    'hnet': validate_hnet,
    'coop': validate_coop,
    'maple': validate_maple,
    'autoseed_plus': validate_autoseed_plus,
    'kmeans_seeds': validate_summary,
    'refined_seeds': validate_summary,
    'gauss_replay': validate_class_gaussian,
    'fetril': validate_class_gaussian,
    'ncm': validate_frozen_heads,
    'ncm_text': validate_frozen_heads,
    'ranpac': validate_frozen_heads,
}


def _check_name(name: str) -> None:
  if name not in METHODS:
    raise ValueError(f'invalid config: method={name!r}; choose one of {tuple(METHODS)}.')


def validate_config(config) -> None:
  """Raises ValueError naming the field and a fix when ``config.method`` is unknown or
  one of its own fields holds a value it cannot run (checks that need no stream)."""
  _check_name(config.method)
  if config.method in VALIDATORS:
    VALIDATORS[config.method](config)


def needs_pixels(method_names) -> bool:
  """Whether any of ``method_names`` replays the tasks' training images (``dgr_pixel``),
  so that its stream must carry them (``streams.load_stream(..., pixels=True)``)."""
  return any(name in PIXEL_METHODS for name in method_names)


def get_method(name: str, context: Context) -> Method:
  """Builds method ``name``; an unknown name is a ValueError listing the known ones."""
  _check_name(name)
  return METHODS[name](context)
