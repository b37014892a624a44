r"""The one entry point: run continual-learning methods on a task stream.

  python -m autoseed_jax.main --config experiments/configs/demo.py --workdir runs/demo

Any config field can be overridden: ``--config.memory_budget=40``,
``--config.stream.seed=1``. The run writes into ``--workdir``:

  metrics.jsonl   one JSON object per chunk of steps / seed update (readable live)
  results.json    accuracy matrix, initial accuracies and METHOD §6 metrics per method

and prints each method's accuracy matrix and a metrics table.
"""

from __future__ import annotations

import json
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from autoseed_jax import reporting
from autoseed_jax.continual import run_sequence

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Path to a config file.',
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Directory for logs and results.')
flags.mark_flags_as_required(['config', 'workdir'])


def load_stream(stream_config):
  """Builds the task stream named by ``config.stream.name``."""
  kwargs = {k: v for k, v in stream_config.items() if k != 'name'}
  if stream_config.name == 'synthetic':
    from autoseed_jax.synthetic import make_synthetic_stream
    return make_synthetic_stream(**kwargs)
  from autoseed_jax.streams import get_stream
  return get_stream(stream_config.name, **kwargs)


def main(argv):
  del argv
  if not flags.FLAGS['verbosity'].present:
    logging.set_verbosity(logging.WARNING)  # hide JAX's backend-probing INFO lines
  config = _CONFIG.value
  workdir = _WORKDIR.value
  os.makedirs(workdir, exist_ok=True)
  stream = load_stream(config.stream)
  print(f'stream {stream.name}: {stream.description}')
  if stream.name == 'synthetic':
    print('NOTE: this is the small synthetic embedding benchmark '
          '(autoseed_jax/synthetic.py), not real image data.')
  log_path = os.path.join(workdir, 'metrics.jsonl')
  results = {}
  with open(log_path, 'a') as log_file:
    for method in config.methods:
      run_config = config.copy_and_resolve_references()
      with run_config.unlocked():
        run_config.method = method
      print(f'\n== {method} ==', flush=True)

      def log(record, method=method):
        log_file.write(json.dumps({'method': method, **record}) + '\n')
        log_file.flush()

      result = run_sequence(run_config, stream, log=log)
      results[method] = reporting.result_record(result)
      print(reporting.format_matrix(result.acc_matrix, result.initial_acc))
  reporting.write_json(os.path.join(workdir, 'results.json'),
                       {'stream': stream.name, 'description': stream.description,
                        'config': config.to_dict(), 'methods': results})
  print('\n' + reporting.format_metrics_table(results))
  print(f'\nresults: {os.path.join(workdir, "results.json")}')
  sys.stdout.flush()


def run_cli(argv):
  """``main`` with input errors reported as one clear line instead of a traceback."""
  try:
    main(argv)
  except (ValueError, FileNotFoundError) as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)


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
