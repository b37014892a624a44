"""Reading datasets without TensorFlow: TFDS random-access data sources fed to grain.

Two kinds of dataset:

* Embedded (``animal_mnist``, ``sklearn_digits``): built on first use from installed packages
  into ``data_dir`` (default ``builders.default_data_dir()``); see ``builders``.
* User-prepared TFDS datasets (CIFAR-100): must already be in ``data_dir``
  in the ``array_record`` (or ``parquet``) format. Preparing them needs TensorFlow once:
  ``pip install tensorflow`` then ``tfds build cifar100 --data_dir DIR --file_format array_record``.

Splits: ``"train"`` and ``"test"`` are mapped to each dataset's TFDS split (``TFDS_DATASETS``);
any other string (``"validation"``, ``"train[:10%]"``) is passed to TFDS unchanged.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from collections.abc import Sequence

import grain
import numpy as np
import tensorflow_datasets as tfds

from autoseed_jax.tools import disk_errors
from autoseed_jax.data import builders

DEFAULT_PROMPT_TEMPLATE = "a photo of a {}."


@dataclasses.dataclass(frozen=True)
class TfdsDataset:
  """Where a user-prepared image-classification dataset lives in TFDS.

  tfds_name: TFDS name with config (``"eurosat/rgb"``), or None when TFDS has no builder.
  train_split / test_split: the TFDS splits that play the roles "train" and "test".
  """

  tfds_name: str | None
  train_split: str = "train"
  test_split: str = "test"
  prompt_template: str = DEFAULT_PROMPT_TEMPLATE
  image_key: str = "image"
  label_key: str = "label"
  note: str = ""


# The user-prepared TFDS datasets a stream reads (CIFAR-100; its python archive is read by
# ``data.cifar`` without TFDS).
TFDS_DATASETS: dict[str, TfdsDataset] = {
    "cifar100": TfdsDataset("cifar100"),
}

_READ_CHUNK = 1024

# Continual-CLIP / MoE-Adapters (after PyCIL) shuffle CIFAR-100 classes with this seed.
CIFAR100_CLASS_ORDER_SEED = 1993


def known_datasets() -> tuple[str, ...]:
  """Every name ``load_arrays`` / ``data_source`` accept."""
  return tuple(sorted(builders.EMBEDDED_BUILDERS)) + tuple(sorted(TFDS_DATASETS))


def prompt_template(name: str) -> str:
  """The class-prompt template of dataset ``name`` (one ``{}`` for the class name)."""
  if name in builders.EMBEDDED_BUILDERS:
    return builders.EMBEDDED_BUILDERS[name].PROMPT_TEMPLATE
  _check_known(name)
  return TFDS_DATASETS[name].prompt_template


def readable_class_name(raw_name: str) -> str:
  """TFDS label name -> words.

  ``"/a/apartment_building/outdoor"`` (SUN397) -> ``"apartment building outdoor"``.
  """
  parts = [part for part in raw_name.split("/") if part]
  if len(parts) > 1 and len(parts[0]) == 1:  # SUN397 style "/<first letter>/<name>".
    parts = parts[1:]
  return " ".join(" ".join(parts).replace("_", " ").split())


def class_prompts(name: str, class_names: Sequence[str]) -> list[str]:
  """One prompt per class, e.g. ``"a photo of a apple."``, from ``prompt_template(name)``."""
  template = prompt_template(name)
  return [template.format(readable_class_name(class_name)) for class_name in class_names]


def _check_known(name: str) -> None:
  if name not in builders.EMBEDDED_BUILDERS and name not in TFDS_DATASETS:
    raise ValueError(
        f"Unknown dataset {name!r}. Known datasets: {', '.join(known_datasets())}."
    )


def how_to_prepare(tfds_name: str, data_dir: str) -> str:
  """The sentence that says how to build TFDS dataset ``tfds_name`` into ``data_dir``."""
  return (
      f"Prepare it once with TensorFlow installed: `pip install tensorflow` then "
      f"`tfds build {tfds_name} --data_dir {data_dir} --file_format array_record`."
  )


def _tfds_split(spec: TfdsDataset, split: str) -> str:
  return {"train": spec.train_split, "test": spec.test_split}.get(split, split)


def stored_format_problem(
    tfds_name: str, data_dir: str, version_dir: pathlib.Path
) -> Exception | None:
  """Why the TFDS dataset in ``version_dir`` cannot be read without TensorFlow, or None.

  A missing ``dataset_info.json`` gives FileNotFoundError (how to prepare it); a stored format
  without random access (tfrecord) gives ValueError (how to convert it).
  """
  info_file = version_dir / "dataset_info.json"
  if not info_file.is_file():
    return FileNotFoundError(
        f"TFDS dataset {tfds_name!r} is not prepared in {data_dir} (no {info_file}). "
        + how_to_prepare(tfds_name, data_dir)
    )
  stored_format = json.loads(info_file.read_text()).get("fileFormat", "tfrecord")
  if stored_format not in ("array_record", "parquet"):
    return ValueError(
        f"TFDS dataset {tfds_name!r} in {version_dir} is stored as {stored_format}, which "
        "has no random access and cannot be read without TensorFlow. Convert it once (needs "
        f"TensorFlow): `tfds convert_format --dataset_version_dir={version_dir} "
        "--out_file_format=array_record`, or rebuild with "
        f"`tfds build {tfds_name} --data_dir {data_dir} --file_format array_record`."
    )
  return None


def _diagnose_unreadable(tfds_name: str, data_dir: str, error: Exception) -> Exception:
  """Turns a TFDS read failure into an error that says what is on disk and how to fix it."""
  builder = tfds.builder(tfds_name, data_dir=data_dir)
  version_dir = pathlib.Path(os.fspath(builder.data_dir))
  return stored_format_problem(tfds_name, data_dir, version_dir) or error


def data_source(name: str, split: str, data_dir: str | os.PathLike | None = None):
  """Random-access source of ``split`` of dataset ``name``: ``len(src)``, ``src[i]`` -> dict.

  Embedded datasets are built into data_dir on first use. User-prepared datasets need
  data_dir (the ``--data_dir`` they were built into) and are read with ``tfds.data_source``.
  """
  _check_known(name)
  if name in builders.EMBEDDED_BUILDERS:
    return builders.prepare(name, data_dir).as_data_source(split)
  spec = TFDS_DATASETS[name]
  if spec.tfds_name is None:
    raise ValueError(f"Dataset {name!r} cannot be loaded: {spec.note}")
  if data_dir is None:
    raise ValueError(
        f"Dataset {name!r} ({spec.tfds_name}) is not shipped with autoseed_jax: pass the "
        "data_dir it was prepared in. " + how_to_prepare(spec.tfds_name, "DATA_DIR")
    )
  data_dir = os.fspath(builders.check_data_dir(data_dir))
  try:
    with builders.no_variant_folder_warning():  # not prepared: the error below says how
      return tfds.data_source(
          spec.tfds_name, split=_tfds_split(spec, split), data_dir=data_dir, download=False
      )
  # What TFDS raises for records it cannot read: AssertionError (no such version
  # prepared), FileNotFoundError or ValueError (nothing prepared there, no file format
  # recorded), NotImplementedError (stored as tfrecord only: no random access).
  except (AssertionError, FileNotFoundError, NotImplementedError, ValueError) as error:
    diagnosed = _diagnose_unreadable(spec.tfds_name, data_dir, error)
    if diagnosed is error:
      raise
    raise diagnosed from error


def _unreadable_records(name: str, split: str, source, data_dir, error: Exception):
  """The one-line error for records of a prepared dataset that cannot be read: a
  DiskError (no permission, ...) or a ValueError saying the files are incomplete or
  damaged and how to rebuild them."""
  version_dir = os.fspath(getattr(source.dataset_info, "data_dir", data_dir))
  if disk_errors.problem(error) is not None:
    return disk_errors.disk_error(version_dir, f"reading {name}/{split} from", error,
                                  where=disk_errors.Where.DATA)
  if name in builders.EMBEDDED_BUILDERS:
    rebuild = (f"remove {version_dir}; the next run builds it again from the installed "
               "package")
  else:
    rebuild = "rebuild it. " + how_to_prepare(TFDS_DATASETS[name].tfds_name,
                                              os.fspath(data_dir))
  return ValueError(
      f"cannot read {name}/{split} from {version_dir} "
      f"({disk_errors.one_line(f'{type(error).__name__}: {error}', 200)}): the prepared "
      f"files are incomplete or damaged. Fix: {rebuild}")


def class_names_of(source, label_key: str = "label") -> list[str]:
  """Class names stored in a TFDS data source's ``ClassLabel`` feature."""
  return list(source.dataset_info.features[label_key].names)


