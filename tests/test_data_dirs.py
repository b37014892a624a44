"""The command line on data and cache directories that are files, unreadable or
half-written: one line naming the path and the fix, a non-zero exit status, no traceback.

Each case is ``python -m autoseed_jax.main`` on the demo config (zero-shot only: every
case stops while the stream loads, before anything trains). Unreadable directories are
``chmod 000``; when the tests run as root, the command runs in a user namespace
without root's permission override (tests/helpers/disks.py).
"""

import os
import shutil
import stat
import subprocess
import sys
import tempfile

import pytest

from autoseed_jax.data import builders
from helpers import disks
from helpers.cifar_archive import write_archive

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='module')
def shared():
  """A folder that the unprivileged commands may read and write (pytest's own temporary
  folders are private to their owner), holding the animals built once."""
  folder = tempfile.mkdtemp(prefix='autoseed-data-dirs-')
  os.chmod(folder, 0o777)
  builders.prepare('animal_mnist', os.path.join(folder, 'data'))
  for root, dirs, files in os.walk(folder):
    for name in dirs + files:
      os.chmod(os.path.join(root, name), 0o777 if name in dirs else 0o666)
  yield folder
  for root, dirs, _ in os.walk(folder):
    for name in dirs:
      os.chmod(os.path.join(root, name), 0o777)  # an unreadable case may have left 000
  shutil.rmtree(folder)


def run_main(shared, name, *flags, env=None, unprivileged=False):
  """(return code, stdout, stderr) of the demo config, zero-shot only, on workdir ``name``."""
  workdir = os.path.join(shared, name, 'run')
  os.makedirs(workdir, exist_ok=True)
  os.chmod(os.path.dirname(workdir), 0o777)
  os.chmod(workdir, 0o777)
  environment = {**os.environ, 'AUTOSEED_DATA_DIR': os.path.join(shared, 'data'),
                 'AUTOSEED_CACHE_DIR': os.path.join(shared, name, 'cache'),
                 'JAX_PLATFORMS': 'cpu', **(env or {})}
  if unprivileged:  # root's ~/.cache is not the unprivileged user's
    environment['AUTOSEED_COMPILATION_CACHE_DIR'] = 'none'
  command = [sys.executable, '-m', 'autoseed_jax.main',
             '--config', os.path.join(ROOT, 'experiments/configs/demo.py'),
             '--workdir', workdir, "--config.methods=('zeroshot',)", *flags]
  if unprivileged:
    command = disks.unprivileged(command)
  proc = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True,
                        timeout=600)
  return proc.returncode, proc.stdout, proc.stderr


def assert_one_line(err, start, *parts):
  assert 'Traceback' not in err, err[-3000:]
  assert len(err.strip().splitlines()) == 1, err[-3000:]
  assert err.startswith(f'error: {start}'), err
  for part in parts:
    assert part in err, (part, err)


def test_cifar_data_dir_pointing_at_a_file(shared):
  blocker = os.path.join(shared, 'not-a-folder.txt')
  open(blocker, 'w').write('a file')
  rc, _, err = run_main(shared, 'cifar-file', '--config.stream.name=cifar100-10',
                        f'--config.stream.data_dir={blocker}')
  assert rc == 1
  assert_one_line(err, f'using the data directory {blocker} failed: a file stands where a '
                  'directory should be', '--config.stream.data_dir')


def test_autoseed_data_dir_that_is_a_file(shared):
  blocker = os.path.join(shared, 'data-file.txt')
  open(blocker, 'w').write('a file')
  rc, out, err = run_main(shared, 'data-file', env={'AUTOSEED_DATA_DIR': blocker})
  assert rc == 1
  assert_one_line(err, f'using the data directory {blocker} failed', 'AUTOSEED_DATA_DIR')


def test_autoseed_cache_dir_that_is_a_file(shared):
  blocker = os.path.join(shared, 'cache-file.txt')
  open(blocker, 'w').write('a file')
  rc, _, err = run_main(shared, 'cache-file', env={'AUTOSEED_CACHE_DIR': blocker})
  assert rc == 1
  assert_one_line(err, f'reading the embedding cache directory {blocker} failed: a file '
                  'stands where a directory should be', 'AUTOSEED_CACHE_DIR')


@pytest.mark.skipif(not disks.permissions_bite(), reason='root, and no user namespaces')
@pytest.mark.parametrize('which', ['data', 'cache'])
def test_an_unreadable_data_or_cache_directory(shared, which):
  locked = os.path.join(shared, f'locked-{which}')
  if which == 'data':
    shutil.copytree(os.path.join(shared, 'data'), locked)
  else:
    os.makedirs(locked)
  os.chmod(locked, 0)
  try:
    rc, out, err = run_main(shared, f'unreadable-{which}', unprivileged=True,
                          env={f'AUTOSEED_{which.upper()}_DIR': locked})
  finally:
    os.chmod(locked, stat.S_IRWXU)
  assert rc == 1, (out[-2000:], err[-2000:])
  if which == 'data':
    assert_one_line(err, f'using the data directory {locked} failed: permission denied. Fix: '
                    f'give yourself access (`chmod -R u+rwX {locked}`)', 'AUTOSEED_DATA_DIR')
  else:
    assert_one_line(err, f'reading the embedding cache entry {locked}/animal_mnist_',
                    'failed: permission denied', 'AUTOSEED_CACHE_DIR')


def test_a_half_written_dataset_build(shared):
  damaged = os.path.join(shared, 'damaged-data')
  shutil.copytree(os.path.join(shared, 'data'), damaged)
  version_dir = os.path.join(damaged, 'animal_mnist', '1.0.0')
  [train_file] = [f for f in os.listdir(version_dir) if '-train.array_record' in f]
  os.truncate(os.path.join(version_dir, train_file), 4096)  # cut short
  rc, _, err = run_main(shared, 'damaged-data', env={'AUTOSEED_DATA_DIR': damaged})
  assert rc == 2
  assert_one_line(err, f'cannot read animal_mnist/train from {version_dir} (',
                  f'the prepared files are incomplete or damaged. Fix: remove {version_dir}; '
                  'the next run builds it again from the installed package')


def test_a_half_downloaded_cifar_archive(shared):
  tarball, _, _ = write_archive(os.path.join(shared, 'cifar'), tarball=True)
  data = tarball.read_bytes()
  tarball.write_bytes(data[:len(data) // 2])
  rc, _, err = run_main(shared, 'cifar-cut', '--config.stream.name=cifar100-10',
                        f'--config.stream.data_dir={tarball}')
  assert rc == 2
  assert_one_line(err, f'cannot read train of cifar100 from the python archive {tarball} (',
                  'download it again')
