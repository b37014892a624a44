"""Named task streams built from real images: data layer -> frozen backbone -> cached embeddings.

Every stream is built the same way: the images of each dataset are read with
`autoseed_jax.data.sources.load_arrays`, encoded once by a frozen backbone (default: the
offline LiT backbone, `models.offline_backbone`), cached on disk keyed by the backbone's
fingerprint (`data.embedding_cache`), split into tasks and packed by `tasks.build_stream`.

The pretraining split. The offline backbone's image tower was trained on a *pretraining
split* carved out of each dataset's TRAIN split (`pretraining_split`): per class, the
`PRETRAIN_FRACTION` (10%) of images whose salted content hash is smallest (byte-identical
images always go the same way). A stream's training data is the rest of TRAIN (exactly the
complement); its test data is the whole TEST split, which pretraining never sees. Sizes:

| dataset        | TRAIN | pretraining split         | stream train (before val) | TEST |
|----------------|-------|---------------------------|---------------------------|------|
| animal_mnist   | 8,000 | 800 (80 per class)        | 7,200 (720 per class)     | 2,000|
| sklearn_digits | 1,438 | 143 (14-15 per class)     | 1,295 (125-131 per class) |   359|

Why animals-digits has two tasks (one per domain) rather than several per domain: the shift
it measures is the domain change, as in the paper's C->R sequence; forgetting between
class-incremental steps inside one domain is what animals-ci measures. Each of its tasks has
10 classes, and sequential fine-tuning on the digits already erases the animals (about 80
points of forgetting), so more tasks are not needed for continual learning to matter.

`tasks.build_stream` then holds out `val_fraction` (5%) of each task's stream-train images per
class as D_t^val. `train_fraction` < 1 keeps that share of each class's stream-train images
(seeded, for quick runs) before the validation split.

`pixels=True` also gives every task its training images (`Task.train_pixels`, for replay
in pixel space, method `dgr_pixel`): the very images that were embedded, carried through
the same subsample, task split and validation split as their embeddings and put on the
LiT image tower's input grid (`models.image_encoder.preprocess_images`: [32, 32, 1]
float32 in [-1, 1]). That takes 27 MiB for animals-ci and 53 MiB for animals-digits
(whose digits task is padded to the animal task's 6,840 rows).

CIFAR-100 (`cifar100-10`, `cifar100-20`, `cifar100-50`): the standard class-incremental
benchmark, read from the data the user brings in data_dir: the standard python archive
(`cifar-100-python.tar.gz` or the `cifar-100-python/` folder it unpacks to, the one
torchvision downloads; `data.cifar`, no TensorFlow needed), else a TFDS dataset prepared
once with TensorFlow (`tfds build cifar100 --data_dir DIR --file_format array_record`).
The two hold the same images and labels in another record order, so the validation split
differs between them. Its 100 classes are learnt in the Continual-CLIP order (`sources.cifar100_class_order()`) in
10/20/50 equal tasks; class ids stay CIFAR's label ids. No pretraining split is removed (the
offline tower never saw CIFAR): a task trains on the whole TRAIN split of its classes (500
per class) and the test set is the whole TEST split (100 per class). The 32x32 RGB images go
to the backbone as they are when it resizes itself (the offline backbone turns them into
32x32 grayscale with the BT.601 luma weights, its documented preprocessing), or are first
resized (bicubic, `sources.resize_center_crop`) to the side a backbone declares as
`image_size` (CLIP: e.g. 224). `pixels=True` works with the offline backbone only (its
grayscale grid is what `dgr_pixel` replays; 205 MiB for the 50,000 training images).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import os
from typing import Callable

import jax.numpy as jnp
import numpy as np

from autoseed_jax import synthetic
from autoseed_jax.config_checks import check_fields
from autoseed_jax.data import builders, cifar, embedding_cache, sources
from autoseed_jax.models import backbone as backbone_lib
from autoseed_jax.models import image_encoder
from autoseed_jax.tasks import TaskStream, build_stream

PRETRAIN_FRACTION = 0.1
# Salt of the content hash that picks the pretraining images; changing it changes the split
# (and invalidates the committed image tower, which was trained on the current one).
PRETRAIN_SALT = b"autoseed_jax/lit-pretraining-split/v1"
# The datasets of the offline backbone's pretraining, with the offset of their class ids in
# the shared 20-class bank (the same ids as the animals-digits stream).
PRETRAIN_DATASETS = (("animal_mnist", 0), ("sklearn_digits", 10))

ANIMALS = "animal_mnist"
DIGITS = "sklearn_digits"
# animals-ci learns the animal-mnist classes in label order, two per task.
ANIMALS_CI_CLASS_ORDER = tuple(range(10))
ANIMALS_CI_CLASSES_PER_TASK = 2

CIFAR100 = "cifar100"
CIFAR100_NUM_CLASSES = 100
CIFAR100_TASK_COUNTS = (10, 20, 50)
# Images per resize-and-encode chunk for backbones with a fixed input size (bounds memory:
# 512 x 224 x 224 x 3 bytes = 77 MB).
RESIZE_CHUNK = 512


# ---------------------------------------------------------------------------------------------
# The pretraining split


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
    names += [_bank_name(dataset, name) for name in parts["class_names"]]
    described.append({
        "name": dataset, "offset": offset, "num_images": int(len(parts["pretrain_x"])),
        "train_size": int(len(parts["pretrain_x"]) + len(parts["train_x"])),
    })
  return {"images": images, "labels": labels, "prompts": prompts, "class_names": names,
          "datasets": described}


def _bank_name(dataset: str, class_name: str) -> str:
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
class _Embedded:
  """A dataset's stream parts as embeddings: train/test [N, d] with labels, prompts [C, d],
  and (when asked for) train_pixels [N, 32, 32, 1], the images of the train rows."""

  train_x: np.ndarray
  train_y: np.ndarray
  test_x: np.ndarray
  test_y: np.ndarray
  class_text: np.ndarray
  class_names: list[str]
  train_pixels: np.ndarray | None = None


def _embed_splits(dataset: str, backbone, *, train_split: str, train_images, train_y,
                  test_images, test_y, prompts, class_names, cache_dir, train_fraction: float,
                  rng: np.random.Generator, pixels: bool) -> _Embedded:
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

  return _Embedded(
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


def _embed_dataset(dataset: str, backbone, *, data_dir, cache_dir, train_fraction: float,
                   rng: np.random.Generator, pixels: bool = False) -> _Embedded:
  parts = load_split_arrays(dataset, data_dir)
  return _embed_splits(
      dataset, backbone, train_split="stream-train", train_images=parts["train_x"],
      train_y=parts["train_y"], test_images=parts["test_x"], test_y=parts["test_y"],
      prompts=parts["prompts"],
      class_names=[_bank_name(dataset, name) for name in parts["class_names"]],
      cache_dir=cache_dir, train_fraction=train_fraction, rng=rng, pixels=pixels)


def _task_split(x: np.ndarray, y: np.ndarray, classes) -> tuple[np.ndarray, np.ndarray]:
  rows = np.isin(y, np.asarray(classes))
  return x[rows], y[rows]


def _task_pixels(domain: _Embedded, classes) -> np.ndarray | None:
  """The train_pixels rows of `_task_split(domain.train_x, domain.train_y, classes)`."""
  if domain.train_pixels is None:
    return None
  return domain.train_pixels[np.isin(domain.train_y, np.asarray(classes))]


def _stream_pixels(per_task: list) -> list | None:
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


def _load_user_dataset(stream: str, dataset: str, split: str, data_dir):
  """A dataset the user brings, from its standard python archive when data_dir holds one
  (CIFAR, `data.cifar`: no TensorFlow needed), else `sources.load_arrays` of the TFDS
  dataset prepared there. A missing TFDS dataset raises its error (same type) prefixed
  with the stream, the archive route and how to pass the directory; a damaged archive
  raises `cifar.CifarArchiveError`."""
  archive = cifar.find_archive(dataset, data_dir)
  if archive is not None:
    return cifar.load_arrays(dataset, split, archive)
  try:
    return sources.load_arrays(dataset, split, data_dir)
  except (FileNotFoundError, ValueError) as error:
    archive_route = (f"{cifar.how_to_get(dataset, data_dir)} (read without TensorFlow), or "
                     "prepare it as a TFDS dataset: " if dataset in cifar.ARCHIVES else "")
    raise type(error)(
        f"Stream {stream!r} reads {dataset!r} from data you bring. {archive_route}"
        f"{error} Then pass that directory as get_stream(..., data_dir=DIR) "
        "(python -m autoseed_jax.main: --config.stream.data_dir=DIR), or set "
        f"${builders.DATA_DIR_ENV}=DIR (the default data_dir).") from error


def _check_pixels_backbone(stream: str, backbone) -> None:
  from autoseed_jax.models.offline_backbone import OfflineBackbone  # pylint: disable=import-outside-toplevel
  if not isinstance(backbone, OfflineBackbone):
    raise ValueError(
        f"Stream {stream!r} with pixels=True (method dgr_pixel) needs the offline backbone: "
        "dgr_pixel replays images through the offline LiT image tower (32x32 grayscale "
        f"grid), but this stream is embedded by {type(backbone).__name__}, so replayed "
        "images would land in another embedding space. Fix: use backbone 'offline', or "
        "method dgr (replay in the embedding space).")


def _embed_cifar100(stream: str, backbone, *, data_dir, cache_dir, train_fraction: float,
                    rng: np.random.Generator, pixels: bool) -> _Embedded:
  """CIFAR-100's TRAIN (subsampled per class by train_fraction) and TEST splits embedded
  by `backbone` through the cache; class ids are CIFAR's label ids (0..99)."""
  if data_dir is None:
    data_dir = builders.default_data_dir()
  train_images, train_y, raw_names = _load_user_dataset(stream, CIFAR100, "train", data_dir)
  test_images, test_y, _ = _load_user_dataset(stream, CIFAR100, "test", data_dir)
  if len(raw_names) != CIFAR100_NUM_CLASSES:  # a TFDS build of something else
    raise ValueError(f"{CIFAR100} in {data_dir} has {len(raw_names)} classes, expected "
                     f"{CIFAR100_NUM_CLASSES}; rebuild it with `tfds build cifar100 "
                     f"--data_dir {data_dir} --file_format array_record`.")
  return _embed_splits(
      CIFAR100, backbone, train_split="train", train_images=train_images, train_y=train_y,
      test_images=test_images, test_y=test_y,
      prompts=sources.class_prompts(CIFAR100, raw_names),
      class_names=[sources.readable_class_name(name) for name in raw_names],
      cache_dir=cache_dir, train_fraction=train_fraction, rng=rng, pixels=pixels)


