"""CIFAR-100 and CIFAR-10 read from the standard "python version" archives, without TensorFlow.

These are the archives that torchvision and most continual-learning toolboxes download
(https://www.cs.toronto.edu/~kriz/cifar.html): ``cifar-100-python.tar.gz`` unpacks to the
folder ``cifar-100-python/`` with the files ``train``, ``test`` and ``meta``;
``cifar-10-python.tar.gz`` to ``cifar-10-batches-py/`` with ``data_batch_1`` ..
``data_batch_5``, ``test_batch`` and ``batches.meta``. Each file is a pickled dict:

  data          uint8 [N, 3072]: per image 1024 red, 1024 green, 1024 blue values, rows
                of 32 pixels top to bottom
  fine_labels   [N] ints 0..99 (CIFAR-100; CIFAR-10: ``labels``, 0..9)
  fine_label_names (CIFAR-100 ``meta``; CIFAR-10 ``batches.meta``: ``label_names``)

The keys are bytes (``b'data'``) or str (``'data'``) depending on the Python that wrote or
reads them; both are accepted. The pickles are read with a restricted unpickler that
builds dicts, lists, numbers, strings and numpy arrays and nothing else (no code runs).

``find_archive(dataset, data_dir)`` accepts ``data_dir`` as the unpacked folder itself,
the folder that contains it, the ``.tar.gz`` file, or the folder that contains that
file; the archive is read in place (never unpacked, so ``data_dir`` may be read-only).
``load_arrays`` gives the same as ``sources.load_arrays`` of the TFDS dataset: images
uint8 [N, 32, 32, 3], labels int32 [N] and the class names (CIFAR-100: ``apple``,
``aquarium_fish``, ... in label order, as TFDS names them). The images come in the
files' own order, which is not the order TFDS stores them in; a stream built from
either holds the same images and labels, with a different validation split.

An archive that cannot be read (cut short by an interrupted download, damaged, a file
missing, unreadable) raises ``CifarArchiveError`` (a ValueError) naming the path and the
fix, on one line.
"""

from __future__ import annotations

import codecs
import dataclasses
import io
import pathlib
import pickle
import tarfile
import zlib

import numpy as np

from autoseed_jax.data import builders

IMAGE_SHAPE = (32, 32, 3)


@dataclasses.dataclass(frozen=True)
class PythonArchive:
  """The layout of one dataset's python archive.

  folder: the folder the archive unpacks to; tarball: the archive's file name; splits:
  split -> the files that hold it, in order; meta: the file with the class names;
  labels_key / names_key: the keys of the labels and of the class names.
  """

  dataset: str
  folder: str
  tarball: str
  splits: dict[str, tuple[str, ...]]
  meta: str
  labels_key: str
  names_key: str
  num_classes: int
  url: str


ARCHIVES = {
    'cifar100': PythonArchive(
        'cifar100', 'cifar-100-python', 'cifar-100-python.tar.gz',
        {'train': ('train',), 'test': ('test',)}, 'meta', 'fine_labels', 'fine_label_names',
        100, 'https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz'),
    'cifar10': PythonArchive(
        'cifar10', 'cifar-10-batches-py', 'cifar-10-python.tar.gz',
        {'train': tuple(f'data_batch_{i}' for i in range(1, 6)), 'test': ('test_batch',)},
        'batches.meta', 'labels', 'label_names',
        10, 'https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz'),
}


class CifarArchiveError(ValueError):
  """A CIFAR python archive that is there but cannot be read; the message names the path
  and the fix."""


class _CifarUnpickler(builders.NumpyUnpickler):
  """``builders.NumpyUnpickler`` with the one function CIFAR's files need."""

  # Python 3 writes bytes at pickle protocol <= 2 as _codecs.encode(str, 'latin1').
  ALLOWED = {**builders.NumpyUnpickler.ALLOWED, ('_codecs', 'encode'): codecs.encode}
  REFUSAL = 'a CIFAR file holds only dicts, lists, numbers, strings and numpy arrays'


def _text(value) -> str:
  return value.decode('latin1') if isinstance(value, bytes) else str(value)


def unpickle_dict(raw: bytes) -> dict[str, object]:
  """The dict pickled in ``raw`` (a CIFAR file), with str keys.

  Python 2 strings are read as latin-1 (numpy's advice for Python 2 pickles of arrays),
  so the files as published and files pickled again by Python 3 both load.
  """
  value = _CifarUnpickler(io.BytesIO(raw), encoding='latin1').load()
  if not isinstance(value, dict):
    raise pickle.UnpicklingError(f'expected a pickled dict, found {type(value).__name__}')
  return {_text(key): item for key, item in value.items()}


