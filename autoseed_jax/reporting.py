"""Turning run results into JSON records and terminal tables."""

from __future__ import annotations

import json
import math
import os
import tempfile

import numpy as np

METRIC_NAMES = {
    'final_avg_acc': 'final avg acc',
    'avg_incremental_acc': 'avg incr acc',
    'forgetting': 'forgetting',
    'bwt': 'BWT',
    'fwt': 'FWT',
}


def _finite_or_none(x: float):
  return None if x is None or math.isnan(x) else round(float(x), 4)


def result_record(result) -> dict:
  """A JSON-ready dict of a ``continual.RunResult`` (NaN metrics become null)."""
  return {
      'acc_matrix': np.round(result.acc_matrix, 4).tolist(),
      'initial_acc': np.round(result.initial_acc, 4).tolist(),
      'metrics': {k: _finite_or_none(v) for k, v in result.metrics.items()},
      'memory_bytes': int(result.memory_bytes),
      'seconds': round(result.seconds, 2),
  }


def write_json(path: str, obj) -> None:
  """Writes ``obj`` atomically: a crash mid-write never leaves a truncated file."""
  directory = os.path.dirname(os.path.abspath(path))
  fd, tmp = tempfile.mkstemp(dir=directory, prefix='.tmp-', suffix='.json')
  try:
    with os.fdopen(fd, 'w') as f:
      json.dump(obj, f, indent=1)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise


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
