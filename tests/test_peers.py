"""The rehearsal-free peers (docs/PEERS.md): class-Gaussian replay, FeTrIL, NCM, RanPAC.

Their pieces against NumPy (class statistics, sampling statistics of every covariance
form, the translation, the ridge solve and its λ choice, the byte counts); whole runs on a
small synthetic stream (the training-free heads' accuracy against a NumPy head, bytes
held, resume bit for bit, 8 devices equal to one); bad settings refused with one line.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from autoseed_jax import continual
from autoseed_jax.core import class_stats
from autoseed_jax.methods.base import MethodRefused
from autoseed_jax.methods.frozen_heads import ranpac_bytes, ranpac_width_for_bytes
from autoseed_jax.streams.synthetic import make_synthetic_stream
from autoseed_jax.tools import checkpoint
from experiments.configs.common import method_config
from helpers.resume_checks import copy_up_to

D = 6
PEERS = ('gauss_replay', 'fetril', 'ncm', 'ncm_text', 'ranpac')


def _unit(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _classes(rng, n_classes=3, rows=50, dim=D):
  """Unit rows of ``n_classes`` anisotropic classes, shuffled, with weights [n, N] and a
  padding row of each kind (a row of no class)."""
  x, y = [], []
  for c in range(n_classes):
    axes = rng.normal(size=(dim, dim)) * np.linspace(1.0, 0.1, dim)[:, None]
    x.append(_unit(rng.normal(size=dim) * 2 + rng.normal(size=(rows, dim)) @ axes * 0.5))
    y.append(np.full(rows, c))
  x, y = np.concatenate(x + [_unit(np.ones((1, dim)))]), np.concatenate(y + [[-1]])
  weights = (y[None, :] == np.arange(n_classes)[:, None]).astype(np.float32)
  return x.astype(np.float32), y, weights


def np_moments(x, weights):
  count = weights.sum(1)
  mean = weights @ x / count[:, None]
  cov = np.stack([(w[:, None] * (x - m)).T @ (x - m) / n
                  for w, m, n in zip(weights, mean, count)])
  return mean, cov


# ---------------------------------------------------------------------------------------
# Pieces against NumPy.


@pytest.mark.parametrize('jit', [False, True])
def test_class_moments_match_numpy(jit):
  x, _, weights = _classes(np.random.default_rng(0))
  means = jax.jit(class_stats.class_means) if jit else class_stats.class_means
  count, mean = means(x, weights)
  cov = class_stats.class_covariances(jnp.asarray(x), jnp.asarray(weights), mean)
  var = class_stats.class_variances(jnp.asarray(x), jnp.asarray(weights), mean)
  want_mean, want_cov = np_moments(x.astype(np.float64), weights)
  np.testing.assert_array_equal(count, [50, 50, 50])
  np.testing.assert_allclose(mean, want_mean, atol=1e-6)
  np.testing.assert_allclose(cov, want_cov, atol=1e-6)
  np.testing.assert_allclose(var, np.diagonal(want_cov, axis1=1, axis2=2), atol=1e-6)
  # Unit rows and the 1/n form: a draw's expected squared norm ‖μ‖² + tr Σ is 1.
  np.testing.assert_allclose(np.sum(want_mean**2, 1) + np.trace(want_cov, axis1=1, axis2=2), 1)


@pytest.mark.parametrize('covariance', class_stats.COVARIANCES)
def test_each_form_stores_the_covariance_numpy_computes(covariance):
  x, _, weights = _classes(np.random.default_rng(1))
  eps, rank = 1e-3, 2
  fitted = class_stats.fit_class_gaussians(jnp.asarray(x), jnp.asarray(weights),
                                           covariance=covariance, rank=rank, shrinkage=eps)
  mean, cov = np_moments(x.astype(np.float64), weights)
  np.testing.assert_allclose(fitted['mean'], mean, atol=1e-6)
  np.testing.assert_allclose(fitted['trace'], np.trace(cov, axis1=1, axis2=2), atol=1e-5)
  scale, factor = np.asarray(fitted['scale'], np.float64), np.asarray(fitted['factor'])
  if covariance == 'diag':
    np.testing.assert_allclose(scale**2, np.diagonal(cov, axis1=1, axis2=2) + eps, atol=1e-6)
  if covariance == 'lowrank':
    values, vectors = np.linalg.eigh(cov)
    top = np.einsum('cdk,ck,cek->cde', vectors[..., -rank:], values[:, -rank:],
                    vectors[..., -rank:])
    np.testing.assert_allclose(np.einsum('crd,cre->cde', factor, factor), top, atol=1e-5)
    # The diagonal is exact: diag(FᵀF) + ψ = diag Σ (+ ε).
    np.testing.assert_allclose(np.diagonal(top, axis1=1, axis2=2) + scale**2,
                               np.diagonal(cov, axis1=1, axis2=2) + eps, atol=1e-5)
  if covariance == 'full':
    chol = np.asarray(fitted['chol'], np.float64)
    np.testing.assert_allclose(chol @ np.swapaxes(chol, 1, 2), cov + eps * np.eye(D), atol=1e-6)
    assert np.allclose(np.triu(chol, 1), 0)


def _memory(covariance, rng, rank=2, eps=1e-3):
  """A memory of 4 slots with classes 0 and 2 stored from ``_classes``."""
  x, _, weights = _classes(rng, n_classes=2)
  memory = class_stats.init_class_memory(4, D, covariance=covariance, rank=rank)
  fitted = class_stats.fit_class_gaussians(jnp.asarray(x), jnp.asarray(weights),
                                           covariance=covariance, rank=rank, shrinkage=eps)
  memory = class_stats.store_classes(memory, jnp.array([0, 2]), fitted, jnp.array([True, True]))
  return memory, fitted


def _model_covariance(memory, c):
  """The covariance a draw of class c should have, by the form's formula."""
  m = jax.tree.map(lambda a: np.asarray(a, np.float64), memory)
  if memory.covariance == 'mean':
    return m.radius[0] ** 2 * np.eye(D)
  if memory.covariance == 'diag':
    return np.diag(m.scale[c] ** 2)
  if memory.covariance == 'lowrank':
    return m.factor[c].T @ m.factor[c] + np.diag(m.scale[c] ** 2)
  return m.chol[c] @ m.chol[c].T


