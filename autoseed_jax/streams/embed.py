"""The shared bottom of the image streams: the pretraining split and embedding through a
frozen backbone and the on-disk cache.

The pretraining split. The offline backbone's image tower was trained on a *pretraining
split* carved out of each dataset's TRAIN split (`pretraining_split`): per class, the
`PRETRAIN_FRACTION` (10%) of images whose salted content hash is smallest (byte-identical
images always go the same way). A stream's training data is the rest of TRAIN (exactly the
complement); its test data is the whole TEST split, which pretraining never sees. Sizes:

| dataset        | TRAIN | pretraining split         | stream train (before val) | TEST |
|----------------|-------|---------------------------|---------------------------|------|
| animal_mnist   | 8,000 | 800 (80 per class)        | 7,200 (720 per class)     | 2,000|
| sklearn_digits | 1,438 | 143 (14-15 per class)     | 1,295 (125-131 per class) |   359|

Images are read with `autoseed_jax.data.sources.load_arrays`, encoded once by a frozen
backbone (default: the offline LiT backbone, `models.offline_backbone`) and cached on disk
keyed by the backbone's fingerprint (`data.embedding_cache`).
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Callable

import jax.numpy as jnp
import numpy as np

from autoseed_jax.data import embedding_cache, sources
from autoseed_jax.models import image_encoder

PRETRAIN_FRACTION = 0.1
# Salt of the content hash that picks the pretraining images; changing it changes the split
# (and invalidates the committed image tower, which was trained on the current one).
PRETRAIN_SALT = b"autoseed_jax/lit-pretraining-split/v1"
# The datasets of the offline backbone's pretraining, with the offset of their class ids in
# the shared 20-class bank (the same ids as the animals-digits stream).
PRETRAIN_DATASETS = (("animal_mnist", 0), ("sklearn_digits", 10))

ANIMALS = "animal_mnist"
DIGITS = "sklearn_digits"
# Images per resize-and-encode chunk for backbones with a fixed input size (bounds memory:
# 512 x 224 x 224 x 3 bytes = 77 MB).
RESIZE_CHUNK = 512


def content_digests(images: np.ndarray, salt: bytes = PRETRAIN_SALT) -> list[str]:
  """images: [N, ...] -> N hex sha256 digests of salt + each image's bytes."""
  return [hashlib.sha256(salt + np.ascontiguousarray(image).tobytes()).hexdigest()
          for image in images]


def pretraining_split(images: np.ndarray, labels: np.ndarray,
                      fraction: float = PRETRAIN_FRACTION) -> tuple[np.ndarray, np.ndarray]:
  """Deterministic per-class carve-out of a TRAIN split for LiT pretraining.

  Per class, images are ordered by `content_digests`; distinct contents are taken in that
  order until `round(fraction * class size)` images are taken (a content that occurs twice
  brings both copies, so the count can exceed the target by the extra copies). The choice
  depends only on image bytes and labels, not on record order.

  images: [N, H, W, C] uint8; labels: [N] int.
  Returns (pretrain_indices, stream_indices): sorted int64 arrays partitioning range(N).
  """
  labels = np.asarray(labels)
  if len(images) != len(labels):
    raise ValueError(f"{len(images)} images but {len(labels)} labels.")
  if not 0.0 < fraction < 1.0:
    raise ValueError(f"fraction must be in (0, 1), got {fraction}.")
  digests = np.asarray(content_digests(images))
  chosen = []
  for label in np.unique(labels):
    members = np.flatnonzero(labels == label)
    target = int(round(fraction * members.size))
    ordered = members[np.argsort(digests[members], kind="stable")]
    taken = 0
    for start in range(ordered.size):
      if taken >= target:
        break
      if start > 0 and digests[ordered[start]] == digests[ordered[start - 1]]:
        continue  # already taken with its first copy
      copies = ordered[digests[ordered] == digests[ordered[start]]]
      chosen.append(copies)
      taken += copies.size
  is_pretrain = np.zeros(len(labels), bool)
  if chosen:
    is_pretrain[np.concatenate(chosen)] = True
  return np.flatnonzero(is_pretrain).astype(np.int64), np.flatnonzero(~is_pretrain).astype(np.int64)


