"""Real disk failures for the tests, without root: a small tmpfs in a private mount
namespace (``unshare -rm``: a full disk gives ENOSPC exactly as a real one), and commands
run without root's permission override (``unshare -U``), so that ``chmod 000`` bites even
when the tests run as root."""

import functools
import os
import shlex
import shutil
import subprocess


@functools.lru_cache(maxsize=None)
def _works(*probe: str) -> bool:
  if shutil.which('unshare') is None:
    return False
  try:
    return subprocess.run(list(probe), capture_output=True, timeout=60).returncode == 0
  except (OSError, subprocess.SubprocessError):
    return False


def small_disks_work() -> bool:
  """Whether this machine lets an unprivileged user namespace mount a tmpfs."""
  return _works('unshare', '-rm', 'sh', '-c',
                'd=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs "$d" && umount "$d" '
                '&& rmdir "$d"')


def on_small_disk(mount_point, size: str, script: str, *, env=None, cwd=None, timeout=900):
  """Runs the shell ``script`` with a tmpfs of ``size`` (e.g. ``'900k'``) mounted at
  ``mount_point`` (an existing empty directory), visible to the script only; in the
  script, ``grow SIZE`` resizes the disk (frees space). Returns the CompletedProcess
  (text output)."""
  mount_point = shlex.quote(os.fspath(mount_point))
  prelude = (f'set -e\nmount -t tmpfs -o size={size} tmpfs {mount_point}\n'
             f'grow() {{ mount -o remount,size="$1" {mount_point}; }}\nset +e\n')
  return subprocess.run(['unshare', '-rm', 'sh', '-c', prelude + script], env=env, cwd=cwd,
                        capture_output=True, text=True, timeout=timeout)


def permissions_bite() -> bool:
  """Whether ``unprivileged`` can run a command that ``chmod 000`` keeps out."""
  return os.geteuid() != 0 or _works('unshare', '-U', 'true')


def unprivileged(command: list[str]) -> list[str]:
  """``command`` run without root's override of file permissions (as is, when the tests
  do not run as root). Its files must be readable, and where it writes writable, by
  others."""
  return command if os.geteuid() != 0 else ['unshare', '-U', '--', *command]
