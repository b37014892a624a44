# COMMAND: python -m autoseed_jax.main --config experiments/configs/demo.py --workdir runs/demo
"""The demo (`make demo`): Auto-Seed VL2 beside zero-shot and sequential fine-tuning on
real images, offline.

Stream `animals-ci`: class-incremental Animal-MNIST, 5 tasks x 2 classes (see
autoseed_jax/streams.py and the README). The frozen backbone is the offline default: a
small CNN image tower pretrained LiT-style against the frozen MiniLM text tower on a
split the stream never sees (committed checkpoint), with MiniLM (all-MiniLM-L6-v2) for
the class prompts. Embeddings are cached on first use. Fields not set here come from
common.py; the optimisation settings below are shared by every method of the run.
"""

import ml_collections

from experiments.configs.real_streams import real_stream_config


def get_config() -> ml_collections.ConfigDict:
  config = real_stream_config()
  # Methods run one after the other on the same stream, each from a fresh state.
  config.methods = ('zeroshot', 'finetune', 'autoseed')
  config.stream = ml_collections.ConfigDict(dict(
      name='animals-ci',      # a stream of autoseed_jax/streams.py: animals-ci, animals-digits,
                              # cifar100-10/-20/-50 (your prepared data), or 'synthetic'
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
