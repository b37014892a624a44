"""CIFAR-100 (and CIFAR-10) read from the standard python archives without TensorFlow
(autoseed_jax/data/cifar.py): archives written by the test in the published layout and
keys, found wherever data_dir points, streams built from them, damaged archives refused
on one line, and the command line on cifar100-10 with TensorFlow hidden."""

import os
import pathlib
import pickle
import subprocess
import sys

import numpy as np
import pytest

from autoseed_jax import streams
from autoseed_jax.data import cifar, sources
from helpers.backbones import FixedSizeBackbone
from helpers.cifar_archive import dumps, write_archive

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.parametrize('python2', [False, True], ids=['python3-pickle', 'python2-pickle'])
@pytest.mark.parametrize('tarball', [False, True], ids=['folder', 'tar.gz'])
def test_cifar100_archive_reads_back_as_written(tmp_path, tarball, python2):
  path, splits, names = write_archive(tmp_path, tarball=tarball, python2=python2)
  for split in ('train', 'test'):
    images, labels, class_names = cifar.load_arrays('cifar100', split, path)
    assert images.dtype == np.uint8 and images.shape[1:] == (32, 32, 3)
    np.testing.assert_array_equal(images, splits[split][0])
    np.testing.assert_array_equal(labels, splits[split][1])
    assert labels.dtype == np.int32 and class_names == names


def test_cifar10_archive_reads_its_five_training_batches(tmp_path):
  path, splits, names = write_archive(tmp_path, dataset='cifar10', train_per_class=5,
                                      tarball=True, python2=True)
  images, labels, class_names = cifar.load_arrays('cifar10', 'train', path)
  np.testing.assert_array_equal(images, splits['train'][0])
  np.testing.assert_array_equal(labels, splits['train'][1])
  assert len(images) == 50 and class_names == names


def test_the_channels_are_the_published_layout(tmp_path):
  """Row k of ``data`` is 1024 red, 1024 green, 1024 blue values, rows of 32 pixels."""
  folder, splits, _ = write_archive(tmp_path)
  raw = pickle.loads((folder / 'test').read_bytes())[b'data']
  images, _, _ = cifar.load_arrays('cifar100', 'test', folder)
  assert images[3, 0, 1, 0] == raw[3, 1] and images[3, 0, 1, 1] == raw[3, 1024 + 1]
  assert images[3, 2, 5, 2] == raw[3, 2048 + 2 * 32 + 5]


def test_data_dir_may_be_the_folder_the_tarball_or_what_holds_them(tmp_path):
  folder, _, _ = write_archive(tmp_path / 'unpacked')
  tarball, _, _ = write_archive(tmp_path / 'packed', tarball=True)
  assert cifar.find_archive('cifar100', folder) == folder
  assert cifar.find_archive('cifar100', tmp_path / 'unpacked') == folder
  assert cifar.find_archive('cifar100', tarball) == tarball
  assert cifar.find_archive('cifar100', tmp_path / 'packed') == tarball
  assert cifar.find_archive('cifar100', tmp_path) is None  # not where TFDS would look
  assert cifar.find_archive('cifar100', tmp_path / 'missing') is None
  assert cifar.find_archive('cifar10', folder.parent) is None


def test_stream_from_the_archive_learns_the_continual_clip_order(tmp_path):
  _, splits, _ = write_archive(tmp_path / 'data', tarball=True)
  backbone = FixedSizeBackbone(32)
  stream = streams.get_stream('cifar100-10', backbone=backbone, data_dir=tmp_path / 'data',
                              cache_dir=tmp_path / 'cache', val_fraction=0.0)
  order = sources.cifar100_class_order()
  assert stream.class_names[:2] == ('thing 0', 'thing 1')
  for t in (0, 9):
    task = stream.tasks[t]
    classes = np.sort(order[10 * t:10 * t + 10])
    np.testing.assert_array_equal(np.sort(np.asarray(task.classes)), classes)
    rows = np.flatnonzero(np.isin(splits['train'][1], classes))  # the archive's own order
    train_x = np.asarray(task.train_x)[:int(task.train_count)]
    np.testing.assert_allclose(train_x, backbone.encode_image(splits['train'][0][rows]),
                               atol=1e-5)


@pytest.mark.parametrize('damage', ['truncated tar.gz', 'truncated pickle', 'missing meta',
                                    'wrong keys', 'code in the pickle'])
def test_a_damaged_archive_is_one_line_naming_it_and_the_fix(tmp_path, damage):
  tarball = damage == 'truncated tar.gz'
  path, _, _ = write_archive(tmp_path, tarball=tarball)
  if tarball:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])  # an interrupted download
  elif damage == 'truncated pickle':
    data = (path / 'train').read_bytes()
    (path / 'train').write_bytes(data[:len(data) // 3])
  elif damage == 'missing meta':
    (path / 'meta').unlink()
  elif damage == 'wrong keys':
    (path / 'train').write_bytes(dumps({b'pixels': np.zeros((1, 3072), np.uint8)},
                                       python2=False))
  else:
    marker = tmp_path / 'ran'
    (path / 'train').write_bytes(
        b'cos\nsystem\n(V' + f'touch {marker}'.encode() + b'\ntR.')
  with pytest.raises(cifar.CifarArchiveError) as error:
    streams.get_stream('cifar100-10', backbone=FixedSizeBackbone(32), data_dir=path,
                       cache_dir=tmp_path / 'cache')
  message = str(error.value)
  assert '\n' not in message
  assert f'from the python archive {path}' in message
  assert 'cifar-100-python.tar.gz' in message and 'download it again' in message
  if damage == 'code in the pickle':
    assert 'refusing to unpickle os.system' in message or 'posix.system' in message
    assert not (tmp_path / 'ran').exists()


def test_without_the_archive_the_error_names_both_routes(tmp_path):
  with pytest.raises(FileNotFoundError) as error:
    streams.get_stream('cifar100-10', backbone=FixedSizeBackbone(32),
                       data_dir=tmp_path, cache_dir=tmp_path / 'cache')
  message = str(error.value)
  assert 'Put the standard cifar-100-python.tar.gz' in message and str(tmp_path) in message
  assert f'tfds build cifar100 --data_dir {tmp_path}' in message


def test_the_command_line_runs_cifar100_from_the_archive_without_tensorflow(tmp_path):
  folder, _, _ = write_archive(tmp_path / 'data', train_per_class=2, python2=True)
  env = dict(os.environ, AUTOSEED_CACHE_DIR=str(tmp_path / 'cache'))
  cmd = [sys.executable, str(ROOT / 'tests/helpers/without_tensorflow.py'),
         '--config', str(ROOT / 'experiments/configs/demo.py'),
         '--workdir', str(tmp_path / 'run'), "--config.methods=('zeroshot',)",
         '--config.stream.name=cifar100-10', f'--config.stream.data_dir={folder}']
  proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'stream cifar100-10: Class-incremental CIFAR-100 in 10 tasks' in proc.stdout
  assert 'Traceback' not in proc.stderr
  results = (tmp_path / 'run' / 'results.json').read_text()
  assert '"cifar100-10"' in results
  probe = subprocess.run([sys.executable, str(ROOT / 'tests/helpers/without_tensorflow.py'),
                          '--help'], cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert probe.returncode == 0  # the wrapper itself runs main
