"""Files a run cannot write or read (autoseed_jax/tools/disk_errors.py): every write of a run
that fails for lack of space or permission, and data and cache directories that are files,
unreadable or half-written, stop with one line naming the path, what failed and the fix.

The full disk under a running checkpointed run is tests/test_resume.py's; the command line
on broken data and cache directories is tests/test_data_dirs.py's.
"""

import errno
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from autoseed_jax.tools import disk_errors
from autoseed_jax import report, runner
from autoseed_jax.report import plots
from autoseed_jax.data import builders, embedding_cache
from helpers import disks

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ORBAX_FULL_DISK = ValueError(
    'RESOURCE_EXHAUSTED: Error writing local file "/w/methods/autoseed/checkpoints/21.'
    'orbax-checkpoint-tmp/state/_sharding": Failed writing: "/w/...": Failed to write 16647 '
    "bytes to file 14: No space left on device [os_error_code='28']")


def _no_space(*args, **kwargs):
  raise OSError(errno.ENOSPC, 'No space left on device')


@pytest.mark.parametrize('error, words', [
    (OSError(errno.ENOSPC, 'No space left on device'), disk_errors.NO_SPACE),
    (OSError(errno.EDQUOT, 'Disk quota exceeded'), disk_errors.NO_SPACE),
    (ORBAX_FULL_DISK, disk_errors.NO_SPACE),
    (PermissionError(errno.EACCES, 'Permission denied'), disk_errors.NO_PERMISSION),
    (OSError(errno.EROFS, 'Read-only file system'), disk_errors.READ_ONLY),
    (NotADirectoryError(errno.ENOTDIR, 'Not a directory'), disk_errors.NOT_A_DIRECTORY),
    (RuntimeError('something else'), None),
])
def test_problem_reads_os_errors_and_orbax_messages(error, words):
  assert disk_errors.problem(error) == words
  wrapped = RuntimeError('while saving')
  wrapped.__cause__ = error
  assert disk_errors.problem(wrapped) == words  # found through the cause


@pytest.mark.parametrize('where, fix', [
    (disk_errors.Where.WORKDIR, 'rerun the same command: it resumes'),
    (disk_errors.Where.CACHE, 'AUTOSEED_CACHE_DIR'),
    (disk_errors.Where.DATA, 'AUTOSEED_DATA_DIR'),
])
def test_the_message_is_one_line_with_path_failure_and_fix(tmp_path, where, fix):
  message = disk_errors.describe(tmp_path / 'x.json', 'writing', ORBAX_FULL_DISK, where=where)
  assert '\n' not in message
  assert message.startswith(f'writing {tmp_path}/x.json failed: no space left on the device (')
  assert 'free)' in message and 'Fix: free disk space there' in message and fix in message
  message = disk_errors.describe(tmp_path, 'reading', PermissionError(13, 'Permission denied'),
                                 where=where)
  assert (f'{tmp_path} failed: permission denied. Fix: give yourself access '
          f'(`chmod -R u+rwX {tmp_path}`)') in message
  assert message.endswith('.') and '\n' not in message


# ---------------------------------------------------------------- the workdir's writes


def test_results_and_signature_writes_that_fail_are_one_line(tmp_path, monkeypatch):
  monkeypatch.setattr(runner.result_records, 'write_json', _no_space)
  with pytest.raises(runner.WorkdirError) as error:
    runner._write_json(str(tmp_path / 'results.json'), {'a': 1})
  message = str(error.value)
  assert message.startswith(f'writing {tmp_path}/results.json failed: no space left')
  assert 'rerun the same command: it resumes' in message and '\n' not in message


def test_a_metrics_log_that_cannot_be_opened_is_one_line(tmp_path):
  (tmp_path / 'metrics.jsonl').mkdir()  # where the log file should be
  with pytest.raises(runner.WorkdirError, match=f'opening for appending {tmp_path}/metrics'
                                                 '.jsonl failed: IsADirectoryError'):
    runner._open_log(str(tmp_path / 'metrics.jsonl'))


def _results():
  matrix = [[90.0, 10.0], [60.0, 85.0]]
  return {'stream': 's', 'description': 'd', 'methods': {
      'finetune': {'acc_matrix': matrix, 'initial_acc': [10.0, 10.0],
                   'metrics': {'final_avg_acc': 72.5, 'avg_incremental_acc': 81.25,
                               'forgetting': 30.0, 'bwt': -30.0, 'fwt': 0.0},
                   'memory_bytes': 0}}}


def test_a_plot_that_cannot_be_written_is_one_line_and_the_figure_is_closed(
    tmp_path, monkeypatch):
  monkeypatch.setattr(plots.plt.Figure, 'savefig', _no_space)
  figures_before = len(plots.plt.get_fignums())
  with pytest.raises(disk_errors.DiskError) as error:
    report.write_report(str(tmp_path), _results(), seed_inputs=None)
  assert str(error.value).startswith(
      f'writing the plot {tmp_path}/accuracy_matrix.png failed: no space left on the device')
  assert len(plots.plt.get_fignums()) == figures_before


