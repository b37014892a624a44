"""Rebuilds a finished run's tables and plots from its work directory:

  python -m autoseed_jax.report --workdir runs/demo

prints the metrics table and writes the files of ``autoseed_jax.report.write_report``.
"""

import sys

from absl import app, flags, logging

from autoseed_jax import report
from autoseed_jax.report import result_records
from autoseed_jax.tools import cli, disk_errors


def main(argv):
  del argv
  if not flags.FLAGS['verbosity'].present:
    logging.set_verbosity(logging.WARNING)  # hide orbax's and TFDS's INFO lines
  workdir = flags.FLAGS.workdir
  try:
    results = report.load_results(workdir)
  except (FileNotFoundError, ValueError) as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  print(result_records.format_metrics_table(results['methods']))
  try:
    for path in report.write_report(workdir, results):
      print(f'wrote {path}')
  except disk_errors.DiskError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(1)


if __name__ == '__main__':
  flags.DEFINE_string('workdir', None, 'Work directory of a finished run.', required=True)
  app.run(main, flags_parser=cli.parse_flags)
