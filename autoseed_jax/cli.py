"""Command-line conventions shared by ``autoseed_jax.main`` and ``autoseed_jax.report``."""

from __future__ import annotations

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
