"""Matplotlib figures of a run: accuracy-matrix heatmaps and accuracy after each task.

Every function writes a PNG and returns its path; the Agg backend is used, so no
display is needed.
"""

from __future__ import annotations

import os
from typing import Sequence

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from autoseed_jax.tools import disk_errors  # noqa: E402

# Up to this many tasks, a task axis has a tick at every task.
TICK_EVERY_TASK_UP_TO = 12


def draw_accuracy_matrix(ax, acc_matrix, title: str, *, fontsize: int = 8):
  """Draws one R[i, j] heatmap (percent, annotated) on ``ax``; returns the image."""
  acc = np.asarray(acc_matrix, float)
  t = acc.shape[0]
  image = ax.imshow(acc, vmin=0, vmax=100, cmap='viridis')
  for i in range(t):
    for j in range(t):
      ax.text(j, i, f'{acc[i, j]:.0f}', ha='center', va='center', fontsize=fontsize,
              color='white' if acc[i, j] < 60 else 'black')
  ax.set_title(title, fontsize=fontsize + 1)
  ax.set_xticks(range(t), [f'T{j + 1}' for j in range(t)], fontsize=fontsize)
  ax.set_yticks(range(t), [f'T{i + 1}' for i in range(t)], fontsize=fontsize)
  return image


def set_task_ticks(ax, num_tasks: int) -> None:
  """Whole-number ticks on the x axis of tasks 1..num_tasks: one per task up to
  ``TICK_EVERY_TASK_UP_TO`` tasks, else about ten whole numbers; the axis spans
  0.5..num_tasks + 0.5."""
  if num_tasks <= TICK_EVERY_TASK_UP_TO:
    ax.set_xticks(range(1, num_tasks + 1))
  else:
    ax.xaxis.set_major_locator(MaxNLocator(nbins=10, integer=True))
  ax.set_xlim(0.5, num_tasks + 0.5)


def accuracy_heatmaps(records: dict[str, dict], path: str, *, title: str = '') -> str:
  """One heatmap of R[i, j] (rows: after task i; columns: task j) per method.

  Args:
    records: method -> result record with 'acc_matrix' ([T][T], percent).
    path: PNG file to write.
  """
  methods = list(records)
  n = len(methods)
  fig, axes = plt.subplots(1, n, figsize=(3.6 * n + 0.8, 3.6), squeeze=False)
  image = None
  for k, (ax, method) in enumerate(zip(axes[0], methods)):
    image = draw_accuracy_matrix(ax, records[method]['acc_matrix'], method)
    ax.set_xlabel('evaluated on task')
    if k == 0:
      ax.set_ylabel('after learning task')
  fig.colorbar(image, ax=axes[0].tolist(), label='accuracy (%)', shrink=0.8)
  if title:
    fig.suptitle(title)
  return save_figure(fig, path)


def accuracy_after_each_task(records: dict[str, dict], path: str, *,
                             title: str = '') -> str:
  """Average accuracy over the tasks seen so far, after each task, one line per method."""
  fig, ax = plt.subplots(figsize=(5.5, 3.8))
  num_tasks = 1
  for method, record in records.items():
    acc = np.asarray(record['acc_matrix'], float)
    seen_avg = [acc[t, :t + 1].mean() for t in range(acc.shape[0])]
    ax.plot(range(1, len(seen_avg) + 1), seen_avg, marker='o', label=method)
    num_tasks = max(num_tasks, len(seen_avg))
  set_task_ticks(ax, num_tasks)
  ax.set_xlabel('tasks learned')
  ax.set_ylabel('accuracy on tasks seen so far (%)')
  ax.set_ylim(0, 100)
  ax.grid(alpha=0.3)
  ax.legend()
  if title:
    ax.set_title(title)
  return save_figure(fig, path)


def seed_projection(real: np.ndarray, real_labels: np.ndarray, seeds_v: np.ndarray,
                    seed_labels: np.ndarray, path: str, *,
                    class_names: Sequence[str] | None = None, title: str = '') -> str:
  """Real image embeddings and seed visual prototypes on the top-2 principal axes of
  the real embeddings (dots: real; stars: seeds; colour: class). The legend names each
  class by ``class_names[label]`` (by its label when not given)."""
  mean = real.mean(axis=0)
  _, _, vt = np.linalg.svd(real - mean, full_matrices=False)
  proj = lambda x: (x - mean) @ vt[:2].T
  fig, ax = plt.subplots(figsize=(5.5, 4.5))
  cmap = plt.get_cmap('tab20')
  classes = np.unique(np.concatenate([real_labels, seed_labels]))
  for k, c in enumerate(classes):
    r = proj(real[real_labels == c])
    ax.scatter(r[:, 0], r[:, 1], s=4, alpha=0.25, color=cmap(k % 20))
    s = proj(seeds_v[seed_labels == c])
    ax.scatter(s[:, 0], s[:, 1], s=90, marker='*', edgecolor='black', linewidth=0.5,
               color=cmap(k % 20), label=str(c) if class_names is None else class_names[c])
  ax.set_xlabel('PC 1 of real embeddings')
  ax.set_ylabel('PC 2')
  ax.set_title(title or 'seeds (stars) vs real embeddings (dots)')
  if len(classes) <= 20:
    ax.legend(fontsize=6, ncol=2, title='class', title_fontsize=7)
  return save_figure(fig, path)


def save_figure(fig, path) -> str:
  """Writes ``fig`` to ``path`` (its directory created) and closes it; a failed write
  raises ``disk_errors.DiskError``. Returns the path as a string."""
  path = os.fspath(path)
  try:
    with disk_errors.writing(path, 'writing the plot'):
      os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
      fig.savefig(path, dpi=110, bbox_inches='tight')
  finally:
    plt.close(fig)
  return path
