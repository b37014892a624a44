"""Seed bytes against exemplar-replay bytes at equal accuracy, read from the memory
experiment's results (never invented)."""

from __future__ import annotations

import glob
import json
import math
import os

import numpy as np



def method_family(name: str) -> str | None:
  """'seeds' for Auto-Seed VL2 runs, 'replay' for ER-VLM runs, None for anything else."""
  if name == 'autoseed' or name.startswith(('autoseed_', 'autoseed-', 'autoseed@')):
    return 'seeds'
  if name == 'er' or name.startswith(('er_', 'er-', 'er@')):
    return 'replay'
  return None


def read_memory_points(paths) -> list[dict]:
  """(method, memory_bytes, final_avg_acc) points from result files.

  Each path (a glob, a file, or a directory holding ``results.json``) is either a
  ``results.json`` written by ``autoseed_jax.main`` (``{"methods": {name: {"memory_bytes",
  "metrics": {"final_avg_acc"}}}}``), the memory-vs-accuracy experiment's ``memory.json``
  (one point per stream, method and budget: means over seeds, with its ``stream``) or
  ``{"points": [{"method", "memory_bytes", "final_avg_acc"}, ...]}``.
  """
  files = []
  for pattern in paths:
    matches = sorted(glob.glob(os.fspath(pattern))) or [os.fspath(pattern)]
    for path in matches:
      files.append(os.path.join(path, 'results.json') if os.path.isdir(path) else path)
  points = []
  for path in files:
    if not os.path.isfile(path):
      raise FileNotFoundError(f'--memory-results: {path} does not exist; pass the results.json '
                              'files (or their workdirs) of the memory-vs-accuracy runs.')
    with open(path) as f:
      data = json.load(f)
    if isinstance(data, dict) and isinstance(data.get('methods'), dict):
      for name, record in data['methods'].items():
        points.append({'method': name, 'memory_bytes': record.get('memory_bytes'),
                       'final_avg_acc': (record.get('metrics') or {}).get('final_avg_acc'),
                       'source': path})
    elif isinstance(data, dict) and data.get('experiment') == 'memory':
      points += [{'method': f"{row['method']}@{row['budget']}", 'stream': row['stream'],
                  'memory_bytes': row['memory_bytes']['mean'],
                  'final_avg_acc': row['final_avg_acc']['mean'], 'source': path}
                 for row in data['summary'] if row['final_avg_acc']['mean'] is not None]
    elif isinstance(data, dict) and isinstance(data.get('points'), list):
      points += [{**p, 'source': path} for p in data['points']]
    else:
      raise ValueError(f'--memory-results: {path} is neither a results.json of '
                       'autoseed_jax.main (with "methods"), the memory experiment\'s '
                       'memory.json, nor a {"points": [...]} file.')
  return [p for p in points if method_family(str(p.get('method'))) is not None
          and p.get('memory_bytes') is not None and p.get('final_avg_acc') is not None]


def replay_bytes_at_accuracy(replay_points, accuracy: float) -> dict:
  """Bytes ER needs to reach ``accuracy``: interpolated linearly in log(bytes) along the
  best accuracy reached at or below each budget."""
  pts = sorted((float(p['memory_bytes']), float(p['final_avg_acc'])) for p in replay_points)
  if not pts:
    return {'bytes': None, 'reason': 'no ER runs'}
  best = np.maximum.accumulate([a for _, a in pts])
  above = np.flatnonzero(best >= accuracy)
  if above.size == 0:
    return {'bytes': None, 'reason': f'ER reached at most {best[-1]:.2f}% with up to '
                                     f'{pts[-1][0]:.0f} bytes'}
  i = int(above[0])
  if i == 0:
    return {'bytes': pts[0][0], 'bound': 'at most (the smallest ER budget already matches)'}
  (b0, _), (b1, _) = pts[i - 1], pts[i]
  frac = (accuracy - best[i - 1]) / (best[i] - best[i - 1])
  return {'bytes': float(math.exp(math.log(max(b0, 1.0)) + frac * (math.log(b1)
                                                                  - math.log(max(b0, 1.0))))),
          'bound': 'interpolated'}


def memory_section(paths) -> dict:
  if not paths:
    return {'status': 'needs results',
            'message': ("seed-memory vs exemplar-replay bytes at equal accuracy needs the "
                        "memory-vs-accuracy experiment's output: rerun with --memory-results "
                        "PATH [PATH ...] (its results.json files, autoseed and er runs at "
                        "several memory budgets). No numbers are made up here.")}
  points = read_memory_points(paths)
  seeds = [p for p in points if method_family(p['method']) == 'seeds']
  replay = [p for p in points if method_family(p['method']) == 'replay']
  if not seeds or not replay:
    return {'status': 'needs results', 'points': points,
            'message': f'found {len(seeds)} Auto-Seed and {len(replay)} ER points; both are '
                       'needed.'}
  comparisons = []
  for p in sorted(seeds, key=lambda p: (str(p.get('stream', '')), p['memory_bytes'])):
    # Equal accuracy is only compared within one stream.
    same_stream = [r for r in replay if r.get('stream') == p.get('stream')]
    match = replay_bytes_at_accuracy(same_stream, float(p['final_avg_acc']))
    comparisons.append({
        'stream': p.get('stream'),
        'seed_method': p['method'], 'seed_bytes': p['memory_bytes'],
        'final_avg_acc': p['final_avg_acc'], 'replay_bytes_at_equal_acc': match['bytes'],
        'replay_to_seed_ratio': (match['bytes'] / p['memory_bytes']
                                 if match['bytes'] and p['memory_bytes'] else None),
        'note': match.get('bound') or match.get('reason')})
  return {'status': 'ok', 'points': points, 'comparisons': comparisons}
