r"""The one entry point: run continual-learning methods on a task stream, or the
paper's experiments.

  python -m autoseed_jax.main --config experiments/configs/demo.py --workdir runs/demo
  python -m autoseed_jax.main --config experiments/configs/exp_main.py:quick --workdir runs/exp

A config is a Python file whose ``get_config()`` returns an ml_collections ConfigDict;
``file.py:arg`` passes ``arg`` to it. Each config file starts with the command that runs
it and documents its fields; the method fields shared by every config are documented in
experiments/configs/common.py. Any field can be overridden: ``--config.memory_budget=40``,
``--config.stream.seed=1`` (``--config.base.memory_budget=40`` in experiment configs).

Run configs (demo.py, animals_digits.py, synthetic.py; a ``methods`` and a ``stream``
field) write into ``--workdir``:

  metrics.jsonl   one JSON object per chunk of steps / seed update (readable live;
                  appended to, read it with ``autoseed_jax.runner.read_metrics``)
  results.json    accuracy matrix, initial accuracies and METHOD §6 metrics per method
  results.md      the metrics table in Markdown
  *.png           accuracy-matrix heatmaps, accuracy after each task, seed projection
  methods/        per method: checkpoints, config signature, finished result, seeds

and prints each method's accuracy matrix and a metrics table. ``python -m
autoseed_jax.report --workdir ...`` rebuilds the tables and plots later.

Rerunning the same command resumes (big_vision ``--workdir`` semantics): finished
methods are not rerun and an interrupted one continues from its newest checkpoint with
bit-identical results (``autoseed_jax.runner``). A different config on the same workdir
is refused. Ctrl-C (or SIGTERM) saves a checkpoint at the end of the current chunk and
exits with status 128 + the signal number (130 for Ctrl-C).

Experiment configs (an ``experiment`` field: experiments/configs/exp_{main,ablation,
memory,seeds,fwt}.py, and experiments.py for all five in order; ``:quick`` for the smoke
form) run the paper's experiments (experiments/run_experiments.py, which needs this
repository's ``experiments`` package: run from the repository root) and write into
``--workdir``:

  <experiment>/   <experiment>.json / .csv / .md, <experiment>_runs.csv, PNG figures
  claims.json     the paper's claims beside what was measured (and claims.md)
  suite.json      timings, machine, commit

Finished runs are cached in ``config.cache_dir`` (default runs/experiments_cache, shared
by every workdir), so rerunning an interrupted command resumes it.

One run at a time writes a workdir: the command holds ``<workdir>/run.lock`` while it
runs, and a second command on the same workdir stops at once (exit status 1) naming the
first one's host, pid and start time; a lock left by a killed run is taken over with a
warning (``autoseed_jax.workdir_lock``).

Compiled XLA programs are kept in JAX's persistent compilation cache and loaded by later
runs instead of compiled again (``autoseed_jax.compilation_cache``: the config field
``compilation_cache_dir``, else ``$AUTOSEED_COMPILATION_CACHE_DIR``, else JAX's own
``$JAX_COMPILATION_CACHE_DIR``, else ``~/.cache/autoseed_jax/jax_compilation_cache``;
``none`` turns it off). The last line a run prints counts the programs compiled and
loaded.

Bad input (an unknown config field, a wrong type, an invalid value, data that is
missing, incomplete or damaged) stops with one line naming the problem and the fix and
exit status 2; an unusable or busy workdir, a NaN loss, or a file that cannot be written
or read (no space left, no permission, a read-only file system, a file where a directory
should be: checkpoints, results, logs, plots, the embedding cache, the data directory;
``autoseed_jax.disk_errors``) with exit status 1: the checkpoints written before stay
intact and rerunning the same command, with space, resumes. ``--help`` lists the flags
and exits 0.
"""

from __future__ import annotations

import signal
import sys

from absl import app, flags, logging
from ml_collections import config_flags

import jax

from autoseed_jax import (cli, compilation_cache, disk_errors, parallel, profiling, report,
                          reporting, runner, streams, workdir_lock)
from autoseed_jax.checkpoint import CheckpointError


