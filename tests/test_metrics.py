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