@pytest.mark.parametrize('covariance', class_stats.COVARIANCES)
def test_draws_have_the_stored_mean_and_covariance(covariance):
  memory, _ = _memory(covariance, np.random.default_rng(2))
  n = 40000
  x, label, valid = jax.jit(lambda k: class_stats.sample_class_gaussians(
      memory, k, n, sphere=False))(jax.random.PRNGKey(0))
  x, label, valid = np.asarray(x, np.float64), np.asarray(label), np.asarray(valid)
  assert x.shape == (4 * n, D)
  np.testing.assert_array_equal(label, np.repeat(np.arange(4), n))
  np.testing.assert_array_equal(valid, np.repeat([True, False, True, False], n))
  for c in (0, 2):
    rows = x[label == c]
    want = _model_covariance(memory, c)
    np.testing.assert_allclose(rows.mean(0), np.asarray(memory.mean[c]),
                               atol=4 * np.sqrt(np.diag(want).max() / n))
    np.testing.assert_allclose(np.cov(rows.T, bias=True), want, atol=0.03 * np.abs(want).max())
  sphere, _, ok = class_stats.sample_class_gaussians(memory, jax.random.PRNGKey(1), 5)
  norms = np.linalg.norm(np.asarray(sphere)[np.asarray(ok)], axis=-1)
  np.testing.assert_allclose(norms, 1.0, atol=1e-5)


