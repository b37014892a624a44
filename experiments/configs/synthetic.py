# COMMAND: python -m autoseed_jax.main --config experiments/configs/synthetic.py --workdir runs/synthetic
"""Auto-Seed VL2 beside zero-shot and sequential fine-tuning on synthetic embeddings.

The small synthetic class-incremental embedding benchmark
(autoseed_jax/streams/synthetic.py: 5 tasks x 2 classes, d=64): no backbone, no images, a few
seconds per method; the fastest way to see the whole method run. Fields not set here
come from common.py.
"""

import ml_collections

from experiments.configs.common import method_config


def get_config() -> ml_collections.ConfigDict:
  config = method_config()
  # Methods run one after the other on the same stream, each from a fresh state.
  config.methods = ('zeroshot', 'finetune', 'autoseed')
  config.stream = ml_collections.ConfigDict(dict(
      name='synthetic',       # the stream builder (see autoseed_jax/streams/synthetic.py)
      num_tasks=5,            # tasks in sequence
      classes_per_task=2,     # new classes per task
      dim=64,                 # embedding dim d
      train_per_class=200,    # training examples per class (5% held out as D_val)
      test_per_class=100,     # test examples per class
      seed=0,                 # data seed (independent of the run seed)
  ))
  return config
