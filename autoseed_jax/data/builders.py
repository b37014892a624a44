"""TFDS builders for the real image datasets that ship inside installed packages.

Two small, real, offline datasets are built as TFDS datasets in the ``array_record`` format, so
they are read exactly like any user-prepared TFDS dataset (``tfds.data_source`` + grain) and no
TensorFlow is needed:

* ``animal_mnist``: 10,000 real 28x28 animal silhouettes (1,000 per class) from the PyPI package
  ``animal-mnist`` 0.4 (MIT). Label ids 0-9 are ``ANIMAL_MNIST_CLASS_NAMES`` in order; the order
  was read off the images themselves. The package has no train/test split, so we make one:
  stratified 80/20 with seed 0, where the 284 pairs of byte-identical images in the package
  always land in the same split (no test image has an exact copy in train). Result: 800 train
  and 200 test images per class.
* ``sklearn_digits``: scikit-learn's ``load_digits`` (1,797 real 8x8 handwritten digits, UCI
  optdigits), pixel values 0..16 scaled to uint8 0..255 with ``rint(v * 255 / 16)``. Stratified
  80/20 split with seed 0 (duplicate groups kept together as above): 1,438 train, 359 test.

Every example is ``{"image": uint8 [H, W, 1], "label": ClassLabel, "id": "<dataset>/<index>"}``
where ``<index>`` is the position in the package's own array. Build with ``prepare(name)``:
the first time it prints one line (``building animal_mnist from the installed package
animal-mnist into DIR: 10,000 images``) instead of TFDS's download messages and progress
bars (nothing is downloaded). A data directory that is a file or cannot be read, and a
build that fails for lack of space or permission, raise ``disk_errors.DiskError``: one
line naming the path and the fix (``AUTOSEED_DATA_DIR``).
"""

from __future__ import annotations

import abc
import contextlib
import errno
import fcntl
import gzip
import hashlib
import importlib.util
import logging
import os
import pathlib
import pickle
from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.core.utils import tqdm_utils

from autoseed_jax.tools import disk_errors

ANIMAL_MNIST_CLASS_NAMES = (
    "bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra",
)
ANIMAL_MNIST_PROMPT_TEMPLATE = "a black and white silhouette of a {}."

SKLEARN_DIGITS_CLASS_NAMES = tuple(str(digit) for digit in range(10))
SKLEARN_DIGITS_PROMPT_TEMPLATE = "a handwritten digit {}."

TEST_FRACTION = 0.2
SPLIT_SEED = 0

DATA_DIR_ENV = "AUTOSEED_DATA_DIR"

# sha256 of the two files of animal-mnist 0.4; the label order above was verified on these bytes.
_ANIMAL_MNIST_FILES = {
    "images": ("animal_data_version_3.gz",
               "68a30346781a0984f839463a4615d2decb899d1ce65091bb92586311754a34ce"),
    "labels": ("animal_label_version_3.gz",
               "dec8dba7c469830989fbab46825021a08a38470753a512f27ada847eced97b57"),
}


def default_data_dir() -> pathlib.Path:
  """Where embedded datasets are built: ``$AUTOSEED_DATA_DIR``, else
  ``~/.cache/autoseed_jax/tfds``."""
  from_env = os.environ.get(DATA_DIR_ENV)
  if from_env:
    return pathlib.Path(from_env).expanduser()
  return pathlib.Path.home() / ".cache" / "autoseed_jax" / "tfds"


