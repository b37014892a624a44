"""One run per workdir: an exclusive lock that names its holder.

A run holds ``<workdir>/run.lock`` for as long as it writes there. The lock is an
``fcntl.flock`` on that file, so the operating system drops it when the holder exits in
any way (also ``kill -9`` or a crash); the file's content, a JSON object ``{host, pid,
since, command}``, only says who holds it. A clean release empties the file.

* A second run on a busy workdir is refused at once (``WorkdirBusyError``) with a
  message naming the holder (host, pid, since when, its command) and what to do.
* A lock whose file still names a holder although nobody holds it was left by a run that
  died (killed, crashed, its machine rebooted): it is taken over with a warning.
* Holding is re-entrant within a process (``autoseed_jax.main`` holds the workdir for the
  whole command; ``runner.run_workdir`` inside it holds it again).
* On a file system without ``flock`` the run goes on unlocked, after a warning.

Under multi-host, only process 0 (the one writer) takes the lock
(``runner.hold_workdir``).
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import json
import os
import socket
import sys
from typing import Callable, Iterator

from autoseed_jax.tools import disk_errors

LOCK_FILE = 'run.lock'

# Workdirs this process holds: real path -> [file descriptor, nesting depth].
_held: dict[str, list] = {}


class WorkdirBusyError(RuntimeError):
  """Another live run holds the workdir."""


def lock_path(workdir: str) -> str:
  return os.path.join(workdir, LOCK_FILE)


def _read_holder(fd: int) -> dict | None:
  """The holder record in the lock file; None if empty or unreadable."""
  os.lseek(fd, 0, os.SEEK_SET)
  raw = b''
  while chunk := os.read(fd, 65536):
    raw += chunk
  try:
    holder = json.loads(raw.decode())
  except (UnicodeDecodeError, ValueError):
    return None
  return holder if isinstance(holder, dict) else None


def describe_holder(holder: dict | None) -> str:
  """E.g. ``pid 4242 on host gpu-3 since 2026-11-30T14:02:11+00:00 (python -m ...)``."""
  if holder is None:
    return 'another process (it has not written its name into the lock yet)'
  return (f'pid {holder.get("pid", "?")} on host {holder.get("host", "?")} since '
          f'{holder.get("since", "?")} ({holder.get("command", "command unknown")})')


def _write_holder(fd: int) -> None:
  record = {
      'host': socket.gethostname(), 'pid': os.getpid(),
      'since': datetime.datetime.now().astimezone().isoformat(timespec='seconds'),
      'command': ' '.join([os.path.basename(sys.executable)] + sys.argv),
  }
  os.ftruncate(fd, 0)
  os.lseek(fd, 0, os.SEEK_SET)
  os.write(fd, json.dumps(record).encode())
  os.fsync(fd)


def _acquire(workdir: str, warn: Callable[[str], None]) -> int | None:
  """Locks ``workdir``; returns the lock file's descriptor (None: no flock here)."""
  path = lock_path(workdir)
  with disk_errors.writing(path, 'opening the lock file'):
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except OSError as e:
    if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
      holder = _read_holder(fd)
      os.close(fd)
      pid = holder.get('pid', 'PID') if holder else 'PID'
      raise WorkdirBusyError(
          f'--workdir {workdir} is in use by another run: {describe_holder(holder)}. '
          'Two runs must not write one workdir. Wait for that run to end, or stop it '
          f'(`kill {pid}` on its host: it saves a checkpoint and exits) and rerun this '
          'command to resume; or give this run another --workdir.') from e
    os.close(fd)
    warn(f'warning: cannot lock --workdir {workdir} ({e}); this file system has no '
         'flock, so nothing stops a second run from writing the same workdir.')
    return None
  stale = _read_holder(fd)
  if stale is not None:
    warn(f'warning: --workdir {workdir} was locked by {describe_holder(stale)}, which '
         'ended without releasing it (killed or crashed); taking the lock over. Its '
         'saved checkpoints and results are resumed.')
  try:
    with disk_errors.writing(path, 'writing the lock file'):
      _write_holder(fd)
  except disk_errors.DiskError:
    _release(fd)
    raise
  return fd


def _release(fd: int | None) -> None:
  if fd is None:
    return
  try:
    os.ftruncate(fd, 0)  # an empty file: nobody holds the lock
  finally:
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


@contextlib.contextmanager
def hold(workdir: str, *, warn: Callable[[str], None] | None = None) -> Iterator[None]:
  """Holds the lock of ``workdir`` (which must exist) for the block.

  Raises:
    WorkdirBusyError: another live process holds it; the message names that process
      (host, pid, since when, command) and what to do.
  """
  warn = warn or (lambda line: print(line, file=sys.stderr, flush=True))
  key = os.path.realpath(workdir)
  if key in _held:
    _held[key][1] += 1
  else:
    _held[key] = [_acquire(workdir, warn), 1]
  try:
    yield
  finally:
    _held[key][1] -= 1
    if _held[key][1] == 0:
      _release(_held.pop(key)[0])
