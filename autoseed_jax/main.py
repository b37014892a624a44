r"""The one entry point: run continual-learning methods on a task stream.

  python -m autoseed_jax.main --config experiments/configs/demo.py --workdir runs/demo

Any config field can be overridden: ``--config.memory_budget=40``,
``--config.stream.seed=1``. The run writes into ``--workdir``:

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
"""

from __future__ import annotations

import signal
import sys

from absl import app, flags, logging
from ml_collections import config_flags

import jax

from autoseed_jax import parallel, report, reporting, runner
from autoseed_jax.checkpoint import CheckpointError

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Path to a config file.',
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string(
    'workdir', None, 'Directory for logs, results and checkpoints; rerunning the same '
    'command on it resumes the run.')
flags.mark_flags_as_required(['config', 'workdir'])


def load_backbone(spec: str):
  """The frozen backbone named by ``config.stream.backbone``.

  ``offline`` (default): the LiT-pretrained CNN image tower + MiniLM text tower shipped
  with the project. ``clip:<path>``: an OpenCLIP/OpenAI CLIP checkpoint you bring
  (``open_clip_model.safetensors`` or ``.npz``; the architecture is read from its shapes).
  """
  if spec == 'offline':
    return None  # streams.get_stream's default
  if spec.startswith('clip:'):
    from autoseed_jax.models.clip import CLIPBackbone
    return CLIPBackbone.from_checkpoint(spec[len('clip:'):])
  raise ValueError(f"stream.backbone={spec!r}: use 'offline' or 'clip:/path/to/"
                   "open_clip_model.safetensors'.")


def load_stream(stream_config):
  """Builds the task stream named by ``config.stream.name``."""
  kwargs = {k: v for k, v in stream_config.items() if k not in ('name', 'backbone')}
  if stream_config.name == 'synthetic':
    from autoseed_jax.synthetic import make_synthetic_stream
    return make_synthetic_stream(**kwargs)
  from autoseed_jax.streams import get_stream
  backbone = load_backbone(stream_config.get('backbone', 'offline'))
  return get_stream(stream_config.name, backbone=backbone, **kwargs)


def main(argv):
  del argv
  if not flags.FLAGS['verbosity'].present:
    logging.set_verbosity(logging.WARNING)  # hide JAX's backend-probing INFO lines
  config = _CONFIG.value
  workdir = _WORKDIR.value
  parallel.maybe_initialize_distributed(config)  # multi-host runs, when asked
  runner.prepare_workdir(workdir)  # fail fast, before loading the stream
  stream = load_stream(config.stream)
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
    print('\ninterrupted; checkpoints saved so far are intact. Rerun the same command to '
          'resume.', file=sys.stderr)
    sys.exit(128 + signal.SIGINT)
  except (ValueError, FileNotFoundError) as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  except (runner.WorkdirError, runner.NonFiniteLossError, CheckpointError) as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(1)


def parse_flags(argv):
  """absl flag parsing, with a bad config override (unknown key, wrong type) reported
  as one line that names the key instead of a traceback from inside ml_collections."""
  try:
    return flags.FLAGS(argv)
  except (flags.Error, AttributeError, KeyError, TypeError, ValueError) as e:
    message = str(e)
    if len(message) > 1 and message[0] == message[-1] and message[0] in '\'"':
      message = message[1:-1]  # AttributeError wraps its text in repr quotes
    message = message.replace('\\n', ' ').replace("\\'", "'")
    print(f'error: bad command line: {message}\n'
          f'Run `python -m autoseed_jax.main --helpfull` for flags; config fields are '
          f'listed in the config file and experiments/configs/common.py.', file=sys.stderr)
    sys.exit(2)


if __name__ == '__main__':
  app.run(run_cli, flags_parser=parse_flags)
