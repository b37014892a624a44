"""The pair form of the class-Gaussian replay (docs/PEERS.md, "pair form"): gauss_replay on
every task kind of a vision-language stream.

Group Gaussians against NumPy (bank groups over x, pair groups over [x ; t] / √2), the
draws split into normalised halves with the bank text as a bank group's w; the bytes
(a pair group pays for its text half) and the plan within the budget; a whole mock stream
of every kind; resume; bad settings named.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from autoseed_jax import continual
from autoseed_jax.core import class_stats, group_stats
from autoseed_jax.methods.autoseed_plus import family_budget_bytes
from helpers.resume_checks import assert_resumes_bit_identically
from helpers.vl_mock import mock_vl_stream, small_vl_config

D = 16
C = 6  # bank entries of the mock stream: classes 0-2, answers 3-5
BUDGET = 20000


def _unit(x):
  return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


@pytest.fixture(scope='module')
def stream():
  return mock_vl_stream(dim=D)  # retrieval, captioning, classification, VQA


def _stored(stream, covariance, rank=0):
  """Both memories after fitting and storing every task of the stream (no training)."""
  num_bank, num_pair = group_stats.group_slots(C, stream.vl)
  bank, pairs = group_stats.init_group_memory(num_bank, num_pair, D, covariance=covariance,
                                              rank=rank)
  for task in stream.tasks:
    groups, bank_fit, pair_fit = group_stats.fit_groups(task, covariance=covariance,
                                                        rank=rank, shrinkage=1e-4)
    bank, pairs = group_stats.store_groups(bank, pairs, groups, bank_fit, pair_fit)
  return bank, pairs


def _np_groups(stream):
  """{label: (rows fitted [n, d or 2d], is_pair)} of every group of the stream."""
  out = {}
  for task, kind in zip(stream.tasks, stream.vl.kinds):
    n = int(task.train_count)
    x, t = np.asarray(task.train_x)[:n], np.asarray(task.train_text)[:n]
    if kind in ('retrieval', 'captioning'):
      ids = np.asarray(task.train_group)[:n]
      points = np.concatenate([x, t], axis=1) / np.sqrt(2.0)
    else:
      ids, points = np.asarray(task.train_y)[:n], x
    for label in np.unique(ids):
      out[int(label)] = (points[ids == label], kind in ('retrieval', 'captioning'))
  return out


def test_group_gaussians_are_the_numpy_moments_of_x_or_the_joint_points(stream):
  truth = _np_groups(stream)
  assert {g for g, (_, pair) in truth.items() if not pair} == set(range(C))
  pair_labels = sorted(g for g, (_, pair) in truth.items() if pair)
  assert len(pair_labels) == 6 and min(pair_labels) >= C
  for covariance in ('diag', 'full'):
    bank, pairs = jax.tree.map(np.asarray, _stored(stream, covariance))
    assert bank.mean.shape == (C, D) and pairs.mean.shape[1] == 2 * D
    np.testing.assert_array_equal(np.flatnonzero(bank.valid), range(C))
    np.testing.assert_array_equal(np.flatnonzero(pairs.valid), np.array(pair_labels) - C)
    for label, (rows, pair) in truth.items():
      memory, slot = (pairs, label - C) if pair else (bank, label)
      mean = rows.mean(0)
      cov = (rows - mean).T @ (rows - mean) / len(rows)
      np.testing.assert_allclose(memory.mean[slot], mean, atol=1e-5)
      if covariance == 'diag':
        np.testing.assert_allclose(memory.scale[slot] ** 2, np.diag(cov) + 1e-4, atol=1e-5)
      else:
        chol = memory.chol[slot]
        np.testing.assert_allclose(chol @ chol.T, cov + 1e-4 * np.eye(len(mean)), atol=1e-5)


def test_draws_split_into_normalised_halves_and_bank_draws_take_the_bank_text(stream):
  bank, pairs = _stored(stream, 'lowrank', rank=2)
  bank_text = jnp.asarray(_unit(np.asarray(stream.test.class_text)))
  key, per = jax.random.PRNGKey(3), 400
  v, w, label, valid = map(np.asarray, jax.jit(lambda k: group_stats.sample_groups(
      bank, pairs, bank_text, k, per, sphere=True))(key))
  num_pair = pairs.valid.shape[0]
  assert v.shape == w.shape == ((C + num_pair) * per, D)
  np.testing.assert_array_equal(label, np.repeat(np.arange(C + num_pair), per))
  np.testing.assert_array_equal(valid, np.repeat(np.concatenate(
      [np.asarray(bank.valid), np.asarray(pairs.valid)]), per))
  # The same draws by hand: bank draws on the sphere, pair draws' halves normalised.
  k_bank, k_pair = jax.random.split(key)
  bank_x = np.asarray(class_stats.sample_class_gaussians(bank, k_bank, per, sphere=True)[0])
  joint = np.asarray(class_stats.sample_class_gaussians(pairs, k_pair, per, sphere=False)[0])
  nb = C * per
  np.testing.assert_allclose(v[:nb], bank_x, atol=1e-6)
  np.testing.assert_allclose(w[:nb], np.asarray(bank_text)[label[:nb]], atol=1e-6)
  np.testing.assert_allclose(v[nb:], _unit(joint[:, :D]), atol=1e-5)
  np.testing.assert_allclose(w[nb:], _unit(joint[:, D:]), atol=1e-5)
  np.testing.assert_allclose(np.linalg.norm(v[valid], axis=1), 1.0, atol=1e-5)
  np.testing.assert_allclose(np.linalg.norm(w[valid], axis=1), 1.0, atol=1e-5)
  # A pair group's draws sit near its members' image and caption means.
  for label_g, (rows, pair) in _np_groups(stream).items():
    if pair:
      own = (label == label_g) & valid
      assert _unit(v[own].mean(0)) @ _unit(rows[:, :D].mean(0)) > 0.95
      assert _unit(w[own].mean(0)) @ _unit(rows[:, D:].mean(0)) > 0.95


@pytest.mark.parametrize('covariance, bank_bytes, pair_bytes', [
    ('mean', 4 * D + 1, 8 * D + 1),              # + one radius per memory (4 bytes each)
    ('diag', 4 * D * 2 + 1, 8 * D * 2 + 1),
    ('lowrank', 4 * D * (3 + 2) + 1, 8 * D * (3 + 2) + 1),
    ('full', 4 * D * (D + 1) + 1, 8 * D * (2 * D + 1) + 1),
])
def test_a_pair_group_pays_for_its_text_half_a_bank_group_does_not(stream, covariance,
                                                                    bank_bytes, pair_bytes):
  bank, pairs = _stored(stream, covariance, rank=3)
  shared = 8 if covariance == 'mean' else 0
  assert class_stats.bytes_per_class(bank) == bank_bytes
  assert class_stats.bytes_per_class(pairs) == pair_bytes
  assert int(group_stats.nbytes(bank, pairs)) == C * bank_bytes + 6 * pair_bytes + shared
  # The plan pays for every slot: C bank groups, num_groups - C pair groups.
  num_bank, num_pair = group_stats.group_slots(C, stream.vl)
  assert (num_bank, num_pair) == (C, stream.vl.num_groups - C) == (6, 9)
  want = C * bank_bytes + num_pair * pair_bytes + shared
  rank, total = group_stats.group_memory_plan(covariance, D, num_bank, num_pair, want, rank=3)
  assert total == want
  with pytest.raises(class_stats.BudgetTooSmall, match='pair form') as e:
    group_stats.group_memory_plan(covariance, D, num_bank, num_pair, want - 1, rank=3)
  assert '\n' not in str(e.value)


def test_the_low_rank_plan_takes_the_largest_rank_that_fits_and_no_pairs_cost_nothing(stream):
  cost = lambda r, p: C * (4 * D * (r + 2) + 1) + p * (8 * D * (r + 2) + 1)
  for budget in (cost(1, 9), cost(4, 9) + 100, cost(7, 9) - 1, 10**7):
    rank, total = group_stats.group_memory_plan('lowrank', D, C, 9, budget)
    assert total == cost(rank, 9) <= budget
    assert rank == D or cost(rank + 1, 9) > budget
  with pytest.raises(class_stats.BudgetTooSmall, match='needs 4623 bytes at rank 1'):
    group_stats.group_memory_plan('lowrank', D, C, 9, cost(1, 9) - 1)
  vqa_only = mock_vl_stream(dim=D, images=8, kinds=('classification', 'vqa'))
  assert group_stats.group_slots(C, vqa_only.vl) == (C, 0)  # VQA clusters are never groups
  assert group_stats.group_memory_plan('diag', D, C, 0, 10**6) == (0, C * (8 * D + 1))


@pytest.fixture(scope='module')
def lowrank_run(stream):
  config = small_vl_config('gauss_replay', steps_per_task=8, plus_memory_bytes=BUDGET)
  return config, continual.run_sequence(config, stream)


@pytest.mark.parametrize('covariance', ['lowrank', 'mean'])
def test_gauss_replay_runs_every_kind_within_its_byte_budget(stream, lowrank_run, covariance):
  if covariance == 'lowrank':
    config, result = lowrank_run
  else:
    config = small_vl_config('gauss_replay', steps_per_task=8, plus_memory_bytes=BUDGET,
                             gauss_covariance=covariance)
    result = continual.run_sequence(config, stream)
  assert np.isfinite(result.acc_matrix).all()
  bank, pairs = result.state.extras['classes'], result.state.extras['pairs']
  assert int(bank.num_valid()) == C and int(pairs.num_valid()) == 6
  assert result.memory_bytes == int(group_stats.nbytes(bank, pairs))
  assert family_budget_bytes(config, D) == BUDGET
  _, planned = group_stats.group_memory_plan(covariance, D, C, 9, BUDGET, rank=bank.rank)
  assert result.memory_bytes == planned - 3 * class_stats.bytes_per_class(pairs) <= BUDGET
  if covariance == 'lowrank':  # the rank fills the budget
    assert bank.rank == pairs.rank == 11
    assert planned + C * 4 * D + 9 * 8 * D > BUDGET
  # The replay of the stored groups: answer / class CE, InfoNCE, consistency, all finite.
  learner = continual.build_learner(config, stream)
  total, terms = learner.method.extra_loss(result.state.params, result.state, None, None,
                                           jax.random.PRNGKey(0))
  assert np.isfinite(float(total)) and float(total) > 0
  assert {'replay', 'consistency', 'pair_consistency'} <= set(terms)


def test_resume_on_every_kind_is_bit_identical(stream, tmp_path):
  config = small_vl_config('gauss_replay', steps_per_task=8, plus_memory_bytes=BUDGET)
  assert_resumes_bit_identically(config, stream, tmp_path)


@pytest.mark.parametrize('overrides, error, message', [
    ({'gauss_covariance': 'wishart'}, ValueError, "gauss_covariance='wishart'"),
    ({'gauss_samples_per_class': 0}, ValueError, 'gauss_samples_per_class'),
    ({'plus_pair_positives': 'all'}, ValueError, 'plus_pair_positives'),
    ({'gauss_covariance': 'full', 'gauss_shrinkage': 0.0}, ValueError, 'gauss_shrinkage'),
    ({}, class_stats.BudgetTooSmall, r'pair form.*lowrank.*needs 4623 bytes at rank 1'),
    ({'gauss_covariance': 'full', 'plus_memory_bytes': BUDGET}, class_stats.BudgetTooSmall,
     'needs 44559 bytes for 6 bank groups'),
])
def test_bad_settings_on_a_vision_language_stream_are_named(stream, overrides, error, message):
  with pytest.raises(error, match=message) as e:
    continual.build_learner(small_vl_config('gauss_replay', **overrides), stream)
  assert '\n' not in str(e.value)