class _NoVariantFolderWarning(logging.Filter):
  """Drops TFDS's "Variant folder ... has no dataset_info.json" warning: it is how TFDS
  finds a dataset not prepared yet, which we build or report ourselves."""

  def filter(self, record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("Variant folder")


_NO_VARIANT_FOLDER_WARNING = _NoVariantFolderWarning()


@contextlib.contextmanager
def no_variant_folder_warning():
  """While active, TFDS's warning about a dataset folder that is not prepared is dropped."""
  absl_logger = logging.getLogger("absl")
  absl_logger.addFilter(_NO_VARIANT_FOLDER_WARNING)
  try:
    yield
  finally:
    absl_logger.removeFilter(_NO_VARIANT_FOLDER_WARNING)


def check_data_dir(data_dir: str | os.PathLike) -> pathlib.Path:
  """``data_dir`` as a path, after checking that it can serve as a data directory: it,
  or the nearest folder above it that exists, is a directory, and it can be listed.
  Raises ``disk_errors.DiskError`` (one line: the path and the fix) otherwise."""
  path = pathlib.Path(data_dir).expanduser()
  with disk_errors.writing(path, "using the data directory", where=disk_errors.Where.DATA):
    existing = path
    while not existing.exists() and existing.parent != existing:
      existing = existing.parent
    if not existing.is_dir():
      raise NotADirectoryError(errno.ENOTDIR, "Not a directory", str(existing))
    if existing == path:
      os.listdir(path)  # PermissionError when it cannot be read
  return path


def stratified_split_indices(
    labels: np.ndarray,
    *,
    test_fraction: float,
    seed: int,
    groups: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
  """Deterministic per-class train/test split that never separates a group.

  labels: [N] int class ids. groups: [N] group ids (e.g. one id per distinct image content);
  members of a group share a label and always go to the same split. Each class gets
  ``round(test_fraction * count)`` test examples when its group sizes allow it (groups are
  visited in a seeded random order and taken while they fit).
  Returns (train_indices, test_indices), both sorted int64 arrays that partition range(N).
  """
  labels = np.asarray(labels)
  if labels.ndim != 1:
    raise ValueError(f"labels must be 1-D, got shape {labels.shape}.")
  if not 0.0 < test_fraction < 1.0:
    raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}.")
  groups = np.arange(len(labels)) if groups is None else np.asarray(groups)
  if groups.shape != labels.shape:
    raise ValueError(f"groups shape {groups.shape} differs from labels shape {labels.shape}.")
  rng = np.random.default_rng(seed)
  test_parts = []
  for label in np.unique(labels):
    members = np.flatnonzero(labels == label)
    group_ids, group_sizes = np.unique(groups[members], return_counts=True)
    target = int(round(test_fraction * len(members)))
    taken, chosen = 0, []
    for position in rng.permutation(len(group_ids)):
      if taken + group_sizes[position] <= target:
        chosen.append(group_ids[position])
        taken += group_sizes[position]
      if taken == target:
        break
    test_parts.append(members[np.isin(groups[members], chosen)])
  test_indices = np.sort(np.concatenate(test_parts)).astype(np.int64)
  is_test = np.zeros(len(labels), dtype=bool)
  is_test[test_indices] = True
  return np.flatnonzero(~is_test).astype(np.int64), test_indices


def content_groups(images: np.ndarray) -> np.ndarray:
  """[N] int group id per image; byte-identical images share an id. images: [N, ...]."""
  first_index_of: dict[bytes, int] = {}
  groups = np.empty(len(images), dtype=np.int64)
  for index, image in enumerate(images):
    digest = hashlib.sha256(np.ascontiguousarray(image).tobytes()).digest()
    groups[index] = first_index_of.setdefault(digest, index)
  return groups


class NumpyUnpickler(pickle.Unpickler):
  """Rebuilds numpy arrays (and the built-in containers, numbers and strings that pickle
  opcodes make) and refuses every other class, so unpickling runs no code. A subclass
  widens ``ALLOWED`` and says what its files hold in ``REFUSAL``."""

  ALLOWED = {
      ("numpy", "ndarray"): np.ndarray,
      ("numpy", "dtype"): np.dtype,
      ("numpy.core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
      ("numpy._core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
  }
  REFUSAL = "only numpy arrays are allowed"

  def find_class(self, module: str, name: str):
    try:
      return self.ALLOWED[(module, name)]
    except KeyError:
      raise pickle.UnpicklingError(
          f"refusing to unpickle {module}.{name}: {self.REFUSAL}.") from None


def _load_pickled_array(path: pathlib.Path) -> np.ndarray:
  with gzip.open(path, "rb") as handle:
    array = NumpyUnpickler(handle).load()
  if not isinstance(array, np.ndarray):
    raise ValueError(f"{path} does not hold a numpy array (got {type(array).__name__}).")
  return array


def animal_mnist_files() -> dict[str, pathlib.Path]:
  """Paths of the images/labels files shipped by the installed ``animal-mnist`` package."""
  spec = importlib.util.find_spec("animal_mnist")
  if spec is None or not spec.submodule_search_locations:
    raise FileNotFoundError(
        "The animal_mnist dataset needs the PyPI package `animal-mnist` (0.4). Install it "
        "without its TensorFlow dependency: `pip install --no-deps animal-mnist==0.4`."
    )
  folder = pathlib.Path(list(spec.submodule_search_locations)[0]) / "data" / "Animal_MNIST"
  paths = {role: folder / filename for role, (filename, _) in _ANIMAL_MNIST_FILES.items()}
  for path in paths.values():
    if not path.is_file():
      raise FileNotFoundError(
          f"{path} is missing; reinstall with `pip install --no-deps animal-mnist==0.4`."
      )
  return paths


def load_animal_mnist_arrays() -> tuple[np.ndarray, np.ndarray]:
  """Reads the package files. Returns (images: [10000, 28, 28] uint8, labels: [10000] int64)."""
  paths = animal_mnist_files()
  for role, (filename, expected_sha256) in _ANIMAL_MNIST_FILES.items():
    actual = hashlib.sha256(paths[role].read_bytes()).hexdigest()
    if actual != expected_sha256:
      raise ValueError(
          f"{paths[role]} has sha256 {actual}, not the animal-mnist 0.4 file whose label "
          "order was verified. Install `pip install --no-deps animal-mnist==0.4`."
      )
  images = _load_pickled_array(paths["images"])
  labels = _load_pickled_array(paths["labels"])
  if images.shape != (10000, 28, 28) or images.dtype != np.uint8:
    raise ValueError(f"Unexpected animal_mnist images {images.shape} {images.dtype}.")
  if labels.shape != (10000,) or labels.min() < 0 or labels.max() > 9:
    raise ValueError(f"Unexpected animal_mnist labels {labels.shape}, range "
                     f"[{labels.min()}, {labels.max()}].")
  return images, labels.astype(np.int64)


def load_sklearn_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
  """scikit-learn digits. Returns (images: [1797, 8, 8] uint8 in 0..255, labels: [1797] int64)."""
  from sklearn.datasets import load_digits  # pylint: disable=import-outside-toplevel

  digits = load_digits()
  images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)
  return images, digits.target.astype(np.int64)


class _InstalledDatasetInfo(tfds.core.DatasetInfo):
  """The DatasetInfo of a dataset built from an installed package: TFDS's bucket has
  nothing of it. Before a dataset is built TFDS looks there (``initialize_from_bucket``)
  and, even with the bucket switched off, first makes a temporary folder it never removes
  (one empty ``/tmp/tmp*tfds`` per builder made for an unbuilt data dir); skip the look."""

  def initialize_from_bucket(self) -> None:
    pass


class _EmbeddedImageClassification(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Shared layout: uint8 image [H, W, 1], ClassLabel label, text id; train/test splits."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}
  CLASS_NAMES: tuple[str, ...] = ()
  PROMPT_TEMPLATE: str = ""
  IMAGE_SHAPE: tuple[int, int, int] = (0, 0, 1)
  DESCRIPTION: str = ""
  SOURCE: str = ""  # where the images come from, for the line printed while building
  NUM_IMAGES: int = 0  # train and test together
  # No download URLs, hence no checksums file. TFDS 4.9.10 derives the checksums path from
  # `code_path`, which for builders in a package needs the `importlib_resources` backport
  # (declared only for Python < 3.9, so not installed); None skips that lookup.
  code_path = None

  def _log_download_bytes(self) -> None:
    # TFDS prints "Downloading and preparing dataset Unknown size ..." here; nothing is
    # downloaded, so say what happens instead.
    print(f"building {self.name} from {self.SOURCE} into {self.data_dir}: "
          f"{self.NUM_IMAGES:,} images (once; later runs read them from there)", flush=True)

  def _log_download_done(self) -> None:
    pass  # TFDS's "downloaded and prepared to ..." would repeat the line above

  @abc.abstractmethod
  def _load_arrays(self) -> tuple[np.ndarray, np.ndarray]:
    """Returns (images: [N, H, W] uint8, labels: [N] int64) from the installed package."""

  def _info(self) -> tfds.core.DatasetInfo:
    return _InstalledDatasetInfo(
        builder=self,
        description=self.DESCRIPTION,
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=self.IMAGE_SHAPE, dtype=np.uint8),
            "label": tfds.features.ClassLabel(names=list(self.CLASS_NAMES)),
            "id": tfds.features.Text(),
        }),
        supervised_keys=("image", "label"),
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # The data comes from installed packages; nothing is downloaded.
    images, labels = self._load_arrays()
    train_indices, test_indices = stratified_split_indices(
        labels, test_fraction=TEST_FRACTION, seed=SPLIT_SEED, groups=content_groups(images)
    )
    return {
        "train": self._generate_examples(images, labels, train_indices),
        "test": self._generate_examples(images, labels, test_indices),
    }

  def _generate_examples(self, images, labels, indices) -> Iterator[tuple[str, dict]]:
    for index in indices:
      example_id = f"{self.name}/{int(index):05d}"
      yield example_id, {
          "image": images[index][..., None],
          "label": int(labels[index]),
          "id": example_id,
      }


class AnimalMnist(_EmbeddedImageClassification):
  """animal-mnist 0.4: 10 animal silhouette classes, 28x28x1 uint8."""

  CLASS_NAMES = ANIMAL_MNIST_CLASS_NAMES
  PROMPT_TEMPLATE = ANIMAL_MNIST_PROMPT_TEMPLATE
  IMAGE_SHAPE = (28, 28, 1)
  SOURCE = "the installed package animal-mnist"
  NUM_IMAGES = 10_000
  DESCRIPTION = (
      "Animal-MNIST (PyPI animal-mnist 0.4, MIT): 10,000 real 28x28 animal silhouettes, 1,000 "
      "per class. Split: stratified 80/20, seed 0, identical images kept in one split."
  )

  def _load_arrays(self):
    return load_animal_mnist_arrays()


class SklearnDigits(_EmbeddedImageClassification):
  """scikit-learn digits (UCI optdigits): 10 digit classes, 8x8x1 uint8."""

  CLASS_NAMES = SKLEARN_DIGITS_CLASS_NAMES
  PROMPT_TEMPLATE = SKLEARN_DIGITS_PROMPT_TEMPLATE
  IMAGE_SHAPE = (8, 8, 1)
  SOURCE = "scikit-learn's load_digits"
  NUM_IMAGES = 1_797
  DESCRIPTION = (
      "scikit-learn load_digits: 1,797 real 8x8 handwritten digits scaled from 0..16 to "
      "0..255. Split: stratified 80/20, seed 0, identical images kept in one split."
  )

  def _load_arrays(self):
    return load_sklearn_digits_arrays()


EMBEDDED_BUILDERS: dict[str, type[_EmbeddedImageClassification]] = {
    "animal_mnist": AnimalMnist,
    "sklearn_digits": SklearnDigits,
}


def embedded_builder(name: str, data_dir: str | os.PathLike | None = None):
  """The (not necessarily built) TFDS builder of an embedded dataset, in array_record format.

  Raises ``disk_errors.DiskError`` when ``data_dir`` is a file or cannot be read.
  """
  if name not in EMBEDDED_BUILDERS:
    raise ValueError(
        f"Unknown embedded dataset {name!r}; known: {sorted(EMBEDDED_BUILDERS)}."
    )
  data_dir = check_data_dir(default_data_dir() if data_dir is None else data_dir)
  return EMBEDDED_BUILDERS[name](data_dir=os.fspath(data_dir), file_format="array_record")


def is_built(builder) -> bool:
  """Whether ``builder``'s dataset is prepared: its version folder holds
  ``dataset_info.json`` (what ``builder.is_prepared()`` checks, without the warning it
  logs about a folder that is not there yet)."""
  return (pathlib.Path(os.fspath(builder.data_dir)) / "dataset_info.json").is_file()


def prepare(name: str, data_dir: str | os.PathLike | None = None):
  """Builds embedded dataset ``name`` into ``data_dir`` once; later calls reuse it.

  Nothing is downloaded: the examples come from installed packages. data_dir defaults to
  ``default_data_dir()``. The build prints one line (what is built, from where, into
  where, how many images) and no progress bars. Returns the prepared
  ``tfds.core.DatasetBuilder``. Raises ``disk_errors.DiskError`` (one line: the path and
  the fix) when ``data_dir`` is a file or unreadable, or the build cannot be written.
  """
  builder = embedded_builder(name, data_dir)
  if is_built(builder):
    return builder
  with _build_lock(builder, name):  # another process may be building it right now
    if not is_built(builder):
      _build(builder, name)
  return builder


@contextlib.contextmanager
def _build_lock(builder, name: str) -> Iterator[None]:
  """Holds an exclusive lock on ``<data_dir>/.<name>.build.lock`` (the operating system
  releases it when its holder dies), so that concurrent runs build a dataset once."""
  lock_dir = pathlib.Path(os.fspath(builder.data_dir)).parents[1]
  with disk_errors.writing(lock_dir, f"preparing {name} in", where=disk_errors.Where.DATA):
    lock_dir.mkdir(parents=True, exist_ok=True)
    handle = open(lock_dir / f".{name}.build.lock", "a")  # pylint: disable=consider-using-with
  try:
    fcntl.flock(handle, fcntl.LOCK_EX)
    yield
  finally:
    handle.close()


def _build(builder, name: str) -> None:
  """``download_and_prepare`` of an embedded dataset, quietly (see ``prepare``)."""
  progress_bars = getattr(tqdm_utils, "_active", True)
  tfds.display_progress_bar(False)
  try:
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(
            download_mode=tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS
        )
    )
  except Exception as error:  # TFDS passes OS errors on as they are, or wrapped
    if disk_errors.problem(error) is None:
      raise
    raise disk_errors.disk_error(builder.data_dir, f"building {name} into", error,
                                 where=disk_errors.Where.DATA) from error
  finally:
    tfds.display_progress_bar(progress_bars)
