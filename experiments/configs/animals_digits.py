# COMMAND: python -m autoseed_jax.main --config experiments/configs/animals_digits.py --workdir runs/animals_digits
"""Two domains in sequence (like the paper's C→R): the 10 Animal-MNIST classes, then the
10 scikit-learn digits, with the same backbone and settings as the demo."""

import ml_collections

from experiments.configs.real_streams import real_stream_config, stream_config


def get_config() -> ml_collections.ConfigDict:
  config = real_stream_config()
  config.methods = ('zeroshot', 'finetune', 'autoseed')
  # task 1: animals (classes 0-9); task 2: digits (10-19)
  config.stream = stream_config('animals-digits')
  return config
