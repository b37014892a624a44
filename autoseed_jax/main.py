r"""Runs continual-learning methods on a task stream in a workdir that survives crashes.

  python -m autoseed_jax.main --config experiments/configs/demo.py --workdir runs/demo

Configs, their fields and the workdir's files: docs/CONFIGS.md. Rerunning the same command
resumes; bad input stops with one line and exit status 2 (a busy or unusable workdir, a
failed save or a NaN loss: 1; Ctrl-C: 130 after a checkpoint). The paper's experiment
configs run with ``python -m experiments.paper`` (experiments/README.md).
"""

from __future__ import annotations

import signal
import sys
from typing import Callable

from absl import app, flags, logging
from ml_collections import config_flags

import jax

from autoseed_jax import methods, report, runner, streams
from autoseed_jax.tools.checkpoint import CheckpointError
from autoseed_jax.core import parallel
from autoseed_jax.report import result_records
from autoseed_jax.tools import cli, compilation_cache, disk_errors, profiling, workdir_lock


def define_flags() -> None:
  """Defines --config and --workdir; called when this module is the program, so that
  importing it defines no flags."""
  config_flags.DEFINE_config_file(
      'config', None, 'Path to a Python config file (experiments/configs/*.py); '
      '`file.py:quick` passes an argument to its get_config. Fields are documented in the '
      'file and in experiments/configs/common.py; override one with --config.<field>=value.',
      lock_config=True)
  flags.DEFINE_string(
      'workdir', None, 'Directory for logs, results, plots and checkpoints; rerunning the '
      'same command on it resumes the run.')
  flags.mark_flags_as_required(['config', 'workdir'])


def refuse_experiment_config(config) -> None:
  """The paper's experiment configs (an ``experiment`` field: experiments/configs/exp_*.py)
  are the experiment suite's, not this command's: a ValueError naming its command."""
  if 'experiment' in config:
    raise ValueError(
        f'config.experiment={config.experiment!r}: this is an experiment config of the '
        'paper suite; run it with `python -m experiments.paper --config <that file> '
        '--workdir <dir>` from the repository root.')


# The configs of this repository written for each stream (named in error messages).
STREAM_CONFIG_FILES = {
    'synthetic': 'experiments/configs/synthetic.py',
    'vl-scenes': 'experiments/configs/vl_scenes.py',
    'coco-flickr': 'experiments/configs/vl_coco_flickr.py',
    'vqa-v2': 'experiments/configs/vl_coco_flickr.py:vqa-v2',
}


def check_stream_block(stream_config) -> None:
  """``streams.check_stream_config``, with a block holding another stream's fields told
  which config of this repository is written for its stream."""
  try:
    streams.check_stream_config(stream_config)
  except ValueError as e:
    if 'does not take the field' not in str(e):
      raise
    name = stream_config.get('name')
    config_file = STREAM_CONFIG_FILES.get(
        name, f'experiments/configs/demo.py --config.stream.name={name}')
    raise ValueError(f'{e} Run a config written for it: --config {config_file}.') from e


def main(argv):
  if not flags.FLAGS['verbosity'].present:
    logging.set_verbosity(logging.WARNING)  # hide JAX's backend-probing INFO lines
  config = flags.FLAGS.config
  workdir = flags.FLAGS.workdir
  # Before anything compiles: programs compiled by earlier runs are loaded from disk.
  compilation_cache.configure_compilation_cache(config.get('compilation_cache_dir'))
  refuse_experiment_config(config)
  with profiling.count_compilations() as compiles:
    parallel.maybe_initialize_distributed(config)  # multi-host runs, when asked
    # Fail fast, before loading the stream: the config (every method's fields, devices,
    # checkpoints, the stream block), then the workdir.
    runner.validate_run_config(config)
    check_stream_block(config.stream)
    runner.prepare_workdir(workdir)
    with runner.hold_workdir(workdir):  # refuse at once if another run writes it
      run_stream(config, workdir)
  print(compiles.summary())


def run_stream(config, workdir: str) -> None:
  """Runs a run config's methods on its stream in ``workdir``, then writes the report."""
  stream = streams.load_stream(config.stream, pixels=methods.needs_pixels(config.methods))
  print(f'stream {stream.name}: {stream.description}')
  if stream.name == 'synthetic':
    print('NOTE: this is the small synthetic embedding benchmark '
          '(autoseed_jax/streams/synthetic.py), not real image data.')
  sys.stdout.flush()
  with runner.stop_on_signals() as stop:  # Ctrl-C: checkpoint, then stop
    records = runner.run_workdir(config, stream, workdir, stop=stop,
                                 out=lambda line: print(line, flush=True))
  print('\n' + result_records.format_metrics_table(records))
  if jax.process_index() == 0:
    for path in report.write_report(workdir, report.load_results(workdir)):
      print(f'wrote {path}')
  sys.stdout.flush()


def run_cli(argv, program: Callable[[list[str]], None] | None = None):
  """``program`` (default ``main``) with input errors (exit 2), unusable workdirs, failed
  saves and NaN losses (exit 1) reported as a clear message instead of a traceback; an
  interrupted run exits with 128 + the signal number after saving a checkpoint."""
  try:
    (program or main)(argv)
  except runner.RunInterrupted as e:
    sys.stdout.flush()
    print(str(e), file=sys.stderr)
    sys.exit(128 + e.signum)
  except KeyboardInterrupt:  # before training, or a second Ctrl-C
    print('\ninterrupted; checkpoints and finished runs saved so far are intact. Rerun the '
          'same command to resume.', file=sys.stderr)
    sys.exit(128 + signal.SIGINT)
  except (ValueError, FileNotFoundError) as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  except (runner.WorkdirError, workdir_lock.WorkdirBusyError, runner.NonFiniteLossError,
          CheckpointError, disk_errors.DiskError) as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(1)
  except OSError as e:  # a write or read no message above names: still one line
    path = e.filename or 'a file'
    print(f'error: {disk_errors.describe(path, "reading or writing", e)}', file=sys.stderr)
    sys.exit(1)


parse_flags = cli.config_flags_parser('autoseed_jax.main')


if __name__ == '__main__':
  define_flags()
  app.run(run_cli, flags_parser=parse_flags)
