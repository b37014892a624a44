"""Method settings for the embedded real-image streams (d = 384), chosen on animals-ci.

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