# ---------------------------------------------------------------------------------------------
# The streams


def _animals_ci(backbone, *, data_dir, cache_dir, seed, val_fraction, train_fraction, pixels):
  rng = np.random.default_rng(seed)
  animals = _embed_dataset(ANIMALS, backbone, data_dir=data_dir, cache_dir=cache_dir,
                           train_fraction=train_fraction, rng=rng, pixels=pixels)
  order = np.asarray(ANIMALS_CI_CLASS_ORDER)
  task_classes = np.split(order, len(order) // ANIMALS_CI_CLASSES_PER_TASK)
  return build_stream(
      "animals-ci",
      train=[_task_split(animals.train_x, animals.train_y, c) for c in task_classes],
      test=[_task_split(animals.test_x, animals.test_y, c) for c in task_classes],
      class_text=animals.class_text, class_names=animals.class_names,
      val_fraction=val_fraction, seed=seed, description=STREAMS["animals-ci"].description,
      train_pixels=_stream_pixels([_task_pixels(animals, c) for c in task_classes]))


def _animals_digits(backbone, *, data_dir, cache_dir, seed, val_fraction, train_fraction,
                    pixels):
  rng = np.random.default_rng(seed)
  domains = [_embed_dataset(name, backbone, data_dir=data_dir, cache_dir=cache_dir,
                            train_fraction=train_fraction, rng=rng, pixels=pixels)
             for name in (ANIMALS, DIGITS)]
  train, test = [], []
  for offset, domain in zip((0, 10), domains):
    train.append((domain.train_x, domain.train_y + offset))
    test.append((domain.test_x, domain.test_y + offset))
  return build_stream(
      "animals-digits", train=train, test=test,
      class_text=np.concatenate([d.class_text for d in domains]),
      class_names=domains[0].class_names + domains[1].class_names,
      val_fraction=val_fraction, seed=seed, description=STREAMS["animals-digits"].description,
      train_pixels=_stream_pixels([d.train_pixels for d in domains]))


def _cifar100(backbone, *, num_tasks: int, data_dir, cache_dir, seed, val_fraction,
              train_fraction, pixels):
  name = f"cifar100-{num_tasks}"
  if pixels:
    _check_pixels_backbone(name, backbone)
  cifar = _embed_cifar100(name, backbone, data_dir=data_dir, cache_dir=cache_dir,
                          train_fraction=train_fraction, rng=np.random.default_rng(seed),
                          pixels=pixels)
  task_classes = sources.class_incremental_tasks(num_tasks)
  return build_stream(
      name,
      train=[_task_split(cifar.train_x, cifar.train_y, c) for c in task_classes],
      test=[_task_split(cifar.test_x, cifar.test_y, c) for c in task_classes],
      class_text=cifar.class_text, class_names=cifar.class_names,
      val_fraction=val_fraction, seed=seed, description=STREAMS[name].description,
      train_pixels=_stream_pixels([_task_pixels(cifar, c) for c in task_classes]))


def _cifar100_description(num_tasks: int) -> str:
  per_task = CIFAR100_NUM_CLASSES // num_tasks
  first = ", ".join(str(c) for c in sources.cifar100_class_order()[:per_task])
  return (
      f"Class-incremental CIFAR-100 in {num_tasks} tasks x {per_task} classes, in the "
      f"Continual-CLIP class order (numpy seed 1993 permutation; task 1 = label ids "
      f"{first}). Each task trains on the 500 TRAIN images per class (5% held out as "
      "D_t^val, 475 + 25) and is tested on the 100 TEST images per class; evaluation "
      "after each task is over all classes seen so far (100-way at the end) with the "
      "frozen text embeddings of 'a photo of a {class}.'. Reads CIFAR-100 from data_dir: "
      "the standard cifar-100-python archive (folder or .tar.gz), else a TFDS "
      "array_record dataset prepared there.")


@dataclasses.dataclass(frozen=True)
class StreamSpec:
  """A named stream: its protocol in one paragraph and the function that builds it."""

  name: str
  description: str
  build: Callable[..., TaskStream]


STREAMS: dict[str, StreamSpec] = {
    "animals-ci": StreamSpec(
        "animals-ci",
        "Class-incremental Animal-MNIST: 5 tasks x 2 classes in label order (bear, bird | "
        "cat, cow | dog, elephant | giraffe, horse | sheep, zebra). Each task trains on the "
        "720 stream-train images per class (the 80 per class of the LiT pretraining split "
        "removed; 5% of them held out as D_t^val, so 684 + 36) and is tested on the 200 TEST "
        "images per class. Evaluation after each task is over all classes seen so far "
        "(10-way at the end) with the frozen text embeddings of "
        "'a black and white silhouette of a {class}.'.",
        _animals_ci),
    "animals-digits": StreamSpec(
        "animals-digits",
        "Two domains in sequence (like the paper's C->R): task 1 = the 10 Animal-MNIST "
        "classes (ids 0-9; 720 stream-train images per class, 200 test), task 2 = the 10 "
        "scikit-learn digits (ids 10-19, 8x8 images upsampled to 32x32; 125-131 stream-train "
        "images per class, 35-37 test). Prompts: 'a black and white silhouette of a "
        "{animal}.' and 'a handwritten digit {d}.'. After task 2 both domains are "
        "evaluated over all 20 classes.",
        _animals_digits),
    "vl-scenes": StreamSpec(
        "vl-scenes",
        "Vision-language scenes (offline): 48x48 canvases of 2-3 real objects (Animal-MNIST "
        "silhouettes, scikit-learn digits) side by side, 4 tasks: (1) animal-retrieval: "
        "image-text retrieval on animal scenes, 5 template captions per scene (objects, "
        "counts, left/right relations); (2) digit-captioning: retrieval captioning on digit "
        "scenes (the domain shift), BLEU-4 of the best caption of the fixed bank of the "
        "task's distinct training captions; (3) count-vqa: existence and counting questions "
        "on mixed scenes; (4) relational-vqa: 'what is to the left of the zebra?'. 400 "
        "training / 100 test scenes per task (from stream-train / TEST object images; the "
        "scene tower was pretrained on scenes of the pretraining split). R[i, j]: mean recall "
        "(1), BLEU-4 (2), VQA accuracy (3, 4). See autoseed_jax/vl_streams.py.",
        lambda backbone, **kwargs: _vl_streams().scene_stream(backbone, **kwargs)),
    "coco-flickr": StreamSpec(
        "coco-flickr",
        "The paper's C->F sequence (user-prepared data, autoseed_jax/data/vl_sources.py): "
        "task 1 = COCO captions, task 2 = Flickr30k, Karpathy splits, each a retrieval-"
        "captioning task: (image, caption) pairs trained with symmetric InfoNCE; R[i, j] = "
        "BLEU-4 of the best caption of the task's fixed bank (the captions of its first 5,000 "
        "training images) against the test image's references, R@1/5/10 both ways beside it.",
        lambda backbone, **kwargs: _vl_streams().coco_flickr_stream(backbone, **kwargs)),
    "vqa-v2": StreamSpec(
        "vqa-v2",
        "VQA v2 (user-prepared data, autoseed_jax/data/vl_sources.py) as three VQA tasks by "
        "answer type (yes/no, number, other): (image + question) queries scored against a "
        "bank of the 1,000 most frequent answers; R[i, j] = VQA accuracy on val.",
        lambda backbone, **kwargs: _vl_streams().vqa_v2_stream(backbone, **kwargs)),
    **{f"cifar100-{num_tasks}": StreamSpec(
        f"cifar100-{num_tasks}", _cifar100_description(num_tasks),
        functools.partial(_cifar100, num_tasks=num_tasks))
       for num_tasks in CIFAR100_TASK_COUNTS},
}


def _vl_streams():
  from autoseed_jax import vl_streams  # pylint: disable=import-outside-toplevel
  return vl_streams


# ---------------------------------------------------------------------------------------------
# Development streams: for choosing settings without touching a reported stream's test data

# Share of each class's stream-train images held out as a development stream's test set.
DEV_TEST_FRACTION = 0.2
# animals-ci-dev learns the animals in another order than animals-ci (a fixed permutation).
ANIMALS_DEV_CLASS_ORDER = (7, 2, 9, 4, 0, 6, 3, 8, 1, 5)


def dev_test_split(y: np.ndarray, rng: np.random.Generator,
                   fraction: float = DEV_TEST_FRACTION) -> tuple[np.ndarray, np.ndarray]:
  """Per class, a random `fraction` of the rows (at least one) for testing, the rest for
  training. y: [N] labels. Returns sorted (train_rows, test_rows) partitioning range(N)."""
  test = []
  for label in np.unique(y):
    members = np.flatnonzero(y == label)
    test.append(rng.choice(members, max(1, int(round(fraction * members.size))), replace=False))
  is_test = np.zeros(len(y), bool)
  is_test[np.concatenate(test)] = True
  return np.flatnonzero(~is_test), np.flatnonzero(is_test)


def _dev_domain(dataset: str, backbone, *, data_dir, cache_dir, seed, train_fraction):
  """A dataset's stream-train embeddings split into (train, test) parts (`dev_test_split`);
  its TEST split plays no part. Returns (train (x, y), test (x, y), class_text, names)."""
  rng = np.random.default_rng(seed)
  domain = _embed_dataset(dataset, backbone, data_dir=data_dir, cache_dir=cache_dir,
                          train_fraction=1.0, rng=rng)
  train_rows, test_rows = dev_test_split(domain.train_y, np.random.default_rng(1000 + seed))
  keep = subsample_per_class(domain.train_y[train_rows], train_fraction, rng)
  train_rows = train_rows[keep]
  return ((domain.train_x[train_rows], domain.train_y[train_rows]),
          (domain.train_x[test_rows], domain.train_y[test_rows]),
          domain.class_text, domain.class_names)


def _class_incremental_dev(name: str, dataset: str, order, backbone, *, data_dir, cache_dir,
                           seed, val_fraction, train_fraction, pixels):
  if pixels:
    raise ValueError(f"Stream {name!r} has no images (pixels=True); it is for choosing "
                     "settings of the embedding-space methods.")
  (train_x, train_y), (test_x, test_y), class_text, names = _dev_domain(
      dataset, backbone, data_dir=data_dir, cache_dir=cache_dir, seed=seed,
      train_fraction=train_fraction)
  order = np.asarray(order)
  task_classes = np.split(order, len(order) // 2)
  return build_stream(
      name, train=[_task_split(train_x, train_y, c) for c in task_classes],
      test=[_task_split(test_x, test_y, c) for c in task_classes],
      class_text=class_text, class_names=names, val_fraction=val_fraction, seed=seed,
      description=STREAMS[name].description)


def _animals_digits_dev(backbone, *, data_dir, cache_dir, seed, val_fraction, train_fraction,
                        pixels):
  if pixels:
    raise ValueError("Stream 'animals-digits-dev' has no images (pixels=True); it is for "
                     "choosing settings of the embedding-space methods.")
  train, test, texts, names = [], [], [], []
  for offset, dataset in ((0, ANIMALS), (10, DIGITS)):
    (tx, ty), (sx, sy), class_text, class_names = _dev_domain(
        dataset, backbone, data_dir=data_dir, cache_dir=cache_dir, seed=seed,
        train_fraction=train_fraction)
    train.append((tx, ty + offset))
    test.append((sx, sy + offset))
    texts.append(class_text)
    names += class_names
  return build_stream("animals-digits-dev", train=train, test=test,
                      class_text=np.concatenate(texts), class_names=names,
                      val_fraction=val_fraction, seed=seed,
                      description=STREAMS["animals-digits-dev"].description)


_DEV_NOTE = (" Built from stream-TRAIN images only: per class, 20% of them (seeded) are the "
             "test set and the rest train (5% of those held out as D_t^val); the datasets' "
             "TEST splits, which the reported streams are tested on, play no part. "
             "(Animal-MNIST's stream-train holds 203 pairs of identical images, so 64 of "
             "animals-ci-dev's 1,440 test images have a twin among its training images.)")
STREAMS.update({
    "animals-ci-dev": StreamSpec(
        "animals-ci-dev",
        "Development stream: class-incremental Animal-MNIST, 5 tasks x 2 classes in the "
        "order giraffe, cat | zebra, dog | bear, horse | cow, sheep | bird, elephant (ids "
        f"{ANIMALS_DEV_CLASS_ORDER})." + _DEV_NOTE,
        functools.partial(_class_incremental_dev, "animals-ci-dev", ANIMALS,
                          ANIMALS_DEV_CLASS_ORDER)),
    "digits-ci-dev": StreamSpec(
        "digits-ci-dev",
        "Development stream: class-incremental scikit-learn digits, 5 tasks x 2 classes in "
        "label order (0, 1 | 2, 3 | ... | 8, 9), prompts 'a handwritten digit {d}.'." + _DEV_NOTE,
        functools.partial(_class_incremental_dev, "digits-ci-dev", DIGITS, tuple(range(10)))),
    "animals-digits-dev": StreamSpec(
        "animals-digits-dev",
        "Development stream: the two domains of animals-digits in the same order (task 1 = "
        "the 10 animals, task 2 = the 10 digits, ids 10-19)." + _DEV_NOTE,
        _animals_digits_dev),
})


def get_stream(name: str, *, backbone=None, data_dir=None, cache_dir=None, seed: int = 0,
               val_fraction: float = 0.05, train_fraction: float = 1.0,
               pixels: bool = False, **options) -> TaskStream:
  """Builds the named stream (see `STREAMS`) on cached embeddings of `backbone`.

  backbone: a `models.backbone.Backbone` (default: `load_offline_backbone()`).
  data_dir: where the embedded TFDS datasets are built and where user-prepared ones
    (CIFAR-100) are read from (default `data.builders.default_data_dir()`); cache_dir:
    embedding cache (default `data.embedding_cache.default_cache_dir()`).
  seed: seed of the validation split and of the `train_fraction` subsample.
  val_fraction: share of each task's training data held out as D_t^val.
  train_fraction: share of each class's stream-train images kept (1.0: all).
  pixels: also give each task its training images (`Task.train_pixels` [N, 32, 32, 1]
    float32 on the LiT image tower's input grid, row i the image of train_x[i]), which
    method `dgr_pixel` replays through that tower. The embeddings are the same either way.
    The CIFAR-100 streams accept it only with the offline backbone (ValueError otherwise).
  options: a stream's own fields (the vision-language streams', e.g. vl-scenes'
    ``train_scenes``; see autoseed_jax/vl_streams.py); an unknown one is a ValueError.
  Raises FileNotFoundError (CIFAR-100 in data_dir neither as its python archive nor as a
  prepared TFDS dataset; the message says where to put the archive and gives the `tfds
  build` command), ValueError (unknown name, bad fraction, backbone; data that is
  incomplete or damaged) and `disk_errors.DiskError` (data_dir or the cache a file,
  unreadable, or a write that fails); names and fractions are checked before anything is
  loaded.
  """
  if name not in STREAMS:
    raise ValueError(f"Unknown stream {name!r}. Known streams: {', '.join(sorted(STREAMS))}.")
  check_fields(dict(val_fraction=val_fraction, train_fraction=train_fraction),
               REAL_STREAM_RULES)  # before anything is encoded
  if backbone is None:
    from autoseed_jax.models.offline_backbone import load_offline_backbone  # pylint: disable=import-outside-toplevel
    backbone = load_offline_backbone()
  if not isinstance(backbone, backbone_lib.Backbone):
    raise ValueError(f"backbone must implement models.backbone.Backbone (embed_dim, "
                     f"fingerprint, encode_text, encode_image); got {type(backbone).__name__}.")
  if cache_dir is None:
    cache_dir = embedding_cache.default_cache_dir()
  try:
    return STREAMS[name].build(backbone, data_dir=data_dir, cache_dir=os.fspath(cache_dir),
                               seed=seed, val_fraction=val_fraction,
                               train_fraction=train_fraction, pixels=bool(pixels), **options)
  except TypeError as error:
    if not options or 'keyword argument' not in str(error):
      raise
    raise ValueError(f"Stream {name!r} does not take the field(s) {sorted(options)} "
                     f"({error}); remove them from config.stream.") from error


def _check_backbone_spec(spec: str) -> None:
  if spec != 'offline' and not spec.startswith('clip:'):
    raise ValueError(f"invalid config: stream.backbone={spec!r}; use 'offline' or "
                     "'clip:/path/to/open_clip_model.safetensors'.")


def load_backbone(spec: str):
  """The frozen backbone named by ``config.stream.backbone``.

  ``offline`` (default): the LiT-pretrained CNN image tower + MiniLM text tower shipped
  with the project. ``clip:<path>``: an OpenCLIP/OpenAI CLIP checkpoint you bring
  (``open_clip_model.safetensors`` or ``.npz``; the architecture is read from its shapes).
  """
  _check_backbone_spec(spec)
  if spec == 'offline':
    return None  # get_stream's default
  from autoseed_jax.models.clip import CLIPBackbone
  return CLIPBackbone.from_checkpoint(spec[len('clip:'):])


SYNTHETIC = "synthetic"
# The fields of a named (real-image) stream's config block beside `name`, and the ranges
# of the numeric ones.
def _stream_fields(builder) -> tuple[str, ...]:
  """The fields a stream block may hold: its builder's parameters but the stream's name."""
  return tuple(p for p in inspect.signature(builder).parameters if p != "name")


REAL_STREAM_FIELDS = _stream_fields(get_stream)
# The vision-language streams' builders in vl_streams (whose keywords are their fields) and
# the config written for each.
VL_STREAM_BUILDERS = {
    "vl-scenes": ("scene_stream", "experiments/configs/vl_scenes.py"),
    "coco-flickr": ("coco_flickr_stream", "experiments/configs/vl_coco_flickr.py"),
    "vqa-v2": ("vqa_v2_stream", "experiments/configs/vl_coco_flickr.py:vqa-v2"),
}
REAL_STREAM_RULES = (
    ("val_fraction", "in [0, 1)", "share of each task's training data held out as D_t^val"),
    ("train_fraction", "in (0, 1]", "share of each class's training images used"),
)


def check_stream_config(stream_config) -> None:
  """Raises ValueError naming the field and a fix for a ``config.stream`` block that
  cannot be loaded, before anything is loaded: an unknown ``name`` (checked first), a
  field the named stream does not take, a value out of range."""
  name = stream_config.get("name")
  known = (SYNTHETIC, *sorted(STREAMS))
  if name not in known:
    raise ValueError(f"invalid config: stream.name={name!r} is not a stream; choose one of "
                     f"{', '.join(known)} (your own embeddings: tasks.build_stream and "
                     "runner.run_workdir, see the README).")
  if name == SYNTHETIC:
    takes = tuple(inspect.signature(synthetic.make_synthetic_stream).parameters)
    rules, config_file = synthetic.RULES, "experiments/configs/synthetic.py"
  elif name in VL_STREAM_BUILDERS:
    builder, config_file = VL_STREAM_BUILDERS[name]
    takes = _stream_fields(getattr(_vl_streams(), builder))
    rules = REAL_STREAM_RULES
  else:
    takes, rules = REAL_STREAM_FIELDS, REAL_STREAM_RULES
    config_file = f"experiments/configs/demo.py --config.stream.name={name}"
  foreign = sorted(set(stream_config) - set(takes) - {"name"})
  if foreign:
    raise ValueError(
        f"invalid config: stream.name={name!r} does not take the field(s) "
        f"{', '.join('stream.' + f for f in foreign)} of this config's stream block; run a "
        f"config written for it: --config {config_file}.")
  check_fields(stream_config, rules, prefix="stream.")
  if name != SYNTHETIC:
    _check_backbone_spec(stream_config.get("backbone", "offline"))


def load_stream(stream_config, methods=()):
  """Builds the task stream named by ``config.stream.name``.

  The block is checked first (``check_stream_config``), so a bad name or field is
  refused before any backbone or data is loaded. ``methods``: the run's methods; when
  one replays images (``dgr_pixel``) the real streams also carry each task's training
  images (``get_stream(..., pixels=True)``).
  """
  check_stream_config(stream_config)
  kwargs = {k: v for k, v in stream_config.items() if k not in ('name', 'backbone')}
  if stream_config.name == SYNTHETIC:
    return synthetic.make_synthetic_stream(**kwargs)
  from autoseed_jax.methods.dgr import PIXEL_METHODS
  kwargs.setdefault('pixels', any(m in PIXEL_METHODS for m in methods))
  backbone = load_backbone(stream_config.get('backbone', 'offline'))
  return get_stream(stream_config.name, backbone=backbone, **kwargs)
