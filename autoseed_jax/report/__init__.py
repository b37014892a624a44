"""A run's tables and plots, from the files in its work directory.

  python -m autoseed_jax.report --workdir runs/demo     (``__main__``)

Reads ``results.json`` (and ``methods/autoseed/seeds.npz`` with ``test_embeddings.npz``
when present) and writes
``accuracy_matrix.png``, ``accuracy_after_each_task.png``, ``seed_projection.png`` and
``results.md`` into the work directory, and prints the metrics table. ``main`` calls
``write_report`` at the end of every run.
"""

from __future__ import annotations

import json
import os
from typing import NamedTuple, Sequence

import numpy as np

from autoseed_jax.core.task_kinds import METRIC_NAMES
from autoseed_jax.report import plots, result_records
from autoseed_jax.tools import disk_errors


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


def metrics_markdown(results: dict) -> str:
  """The METHOD §6 metrics of every method as a Markdown table."""
  head = ['method'] + list(result_records.METRIC_NAMES.values()) + ['memory (B)']
  rows = [[method] + ['n/a' if rec['metrics'][k] is None else f"{rec['metrics'][k]:.2f}"
                      for k in result_records.METRIC_NAMES] + [rec['memory_bytes']]
          for method, rec in results['methods'].items()]
  return result_records.markdown_table(head, rows)


def task_metrics_markdown(results: dict) -> str:
  """A vision-language run's tasks (kind, primary score) and, per method, the secondary
  metrics of every task after the last task, as Markdown."""
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


class SeedProjectionInputs(NamedTuple):
  """The arrays of the seed projection plot (``plots.seed_projection``)."""

  real: np.ndarray          # [N, d] real test embeddings
  real_labels: np.ndarray   # [N] their class ids
  seeds_v: np.ndarray       # [S, d] the seeds' visual prototypes
  seed_labels: np.ndarray   # [S] their class ids
  class_names: Sequence[str] | None = None  # class id -> name, for the legend


def seed_projection_inputs(workdir: str) -> SeedProjectionInputs | None:
  """The seed projection's inputs from the files a run wrote (``methods/autoseed/seeds.npz``
  and ``test_embeddings.npz``), or None when the run kept no seeds (or ran on a
  vision-language stream, whose seeds summarise clusters rather than classes)."""
  seeds_path = os.path.join(workdir, 'methods', 'autoseed', 'seeds.npz')
  real_path = os.path.join(workdir, 'test_embeddings.npz')
  if not (os.path.exists(seeds_path) and os.path.exists(real_path)):
    return None
  seeds, real = np.load(seeds_path), np.load(real_path)
  return SeedProjectionInputs(real['x'], real['y'], seeds['v'], seeds['label'],
                              tuple(str(name) for name in real['class_names']))


def write_report(workdir: str, results: dict, *, seed_inputs=None) -> list[str]:
  """Writes the plots and results.md for ``results``; returns the files written.

  ``seed_inputs`` gives the seed projection's arrays directly (``SeedProjectionInputs`` or
  a tuple of its fields); by default they are read from the workdir
  (``seed_projection_inputs``).
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
    seed_inputs = seed_projection_inputs(workdir)
  if seed_inputs is not None:
    inputs = SeedProjectionInputs(*seed_inputs)
    written.append(plots.seed_projection(*inputs[:4],
                                         os.path.join(workdir, 'seed_projection.png'),
                                         class_names=inputs.class_names))
  md_path = os.path.join(workdir, 'results.md')
  with disk_errors.writing(md_path, 'writing'), open(md_path, 'w') as f:
    f.write(f"# {title}\n\n{results.get('description', '')}\n\n{metrics_markdown(results)}\n")
    if results.get('tasks'):
      f.write('\n' + task_metrics_markdown(results) + '\n')
  written.append(md_path)
  return written
