"""Command-line conventions shared by ``autoseed_jax.main``, ``autoseed_jax.report`` and
``experiments.paper``."""

from __future__ import annotations

import functools
import sys
from typing import Callable, Sequence

from absl import flags

# absl's help flags print the usage and exit with status 1; asking for help is no error.
HELP_FLAGS = frozenset(f'{dash}{name}' for dash in ('-', '--')
                       for name in ('help', 'helpshort', 'helpfull', 'helpxml', '?'))


def asks_for_help(argv: Sequence[str]) -> bool:
  """Whether the command line holds one of absl's help flags (``--help``, ``-h``, ...)."""
  return any(arg.split('=', 1)[0] in HELP_FLAGS for arg in argv[1:])


def exit_zero_on_help(parse: Callable[[list[str]], list[str]]):
  """Wraps an absl ``flags_parser`` so that ``--help`` (and its kin) exits with status 0
  after printing the usage, as command-line tools do."""

  def parse_flags(argv: list[str]) -> list[str]:
    try:
      return parse(argv)
    except SystemExit as e:
      if e.code == 1 and asks_for_help(argv):
        sys.exit(0)
      raise

  return parse_flags


@exit_zero_on_help
def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing for ``app.run(..., flags_parser=parse_flags)``: ``--help``
  exits 0, a bad flag exits 2 with one line naming it."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    print(f'error: bad command line: {e}\nRun the command with --help for its flags.',
          file=sys.stderr)
    sys.exit(2)


def _one_line(message: str) -> str:
  """An error message on one line: a traceback that config_flags embeds (from a config
  file's ``get_config``) is reduced to its last line, the exception itself."""
  if 'Traceback (most recent call last):' in message:
    head, trace = message.split('Traceback (most recent call last):', 1)
    last = [line for line in trace.splitlines() if line.strip()][-1].strip()
    message = f'{head.strip()} {last}'
  if len(message) > 1 and message[0] == message[-1] and message[0] in '\'"':
    message = message[1:-1]  # AttributeError wraps its text in repr quotes
  return ' '.join(message.replace('\\n', ' ').replace("\\'", "'").split())


def config_flags_parser(program: str) -> Callable[[list[str]], list[str]]:
  """absl's flag parsing for a command with a ``--config`` file flag
  (``app.run(..., flags_parser=config_flags_parser('autoseed_jax.main'))``): ``--help``
  exits 0; a bad config (missing file, a config file that fails to import or to build, an
  unknown key, a wrong type) exits 2 with one line that names it instead of a traceback
  from inside ml_collections."""
  return exit_zero_on_help(functools.partial(_parse_config_flags, program=program))


def _parse_config_flags(argv, *, program: str):
  hint = (f'Run `python -m {program} --help` for the flags; config fields are listed in '
          'the config file and experiments/configs/common.py.')
  try:
    argv = flags.FLAGS(argv)
    if flags.FLAGS['config'].present:
      flags.FLAGS.config.keys()  # a config file that failed to load raises here
    return argv
  except ImportError as e:  # the config file imports a module that is not on the path
    print(f'error: bad command line: the config file failed to import: {e}\n'
          'Configs under experiments/configs/ import the repository\'s `experiments` '
          'package: run the command from the root of the repository (or put that root on '
          'PYTHONPATH).', file=sys.stderr)
    sys.exit(2)
  except OSError as e:  # config_flags defers a missing or unreadable file to first use
    reason = [line for line in str(e).splitlines() if line.strip()][-1].strip()
    print(f'error: bad command line: cannot load the --config file: {reason}\n'
          'Config paths are relative to the current directory; the configs are '
          'experiments/configs/*.py (run from the repository root).', file=sys.stderr)
    sys.exit(2)
  except (flags.Error, AttributeError, KeyError, TypeError, ValueError) as e:
    print(f'error: bad command line: {_one_line(str(e))}\n{hint}', file=sys.stderr)
    sys.exit(2)