def load_split_arrays(dataset: str, data_dir=None) -> dict[str, np.ndarray | list[str]]:
  """One dataset, split into the three parts this module uses.

  Returns {"pretrain_x", "pretrain_y", "train_x", "train_y", "test_x", "test_y": arrays
  (uint8 [N, H, W, 1] images, int32 labels), "class_names": list, "prompts": list}.
  """
  train_x, train_y, class_names = sources.load_arrays(dataset, "train", data_dir)
  test_x, test_y, _ = sources.load_arrays(dataset, "test", data_dir)
  pretrain_idx, stream_idx = pretraining_split(train_x, train_y)
  return {
      "pretrain_x": train_x[pretrain_idx], "pretrain_y": train_y[pretrain_idx],
      "train_x": train_x[stream_idx], "train_y": train_y[stream_idx],
      "test_x": test_x, "test_y": test_y,
      "class_names": class_names,
      "prompts": sources.class_prompts(dataset, class_names),
  }


def pretraining_data(data_dir=None) -> dict:
  """The LiT pretraining set: the pretraining splits of `PRETRAIN_DATASETS`.

  Returns {"images": per dataset uint8 [N_i, H_i, W_i, 1], "labels": per dataset int32 [N_i]
  in the shared bank (offset applied), "prompts": [C] class prompts of the bank,
  "class_names": [C], "datasets": [{"name", "offset", "num_images", "train_size"}]}.
  """
  images, labels, prompts, names, described = [], [], [], [], []
  for dataset, offset in PRETRAIN_DATASETS:
    parts = load_split_arrays(dataset, data_dir)
    if offset != len(prompts):
      raise ValueError(f"class offset {offset} of {dataset} does not follow the "
                       f"{len(prompts)} classes before it.")
    images.append(parts["pretrain_x"])
    labels.append(parts["pretrain_y"] + offset)
    prompts += parts["prompts"]
    names += [bank_name(dataset, name) for name in parts["class_names"]]
    described.append({
        "name": dataset, "offset": offset, "num_images": int(len(parts["pretrain_x"])),
        "train_size": int(len(parts["pretrain_x"]) + len(parts["train_x"])),
    })
  return {"images": images, "labels": labels, "prompts": prompts, "class_names": names,
          "datasets": described}


def bank_name(dataset: str, class_name: str) -> str:
  return f"digit {class_name}" if dataset == DIGITS else class_name


# ---------------------------------------------------------------------------------------------
# Embedding through the cache


