"""Method settings for the embedded real-image streams (d = 384), chosen on animals-ci,
and the ``config.stream`` block of a run on a named stream.

Shared by demo.py and animals_digits.py; every method of a run uses the same settings.
"""

import ml_collections

from experiments.configs.common import method_config


def real_stream_config() -> ml_collections.ConfigDict:
  """Settings for the embedded real-image streams (d = 384), chosen on animals-ci."""
  config = method_config()
  config.learning_rate = 3e-4       # lower than the synthetic default: the adapters
  config.steps_per_task = 100       # overfit a 2-class task quickly (~5 epochs here)
  config.consistency_weight = 10.0  # λ_c
  config.meta_steps = 100           # M: G_φ starts at the class *text* embedding and
  config.meta_learning_rate = 1e-2  # needs this many steps to reach the image region
  config.anchor_weight = 5.0        # γ
  return config


def stream_config(name: str) -> ml_collections.ConfigDict:
  """``config.stream`` for the named stream of autoseed_jax/streams.py (animals-ci,
  animals-digits, cifar100-10/-20/-50 from your prepared data); every field can be
  overridden with ``--config.stream.<field>=``."""
  return ml_collections.ConfigDict(dict(
      name=name,
      backbone='offline',     # or 'clip:/path/to/open_clip_model.safetensors'
      seed=0,                 # seed of the validation split
      val_fraction=0.05,      # share of each task's training data held out as D_t^val
      train_fraction=1.0,     # share of each class's training images used
      # Where TFDS datasets are (the embedded ones are built there; cifar100-* streams read
      # your prepared CIFAR-100 there); unset: $AUTOSEED_DATA_DIR or the default.
      data_dir=ml_collections.config_dict.placeholder(str),
      # Where embeddings are cached; unset: $AUTOSEED_CACHE_DIR or the default.
      cache_dir=ml_collections.config_dict.placeholder(str),
  ))
