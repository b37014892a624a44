"""The figures' task axes: whole-number ticks (autoseed_jax.report.plots and the suite's
accuracy curves)."""

import numpy as np
import pytest

from autoseed_jax.report import plots
from experiments import suite


def _visible_ticks(ax):
  low, high = ax.get_xlim()
  return [float(t) for t in ax.get_xticks() if low <= t <= high]


@pytest.fixture
def figures(monkeypatch):
  """The figures the plotting functions draw (nothing is written)."""
  drawn = []
  monkeypatch.setattr(plots, 'save_figure', lambda fig, path: drawn.append(fig) or path)
  monkeypatch.setattr(suite, 'save_figure', lambda fig, path: drawn.append(fig) or str(path))
  yield drawn
  for fig in drawn:
    plots.plt.close(fig)


def _records(num_tasks):
  rng = np.random.default_rng(num_tasks)
  return {m: {'acc_matrix': rng.uniform(0, 100, (num_tasks, num_tasks)).tolist()}
          for m in ('finetune', 'autoseed')}


@pytest.mark.parametrize('num_tasks', [2, 5, 10])
def test_accuracy_after_each_task_has_a_tick_at_every_task(figures, num_tasks):
  plots.accuracy_after_each_task(_records(num_tasks), 'unused.png')
  assert _visible_ticks(figures[-1].axes[0]) == [float(t) for t in range(1, num_tasks + 1)]


@pytest.mark.parametrize('num_tasks', [20, 50])
def test_long_streams_get_whole_number_ticks_within_the_tasks(figures, num_tasks):
  plots.accuracy_after_each_task(_records(num_tasks), 'unused.png')
  ticks = _visible_ticks(figures[-1].axes[0])
  assert 4 <= len(ticks) <= 12
  assert all(t == int(t) and 1 <= t <= num_tasks for t in ticks), ticks


@pytest.mark.parametrize('num_tasks', [2, 5])
def test_suite_accuracy_curves_have_whole_number_ticks(figures, num_tasks):
  curves = {m: (np.linspace(90, 40, num_tasks), np.full(num_tasks, 2.0))
            for m in ('finetune', 'autoseed')}
  suite.accuracy_curves(curves, 'unused.png')
  assert _visible_ticks(figures[-1].axes[0]) == [float(t) for t in range(1, num_tasks + 1)]