def test_the_shared_radius_is_the_running_mean_of_trace_over_d():
  rng = np.random.default_rng(3)
  x, _, weights = _classes(rng, n_classes=3)
  memory = class_stats.init_class_memory(5, D, covariance='mean')
  fitted = class_stats.fit_class_gaussians(jnp.asarray(x), jnp.asarray(weights),
                                           covariance='mean')
  first = class_stats.store_classes(memory, jnp.array([0, 1, 4]), fitted,
                                    jnp.array([True, True, False]))
  second = class_stats.store_classes(first, jnp.array([3, 3, 2]), fitted,
                                     jnp.array([False, False, True]))
  _, cov = np_moments(x.astype(np.float64), weights)
  trace = np.trace(cov, axis1=1, axis2=2)
  np.testing.assert_allclose(first.radius[0] ** 2, trace[:2].mean() / D, rtol=1e-5)
  np.testing.assert_allclose(second.radius[0] ** 2, trace.mean() / D, rtol=1e-5)
  np.testing.assert_array_equal(second.valid, [True, True, True, False, False])


@pytest.mark.parametrize('covariance, rank, per_class', [
    ('mean', 0, 4 * D + 1), ('diag', 0, 8 * D + 1), ('lowrank', 2, 4 * D * (2 + 2) + 1),
    ('lowrank', 5, 4 * D * (5 + 2) + 1), ('full', 0, 4 * D + 4 * D * D + 1)])
def test_byte_counts_of_each_form(covariance, rank, per_class):
  memory = class_stats.init_class_memory(7, D, covariance=covariance, rank=rank)
  shared = 4 if covariance == 'mean' else 0
  assert class_stats.bytes_per_class(memory) == per_class
  assert class_stats.shared_bytes(memory) == shared
  assert int(class_stats.nbytes(memory)) == 0  # nothing stored yet
  memory = memory.replace(valid=memory.valid.at[jnp.array([1, 4, 6])].set(True))
  assert int(class_stats.nbytes(memory)) == 3 * per_class + shared
  # Every leaf of the pytree is counted: its bytes are the slots' share plus the shared.
  total = sum(a.nbytes for a in jax.tree.leaves(memory))
  assert total == 7 * per_class + shared
  if covariance == 'mean':  # FeTrIL's means keep no radius
    bare = class_stats.init_class_memory(7, D, covariance='mean', shared_radius=False)
    assert class_stats.shared_bytes(bare) == 0 and class_stats.bytes_per_class(bare) == per_class


