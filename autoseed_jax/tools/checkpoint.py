"""Checkpoints of a continual run: the whole ``ContinualState`` pytree, saved with orbax.

A run's position is part of its state, so a checkpoint needs no other bookkeeping:
``tasks_done`` tasks are finished and ``step - tasks_done * steps_per_task`` online-
adaptation steps of the current task are done (see ``autoseed_jax.runner``). Checkpoints
are numbered by ``checkpoint_id(state) = step + tasks_done``, which grows with every
saved position and tells apart "adaptation of task t complete" (``tasks_done = t``) from
"task t evaluated" (``tasks_done = t + 1``), which share the same ``step``.

``CheckpointStore`` keeps the newest few checkpoints of one run in a directory through
``orbax.checkpoint.CheckpointManager`` (synchronous saves; a step directory only appears,
by an atomic rename, once completely written, so a crash mid-save leaves the earlier
checkpoints as they were). Each checkpoint also stores a SHA-256 digest of the state;
restoring checks it, so a truncated or bit-flipped checkpoint is detected, moved aside
into ``<directory>.corrupt/`` and the previous one is used. A save that fails (no space
left, no permission) raises ``CheckpointError`` with one line naming the directory, the
checkpoints left intact and the fix (``disk_errors``); the tracebacks orbax's writer
threads log meanwhile are dropped. A checkpoint that cannot be read for lack of
permission is not set aside but reported the same way.

``run_signature`` / ``signature_differences`` describe what a checkpoint belongs to (the
config and the stream's shapes and contents), so that a run never resumes from another
run's checkpoint.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import sys
import time
from typing import Any, Callable

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from autoseed_jax.core.parallel import to_host
from autoseed_jax.tools import disk_errors

# Orbax writes checkpoint <id> into '<id>.orbax-checkpoint-tmp-<time>' and renames it
# once complete; a directory with this marker was left by a save that never finished.
_UNFINISHED_SAVE_MARKER = '.orbax-checkpoint-tmp'

# Version of the checkpoint layout (the ``meta`` item); bump when it changes.
FORMAT_VERSION = 1

# Config fields that may change between a run and its resumption: which methods run,
# how often checkpoints are taken, the devices (a replicated state restores onto
# another mesh; the numbers then match an uninterrupted run up to float reassociation)
# and where compiled programs are cached.
RESUMABLE_FIELDS = ('methods', 'checkpoint_every_steps', 'checkpoints_to_keep',
                    'num_devices', 'parallel', 'distributed', 'compilation_cache_dir',
                    'seed_sharding')


class CheckpointError(RuntimeError):
  """A checkpoint could not be written (disk full, read-only directory, ...)."""


class _FailedSaveNoise(logging.Filter):
  """Drops what orbax's writer threads log at ERROR (with tracebacks) when a save fails,
  and asyncio's "Future/Task exception was never retrieved" for their futures: the
  failure reaches the caller as one ``CheckpointError`` line."""

  def filter(self, record: logging.LogRecord) -> bool:
    if record.levelno < logging.ERROR:
      return True
    from_orbax = f'{os.sep}orbax{os.sep}' in record.pathname
    unretrieved = record.getMessage().startswith(('Future exception was never retrieved',
                                                  'Task exception was never retrieved'))
    return not (from_orbax or unretrieved)


_FAILED_SAVE_NOISE = _FailedSaveNoise()
# What TensorStore's threads hand to sys.unraisablehook after a failed save, when orbax's
# event loop is gone: nothing the one-line error has not said.
_AFTER_FAILED_SAVE = ('Event loop is closed', 'cannot schedule new futures after')


def _is_failed_save_noise(error: BaseException | None) -> bool:
  if error is None:
    return False
  if isinstance(error, RuntimeError) and str(error).startswith(_AFTER_FAILED_SAVE):
    return True
  return disk_errors.problem(error) is not None


@contextlib.contextmanager
def _quiet_failed_saves():
  """While saving, orbax's logged errors and what TensorStore's threads report to
  ``sys.unraisablehook`` about a failed write are dropped; after a failed save they stay
  dropped (the writers' threads and futures finish later, some at exit)."""
  absl_logger = logging.getLogger('absl')
  absl_logger.addFilter(_FAILED_SAVE_NOISE)
  previous_hook = sys.unraisablehook

  def unraisable_hook(unraisable):
    if not _is_failed_save_noise(unraisable.exc_value):
      previous_hook(unraisable)

  sys.unraisablehook = unraisable_hook
  try:
    yield
  except Exception:
    logging.getLogger('asyncio').addFilter(_FAILED_SAVE_NOISE)
    raise  # the filter and the hook stay
  absl_logger.removeFilter(_FAILED_SAVE_NOISE)
  if sys.unraisablehook is unraisable_hook:
    sys.unraisablehook = previous_hook
class SeedsOutOfStep(RuntimeError):
  """The seeds of a run with a seed axis (``seed_axis``) are at different positions."""


def host_int(x) -> int:
  """A scalar array as a Python int (also a replicated array of a multi-process run).

  A [S] array of a run of S seeds in one program (``seed_axis``) gives the value all its
  entries share; entries that differ raise ``SeedsOutOfStep`` (the host decides chunks and
  checkpoints once for every seed).
  """
  values = np.unique(np.asarray(to_host(x)))
  if values.size != 1:
    raise SeedsOutOfStep(f'the seeds of one program are at different positions '
                         f'({np.asarray(to_host(x)).tolist()}); they must move in step.')
  return int(values[0])


def checkpoint_id(state) -> int:
  """The number of the checkpoint of ``state``: ``step + tasks_done`` (see module doc)."""
  return host_int(state.step) + host_int(state.tasks_done)


def state_digest(state) -> str:
  """SHA-256 hex digest of every leaf of ``state`` (key path, dtype, shape and bytes)."""
  digest = hashlib.sha256()
  for path, leaf in jax.tree_util.tree_flatten_with_path(to_host(state))[0]:
    array = np.ascontiguousarray(leaf)
    digest.update(f'{jax.tree_util.keystr(path)}|{array.dtype}|{array.shape}|'.encode())
    digest.update(array.tobytes())
  return digest.hexdigest()


@dataclasses.dataclass
class Restored:
  """A checkpoint read back: the state, its ``meta`` record and its number."""

  state: Any
  meta: dict
  checkpoint_id: int


def _placed_like(target_leaf, restored_leaf):
  """``restored_leaf`` placed as ``target_leaf``: orbax returns arrays committed to their
  sharding, which jit treats as another signature than the uncommitted arrays of a fresh
  state; matching them keeps a resumed run on the very executables of a fresh one."""
  if getattr(target_leaf, 'committed', True):
    return restored_leaf
  return jax.device_put(jax.device_get(restored_leaf))


def _without_empty(tree):
  """``tree`` with every zero-size array replaced by None: orbax cannot write one, and it
  holds nothing (e.g. the textual prototypes of a seed memory that stores none)."""
  return jax.tree.map(lambda x: None if np.size(x) == 0 else x, tree)


def _with_empty(target, restored):
  """``restored`` (read back from ``_without_empty``) with the zero-size arrays of
  ``target`` put back where it has None."""
  # None is a leaf on both sides, so fields that are None in the state (a method without
  # a generator, say) pair up with themselves instead of shifting the leaves.
  return jax.tree.map(lambda t, r: t if t is not None and np.size(t) == 0 else r,
                      target, restored, is_leaf=lambda x: x is None)


class CheckpointStore:
  """The newest ``keep`` checkpoints of one run, in ``directory``.

  Args:
    directory: where the step directories go (created if missing).
    keep: how many checkpoints to keep (>= 2 leaves a fallback if the newest is bad).
  """

  def __init__(self, directory: str, *, keep: int = 3):
    if keep < 1:
      raise ValueError(f'invalid config: checkpoints_to_keep={keep} must be >= 1.')
    self.directory = os.path.abspath(directory)
    self.keep = keep
    with disk_errors.writing(self.directory, 'creating the checkpoint directory',
                             error_type=CheckpointError):
      self._manager = self._open()

  def _open(self) -> ocp.CheckpointManager:
    """A manager of ``directory``, after removing what unfinished saves left there
    (here rather than with orbax's ``cleanup_tmp_directories``, which does it in a
    background thread that a process exiting early leaves failing)."""
    options = ocp.CheckpointManagerOptions(
        max_to_keep=self.keep, create=True, enable_async_checkpointing=False)
    manager = ocp.CheckpointManager(self.directory, options=options,
                                    item_names=('state', 'meta'))
    for name in os.listdir(self.directory):
      if _UNFINISHED_SAVE_MARKER in name:
        shutil.rmtree(os.path.join(self.directory, name), ignore_errors=True)
    return manager

  def ids(self) -> list[int]:
    """Numbers of the complete checkpoints on disk, oldest first."""
    self._manager.reload()
    return sorted(self._manager.all_steps())

  def save(self, state, **info) -> int:
    """Writes ``state`` (plus ``info``, JSON-ready) as checkpoint ``checkpoint_id(state)``.

    Returns the checkpoint's number. A position that is already saved is not rewritten
    (the state there is the same: runs are deterministic). Raises ``CheckpointError``
    if writing fails; the checkpoints written before are left intact.
    """
    ckpt_id = checkpoint_id(state)
    if ckpt_id in self._manager.all_steps():
      return ckpt_id
    meta = {'format': FORMAT_VERSION, 'tasks_done': host_int(state.tasks_done),
            'step': host_int(state.step), 'digest': state_digest(state), **info}
    try:
      with _quiet_failed_saves():
        self._manager.save(ckpt_id, args=ocp.args.Composite(
            state=ocp.args.StandardSave(_without_empty(state)),
            meta=ocp.args.JsonSave(meta)))
        self._manager.wait_until_finished()
    except Exception as e:  # orbax surfaces OS errors from its writer threads as-is or wrapped
      raise disk_errors.disk_error(
          self.directory, f'saving checkpoint {ckpt_id} into', e,
          note=f'{self._intact()}.', error_type=CheckpointError) from e
    return ckpt_id

  def _intact(self) -> str:
    """Which checkpoints survived a failed save (orbax only renames complete ones)."""
    try:
      self._manager = self._open()  # also removes the failed save's temporary directory
      ids = self.ids()
    except Exception:  # the directory may be unreadable too; say so rather than fail
      return 'The checkpoints written before were not touched'
    return f'The checkpoints {ids} are intact' if ids else 'No earlier checkpoint exists'

  def restore_latest(self, target, *,
                     warn: Callable[[str], None] = print) -> Restored | None:
    """The newest checkpoint that reads back intact, or None if there is none.

    Args:
      target: a state with the run's structure, shapes, dtypes and shardings (e.g. the
        fresh state of ``learner.init``); methods' None fields come back as None.
      warn: receives one line per checkpoint found unreadable; such a checkpoint is
        moved to ``<directory>.corrupt/`` and the previous one is tried.
    """
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, _without_empty(target))
    for ckpt_id in reversed(self.ids()):
      try:
        restored = self._manager.restore(ckpt_id, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
        state, meta = _with_empty(target, restored.state), dict(restored.meta)
        if meta.get('format') != FORMAT_VERSION:
          raise ValueError(f'layout version {meta.get("format")}, expected {FORMAT_VERSION}')
        if state_digest(state) != meta.get('digest'):
          raise ValueError('the restored state does not match the digest written at save '
                           'time (a file was truncated or altered)')
        if checkpoint_id(state) != ckpt_id:
          raise ValueError(f'it holds the state of checkpoint {checkpoint_id(state)}')
      except Exception as e:  # any failure to read back means: do not trust this one
        if disk_errors.problem(e) == disk_errors.NO_PERMISSION:  # intact, but not ours to read
          raise disk_errors.disk_error(
              os.path.join(self.directory, str(ckpt_id)), 'reading checkpoint', e,
              note='Nothing was changed.', error_type=CheckpointError) from e
        moved = self._set_aside(ckpt_id)
        cause = ' '.join(f'{type(e).__name__}: {e}'.split())[:300]
        warn(f'warning: checkpoint {ckpt_id} in {self.directory} is unreadable ({cause}); '
             f'moved it to {moved} and trying the previous one.')
        continue
      return Restored(state=jax.tree.map(_placed_like, target, state), meta=meta,
                      checkpoint_id=ckpt_id)
    return None

  def _set_aside(self, ckpt_id: int) -> str:
    """Moves a bad step directory out of the manager's sight; returns where it went."""
    destination = os.path.join(f'{self.directory}.corrupt',
                               f'{ckpt_id}-{time.strftime("%Y%m%d-%H%M%S")}')
    with disk_errors.writing(destination, f'setting unreadable checkpoint {ckpt_id} aside to',
                             error_type=CheckpointError):
      os.makedirs(os.path.dirname(destination), exist_ok=True)
      os.replace(os.path.join(self.directory, str(ckpt_id)), destination)
      self._manager = self._open()
    return destination

  def close(self) -> None:
    self._manager.close()


def run_signature(config: ml_collections.ConfigDict, stream) -> dict:
  """What a run's checkpoints belong to: its config (less ``RESUMABLE_FIELDS``) and its
  stream (name, sizes, array shapes and a SHA-256 digest of every array)."""
  config_dict = config.to_dict()
  for field in RESUMABLE_FIELDS:
    config_dict.pop(field, None)
  if not config_dict.get('seeds'):  # a single-seed run signs as before the field existed
    config_dict.pop('seeds', None)
  digest = hashlib.sha256()
  shapes = {}
  arrays = {'test': stream.test, **{f'task{i}': t for i, t in enumerate(stream.tasks)}}
  for path, leaf in jax.tree_util.tree_flatten_with_path(arrays)[0]:
    array = np.ascontiguousarray(leaf)
    name = jax.tree_util.keystr(path)
    digest.update(f'{name}|{array.dtype}|{array.shape}|'.encode())
    digest.update(array.tobytes())
    if name.startswith(("['test']", "['task0']")):
      shapes[name] = f'{array.dtype}{list(array.shape)}'
  return {
      'config': json.loads(json.dumps(config_dict)),  # tuples -> lists, as stored
      'stream': {'name': stream.name, 'num_tasks': stream.num_tasks,
                 'num_classes': stream.num_classes, 'dim': stream.dim,
                 'shapes': shapes, 'digest': digest.hexdigest()},
  }


def _flatten(tree, prefix='') -> dict:
  if isinstance(tree, dict):
    flat = {}
    for key, value in tree.items():
      flat.update(_flatten(value, f'{prefix}{key}.'))
    return flat
  return {prefix[:-1]: tree}


def signature_differences(saved: dict, current: dict) -> list[str]:
  """One line per difference: config fields named as on the command line
  (``stream.dim: 16 in the workdir, 8 now``), then the stream's sizes, array shapes and
  contents (``stream data ...``)."""
  lines = []
  old_config, new_config = _flatten(saved['config']), _flatten(current['config'])
  for field in sorted(set(old_config) | set(new_config)):
    old, new = old_config.get(field, '<unset>'), new_config.get(field, '<unset>')
    if old != new:
      lines.append(f'{field}: {old!r} in the workdir, {new!r} now')
  old_stream, new_stream = saved['stream'], current['stream']
  for field in ('name', 'num_tasks', 'num_classes', 'dim'):
    if old_stream.get(field) != new_stream.get(field):
      lines.append(f'stream data {field}: {old_stream.get(field)!r} in the workdir, '
                   f'{new_stream.get(field)!r} now')
  old_shapes, new_shapes = old_stream.get('shapes', {}), new_stream.get('shapes', {})
  changed = [k for k in sorted(set(old_shapes) | set(new_shapes))
             if old_shapes.get(k) != new_shapes.get(k)]
  if changed:
    more = f' (and {len(changed) - 1} more arrays)' if len(changed) > 1 else ''
    lines.append(f'stream data shape of {changed[0]}: {old_shapes.get(changed[0])} in the '
                 f'workdir, {new_shapes.get(changed[0])} now{more}')
  elif old_stream.get('digest') != new_stream.get('digest'):
    lines.append('stream data contents: the embeddings or labels differ (SHA-256 digest '
                 'mismatch) though the config does not')
  return lines