def test_the_report_command_on_a_full_disk_exits_1_with_one_line(tmp_path):
  (tmp_path / 'results.json').write_text(json.dumps(_results()))
  (tmp_path / 'results.md').mkdir()  # results.md cannot be written
  proc = subprocess.run([sys.executable, '-m', 'autoseed_jax.report', '--workdir',
                         str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 1, proc.stderr[-2000:]
  assert proc.stderr.startswith(f'error: writing {tmp_path}/results.md failed: ')
  assert len(proc.stderr.splitlines()) == 1 and 'Traceback' not in proc.stderr


# ---------------------------------------------------------------- the embedding cache


def _encode(images):
  return images.reshape(len(images), -1).astype(np.float32)


def _cached(cache_dir, images):
  return embedding_cache.cached_embeddings(_encode, fingerprint='f', dataset='d',
                                           split='train', images=images, cache_dir=cache_dir)


def test_a_cache_write_that_fails_is_one_line_naming_autoseed_cache_dir(tmp_path, monkeypatch):
  monkeypatch.setattr(embedding_cache, '_write_atomically', lambda path, write: _no_space())
  with pytest.raises(disk_errors.DiskError) as error:
    _cached(tmp_path, np.ones((3, 2, 2), np.uint8))
  message = str(error.value)
  assert message.startswith(f'writing the embedding cache entry {tmp_path}/d_train_')
  assert 'no space left on the device' in message and 'AUTOSEED_CACHE_DIR' in message


def test_a_cache_directory_that_is_a_file_is_one_line(tmp_path):
  blocker = tmp_path / 'cache'
  blocker.write_text('a file')
  with pytest.raises(disk_errors.DiskError) as error:
    _cached(blocker, np.ones((3, 2, 2), np.uint8))
  assert str(error.value).startswith(
      f'reading the embedding cache directory {blocker} failed: a file stands where a '
      'directory should be')


@pytest.mark.parametrize('cut', ['array', 'sidecar'])
def test_an_interrupted_cache_entry_is_one_warning_line_then_recomputed(tmp_path, capfd, cut):
  images = np.arange(24, dtype=np.uint8).reshape(6, 2, 2)
  expected = _cached(tmp_path, images)
  [array_path] = tmp_path.glob('*.npy')
  if cut == 'array':
    array_path.write_bytes(array_path.read_bytes()[:100])  # cut short
  else:
    array_path.with_suffix('.json').unlink()  # interrupted before the sidecar
  capfd.readouterr()
  np.testing.assert_array_equal(_cached(tmp_path, images), expected)
  err = capfd.readouterr().err
  assert err.startswith(f'warning: the embedding cache entry {array_path} is incomplete or '
                        'damaged (') and err.endswith('; computing it again.\n')
  assert len(err.splitlines()) == 1
  np.testing.assert_array_equal(_cached(tmp_path, images), expected)  # rewritten: a hit
  assert capfd.readouterr().err == ''


# ---------------------------------------------------------------- the data directory


@pytest.mark.skipif(not disks.small_disks_work(),
                    reason='needs a user namespace that may mount a tmpfs (unshare -rm)')
def test_a_dataset_build_on_a_full_disk_is_one_line_naming_autoseed_data_dir(tmp_path):
  disk = tmp_path / 'disk'
  disk.mkdir()
  script = (f'{sys.executable} -c "from autoseed_jax.data import builders; '
            f"builders.prepare('animal_mnist', '{disk}/tfds')\"")
  proc = disks.on_small_disk(disk, '300k', script, cwd=ROOT)
  assert proc.returncode != 0
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith(f'autoseed_jax.tools.disk_errors.DiskError: building animal_mnist into '
                         f'{disk}/tfds/animal_mnist/1.0.0 failed: no space left on the device')
  assert 'AUTOSEED_DATA_DIR' in last


def test_a_data_directory_that_is_a_file_is_one_line(tmp_path):
  blocker = tmp_path / 'data'
  blocker.write_text('a file')
  for data_dir in (blocker, blocker / 'below'):
    with pytest.raises(disk_errors.DiskError) as error:
      builders.prepare('sklearn_digits', data_dir)
    assert str(error.value) == (
        f'using the data directory {data_dir} failed: a file stands where a directory should '
        f'be. Fix: {data_dir} or a folder above it is a file: move that file away, or set '
        'AUTOSEED_DATA_DIR (or --config.stream.data_dir) to another directory.')


def test_the_first_build_says_what_it_does_in_one_line(tmp_path):
  """No "Downloading and preparing dataset Unknown size" block, no "Variant folder ...
  has no dataset_info.json" warning, no progress bars: one line per dataset built."""
  script = ('from absl import logging\n'
            'logging.use_absl_handler()  # warnings printed as under absl.app.run\n'
            'from autoseed_jax.data import builders\n'
            'for name in ("sklearn_digits", "animal_mnist", "sklearn_digits"):\n'
            f'  builders.prepare(name, {str(tmp_path)!r})\n')
  proc = subprocess.run([sys.executable, '-c', script], cwd=ROOT, capture_output=True,
                        text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stdout.splitlines() == [
      f"building sklearn_digits from scikit-learn's load_digits into {tmp_path}/"
      'sklearn_digits/1.0.0: 1,797 images (once; later runs read them from there)',
      f'building animal_mnist from the installed package animal-mnist into {tmp_path}/'
      'animal_mnist/1.0.0: 10,000 images (once; later runs read them from there)']
  for noise in ('Downloading', 'Unknown size', 'Variant folder', 'Generating', 'Shuffling'):
    assert noise not in proc.stdout + proc.stderr, proc.stderr[-2000:]
  assert proc.stderr == ''