def test_the_plan_fills_the_budget_with_rank_and_refuses_what_does_not_fit():
  rank, total = class_stats.class_memory_plan('lowrank', 16, 6, 2000)
  assert rank == (2000 // 6 - (8 * 16 + 1)) // (4 * 16) == 3
  assert total == 6 * (4 * 16 * 5 + 1) <= 2000
  assert class_stats.class_memory_plan('lowrank', 16, 6, 10**6)[0] == 16  # at most d
  assert class_stats.class_memory_plan('diag', 16, 6, 2000) == (0, 6 * 129)
  for form, rank, budget, message in (
      ('full', 0, 2000, r"covariance 'full' needs 6534 bytes for 6 classes"),
      ('lowrank', 0, 700, 'needs 1158 bytes at rank 1'),
      ('lowrank', 4, 2000, 'at rank 4 needs 2310 bytes')):
    with pytest.raises(class_stats.BudgetTooSmall, match=message) as error:
      class_stats.class_memory_plan(form, 16, 6, budget, rank=rank)
    assert '\n' not in str(error.value)


def test_translation_matches_numpy_and_draws_rows_of_the_current_task():
  rng = np.random.default_rng(4)
  pool_x = _unit(rng.normal(size=(10, D))).astype(np.float32)
  pool_y = np.array([1, 3, 1, 3, 3, 1, 3, 0, 0, 0])  # rows 7.. are padding
  count = 7
  pool_means = np.zeros((4, D), np.float32)
  for c in (1, 3):
    pool_means[c] = pool_x[:count][pool_y[:count] == c].mean(0)
  memory = class_stats.init_class_memory(4, D, covariance='mean', shared_radius=False)
  memory = memory.replace(mean=jnp.asarray(rng.normal(size=(4, D)) * 0.3, jnp.float32),
                          valid=jnp.array([True, False, True, False]))
  out = class_stats.translate(pool_x[0], pool_means[1], memory.mean[2])
  want = pool_x[0] - pool_means[1] + np.asarray(memory.mean[2])
  np.testing.assert_allclose(out, want / np.linalg.norm(want), atol=1e-6)
  x, label, valid = class_stats.translated_pseudo_features(
      jax.random.PRNGKey(0), pool_x, pool_y, jnp.int32(count), pool_means, memory, 50,
      sphere=False)
  x = np.asarray(x)
  deviations = pool_x[:count] - pool_means[pool_y[:count]]  # the real rows' offsets
  source = x - np.repeat(np.asarray(memory.mean), 50, axis=0)
  distance = np.abs(source[:, None, :] - deviations[None]).max(-1)  # [200, count]
  assert distance.min(1).max() < 1e-6  # every pseudo-feature is a translated real row
  assert len(set(distance.argmin(1).tolist())) == count  # and all of them are drawn
  np.testing.assert_array_equal(label, np.repeat(np.arange(4), 50))
  np.testing.assert_array_equal(valid, np.repeat([True, False, True, False], 50))


def test_statistics_and_ridge_solve_match_numpy():
  rng = np.random.default_rng(5)
  x = _unit(rng.normal(size=(30, D))).astype(np.float32)
  y = rng.integers(0, 4, 30)
  weights = (np.arange(30) < 26).astype(np.float32)
  projection = rng.normal(size=(D, 20)).astype(np.float32)
  features = np.asarray(class_stats.random_features(x, projection), np.float64)
  np.testing.assert_allclose(features, np.maximum(x.astype(np.float64) @ projection, 0),
                             atol=1e-5)
  gram0, sums0 = rng.normal(size=(20, 20)), rng.normal(size=(20, 4))
  gram0 = (gram0 @ gram0.T).astype(np.float32)
  gram, sums = class_stats.accumulate_statistics(gram0, sums0.astype(np.float32), features
                                                 .astype(np.float32), y, weights)
  onehot = np.eye(4)[y]
  np.testing.assert_allclose(gram, gram0 + (features * weights[:, None]).T @ features,
                             rtol=1e-5, atol=1e-4)
  np.testing.assert_allclose(sums, sums0 + (features * weights[:, None]).T @ onehot,
                             rtol=1e-5, atol=1e-4)
  gram32, sums32 = np.asarray(gram), np.asarray(sums)
  gram, sums = gram32.astype(np.float64), sums32.astype(np.float64)
  for ridge in (0.5, 10.0):
    np.testing.assert_allclose(class_stats.ridge_solve(gram32, sums32, ridge),
                               np.linalg.solve(gram + ridge * np.eye(20), sums),
                               rtol=1e-3, atol=1e-5)
  grid = np.array([0.01, 1.0, 100.0], np.float32)
  mask = np.array([True, True, False, True])
  errors = class_stats.ridge_errors(gram32, sums32, features.astype(np.float32), y, weights,
                                    mask, grid)
  for ridge, error in zip(grid, np.asarray(errors)):
    residual = features @ np.linalg.solve(gram + ridge * np.eye(20), sums) - onehot
    want = ((residual**2)[:, mask].mean(1) * weights).sum() / weights.sum()
    np.testing.assert_allclose(error, want, rtol=1e-3)


def test_ranpac_width_for_bytes_is_the_largest_that_fits():
  for budget, classes in ((154_250, 10), (154_250, 20), (1_542_500, 10), (10, 10)):
    width = ranpac_width_for_bytes(budget, classes)
    assert ranpac_bytes(width, classes) <= budget < ranpac_bytes(width + 1, classes)
  assert ranpac_width_for_bytes(154_250, 10) == 191


# ---------------------------------------------------------------------------------------
# Whole runs on a small synthetic stream.

BUDGET = 2000  # bytes: lowrank rank 3 for 6 classes of d = 16


def small_config(method, **overrides):
  c = method_config()
  c.method = method
  c.steps_per_task, c.steps_per_chunk = 20, 10
  c.adapter_hidden, c.plus_memory_bytes, c.ranpac_dim = 32, BUDGET, 64
  for name, value in overrides.items():
    c[name] = value
  return c


@pytest.fixture(scope='module')
def stream():
  return make_synthetic_stream(num_tasks=3, classes_per_task=2, dim=16, train_per_class=40,
                               test_per_class=20, seed=0)


@pytest.fixture(scope='module')
def runs(stream):
  out = {}
  for label, method, overrides in (
      ('zeroshot', 'zeroshot', {}), ('finetune', 'finetune', {}),
      ('gauss_mean', 'gauss_replay', {'gauss_covariance': 'mean'}),
      ('gauss_lowrank', 'gauss_replay', {'gauss_covariance': 'lowrank'}),
      ('fetril', 'fetril', {}), ('ncm', 'ncm', {}),
      ('ncm_text', 'ncm_text', {'ncm_text_weight': 0.5}),
      ('ranpac', 'ranpac', {})):
    out[label] = continual.run_sequence(small_config(method, **overrides), stream)
  return out


def _real_rows(stream):
  x = np.concatenate([np.asarray(t.train_x)[:int(t.train_count)] for t in stream.tasks])
  y = np.concatenate([np.asarray(t.train_y)[:int(t.train_count)] for t in stream.tasks])
  return x.astype(np.float64), y


def _accuracy_row(stream, scores):
  """R[T-1, :] of ``scores(x) -> [N, C]`` over every class (all are seen at the end)."""
  test = stream.test
  row = []
  for j in range(stream.num_tasks):
    n = int(test.count[j])
    pred = np.argmax(scores(np.asarray(test.x[j][:n], np.float64)), axis=1)
    row.append(100.0 * np.mean(pred == np.asarray(test.y[j][:n])))
  return np.array(row)


@pytest.mark.parametrize('label, beta', [('ncm', 0.0), ('ncm_text', 0.5)])
def test_ncm_heads_equal_a_numpy_nearest_class_mean(runs, stream, label, beta):
  x, y = _real_rows(stream)
  prototypes = _unit(np.stack([x[y == c].mean(0) for c in range(stream.num_classes)]))
  text = _unit(np.asarray(stream.test.class_text, np.float64))
  want = _accuracy_row(stream, lambda q: (1 - beta) * _unit(q) @ prototypes.T
                       + beta * _unit(q) @ text.T)
  result = runs[label]
  np.testing.assert_allclose(result.acc_matrix[-1], want, atol=1e-3)
  # Nothing learned: the initial model is exactly the zero-shot backbone.
  np.testing.assert_array_equal(result.initial_acc, runs['zeroshot'].initial_acc)
  assert result.memory_bytes == stream.num_classes * (4 * 16 + 1)


def test_ranpac_head_is_the_numpy_ridge_solution_with_the_best_validation_ridge(runs, stream):
  result = runs['ranpac']
  extras = jax.tree.map(lambda a: np.asarray(a, np.float64), result.state.extras)
  features = lambda q: np.maximum(q @ extras['projection'], 0.0)
  x, y = _real_rows(stream)
  gram, sums = features(x).T @ features(x), features(x).T @ np.eye(stream.num_classes)[y]
  np.testing.assert_allclose(extras['gram'], gram, rtol=1e-4, atol=1e-3)
  np.testing.assert_allclose(extras['class_sums'], sums, rtol=1e-4, atol=1e-3)
  # λ of the last task: its D_t^val error is the least over the grid (within float32).
  task = stream.tasks[-1]
  val_x = np.asarray(task.val_x, np.float64)[:int(task.val_count)]
  val_y = np.asarray(task.val_y)[:int(task.val_count)]
  errors = {r: np.mean((features(val_x) @ np.linalg.solve(gram + r * np.eye(64), sums)
                        - np.eye(stream.num_classes)[val_y]) ** 2)
            for r in (0.1, 1.0, 10.0, 100.0, 1e3, 1e4, 1e5)}
  assert errors[float(extras['ridge'])] <= min(errors.values()) * 1.001
  head = np.linalg.solve(gram + extras['ridge'] * np.eye(64), sums)
  np.testing.assert_allclose(extras['head'], head, rtol=2e-3, atol=1e-4)
  want = _accuracy_row(stream, lambda q: features(q) @ head)
  np.testing.assert_allclose(result.acc_matrix[-1], want, atol=1e-3)
  assert result.memory_bytes == 4 * 64 * 64 + (4 * 64 + 1) * stream.num_classes
  np.testing.assert_array_equal(result.initial_acc, runs['zeroshot'].initial_acc)


def test_statistics_replays_hold_their_bytes_and_forget_less_than_finetuning(runs, stream):
  c = stream.num_classes
  assert runs['gauss_mean'].memory_bytes == c * (4 * 16 + 1) + 4
  assert runs['gauss_lowrank'].memory_bytes == c * (4 * 16 * (3 + 2) + 1) <= BUDGET
  assert runs['gauss_lowrank'].state.extras['classes'].rank == 3
  assert runs['fetril'].memory_bytes == c * (4 * 16 + 1)
  for label in ('gauss_mean', 'gauss_lowrank', 'fetril'):
    print(label, runs[label].metrics, runs['finetune'].metrics)
    assert runs[label].metrics['forgetting'] < runs['finetune'].metrics['forgetting'] - 5
    assert runs[label].metrics['final_avg_acc'] > runs['finetune'].metrics['final_avg_acc']


def test_gaussian_replay_of_the_means_is_kmeans_seeds_replay_of_the_same_points(runs, stream):
  """A class memory whose draws are exactly points v_c (radius 0, one draw per class,
  projected) gives the same loss terms as a seed memory holding those points: the replay
  and consistency terms are the seed family's."""
  from autoseed_jax.core import seeds  # pylint: disable=import-outside-toplevel
  config = dict(gauss_covariance='mean', gauss_samples_per_class=1, gauss_sphere=True)
  gauss = continual.build_learner(small_config('gauss_replay', **config), stream)
  kmeans = continual.build_learner(small_config('kmeans_seeds'), stream)
  rng = np.random.default_rng(6)
  stored = np.array([0, 1, 3])
  points = _unit(rng.normal(size=(3, 16))).astype(np.float32)
  seen = jnp.arange(stream.num_classes) < 4
  common = dict(params=runs['finetune'].state.params, seen=seen, prev_seen=seen.at[2:].set(False),
                class_bank=jnp.asarray(stream.test.class_text))
  test = gauss.put_test(stream.test)
  state = gauss.init(jax.random.PRNGKey(0), test).replace(**common)
  memory = state.extras['classes']
  memory = memory.replace(mean=memory.mean.at[stored].set(points),
                          valid=memory.valid.at[stored].set(True), radius=jnp.zeros((1,)))
  state = state.replace(extras={'classes': memory})
  seed_state = kmeans.init(jax.random.PRNGKey(0), test).replace(**common)
  seed_state = seed_state.replace(memory=seeds.add_seeds(seed_state.memory, seeds.make_seeds(
      jnp.asarray(points), jnp.zeros((3, 0)), stored, 0)))
  x, y = stream.tasks[1].train_x[:8], stream.tasks[1].train_y[:8]
  key = jax.random.PRNGKey(1)
  total, terms = gauss.method.extra_loss(state.params, state, x, y, key)
  want_total, want_terms = kmeans.method.extra_loss(seed_state.params, seed_state, x, y, key)
  assert set(terms) == set(want_terms) == {'replay', 'consistency'}
  assert float(want_terms['consistency']) > 0
  for name in terms:
    np.testing.assert_allclose(terms[name], want_terms[name], rtol=1e-5)
  np.testing.assert_allclose(total, want_total, rtol=1e-5)


def _resume_check(stream, tmp_path, config, resume_at):
  """Runs ``config`` with a checkpoint per chunk, then from copies cut after each
  checkpoint in ``resume_at`` (the test_resume.py pattern): every resumed run ends
  bit-identical to the engine's own loop."""
  from test_resume import Small, run  # pylint: disable=import-outside-toplevel
  learner = continual.build_learner(config, stream)
  reference = continual.run_sequence(config, stream, learner=learner)
  small = Small(stream, config, learner, checkpoint.state_digest(reference.state))
  full = tmp_path / 'full'
  result, _ = run(small, full, keep=100)
  assert checkpoint.state_digest(result.state) == small.reference_digest
  ids = checkpoint.CheckpointStore(str(full), keep=100).ids()
  for ckpt_id in resume_at(ids):
    partial = tmp_path / f'upto{ckpt_id}'
    copy_up_to(full, partial, ids, ckpt_id)
    resumed, lines = run(small, partial)
    assert any(line.startswith(f'resuming from checkpoint {ckpt_id} ') for line in lines)
    assert checkpoint.state_digest(resumed.state) == small.reference_digest, ckpt_id
  return ids


@pytest.mark.parametrize('method, overrides', [
    ('gauss_replay', {'gauss_covariance': 'lowrank'}), ('fetril', {})])
def test_replays_resume_bit_identical_mid_task_and_at_a_boundary(stream, tmp_path, method,
                                                                 overrides):
  ids = _resume_check(stream, tmp_path, small_config(method, **overrides),
                      lambda ids: (ids[3], ids[2]))  # mid task 2, after task 1
  assert ids == [10, 20, 21, 31, 41, 42, 52, 62, 63]


def test_a_training_free_head_resumes_bit_identical(stream, tmp_path):
  ids = _resume_check(stream, tmp_path, small_config('ranpac'), lambda ids: ids[:2])
  assert ids == [1, 2, 3]  # one checkpoint per task: nothing to adapt


def test_eight_devices_equal_one_device():
  from helpers.device_runs import run_on_eight_devices  # pylint: disable=import-outside-toplevel
  out = run_on_eight_devices('peers_parallel_check.py')
  for label, forms in out.items():
    one = forms['one']
    for form in ('jit8', 'pmap8'):
      many = forms[form]
      np.testing.assert_allclose(many['acc_matrix'], one['acc_matrix'], atol=1e-4,
                                 err_msg=f'{label} {form}')
      assert many['memory_bytes'] == one['memory_bytes']
      for a, b in zip(one['params'], many['params']):
        np.testing.assert_allclose(b, a, atol=1e-5, err_msg=f'{label} {form}')
      for name, a in one['extras'].items():
        scale = max(np.abs(a).max(initial=0.0), 1.0)
        np.testing.assert_allclose(many['extras'][name], a, atol=1e-4 * scale,
                                   err_msg=f'{label} {form} {name}')


# ---------------------------------------------------------------------------------------
# Bad settings.


@pytest.mark.parametrize('method, field, value', [
    ('gauss_replay', 'gauss_rank', -1), ('gauss_replay', 'gauss_samples_per_class', 0),
    ('gauss_replay', 'gauss_shrinkage', -1e-4), ('fetril', 'fetril_samples_per_class', 0),
    ('gauss_replay', 'plus_consistency_weight', -1.0),  # the family's fields are checked too
    ('ncm_text', 'ncm_text_weight', 1.5), ('ranpac', 'ranpac_dim', -1)])
def test_numeric_fields_are_refused_without_a_stream(method, field, value):
  with pytest.raises(ValueError, match=f'^invalid config: {field}={value!r} must be ') as e:
    continual.validate_config(small_config(method, **{field: value}))
  assert '\n' not in str(e.value)


@pytest.mark.parametrize('method, overrides, message', [
    ('gauss_replay', {'gauss_covariance': 'wishart'}, "gauss_covariance='wishart'; choose"),
    ('gauss_replay', {'gauss_covariance': 'full', 'gauss_shrinkage': 0.0},
     'needs gauss_shrinkage > 0'),
    ('ranpac', {'ranpac_ridges': (1.0, 0.0)}, 'ranpac_ridges=.* must be positive')])
def test_choices_are_refused_without_a_stream(method, overrides, message):
  with pytest.raises(ValueError, match=message) as e:
    continual.validate_config(small_config(method, **overrides))
  assert '\n' not in str(e.value)


@pytest.mark.parametrize('method, overrides, message', [
    ('gauss_replay', {'gauss_covariance': 'full'}, 'needs 6534 bytes for 6 classes'),
    ('gauss_replay', {'gauss_rank': 4}, 'at rank 4 needs 2310 bytes'),
    ('gauss_replay', {'plus_memory_bytes': 500}, 'needs 1158 bytes at rank 1'),
    ('fetril', {'plus_memory_bytes': 300}, 'fetril with covariance .mean. needs 390 bytes'),
    ('ranpac', {'ranpac_dim': 0, 'plus_memory_bytes': 20}, 'fits no projection width')])
def test_memories_over_the_byte_budget_are_refused_in_one_line(stream, method, overrides,
                                                                message):
  with pytest.raises(class_stats.BudgetTooSmall, match=message) as e:  # a ValueError
    continual.build_learner(small_config(method, **overrides), stream)
  assert '\n' not in str(e.value)


@pytest.mark.parametrize('method', [m for m in PEERS if m != 'gauss_replay'])  # its pair
def test_vision_language_kinds_are_refused_with_the_reason(method):  # form: test_gauss_pairs
  from helpers.vl_mock import (mock_vl_stream,  # pylint: disable=import-outside-toplevel
                               small_vl_config)
  stream = mock_vl_stream(images=8)
  config = small_vl_config(method, plus_memory_bytes=10**6, ranpac_dim=16)
  with pytest.raises(MethodRefused, match=f"{method}' cannot run task kind 'retrieval'.*"
                     '(image embeddings of each class|one output per class)'):
    continual.build_learner(config, stream)


def test_a_ranpac_width_from_the_budget_fills_it(stream):
  learner = continual.build_learner(small_config('ranpac', ranpac_dim=0), stream)
  width = ranpac_width_for_bytes(BUDGET, stream.num_classes)
  state = learner.init(jax.random.PRNGKey(0), learner.put_test(stream.test))
  assert state.extras['gram'].shape == (width, width) and learner.adapt is None


def test_the_defaults_are_the_settings_chosen_on_the_development_streams():
  """experiments/tune_peers.py's choices (experiments/tuning/peers_*) are what the methods
  use."""
  import json  # pylint: disable=import-outside-toplevel
  from autoseed_jax.methods import (class_gaussian,  # pylint: disable=import-outside-toplevel
                                    frozen_heads)
  from experiments import tune_peers  # pylint: disable=import-outside-toplevel
  for stage in tune_peers.ORDER:
    record = json.loads((tune_peers.REPO / 'experiments' / 'tuning' / f'peers_{stage}.json')
                        .read_text())
    assert record['streams'] == ['animals-ci-dev', 'digits-ci-dev', 'animals-digits-dev']
    assert record['seeds'] == [0, 1, 2] and record['chosen']
    assert all(r['final_avg_acc'] is not None for r in record['runs'])
  chosen = tune_peers.chosen_settings()
  assert set(chosen) == {'gauss_samples_per_class', 'gauss_sphere', 'gauss_covariance',
                         'fetril_samples_per_class', 'fetril_sphere', 'ncm_text_weight',
                         'ranpac_dim'}
  used = {**class_gaussian.defaults(), **frozen_heads.defaults(), **method_config().to_dict()}
  assert {name: used[name] for name in chosen} == chosen
