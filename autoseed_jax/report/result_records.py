"""Turning run results into JSON records and terminal tables."""

from __future__ import annotations

import json
import math
import os
import tempfile

import numpy as np

from autoseed_jax.core.task_kinds import METRIC_NAMES as TASK_METRIC_NAMES
from autoseed_jax.core.task_kinds import PRIMARY_SCORE

METRIC_NAMES = {
    'final_avg_acc': 'final avg acc',
    'avg_incremental_acc': 'avg incr acc',
    'forgetting': 'forgetting',
    'bwt': 'BWT',
    'fwt': 'FWT',
}


def finite_or_none(x) -> float | None:
  """``x`` rounded to 4 decimals, or None (JSON null) for None, NaN and +-Inf."""
  return None if x is None or not math.isfinite(x) else round(float(x), 4)


def _nested(array) -> list:
  """An array as nested lists with NaN as None (JSON null), rounded to 4 decimals."""
  array = np.asarray(array, np.float64)
  if array.ndim == 0:
    return finite_or_none(float(array))
  return [_nested(a) for a in array]


def result_record(result) -> dict:
  """A JSON-ready dict of a ``continual.RunResult`` (NaN metrics become null). On a
  vision-language stream it also holds ``task_metrics`` [T][T][K] and
  ``initial_task_metrics`` [T][K] (``task_kinds.METRIC_NAMES``; null where a kind has none)."""
  record = {
      'acc_matrix': np.round(result.acc_matrix, 4).tolist(),
      'initial_acc': np.round(result.initial_acc, 4).tolist(),
      'metrics': {k: finite_or_none(v) for k, v in result.metrics.items()},
      'memory_bytes': int(result.memory_bytes),
      'seconds': round(result.seconds, 2),
  }
  if getattr(result, 'task_metrics', None) is not None:
    record['task_metrics'] = _nested(result.task_metrics)
    record['initial_task_metrics'] = _nested(result.initial_task_metrics)
  return record


def stream_tasks(stream) -> list[dict] | None:
  """A vision-language stream's tasks ({'name', 'kind', 'primary'}) for results files."""
  if getattr(stream, 'vl', None) is None:
    return None
  return [{'name': n, 'kind': k, 'primary': PRIMARY_SCORE[k]}
          for n, k in zip(stream.vl.task_names, stream.vl.kinds)]


def format_task_metrics(task_metrics, tasks: list[dict], *, row: int = -1) -> str:
  """The secondary metrics (``task_kinds.METRIC_NAMES``) of every task after learning task
  ``row`` (default: the last), one line per task; '-' where a kind has none."""
  values = task_metrics[row]
  width = max(len(t['name']) for t in tasks) + 1
  lines = [f'{"task":<{width}}{"kind":<15}' + ''.join(f'{m:>10}' for m in TASK_METRIC_NAMES)]
  for task, metrics in zip(tasks, values):
    cells = ''.join(f'{"-":>10}' if v is None or (isinstance(v, float) and math.isnan(v))
                    else f'{v:10.1f}' for v in metrics)
    lines.append(f'{task["name"]:<{width}}{task["kind"]:<15}' + cells)
  return '\n'.join(lines)


def _json_default(x):
  if isinstance(x, np.generic):
    return x.item()
  if isinstance(x, np.ndarray):
    return x.tolist()
  raise TypeError(f'not JSON serialisable: {type(x).__name__}')


def write_json(path: str | os.PathLike, obj) -> None:
  """Writes ``obj`` as indented JSON (NumPy scalars and arrays as numbers and lists)
  atomically: a crash mid-write never leaves a truncated file. The parent directory is
  created; the file gets the usual permissions (0666 less the umask)."""
  path = os.fspath(path)
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix='.tmp-', suffix='.json')
  try:
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)
    with os.fdopen(fd, 'w') as f:
      json.dump(obj, f, indent=1, default=_json_default)
      f.write('\n')
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise


def markdown_table(header, rows) -> str:
  """A GitHub Markdown table of ``header`` [n] and ``rows`` [m][n] (a '|' inside a cell
  is escaped)."""

  def line(cells):
    return '| ' + ' | '.join(str(c).replace('|', '\\|') for c in cells) + ' |'

  return '\n'.join([line(header), '|' + '---|' * len(header)] + [line(r) for r in rows])


def format_matrix(acc_matrix, initial_acc) -> str:
  """R[i, j] (rows: after task i; cols: task j) and the initial row b, in percent."""
  acc = np.asarray(acc_matrix)
  t = acc.shape[0]
  head = 'after \\ on ' + ''.join(f'{f"T{j + 1}":>7}' for j in range(t))
  rows = [head]
  rows.append(f'{"initial":<11}' + ''.join(f'{x:7.1f}' for x in np.asarray(initial_acc)))
  for i in range(t):
    rows.append(f'{f"T{i + 1}":<11}' + ''.join(f'{x:7.1f}' for x in acc[i]))
  return '\n'.join(rows)


def format_metrics_table(records: dict[str, dict]) -> str:
  """One row per method: the METHOD §6 metrics (percent points) and memory bytes."""
  cols = list(METRIC_NAMES.values()) + ['memory (B)']
  width = max([len(m) for m in records] + [6])
  lines = [f'{"method":<{width}} ' + ' '.join(f'{c:>13}' for c in cols)]
  for method, rec in records.items():
    vals = []
    for key in METRIC_NAMES:
      v = rec['metrics'][key]
      vals.append(f'{"n/a":>13}' if v is None else f'{v:13.2f}')
    vals.append(f'{rec["memory_bytes"]:13d}')
    lines.append(f'{method:<{width}} ' + ' '.join(vals))
  return '\n'.join(lines)
