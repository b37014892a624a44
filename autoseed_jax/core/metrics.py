"""Continual-learning metrics from an accuracy matrix (METHOD §6).

``R[i, j]`` is the score on task j after learning task i (0-based here: i, j = 0..T-1);
``b[j]`` is the score of the initial model on task j. All functions take NumPy or JAX
arrays and return a Python float; a metric that is undefined for the given T (e.g.
forgetting with a single task) is NaN.

Forgetting follows the field's convention (Mammoth ``utils/metrics.py``, L2P): only the
rows after task j was learned count, l = j .. T-1 (the last row included). The entries
R[l, j] with l < j are the model's scores on a task it has not learned yet; a CLIP
model scores well there zero-shot, and counting them would report forgetting of
accuracy the method never learned. ``forgetting_all_rows`` keeps the quantity this
project reported before (every row l = 0 .. T-2) under its own name, for comparison
with older numbers; no table reports it.
"""

from __future__ import annotations

import numpy as np


def _check(acc_matrix) -> np.ndarray:
  r = np.asarray(acc_matrix, np.float64)
  if r.ndim != 2 or r.shape[0] != r.shape[1] or r.shape[0] == 0:
    raise ValueError(f'accuracy matrix must be square [T, T] with T >= 1, got {r.shape}.')
  return r


def final_average_accuracy(acc_matrix) -> float:
  """A_T = mean_j R[T, j]: mean accuracy over all tasks after learning the last one."""
  r = _check(acc_matrix)
  return float(r[-1].mean())


def average_incremental_accuracy(acc_matrix) -> float:
  """mean_t mean_{j<=t} R[t, j]: the average, over steps t, of the accuracy on the tasks
  seen so far (Rebuffi et al.'s "average incremental accuracy", Avg in Continual-CLIP)."""
  r = _check(acc_matrix)
  return float(np.mean([r[t, :t + 1].mean() for t in range(r.shape[0])]))


def forgetting(acc_matrix) -> float:
  """Mammoth/L2P forgetting: mean_{j=0..T-2} (max_{l=j..T-1} R[l, j] − R[T-1, j]).

  For each task j but the last, its best score from the step it was learned (row j) to
  the end (row T-1, included), minus its final score; every term is >= 0. Rows l < j
  (the task not yet learned) do not count. NaN when T = 1.
  """
  r = _check(acc_matrix)
  t = r.shape[0]
  if t < 2:
    return float('nan')
  after_learning = np.tril(np.ones((t, t), bool))  # [l, j]: l >= j
  best = np.where(after_learning, r, -np.inf).max(axis=0)  # [T] best from row j on
  return float(np.mean(best[:-1] - r[-1, :-1]))


def forgetting_all_rows(acc_matrix) -> float:
  """mean_{j=0..T-2} (max_{l=0..T-2} R[l, j] − R[T-1, j]): the forgetting this project
  reported before issue 22, over every row but the last, including rows before task j
  was learned (so zero-shot accuracy on a future task counts as something to forget).
  Kept for comparison with older numbers; ``forgetting`` is the field's convention.
  NaN when T = 1."""
  r = _check(acc_matrix)
  t = r.shape[0]
  if t < 2:
    return float('nan')
  return float(np.mean(r[:-1, :-1].max(axis=0) - r[-1, :-1]))


def backward_transfer(acc_matrix) -> float:
  """BWT = mean_{j<T} (R[T, j] − R[j, j]) (Lopez-Paz & Ranzato 2017, GEM): the effect of
  learning later tasks on earlier ones; negative means forgetting. NaN when T = 1."""
  r = _check(acc_matrix)
  t = r.shape[0]
  if t < 2:
    return float('nan')
  return float(np.mean(r[-1, :-1] - np.diag(r)[:-1]))


def forward_transfer(acc_matrix, initial_accuracy) -> float:
  """FWT = mean_{j>=2} (R[j−1, j] − b_j) (GEM's definition): accuracy on task j *before*
  training on it, relative to the initial model. (Some libraries use "forward transfer"
  for accuracy on earlier tasks; that is not this.) NaN when T = 1."""
  r = _check(acc_matrix)
  b = np.asarray(initial_accuracy, np.float64)
  t = r.shape[0]
  if b.shape != (t,):
    raise ValueError(f'initial accuracy must have shape [{t}], got {b.shape}.')
  if t < 2:
    return float('nan')
  return float(np.mean([r[j - 1, j] - b[j] for j in range(1, t)]))


def all_metrics(acc_matrix, initial_accuracy) -> dict[str, float]:
  """Every metric above, keyed by a short name."""
  return {
      'final_avg_acc': final_average_accuracy(acc_matrix),
      'avg_incremental_acc': average_incremental_accuracy(acc_matrix),
      'forgetting': forgetting(acc_matrix),
      'bwt': backward_transfer(acc_matrix),
      'fwt': forward_transfer(acc_matrix, initial_accuracy),
  }