def subsample_per_class(labels: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
  """Sorted indices keeping round(fraction * n_c) (at least 2) examples of each class c."""
  if not 0.0 < fraction <= 1.0:
    raise ValueError(f"train_fraction must be in (0, 1], got {fraction}.")
  if fraction == 1.0:
    return np.arange(len(labels))
  kept = []
  for label in np.unique(labels):
    members = np.flatnonzero(labels == label)
    count = min(members.size, max(2, int(round(fraction * members.size))))
    kept.append(rng.choice(members, count, replace=False))
  return np.sort(np.concatenate(kept))


def tower_input_grid(images: np.ndarray, batch_size: int = 1024) -> np.ndarray:
  """images: [N, H, W, 1 or 3] uint8 -> [N, 32, 32, 1] float32 in [-1, 1], the LiT image
  tower's input (`image_encoder.preprocess_images`, in batches to bound memory)."""
  images = image_encoder.check_images(images)
  return np.concatenate(
      [np.asarray(image_encoder.preprocess_images(jnp.asarray(images[start:start + batch_size])))
       for start in range(0, len(images), batch_size)]
      or [np.zeros((0, image_encoder.INPUT_SIZE, image_encoder.INPUT_SIZE, 1), np.float32)])


@dataclasses.dataclass
class Embedded:
  """A dataset's stream parts as embeddings: train/test [N, d] with labels, prompts [C, d],
  and (when asked for) train_pixels [N, 32, 32, 1], the images of the train rows."""

  train_x: np.ndarray
  train_y: np.ndarray
  test_x: np.ndarray
  test_y: np.ndarray
  class_text: np.ndarray
  class_names: list[str]
  train_pixels: np.ndarray | None = None


def embed_splits(dataset: str, backbone, *, train_split: str, train_images, train_y,
                  test_images, test_y, prompts, class_names, cache_dir, train_fraction: float,
                  rng: np.random.Generator, pixels: bool) -> Embedded:
  """A dataset's TRAIN images (subsampled per class by `train_fraction`, cached as split
  `train_split`) and TEST images embedded by `backbone` through the embedding cache, its
  prompts encoded, and (when `pixels`) the kept training images on the tower grid."""
  keep = subsample_per_class(train_y, train_fraction, rng)
  train_images = train_images[keep]
  encode, tag = image_encode_fn(backbone, train_images.shape[1:])

  def images(split: str, x: np.ndarray) -> np.ndarray:
    return embedding_cache.cached_embeddings(
        encode, fingerprint=backbone.fingerprint, dataset=dataset,
        split=split + tag, images=x, cache_dir=cache_dir)

  return Embedded(
      train_x=images(train_split, train_images),
      train_y=train_y[keep],
      test_x=images("test", test_images),
      test_y=test_y,
      class_text=embedding_cache.cached_text_embeddings(
          backbone.encode_text, fingerprint=backbone.fingerprint, prompts=prompts,
          cache_dir=cache_dir),
      class_names=class_names,
      train_pixels=tower_input_grid(train_images) if pixels else None,
  )


def embed_dataset(dataset: str, backbone, *, data_dir, cache_dir, train_fraction: float,
                   rng: np.random.Generator, pixels: bool = False) -> Embedded:
  parts = load_split_arrays(dataset, data_dir)
  return embed_splits(
      dataset, backbone, train_split="stream-train", train_images=parts["train_x"],
      train_y=parts["train_y"], test_images=parts["test_x"], test_y=parts["test_y"],
      prompts=parts["prompts"],
      class_names=[bank_name(dataset, name) for name in parts["class_names"]],
      cache_dir=cache_dir, train_fraction=train_fraction, rng=rng, pixels=pixels)


def task_split(x: np.ndarray, y: np.ndarray, classes) -> tuple[np.ndarray, np.ndarray]:
  rows = np.isin(y, np.asarray(classes))
  return x[rows], y[rows]


def task_pixels(domain: Embedded, classes) -> np.ndarray | None:
  """The train_pixels rows of `task_split(domain.train_x, domain.train_y, classes)`."""
  if domain.train_pixels is None:
    return None
  return domain.train_pixels[np.isin(domain.train_y, np.asarray(classes))]


def stream_pixels(per_task: list) -> list | None:
  return None if any(p is None for p in per_task) else per_task


def backbone_image_size(backbone) -> int | None:
  """The square side a backbone's `encode_image` requires (its `image_size`, e.g. CLIP's
  224), or None for a backbone that resizes its inputs itself (the offline backbone)."""
  size = getattr(backbone, "image_size", None)
  return None if size is None else int(size)


def image_encode_fn(backbone, image_shape) -> tuple[Callable[[np.ndarray], np.ndarray], str]:
  """How to embed [N, H, W, C] uint8 images (`image_shape` = (H, W, C)) with `backbone`,
  and a cache-split tag.

  A backbone that declares an `image_size` (CLIP: RGB at exactly that side) gets
  grayscale images (C = 1) repeated to three channels (tag "-rgb") and, when H or W
  differs, each chunk of `RESIZE_CHUNK` images resized (bicubic,
  `sources.resize_center_crop`) to image_size (tag e.g. "-bicubic224"); the tag names
  this preparation in the embedding-cache split. A backbone without `image_size` (the
  offline one prepares its inputs itself) gets the images as they are, tag "".
  Returns (encode_fn: images [N, H, W, C] -> [N, d], tag).
  """
  size = backbone_image_size(backbone)
  height, width, channels = image_shape
  resize = size is not None and (height, width) != (size, size)
  to_rgb = size is not None and channels == 1
  if not resize and not to_rgb:
    return backbone.encode_image, ""

  def encode(images: np.ndarray) -> np.ndarray:
    if len(images) == 0:
      return np.zeros((0, backbone.embed_dim), np.float32)
    chunks = []
    for start in range(0, len(images), RESIZE_CHUNK):
      chunk = images[start:start + RESIZE_CHUNK]
      if resize:
        chunk = np.stack([sources.resize_center_crop(image, size) for image in chunk])
      if to_rgb:
        chunk = np.repeat(chunk, 3, axis=-1)
      chunks.append(np.asarray(backbone.encode_image(chunk)))
    return np.concatenate(chunks)

  return encode, ("-rgb" if to_rgb else "") + (f"-bicubic{size}" if resize else "")
