r"""Rebuilds a run's tables and plots from its work directory.

  python -m autoseed_jax.report --workdir runs/demo

Reads ``results.json`` (and ``methods/autoseed/seeds.npz`` when present) and writes
``accuracy_matrix.png``, ``accuracy_after_each_task.png``, ``seed_projection.png`` and
``results.md`` into the work directory, and prints the metrics table. ``main`` calls
``write_report`` at the end of every run.
"""

from __future__ import annotations

import json
import os
import sys
from typing import NamedTuple, Sequence

import numpy as np
from absl import app, flags, logging

from autoseed_jax import cli, disk_errors, plots, reporting


def load_results(workdir: str) -> dict:
  """The run's results.json; a clear error if it is missing or unreadable."""
  path = os.path.join(workdir, 'results.json')
  if not os.path.exists(path):
    raise FileNotFoundError(f'{path} does not exist: run `python -m autoseed_jax.main '
                            f'--config ... --workdir {workdir}` first.')
  try:
    with open(path) as f:
      return json.load(f)
  except json.JSONDecodeError as e:
    raise ValueError(f'{path} is corrupted ({e}); rerun the same main command to rebuild '
                     'it from the checkpoints.') from e


def markdown_table(results: dict) -> str:
  """The METHOD §6 metrics of every method as a Markdown table."""
  head = ['method'] + list(reporting.METRIC_NAMES.values()) + ['memory (B)']
  lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
  for method, rec in results['methods'].items():
    vals = ['n/a' if rec['metrics'][k] is None else f"{rec['metrics'][k]:.2f}"
            for k in reporting.METRIC_NAMES]
    lines.append('| ' + ' | '.join([method] + vals + [str(rec['memory_bytes'])]) + ' |')
  return '\n'.join(lines)


def task_metrics_markdown(results: dict) -> str:
  """A vision-language run's tasks (kind, primary score) and, per method, the secondary
  metrics of every task after the last task, as Markdown."""
  from autoseed_jax.vl_tasks import METRIC_NAMES  # pylint: disable=import-outside-toplevel
  tasks = results['tasks']
  lines = ['R[i, j] holds each task\'s primary score:', '']
  lines += [f"- {t['name']} ({t['kind']}): {t['primary']}" for t in tasks]
  head = ['method', 'task'] + list(METRIC_NAMES)
  lines += ['', 'Secondary metrics after the last task (percent; BLEU-4 x 100):', '',
            '| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
  for method, rec in results['methods'].items():
    for task, values in zip(tasks, rec.get('task_metrics', [[]])[-1]):
      cells = ['-' if v is None else f'{v:.1f}' for v in values]
      lines.append('| ' + ' | '.join([method, task['name']] + cells) + ' |')
  return '\n'.join(lines)


class StreamUnavailable(ValueError):
  """The run's stream cannot be rebuilt for the seed projection (a stream of your own)."""


class SeedProjectionInputs(NamedTuple):
  """The arrays of the seed projection plot (``plots.seed_projection``)."""

  real: np.ndarray          # [N, d] real test embeddings
  real_labels: np.ndarray   # [N] their class ids
  seeds_v: np.ndarray       # [S, d] the seeds' visual prototypes
  seed_labels: np.ndarray   # [S] their class ids
  class_names: Sequence[str] | None = None  # class id -> name, for the legend


def seed_projection_inputs(workdir: str, results: dict, stream=None):
  """The seed projection's ``SeedProjectionInputs`` (real test embeddings, the seeds,
  the stream's class names), or None when the run kept no seeds. ``stream`` is rebuilt
  from the stored config when not given (embeddings come from the cache);
  StreamUnavailable if it cannot be."""
  seeds_path = os.path.join(workdir, 'methods', 'autoseed', 'seeds.npz')
  if not os.path.exists(seeds_path):
    return None
  if stream is None:
    import ml_collections
    from autoseed_jax.streams import load_stream
    stream_config = results['config'].get('stream', {})
    try:
      stream = load_stream(ml_collections.ConfigDict(stream_config))
    except (AttributeError, KeyError, ValueError, FileNotFoundError) as e:
      raise StreamUnavailable(
          f'the run\'s stream ({stream_config.get("name", "unnamed")!r}) cannot be rebuilt '
          f'from its stored config ({type(e).__name__}: {e}); a stream of your own: call '
          'report.write_report(workdir, results, stream=stream) with it.') from e
  if stream.vl is not None:
    return None  # seeds of k-means clusters have no real class to be drawn beside
  count = np.asarray(stream.test.count)
  real = np.concatenate([np.asarray(stream.test.x[t])[:count[t]] for t in range(len(count))])
  labels = np.concatenate([np.asarray(stream.test.y[t])[:count[t]] for t in range(len(count))])
  stored = np.load(seeds_path)
  return SeedProjectionInputs(real, labels, stored['v'], stored['label'],
                              tuple(stream.class_names))


def write_report(workdir: str, results: dict, *, stream=None, seed_inputs=None,
                 out=print) -> list[str]:
  """Writes the plots and results.md for ``results``; returns the files written.

  ``stream`` (the run's task stream) saves rebuilding it for the seed projection (a
  stream that cannot be rebuilt skips that plot, with a note to ``out``);
  ``seed_inputs`` gives that plot's arrays directly (``SeedProjectionInputs`` or a tuple
  of its fields).
  """
  title = results.get('stream', '')
  written = [
      plots.accuracy_heatmaps(results['methods'], os.path.join(workdir, 'accuracy_matrix.png'),
                              title=title),
      plots.accuracy_after_each_task(results['methods'],
                                     os.path.join(workdir, 'accuracy_after_each_task.png'),
                                     title=title),
  ]
  if seed_inputs is None:
    try:
      seed_inputs = seed_projection_inputs(workdir, results, stream)
    except StreamUnavailable as e:
      out(f'seed_projection.png not redrawn: {e}')
  if seed_inputs is not None:
    inputs = SeedProjectionInputs(*seed_inputs)
    written.append(plots.seed_projection(*inputs[:4],
                                         os.path.join(workdir, 'seed_projection.png'),
                                         class_names=inputs.class_names))
  md_path = os.path.join(workdir, 'results.md')
  with disk_errors.writing(md_path, 'writing'), open(md_path, 'w') as f:
    f.write(f"# {title}\n\n{results.get('description', '')}\n\n{markdown_table(results)}\n")
    if results.get('tasks'):
      f.write('\n' + task_metrics_markdown(results) + '\n')
  written.append(md_path)
  return written


def main(argv):
  del argv
  if not flags.FLAGS['verbosity'].present:
    logging.set_verbosity(logging.WARNING)  # hide orbax's and TFDS's INFO lines
  workdir = flags.FLAGS.workdir
  try:
    results = load_results(workdir)
  except (FileNotFoundError, ValueError) as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  print(reporting.format_metrics_table(results['methods']))
  try:
    for path in write_report(workdir, results):
      print(f'wrote {path}')
  except disk_errors.DiskError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(1)


if __name__ == '__main__':
  # Defined here, not at import: autoseed_jax.main (which imports this module) defines
  # its own --workdir flag when it is the program.
  flags.DEFINE_string('workdir', None, 'Work directory of a finished run.', required=True)
  app.run(main, flags_parser=cli.parse_flags)
