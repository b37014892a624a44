# COMMAND: python experiments/pretrain_scene_lit.py [--out DIR] [--steps 300] [--seed 0]
"""Pretrains the scene image tower of the offline vision-language backbone (LiT: locked
MiniLM text, trained CNN) and writes the checkpoint `autoseed_jax.models.scene_tower` loads.

Training data: `--scenes` scenes (default 4,000) of two or three objects composed by
`autoseed_jax.streams.vision_language.pretraining_scenes` from the object images of the pretraining
split (`autoseed_jax.streams.embed.pretraining_split`: 10% of each class's TRAIN images of
animal_mnist and sklearn_digits, 800 + 143 images) -- animal-only, digit-only and mixed
scenes in equal shares, each with its five template captions. The `vl-scenes` stream
composes its scenes from the other 90% of TRAIN (its training scenes) and from TEST (its
test scenes), so pretraining never sees one of its object images. The step count is kept
small (300 steps of 128 scenes) so that zero-shot retrieval is far above chance but
adaptation still has much to learn.

Writes DIR/params (orbax) and DIR/config.json (tower config, LiT config, learned
temperature, training data, loss history, wall time, zero-shot image->caption R@1 on the
pretraining scenes); DIR defaults to autoseed_jax/models/assets/scene_tower.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import sys
import time

import jax
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from autoseed_jax.streams import embed  # noqa: E402
from autoseed_jax.streams import vision_language  # noqa: E402
from autoseed_jax.models import lit, minilm, scene_tower  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
  parser.add_argument('--out', type=pathlib.Path, default=scene_tower.DEFAULT_CHECKPOINT_DIR)
  parser.add_argument('--steps', type=int, default=300)
  parser.add_argument('--scenes', type=int, default=4000)
  parser.add_argument('--batch-size', type=int, default=128)
  parser.add_argument('--learning-rate', type=float, default=3e-3)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--data-dir', type=pathlib.Path, default=None)
  return parser.parse_args(argv)


def main(argv=None) -> None:
  args = parse_args(argv)
  lit_config = dataclasses.replace(lit.LitConfig(), num_steps=args.steps,
                                   batch_size=args.batch_size,
                                   learning_rate=args.learning_rate, seed=args.seed)
  config = scene_tower.SceneTowerConfig()
  data = vision_language.pretraining_scenes(args.scenes, seed=args.seed, data_dir=args.data_dir)
  text_encoder = minilm.load_minilm()
  caption_text = text_encoder.encode_text(data['caption_texts'])

  start = time.perf_counter()
  params, history = scene_tower.pretrain_scene_tower(
      data['images'], data['scene_captions'], caption_text, lit_config=lit_config,
      config=config, log=lambda record: print(json.dumps(record), flush=True))
  seconds = time.perf_counter() - start

  backbone = scene_tower.SceneBackbone(params['tower'], config, text_encoder)
  image = backbone.encode_image(data['images'])
  best = np.argmax(image @ caption_text.T, axis=1)
  recall_at_1 = float(np.mean([best[i] in data['scene_captions'][i]
                               for i in range(len(best))]))
  metadata = {
      'lit_config': dataclasses.asdict(lit_config),
      'learned_logit_scale': float(np.exp(params['log_logit_scale'])),
      'objective': 'symmetric in-batch InfoNCE of scenes against their frozen MiniLM '
                   'caption embeddings (autoseed_jax.models.scene_tower.scene_lit_loss)',
      'text_tower': {'name': 'all-MiniLM-L6-v2', 'fingerprint': text_encoder.fingerprint},
      'training_data': {
          'description': (f'{args.scenes} scenes composed from the pretraining split of '
                          'animal_mnist and sklearn_digits (autoseed_jax.streams.'
                          'pretraining_split); streams never use these object images'),
          'salt': embed.PRETRAIN_SALT.decode(), 'fraction': embed.PRETRAIN_FRACTION,
          'scenes': args.scenes, 'distinct_captions': len(data['caption_texts']),
      },
      'training_image_to_caption_recall_at_1': recall_at_1,
      'history': history, 'seconds': seconds, 'platform': jax.default_backend(),
  }
  lit.save_pretrained(args.out, params['tower'], tower_config=config, metadata=metadata,
                      summary={'training_recall_at_1': recall_at_1})


if __name__ == '__main__':
  main()
