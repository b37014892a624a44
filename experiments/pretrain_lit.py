# COMMAND: python experiments/pretrain_lit.py [--out DIR] [--steps 100] [--seed 0]
"""Pretrains the offline backbone's image tower (LiT: locked MiniLM text, trained CNN image)
and writes the checkpoint that `autoseed_jax.models.offline_backbone` loads.

Training data: the pretraining splits of animal_mnist and sklearn_digits
(`autoseed_jax.streams.embed.pretraining_data`: 10% of each class's TRAIN images, 800 + 143 images,
20 classes); the continual streams train on the other 90% and test on TEST, which is never
used here. The step count is deliberately small (100 steps of 128 class-balanced images):
the tower is meant to be a moderate zero-shot classifier (about 60% on either dataset's test
split) whose features still let adapters do much better, so that continual learning on the
default backbone has something to learn and something to forget.

Writes DIR/params (orbax) and DIR/config.json (tower config, LiT config, learned temperature,
training data, loss history, wall time); DIR defaults to autoseed_jax/models/assets/lit_tower.
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
from autoseed_jax.models import image_encoder, lit, minilm, offline_backbone  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
  defaults = lit.LitConfig()
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", type=pathlib.Path,
                      default=offline_backbone.DEFAULT_CHECKPOINT_DIR)
  parser.add_argument("--steps", type=int, default=defaults.num_steps)
  parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
  parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
  parser.add_argument("--seed", type=int, default=defaults.seed)
  parser.add_argument("--data-dir", type=pathlib.Path, default=None)
  return parser.parse_args(argv)


def main(argv=None) -> None:
  args = parse_args(argv)
  config = dataclasses.replace(lit.LitConfig(), num_steps=args.steps,
                               batch_size=args.batch_size, learning_rate=args.learning_rate,
                               seed=args.seed)
  tower_config = image_encoder.ImageTowerConfig()
  data = embed.pretraining_data(args.data_dir)
  text_encoder = minilm.load_minilm()
  class_text = text_encoder.encode_text(data["prompts"])

  start = time.perf_counter()
  params, history = lit.pretrain_image_tower(
      data["images"], data["labels"], class_text, config=config, tower_config=tower_config,
      log=lambda record: print(json.dumps(record), flush=True))
  seconds = time.perf_counter() - start

  encode = jax.jit(lambda x: image_encoder.encode_images(params["tower"], x,
                                                         config=tower_config))
  train_accuracy = {}
  for info, images, labels in zip(data["datasets"], data["images"], data["labels"]):
    predicted = np.argmax(np.asarray(encode(images)) @ class_text.T, axis=1)
    train_accuracy[info["name"]] = float(np.mean(predicted == labels))

  metadata = {
      "lit_config": dataclasses.asdict(config),
      "learned_logit_scale": float(np.exp(params["log_logit_scale"])),
      "objective": "CE of each image against the frozen MiniLM embeddings of all class "
                   "prompts (autoseed_jax.models.lit.lit_loss)",
      "text_tower": {"name": "all-MiniLM-L6-v2", "fingerprint": text_encoder.fingerprint},
      "training_data": {
          "description": (
              f"pretraining split of each dataset's TRAIN split: per class the "
              f"{embed.PRETRAIN_FRACTION:.0%} of images with the smallest salted content "
              f"hash (autoseed_jax.streams.embed.pretraining_split); TEST never used"),
          "salt": embed.PRETRAIN_SALT.decode(),
          "fraction": embed.PRETRAIN_FRACTION,
          "datasets": data["datasets"],
          "class_names": data["class_names"],
          "prompts": data["prompts"],
      },
      "training_accuracy": train_accuracy,
      "history": history,
      "seconds": seconds,
      "platform": jax.default_backend(),
  }
  lit.save_pretrained(args.out, params["tower"], tower_config=tower_config, metadata=metadata,
                      summary={"training_accuracy": train_accuracy})


if __name__ == "__main__":
  main()
