# COMMAND: python -m autoseed_jax.main --config experiments/configs/animals_digits.py --workdir runs/animals_digits
"""Two domains in sequence (like the paper's C→R): the 10 Animal-MNIST classes, then the
10 scikit-learn digits, with the same backbone and settings as the demo."""

import ml_collections

from experiments.configs.real_streams import real_stream_config


def get_config() -> ml_collections.ConfigDict:
  config = real_stream_config()
  config.methods = ('zeroshot', 'finetune', 'autoseed')
  config.stream = ml_collections.ConfigDict(dict(
      name='animals-digits',  # task 1: animals (classes 0-9); task 2: digits (10-19)
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
  return config
