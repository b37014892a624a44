"""Small CIFAR python archives in the standard layout (autoseed_jax/data/cifar.py), written
by the tests: the published files' keys and shapes, pickled by Python 3 or the way
Python 2's cPickle wrote the published files."""

import io
import os
import pathlib
import pickle
import struct
import tarfile

import numpy as np

from autoseed_jax.data import cifar


class Python2Pickler(pickle._Pickler):  # pylint: disable=protected-access
  """Pickles as Python 2 did (protocol 2): bytes as Python 2 ``str`` (BINSTRING, read
  back by Python 3 with an ``encoding``) and numpy arrays through
  ``numpy.core.multiarray._reconstruct``, as in the published CIFAR files."""

  dispatch = dict(pickle._Pickler.dispatch)  # pylint: disable=protected-access

  def save_bytes(self, obj):
    if len(obj) < 256:
      self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
    else:
      self.write(pickle.BINSTRING + struct.pack('<i', len(obj)) + obj)
    self.memoize(obj)

  dispatch[bytes] = save_bytes

  def save_global(self, obj, name=None):
    if getattr(obj, '__name__', None) == '_reconstruct':
      self.write(pickle.GLOBAL + b'numpy.core.multiarray\n_reconstruct\n')
      self.memoize(obj)
      return
    super().save_global(obj, name)

  dispatch[type(pickle.dumps)] = save_global  # builtin functions such as _reconstruct


def dumps(record, *, python2: bool) -> bytes:
  if not python2:
    return pickle.dumps(record, protocol=4)
  buffer = io.BytesIO()
  Python2Pickler(buffer, protocol=2).dump(record)
  return buffer.getvalue()


def pattern_images(split: str, count: int) -> np.ndarray:
  """[count, 32, 32, 3] uint8 random images seeded by the split."""
  rng = np.random.default_rng(0 if split == 'train' else 1)
  return rng.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)


def write_archive(directory, *, dataset='cifar100', train_per_class=3, test_per_class=1,
                  tarball=False, python2=False, class_names=None):
  """Writes ``dataset``'s python archive with ``train_per_class`` / ``test_per_class``
  images of every class (label i % C in record order) into ``directory``.

  Returns (path of the folder or tarball, {split: (images [N, 32, 32, 3], labels [N])},
  class names).
  """
  spec = cifar.ARCHIVES[dataset]
  num_classes = spec.num_classes
  class_names = class_names or [f'thing_{i}' for i in range(num_classes)]
  directory = pathlib.Path(directory)
  folder = directory / spec.folder
  folder.mkdir(parents=True, exist_ok=True)
  splits = {}
  for split, per_class in (('train', train_per_class), ('test', test_per_class)):
    count = per_class * num_classes
    images, labels = pattern_images(split, count), np.arange(count) % num_classes
    splits[split] = (images, labels)
    files = spec.splits[split]
    for name, x, y in zip(files, np.array_split(images, len(files)),
                          np.array_split(labels, len(files))):
      record = {b'batch_label': f'{name} of 1'.encode(),
                spec.labels_key.encode(): [int(v) for v in y],
                b'data': np.ascontiguousarray(x.transpose(0, 3, 1, 2).reshape(len(x), -1)),
                b'filenames': [f'{i}.png'.encode() for i in range(len(x))]}
      if dataset == 'cifar100':
        record[b'coarse_labels'] = [int(v) // 5 for v in y]
      (folder / name).write_bytes(dumps(record, python2=python2))
  meta = {spec.names_key.encode(): [n.encode() for n in class_names]}
  (folder / spec.meta).write_bytes(dumps(meta, python2=python2))
  if not tarball:
    return folder, splits, class_names
  path = directory / spec.tarball
  with tarfile.open(path, 'w:gz') as tar:
    tar.add(folder, arcname=spec.folder)
  for name in os.listdir(folder):
    os.remove(folder / name)
  folder.rmdir()
  return path, splits, class_names
