# COMMAND: python -m autoseed_jax.main --config experiments/configs/vl_coco_flickr.py --workdir runs/coco_flickr --config.stream.data_dir=DIR --config.stream.backbone=clip:/path/to/open_clip_model.safetensors
"""The paper's C->F sequence: COCO captions, then Flickr30k (Karpathy splits), on CLIP.

Each dataset is one retrieval-captioning task: (image, caption) pairs trained with
symmetric InfoNCE; R[i, j] = BLEU-4 of the best caption of the task's fixed caption bank
(the captions of its first `bank_images` training images) against the test image's
references; R@1/5/10 image->text and text->image beside it (autoseed_jax/streams/vision_language.py,
coco_flickr_stream). Prepare the data once (docs/vl_datasets.md: the TFDS coco_captions
dataset or Karpathy's JSON with the COCO 2014 images, and Flickr30k's images with its
Karpathy JSON) and point `stream.data_dir` at it; bring your own OpenCLIP/OpenAI CLIP
weights (`stream.backbone=clip:<path>`). Without the data the run stops at once with the
commands that prepare it.

Stream fields beyond real_streams.stream_config: kind ('captioning' or 'retrieval'),
max_train_images (per dataset, x train_fraction; None: all), max_test_images (None: the
whole Karpathy test split), bank_images, clusters. Every method that runs image-text tasks
is listed (coop, maple and dgr_pixel are refused on them; see docs/VL_TASKS.md).

`--config experiments/configs/vl_coco_flickr.py:vqa-v2` runs VQA v2 instead (three VQA tasks
by answer type; streams.vision_language.vqa_v2_stream): stream fields max_train_questions,
max_test_questions, num_answers, clusters; the data as docs/vl_datasets.md prepares it.
"""

import ml_collections

from experiments.configs.real_streams import real_stream_config, stream_config


def get_config(arg=None) -> ml_collections.ConfigDict:
  """``arg``: None or 'coco-flickr' for C->F; 'vqa-v2' for VQA v2."""
  config = real_stream_config()
  config.methods = ('zeroshot', 'finetune', 'joint', 'er', 'lwf', 'ewc', 'dgr', 'hnet',
                    'autoseed')
  if arg == 'vqa-v2':
    stream = stream_config('vqa-v2')
    stream.max_train_questions = 60000
    stream.max_test_questions = 10000
    stream.num_answers = 1000
    stream.clusters = 8
    config.stream = stream
    return config
  if arg not in (None, 'coco-flickr'):
    raise ValueError(f'vl_coco_flickr.py:{arg} is not a stream of this config; use '
                     'vl_coco_flickr.py (C->F) or vl_coco_flickr.py:vqa-v2.')
  stream = stream_config('coco-flickr')
  stream.kind = 'captioning'
  stream.max_train_images = 20000
  stream.max_test_images = ml_collections.config_dict.placeholder(int)
  stream.bank_images = 5000
  stream.clusters = 8
  config.stream = stream
  return config