def find_archive(dataset: str, data_dir) -> pathlib.Path | None:
  """The unpacked folder or the ``.tar.gz`` of ``dataset``'s python archive in
  ``data_dir`` (see the module doc for the four places looked at), or None.

  A folder counts when it holds the archive's ``meta`` file (``meta`` /
  ``batches.meta``) or is named like the archive's folder; a file when it is named like
  the tarball. ``data_dir`` that does not exist gives None.
  """
  if data_dir is None or dataset not in ARCHIVES:
    return None
  spec = ARCHIVES[dataset]
  data_dir = pathlib.Path(data_dir).expanduser()
  if data_dir.name == spec.tarball and data_dir.is_file():
    return data_dir
  for folder in (data_dir, data_dir / spec.folder):
    if folder.is_dir() and (folder.name == spec.folder or (folder / spec.meta).exists()):
      return folder
  tarball = data_dir / spec.tarball
  if tarball.is_file():
    return tarball
  return None


def how_to_get(dataset: str, data_dir) -> str:
  """The sentence that says where to put ``dataset``'s python archive."""
  spec = ARCHIVES[dataset]
  return (f'Put the standard {spec.tarball} ({spec.url}; the archive torchvision '
          f'downloads), or the {spec.folder}/ folder it unpacks to, in {data_dir}')


def _fix(spec: PythonArchive) -> str:
  return (f'download it again ({spec.url}) and put the {spec.tarball} or the folder it '
          'unpacks to in place of it')


def _read_members(spec: PythonArchive, archive: pathlib.Path,
                  names: tuple[str, ...]) -> list[bytes]:
  """The bytes of the files ``names`` of the archive (folder or tarball)."""
  if archive.is_dir():
    return [(archive / name).read_bytes() for name in names]
  members = {}
  with tarfile.open(archive, 'r:gz') as tar:
    for member in tar:
      base = member.name.rstrip('/').split('/')
      if member.isfile() and base[-1] in names and (len(base) == 1 or base[-2] == spec.folder):
        members[base[-1]] = tar.extractfile(member).read()
  missing = [name for name in names if name not in members]
  if missing:
    raise FileNotFoundError(f'{archive} has no {spec.folder}/{missing[0]}')
  return [members[name] for name in names]


def load_arrays(dataset: str, split: str,
                archive) -> tuple[np.ndarray, np.ndarray, list[str]]:
  """Reads ``split`` (``train`` or ``test``) of ``dataset`` from its python archive.

  archive: the folder or tarball ``find_archive`` gave. Returns (images: uint8
  [N, 32, 32, 3], labels: int32 [N], class_names: [C] str in label order).
  Raises CifarArchiveError (a ValueError) naming the path and the fix when the archive
  cannot be read or holds something else than the standard layout.
  """
  spec = ARCHIVES[dataset]
  if split not in spec.splits:
    raise ValueError(f'{dataset} has the splits {sorted(spec.splits)}, not {split!r}.')
  archive = pathlib.Path(archive)
  try:
    *parts, meta = [unpickle_dict(raw) for raw in
                    _read_members(spec, archive, spec.splits[split] + (spec.meta,))]
    names = [_text(name) for name in meta[spec.names_key]]
    data = np.concatenate([np.asarray(part['data']) for part in parts])
    labels = np.concatenate([np.asarray(part[spec.labels_key]) for part in parts])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != np.prod(IMAGE_SHAPE):
      raise ValueError(f'its data is {data.dtype} {list(data.shape)}, not uint8 [N, 3072]')
    if labels.shape != (len(data),) or len(names) != spec.num_classes or (
        labels.size and (labels.min() < 0 or labels.max() >= spec.num_classes)):
      raise ValueError(f'{len(labels)} labels in [{labels.min(initial=0)}, '
                       f'{labels.max(initial=0)}] for {len(data)} images and {len(names)} '
                       f'class names; expected {spec.num_classes} classes')
  except (OSError, EOFError, tarfile.TarError, zlib.error, pickle.UnpicklingError,
          KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
    cause = ' '.join(f'{type(error).__name__}: {error}'.split())[:300]
    raise CifarArchiveError(
        f'cannot read {split} of {dataset} from the python archive {archive} ({cause}): it '
        f'is incomplete, damaged or unreadable. Fix: {_fix(spec)}; or make it readable '
        f'(`chmod -R u+r {archive}`).') from error
  images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # [N, 32, 32, 3] RGB
  return np.ascontiguousarray(images), labels.astype(np.int32), names
