"""Data parallelism on 8 simulated CPU devices equals one device (jit+sharding and pmap)."""

import jax
import numpy as np
import pytest

from helpers.device_runs import run_on_eight_devices


@pytest.fixture(scope='module')
def results():
  return run_on_eight_devices('parallel_check.py')


def _max_diff(a, b):
  return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.mark.parametrize('form', ['jit8', 'pmap8'])
def test_training_step_matches_one_device(results, form):
  assert _max_diff(results['one']['step_params'], results[form]['step_params']) < 1e-6


@pytest.mark.parametrize('form', ['jit8', 'pmap8'])
def test_meta_update_matches_one_device(results, form):
  assert _max_diff(results['one']['gen_params'], results[form]['gen_params']) < 1e-5
  assert results[form]['meta_loss_last'] == pytest.approx(results['one']['meta_loss_last'],
                                                          rel=1e-5)


@pytest.mark.parametrize('form', ['jit8', 'pmap8'])
def test_whole_run_matches_one_device(results, form):
  np.testing.assert_allclose(results[form]['acc_matrix'], results['one']['acc_matrix'],
                             atol=1e-4)
  assert _max_diff(results['one']['memory_v'], results[form]['memory_v']) < 1e-4


def test_jit_form_really_shards_the_task_rows(results):
  assert "spec=P('data',)" in results['jit8']['train_x_sharding']
  assert "'data': 8" in results['jit8']['train_x_sharding']


def test_embedding_extraction_is_data_parallel_and_matches_one_device(results):
  assert "'data': 8" in results['embedding_sharding']
  assert results['embedding_max_diff'] < 1e-5
