"""Metrics against hand-worked accuracy matrices (METHOD §6)."""

import math

import numpy as np
import pytest

from autoseed_jax.core import metrics

# R[i, j]: accuracy on task j after learning task i (3 tasks).
R = np.array([[80., 30., 20.],
              [60., 90., 40.],
              [50., 70., 85.]])
B = np.array([10., 20., 30.])


def test_final_average_accuracy():
  assert metrics.final_average_accuracy(R) == pytest.approx((50 + 70 + 85) / 3)


def test_average_incremental_accuracy():
  want = (80 + (60 + 90) / 2 + (50 + 70 + 85) / 3) / 3
  assert metrics.average_incremental_accuracy(R) == pytest.approx(want)


def test_forgetting_uses_the_best_earlier_score():
  # task 0: best of R[0,0]=80, R[1,0]=60 -> 80, final 50 -> 30
  # task 1: best of R[0,1]=30, R[1,1]=90 -> 90, final 70 -> 20
  assert metrics.forgetting(R) == pytest.approx((30 + 20) / 2)


def test_forgetting_ignores_scores_before_a_task_was_learned():
  # Zero-shot scores on tasks not learned yet (above the diagonal) are the largest.
  r = np.array([[50., 95., 99.],
                [40., 60., 98.],
                [30., 55., 70.]])
  # task 0: rows 0..2 -> best 50, final 30 -> 20; task 1: rows 1..2 -> best 60, final 55 -> 5
  assert metrics.forgetting(r) == pytest.approx((20 + 5) / 2)
  # the quantity reported before counted rows 0..1 of every column: task 1's 95
  assert metrics.forgetting_all_rows(r) == pytest.approx((20 + (95 - 55)) / 2)


def test_forgetting_counts_the_last_row_so_no_term_is_negative():
  # task 0 improves after it was learned and is best at the end: it forgot nothing
  r = np.array([[60., 10.], [75., 90.]])
  assert metrics.forgetting(r) == 0.0
  assert metrics.forgetting_all_rows(r) == pytest.approx(60 - 75)


def _mammoth_forgetting(acc_matrix):
  """Mammoth's ``utils/metrics.py`` convention written out independently: ``results[i]``
  holds the scores of the tasks seen after learning task i (i + 1 numbers), rows are
  padded with 0 to T and the column maxima are taken over every row."""
  t = len(acc_matrix)
  results = [list(acc_matrix[i][:i + 1]) + [0.0] * (t - i - 1) for i in range(t)]
  column_best = np.max(np.array(results), axis=0)
  return np.mean([column_best[j] - results[-1][j] for j in range(t - 1)])


def _mammoth_bwt(acc_matrix):
  t = len(acc_matrix)
  return np.mean([acc_matrix[-1][j] - acc_matrix[j][j] for j in range(t - 1)])


def _mammoth_fwt(acc_matrix, initial):
  t = len(acc_matrix)
  return np.mean([acc_matrix[j - 1][j] - initial[j] for j in range(1, t)])


def test_forgetting_bwt_and_fwt_agree_with_mammoth_on_random_matrices():
  rng = np.random.default_rng(0)
  differs_from_all_rows = 0
  for _ in range(200):
    t = int(rng.integers(2, 9))
    r = np.round(rng.uniform(0, 100, (t, t)), 2)  # scores in percent, >= 0 like Mammoth's
    b = np.round(rng.uniform(0, 100, t), 2)
    assert metrics.forgetting(r) == pytest.approx(_mammoth_forgetting(r), abs=1e-9)
    assert metrics.backward_transfer(r) == pytest.approx(_mammoth_bwt(r), abs=1e-9)
    assert metrics.forward_transfer(r, b) == pytest.approx(_mammoth_fwt(r, b), abs=1e-9)
    differs_from_all_rows += metrics.forgetting(r) != pytest.approx(
        metrics.forgetting_all_rows(r))
  assert differs_from_all_rows > 100  # the random matrices do tell the conventions apart


def test_backward_transfer_is_gem_bwt():
  assert metrics.backward_transfer(R) == pytest.approx(((50 - 80) + (70 - 90)) / 2)


def test_forward_transfer_is_gem_fwt():
  # R[0,1] - b1 = 30 - 20 = 10; R[1,2] - b2 = 40 - 30 = 10
  assert metrics.forward_transfer(R, B) == pytest.approx(10.0)
  assert metrics.forward_transfer(R, [10., 40., 10.]) == pytest.approx(((30 - 40) + (40 - 10)) / 2)


def test_no_forgetting_matrix():
  r = np.array([[90., 0.], [90., 80.]])
  assert metrics.forgetting(r) == 0.0 and metrics.backward_transfer(r) == 0.0


def test_single_task_metrics_are_nan_where_undefined():
  r = np.array([[70.]])
  assert metrics.final_average_accuracy(r) == 70.0
  assert math.isnan(metrics.forgetting(r)) and math.isnan(metrics.backward_transfer(r))
  assert math.isnan(metrics.forward_transfer(r, [5.]))


def test_bad_shapes_are_rejected():
  with pytest.raises(ValueError, match='square'):
    metrics.final_average_accuracy(np.zeros((2, 3)))
  with pytest.raises(ValueError, match='initial accuracy'):
    metrics.forward_transfer(R, [1., 2.])


def test_all_metrics_keys():
  assert set(metrics.all_metrics(R, B)) == {'final_avg_acc', 'avg_incremental_acc',
                                            'forgetting', 'bwt', 'fwt'}


def test_the_demos_zero_shot_matrix():
  # experiments/configs/demo.py, method zeroshot (results.json of `make demo`, run seed 0)
  r = np.array([[88.75, 70.0, 65.25, 83.25, 93.75],
                [72.25, 70.0, 57.25, 82.75, 89.5],
                [60.75, 56.5, 57.25, 79.5, 76.25],
                [57.25, 54.5, 39.25, 79.5, 73.75],
                [56.0, 51.0, 39.0, 79.25, 73.75]])
  assert metrics.forgetting(r) == pytest.approx((32.75 + 19.0 + 18.25 + 0.25) / 4)  # 17.5625
  assert metrics.forgetting_all_rows(r) == pytest.approx(20.5)  # what the README showed
