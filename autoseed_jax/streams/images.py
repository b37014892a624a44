"""The image streams: class-incremental Animal-MNIST (animals-ci), two domains in sequence
(animals-digits), class-incremental CIFAR-100 (cifar100-10/20/50) and the development
streams (animals-ci-dev, digits-ci-dev, animals-digits-dev); each builder beside the
description of the protocol it builds (``SPECS``, merged into ``streams.STREAMS``).

Why animals-digits has two tasks (one per domain) rather than several per domain: the shift
it measures is the domain change, as in the paper's C->R sequence; forgetting between
class-incremental steps inside one domain is what animals-ci measures. Each of its tasks has
10 classes, and sequential fine-tuning on the digits already erases the animals (about 80
points of forgetting), so more tasks are not needed for continual learning to matter.

`tasks.build_stream` holds out `val_fraction` (5%) of each task's stream-train images per
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
differs between them. Its 100 classes are learnt in the Continual-CLIP order
(`sources.cifar100_class_order()`) in
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

import functools

import numpy as np

from autoseed_jax.core.tasks import build_stream
from autoseed_jax.data import builders, cifar, sources
from autoseed_jax.streams.embed import (ANIMALS, DIGITS, Embedded, embed_dataset, embed_splits,
                                        stream_pixels, subsample_per_class, task_pixels,
                                        task_split)
from autoseed_jax.streams.spec import StreamSpec

# animals-ci learns the animal-mnist classes in label order, two per task.
ANIMALS_CI_CLASS_ORDER = tuple(range(10))
ANIMALS_CI_CLASSES_PER_TASK = 2

CIFAR100 = "cifar100"
CIFAR100_NUM_CLASSES = 100
CIFAR100_TASK_COUNTS = (10, 20, 50)


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
                    rng: np.random.Generator, pixels: bool) -> Embedded:
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
  return embed_splits(
      CIFAR100, backbone, train_split="train", train_images=train_images, train_y=train_y,
      test_images=test_images, test_y=test_y,
      prompts=sources.class_prompts(CIFAR100, raw_names),
      class_names=[sources.readable_class_name(name) for name in raw_names],
      cache_dir=cache_dir, train_fraction=train_fraction, rng=rng, pixels=pixels)


# ---------------------------------------------------------------------------------------------
# The streams


def _animals_ci(backbone, *, data_dir, cache_dir, seed, val_fraction, train_fraction, pixels):
  rng = np.random.default_rng(seed)
  animals = embed_dataset(ANIMALS, backbone, data_dir=data_dir, cache_dir=cache_dir,
                           train_fraction=train_fraction, rng=rng, pixels=pixels)
  order = np.asarray(ANIMALS_CI_CLASS_ORDER)
  task_classes = np.split(order, len(order) // ANIMALS_CI_CLASSES_PER_TASK)
  return build_stream(
      "animals-ci",
      train=[task_split(animals.train_x, animals.train_y, c) for c in task_classes],
      test=[task_split(animals.test_x, animals.test_y, c) for c in task_classes],
      class_text=animals.class_text, class_names=animals.class_names,
      val_fraction=val_fraction, seed=seed, description=SPECS["animals-ci"].description,
      train_pixels=stream_pixels([task_pixels(animals, c) for c in task_classes]))


def _animals_digits(backbone, *, data_dir, cache_dir, seed, val_fraction, train_fraction,
                    pixels):
  rng = np.random.default_rng(seed)
  domains = [embed_dataset(name, backbone, data_dir=data_dir, cache_dir=cache_dir,
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
      val_fraction=val_fraction, seed=seed, description=SPECS["animals-digits"].description,
      train_pixels=stream_pixels([d.train_pixels for d in domains]))


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
      train=[task_split(cifar.train_x, cifar.train_y, c) for c in task_classes],
      test=[task_split(cifar.test_x, cifar.test_y, c) for c in task_classes],
      class_text=cifar.class_text, class_names=cifar.class_names,
      val_fraction=val_fraction, seed=seed, description=SPECS[name].description,
      train_pixels=stream_pixels([task_pixels(cifar, c) for c in task_classes]))


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


SPECS: dict[str, StreamSpec] = {
    "animals-ci": StreamSpec(
        "animals-ci",
        "Class-incremental Animal-MNIST: 5 tasks x 2 classes in label order (bear, bird | "
        "cat, cow | dog, elephant | giraffe, horse | sheep, zebra). Each task trains on the "
        "720 stream-train images per class (the 80 per class of the LiT pretraining split "
        "removed; 5% of them held out as D_t^val, so 684 + 36) and is tested on the 200 TEST "
        "images per class. Evaluation after each task is over all classes seen so far "
        "(10-way at the end) with the frozen text embeddings of "
        "'a black and white silhouette of a {class}.'.",
        _animals_ci, datasets=((ANIMALS, 0),)),
    "animals-digits": StreamSpec(
        "animals-digits",
        "Two domains in sequence (like the paper's C->R): task 1 = the 10 Animal-MNIST "
        "classes (ids 0-9; 720 stream-train images per class, 200 test), task 2 = the 10 "
        "scikit-learn digits (ids 10-19, 8x8 images upsampled to 32x32; 125-131 stream-train "
        "images per class, 35-37 test). Prompts: 'a black and white silhouette of a "
        "{animal}.' and 'a handwritten digit {d}.'. After task 2 both domains are "
        "evaluated over all 20 classes.",
        _animals_digits, datasets=((ANIMALS, 0), (DIGITS, 10))),
    **{f"cifar100-{num_tasks}": StreamSpec(
        f"cifar100-{num_tasks}", _cifar100_description(num_tasks),
        functools.partial(_cifar100, num_tasks=num_tasks))
       for num_tasks in CIFAR100_TASK_COUNTS},
}


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
  domain = embed_dataset(dataset, backbone, data_dir=data_dir, cache_dir=cache_dir,
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
      name, train=[task_split(train_x, train_y, c) for c in task_classes],
      test=[task_split(test_x, test_y, c) for c in task_classes],
      class_text=class_text, class_names=names, val_fraction=val_fraction, seed=seed,
      description=SPECS[name].description)


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
                      description=SPECS["animals-digits-dev"].description)


_DEV_NOTE = (" Built from stream-TRAIN images only: per class, 20% of them (seeded) are the "
             "test set and the rest train (5% of those held out as D_t^val); the datasets' "
             "TEST splits, which the reported streams are tested on, play no part. "
             "(Animal-MNIST's stream-train holds 203 pairs of identical images, so 64 of "
             "animals-ci-dev's 1,440 test images have a twin among its training images.)")
SPECS.update({
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
