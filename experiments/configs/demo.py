# COMMAND: python -m autoseed_jax.main --config experiments/configs/demo.py --workdir runs/demo
"""The demo (`make demo`): Auto-Seed VL2 and our variant autoseed_plus
(docs/autoseed_plus.md) beside zero-shot and sequential fine-tuning on real images, offline.

Stream `animals-ci`: class-incremental Animal-MNIST, 5 tasks x 2 classes (see
autoseed_jax/streams.py and the README). The frozen backbone is the offline default: a
small CNN image tower pretrained LiT-style against the frozen MiniLM text tower on a
split the stream never sees (committed checkpoint), with MiniLM (all-MiniLM-L6-v2) for
the class prompts. Embeddings are cached on first use. Fields not set here come from
common.py (method) and real_streams.py (the `stream` block); the optimisation settings
below are shared by every method of the run.
"""

import ml_collections

from experiments.configs.real_streams import real_stream_config, stream_config


def get_config() -> ml_collections.ConfigDict:
  config = real_stream_config()
  # Methods run one after the other on the same stream, each from a fresh state.
  config.methods = ('zeroshot', 'finetune', 'autoseed', 'autoseed_plus')
  config.stream = stream_config('animals-ci')
  return config