def _label_key(name: str) -> str:
  return TFDS_DATASETS[name].label_key if name in TFDS_DATASETS else "label"


def _image_key(name: str) -> str:
  return TFDS_DATASETS[name].image_key if name in TFDS_DATASETS else "image"


def resize_center_crop(image: np.ndarray, size: int) -> np.ndarray:
  """image: [H, W, C] uint8 -> [size, size, C] uint8.

  Shorter side resized to ``size`` (bicubic), then the center square is cropped.
  """
  from PIL import Image  # pylint: disable=import-outside-toplevel

  height, width, channels = image.shape
  scale = size / min(height, width)
  new_width, new_height = max(size, round(width * scale)), max(size, round(height * scale))
  pil_image = Image.fromarray(image[..., 0] if channels == 1 else image)
  pil_image = pil_image.resize((new_width, new_height), Image.Resampling.BICUBIC)
  left, top = (new_width - size) // 2, (new_height - size) // 2
  cropped = np.asarray(pil_image.crop((left, top, left + size, top + size)), dtype=np.uint8)
  return cropped.reshape(size, size, channels)


def load_arrays(
    name: str,
    split: str,
    data_dir: str | os.PathLike | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
  """Reads a whole split into memory (for small datasets).

  Returns (images: [N, H, W, C] uint8, labels: [N] int32, class_names: list[str]) in the
  stored record order; images of different sizes are a ValueError.
  """
  source = data_source(name, split, data_dir)
  image_key, label_key = _image_key(name), _label_key(name)
  images, labels = [], []
  try:
    # Batched reads (grain hands each chunk to the source's batched __getitems__).
    for chunk in grain.MapDataset.source(source).batch(_READ_CHUNK, batch_fn=list):
      for record in chunk:
        image = np.asarray(record[image_key], dtype=np.uint8)
        if image.ndim == 2:
          image = image[..., None]
        images.append(image)
        labels.append(int(record[label_key]))
  except (RuntimeError, OSError, ValueError, KeyError) as error:
    raise _unreadable_records(name, split, source, data_dir, error) from error
  shapes = {image.shape for image in images}
  if len(shapes) > 1:
    raise ValueError(
        f"Images of {name}/{split} have {len(shapes)} different shapes (e.g. "
        f"{sorted(shapes)[:3]}); only datasets of one image size are read."
    )
  stacked = np.stack(images) if images else np.zeros((0, 0, 0, 0), np.uint8)
  return stacked, np.asarray(labels, dtype=np.int32), class_names_of(source, label_key)


def cifar100_class_order(
    seed: int = CIFAR100_CLASS_ORDER_SEED, num_classes: int = 100
) -> np.ndarray:
  """[num_classes] int32 class ids in learning order: ``RandomState(seed).permutation``.

  Equals ``np.random.seed(1993); np.random.permutation(100)`` (the PyCIL order used by
  Continual-CLIP / MoE-Adapters), starting 68, 56, 78, 8, 23, ...
  """
  return np.random.RandomState(seed).permutation(num_classes).astype(np.int32)


def class_incremental_tasks(
    num_tasks: int, *, class_order: np.ndarray | None = None
) -> list[np.ndarray]:
  """Splits a class order into ``num_tasks`` equal consecutive chunks of class ids.

  class_order: [C] ids (default ``cifar100_class_order()``). CIFAR-100 with 10/20/50 tasks
  gives 10/5/2 classes per task. Returns a list of [C // num_tasks] int32 arrays.
  """
  class_order = cifar100_class_order() if class_order is None else np.asarray(class_order)
  if num_tasks <= 0 or len(class_order) % num_tasks:
    raise ValueError(
        f"{len(class_order)} classes cannot be split into {num_tasks} equal tasks."
    )
  return [chunk.astype(np.int32) for chunk in np.split(class_order, num_tasks)]
