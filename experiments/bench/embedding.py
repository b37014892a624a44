"""Embedding extraction: images/s and texts/s of the offline backbone and of CLIP
ViT-B/32 with random weights."""

from __future__ import annotations

import time

import jax
import numpy as np

from experiments.bench.common import accelerator_present, median_seconds, Preset


def embedding_section(preset: Preset) -> dict:
  """images/s and texts/s of the offline backbone and of a random-weight CLIP ViT-B/32."""
  from autoseed_jax.models import clip, offline_backbone  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(0)
  words = ['bear', 'bird', 'cat', 'cow', 'dog', 'elephant', 'giraffe', 'horse', 'sheep',
           'zebra']

  def prompts(n):
    return [f'a black and white silhouette of a {words[i % len(words)]}.' for i in range(n)]

  def rate(encode, inputs, repeats):
    encode(inputs)  # compiles
    seconds, _ = median_seconds(lambda: encode(inputs), repeats)
    return {'rows': len(inputs), 'seconds_median': seconds, 'rows_per_s': len(inputs) / seconds}

  result = {}
  start = time.perf_counter()
  offline = offline_backbone.load_offline_backbone()
  load_s = time.perf_counter() - start
  images = rng.integers(0, 256, (preset.offline_images, 32, 32, 1), dtype=np.uint8)
  result['offline_lit_minilm'] = {
      'load_s': load_s, 'embed_dim': offline.embed_dim,
      'image_batch': offline.batch_size, 'text_batch': offline.text_encoder.batch_size,
      'images': rate(offline.encode_image, images, 3),
      'texts': rate(offline.encode_text, prompts(preset.offline_texts), 3),
  }

  config = clip.get_clip_config('ViT-B-32', **preset.clip_overrides)
  start = time.perf_counter()
  params = jax.block_until_ready(jax.jit(clip.init_clip_params, static_argnums=0)(
      config, jax.random.PRNGKey(0)))
  init_s = time.perf_counter() - start
  batch = 64 if accelerator_present() else preset.clip_batch
  backbone = clip.CLIPBackbone(params, config, batch_size=batch)
  pixels = rng.integers(0, 256, (2 * batch, config.image_size, config.image_size, 3),
                        dtype=np.uint8)
  result['clip_vit_b32_random'] = {
      'config_overrides': preset.clip_overrides,
      'layers_per_tower': config.vision_layers,
      'weights': 'random (init_clip_params), no download', 'init_s': init_s,
      'batch': batch, 'embed_dim': config.embed_dim,
      'images': rate(backbone.encode_image, pixels, 2),
      'texts': rate(backbone.encode_text, prompts(2 * batch), 2),
  }
  return result