def define_flags() -> None:
  """Defines --config and --workdir; called when this module is the program, so that
  importing it defines no flags."""
  config_flags.DEFINE_config_file(
      'config', None, 'Path to a Python config file (experiments/configs/*.py); '
      '`file.py:quick` passes an argument to its get_config. Fields are documented in the '
      'file and in experiments/configs/common.py; override one with --config.<field>=value.',
      lock_config=True)
  flags.DEFINE_string(
      'workdir', None, 'Directory for logs, results, plots and checkpoints (experiment '
      'configs: the results directory); rerunning the same command on it resumes the run.')
  flags.mark_flags_as_required(['config', 'workdir'])


def is_experiment_config(config) -> bool:
  """True for the paper's experiment configs (experiments/configs/exp_*.py,
  experiments.py): they have an ``experiment`` field."""
  return 'experiment' in config


def run_experiment(config, workdir: str, *, argv: list[str]) -> dict:
  """Runs an experiment config with the repository's experiments suite
  (``experiments.run_experiments.run_configs``) into ``workdir``; returns suite.json's
  record."""
  try:
    from experiments import run_experiments  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise ValueError(
        f'config.experiment={config.experiment!r} needs the `experiments` package of the '
        f'autoseed_jax repository, which cannot be imported ({e}). Run the command from the '
        'root of a clone of the repository (or put that root on PYTHONPATH); an installed '
        'library alone runs only run configs such as experiments/configs/demo.py.') from e
  return run_experiments.run_configs(
      [config], workdir, cache_dir=run_experiments.resolve_cache_dir(config.get('cache_dir')),
      log=lambda line: print(line, flush=True),
      command=' '.join(['python -m autoseed_jax.main'] + argv[1:]))


def main(argv):
  if not flags.FLAGS['verbosity'].present:
    logging.set_verbosity(logging.WARNING)  # hide JAX's backend-probing INFO lines
  config = flags.FLAGS.config
  workdir = flags.FLAGS.workdir
  # Before anything compiles: programs compiled by earlier runs are loaded from disk.
  compilation_cache.configure(config.get('compilation_cache_dir'))
  with profiling.count_compilations() as compiles:
    if is_experiment_config(config):
      runner.prepare_workdir(workdir)
      with workdir_lock.hold(workdir):  # the suite holds it again (re-entrant)
        run_experiment(config, workdir, argv=sys.argv)
    else:
      parallel.maybe_initialize_distributed(config)  # multi-host runs, when asked
      # Fail fast, before loading the stream: the config (every method's fields, devices,
      # checkpoints, the stream block), then the workdir.
      runner.validate_run_config(config)
      streams.check_stream_config(config.stream)
      runner.prepare_workdir(workdir)
      with runner.hold_workdir(workdir):  # refuse at once if another run writes it
        run_stream(config, workdir)
  print(compiles.summary())


def run_stream(config, workdir: str) -> None:
  """Runs a run config's methods on its stream in ``workdir``, then writes the report."""
  stream = streams.load_stream(config.stream, config.methods)
  print(f'stream {stream.name}: {stream.description}')
  if stream.name == 'synthetic':
    print('NOTE: this is the small synthetic embedding benchmark '
          '(autoseed_jax/synthetic.py), not real image data.')
  sys.stdout.flush()
  with runner.stop_on_signals() as stop:  # Ctrl-C: checkpoint, then stop
    records = runner.run_workdir(config, stream, workdir, stop=stop,
                                 out=lambda line: print(line, flush=True))
  print('\n' + reporting.format_metrics_table(records))
  if jax.process_index() == 0:
    for path in report.write_report(workdir, report.load_results(workdir), stream=stream):
      print(f'wrote {path}')
  sys.stdout.flush()


def run_cli(argv):
  """``main`` with input errors (exit 2), unusable workdirs, failed saves and NaN losses
  (exit 1) reported as a clear message instead of a traceback; an interrupted run exits
  with 128 + the signal number after saving a checkpoint."""
  try:
    main(argv)
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


@cli.exit_zero_on_help
def parse_flags(argv):
  """absl flag parsing (``--help`` exits 0), with a bad config (missing file, a config
  file that fails to import or to build, an unknown key, a wrong type) reported as one
  line that names it instead of a traceback from inside ml_collections."""
  hint = ('Run `python -m autoseed_jax.main --help` for the flags; config fields are '
          'listed in the config file and experiments/configs/common.py.')
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


if __name__ == '__main__':
  define_flags()
  app.run(run_cli, flags_parser=parse_flags)
