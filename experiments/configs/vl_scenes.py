# COMMAND: python -m autoseed_jax.main --config experiments/configs/vl_scenes.py --workdir runs/vl
"""Vision-language continual learning offline: the `vl-scenes` stream (retrieval ->
captioning -> VQA -> relational VQA on scenes of real animal silhouettes and digits; see
autoseed_jax/streams/vision_language.py and docs/VL_TASKS.md), with zero-shot, sequential fine-tuning,
ER-VLM and Auto-Seed VL2.

Prints per method the matrix R[i, j] of primary scores (mean recall for retrieval, BLEU-4
for captioning, VQA accuracy) and, after the last task, every task's R@1/5/10 image->text
and text->image, BLEU-4 and VQA accuracy; writes them to results.json / results.md.

The backbone is the offline scene backbone (a LiT-pretrained scene tower + MiniLM, committed
in autoseed_jax/models/assets/scene_tower); `--config.stream.backbone=clip:<path>` embeds
the same scenes with CLIP. Method settings are the real-stream ones (real_streams.py), the
same for every method. Stream fields beyond real_streams.stream_config: train_scenes /
test_scenes per task, clusters (M, k-means seed groups per non-classification task).
"""

import ml_collections

from experiments.configs.real_streams import real_stream_config, stream_config


def vl_stream_config(name: str = 'vl-scenes') -> ml_collections.ConfigDict:
  """``config.stream`` of the scene stream (every field can be overridden)."""
  stream = stream_config(name)
  stream.train_scenes = 400   # training scenes per task (x train_fraction)
  stream.test_scenes = 100    # test scenes per task
  stream.clusters = 8         # M: k-means seed groups of a retrieval/captioning/VQA task
  return stream


def get_config() -> ml_collections.ConfigDict:
  config = real_stream_config()
  config.methods = ('zeroshot', 'finetune', 'er', 'autoseed')
  config.stream = vl_stream_config()
  return config
