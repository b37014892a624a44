"""One-line errors for files a run cannot write or read: no space left, no permission, a
read-only file system, a file where a directory should be.

Every place a run writes (checkpoints, results and signatures, the metrics log, plots, the
embedding cache, the datasets built into the data directory) turns such a failure into
an error whose message names the path, what failed and the fix, on one line
(``disk_error``); ``autoseed_jax.main`` prints it and exits with status 1. Orbax reports
a full disk as ``ValueError: RESOURCE_EXHAUSTED: ... No space left on device`` from
TensorStore; ``problem`` reads that too.

The fix depends on where the path is (``Where``): the workdir (free space or move it,
then rerun the same command, which resumes), the embedding cache (``AUTOSEED_CACHE_DIR``)
or the data directory (``AUTOSEED_DATA_DIR``).
"""

from __future__ import annotations

import contextlib
import enum
import errno
import os
import shutil
from typing import Iterator


class DiskError(RuntimeError):
  """A file or directory of a run could not be written or read; the message names the
  path, what failed and the fix, on one line."""


class Where(enum.Enum):
  """Where a failing path lives; it decides the fix the message gives."""

  WORKDIR = 'workdir'
  CACHE = 'embedding cache'
  DATA = 'data directory'


NO_SPACE = 'no space left on the device'
NO_PERMISSION = 'permission denied'
READ_ONLY = 'the file system is read-only'
NOT_A_DIRECTORY = 'a file stands where a directory should be'

_BY_ERRNO = {
    errno.ENOSPC: NO_SPACE, errno.EDQUOT: NO_SPACE,
    errno.EACCES: NO_PERMISSION, errno.EPERM: NO_PERMISSION, errno.EROFS: READ_ONLY,
    errno.ENOTDIR: NOT_A_DIRECTORY, errno.EEXIST: NOT_A_DIRECTORY,
}
# How TensorStore (orbax's writer) words them: its status code, or the OS error it wraps.
_BY_TEXT = (
    ('No space left on device', NO_SPACE), ('Disk quota exceeded', NO_SPACE),
    ('RESOURCE_EXHAUSTED', NO_SPACE),
    ('Read-only file system', READ_ONLY), ('Permission denied', NO_PERMISSION),
    ('PERMISSION_DENIED', NO_PERMISSION), ('Not a directory', NOT_A_DIRECTORY),
)

# How each location is moved elsewhere: the flag or variable that names it.
_MOVE = {
    Where.WORKDIR: 'choose another --workdir',
    Where.CACHE: 'set AUTOSEED_CACHE_DIR (or --config.stream.cache_dir) to another directory',
    Where.DATA: 'set AUTOSEED_DATA_DIR (or --config.stream.data_dir) to another directory',
}


def problem(error: BaseException) -> str | None:
  """What went wrong, in words (``NO_SPACE``, ``NO_PERMISSION``, ``READ_ONLY``,
  ``NOT_A_DIRECTORY``), or None for another error. Looks at the error, then at its
  causes (orbax wraps the OS error)."""
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    if isinstance(error, OSError) and error.errno in _BY_ERRNO:
      return _BY_ERRNO[error.errno]
    text = str(error)
    for marker, words in _BY_TEXT:
      if marker in text:
        return words
    error = error.__cause__ or error.__context__
  return None


def one_line(text: str, limit: int = 240) -> str:
  """``text`` with its whitespace runs as single spaces, cut to ``limit`` characters."""
  text = ' '.join(str(text).split())
  return text if len(text) <= limit else text[:limit - 3] + '...'


def _free_space(path) -> str:
  """' (12 KB free)' for the file system of ``path`` (its nearest existing parent), or ''."""
  path = os.path.abspath(os.fspath(path))
  while path and not os.path.exists(path):
    parent = os.path.dirname(path)
    if parent == path:
      return ''
    path = parent
  try:
    free = shutil.disk_usage(path).free
  except OSError:
    return ''
  for unit in ('B', 'KB', 'MB', 'GB'):
    if free < 1024 or unit == 'GB':
      return f' ({free:.0f} {unit} free)' if unit == 'B' else f' ({free:.1f} {unit} free)'
    free /= 1024
  return ''


def fix(where: Where, what: str | None, path) -> str:
  """The fix the message gives for ``what`` (``problem``'s answer) at ``path``."""
  move = _MOVE[where]
  if what == NO_SPACE:
    if where == Where.WORKDIR:
      return ('free disk space there (or move the workdir to a disk with space and pass '
              'that --workdir), then rerun the same command: it resumes from the last '
              'checkpoint')
    return f'free disk space there, or {move.replace("another directory", "a directory on a disk with space")}'
  if what == NO_PERMISSION:
    return f'give yourself access (`chmod -R u+rwX {path}`), or {move}'
  if what == READ_ONLY:
    return f'{move} on a writable file system'
  if what == NOT_A_DIRECTORY:
    return f'{path} or a folder above it is a file: move that file away, or {move}'
  return f'check that {path} is a directory you can write, or {move}'


def describe(path, action: str, error: BaseException, *, where: Where = Where.WORKDIR,
             note: str = '') -> str:
  """``{action} {path} failed: {the problem}[ (free space)]. {note} Fix: {fix}.`` on one
  line; an unrecognised error is quoted (type and message, shortened)."""
  what = problem(error)
  if what is None:
    reason = one_line(f'{type(error).__name__}: {error}')
  elif what == NO_SPACE:
    reason = what + _free_space(path)
  else:
    reason = what
  note = f' {note.strip()}' if note else ''
  return one_line(f'{action} {path} failed: {reason}.{note} Fix: {fix(where, what, path)}.',
                  limit=1000)


def disk_error(path, action: str, error: BaseException, *, where: Where = Where.WORKDIR,
               note: str = '', error_type: type[Exception] = DiskError) -> Exception:
  """``error_type`` with ``describe``'s message (raise it ``from error``)."""
  return error_type(describe(path, action, error, where=where, note=note))


@contextlib.contextmanager
def writing(path, action: str, *, where: Where = Where.WORKDIR, note: str = '',
            error_type: type[Exception] = DiskError) -> Iterator[None]:
  """Turns an OSError raised in the block into ``disk_error(path, action, ...)``."""
  try:
    yield
  except OSError as error:
    raise disk_error(path, action, error, where=where, note=note,
                     error_type=error_type) from error
