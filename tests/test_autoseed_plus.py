"""autoseed_plus, the summary-seed baselines and their pieces (docs/autoseed_plus.md).

The new loss terms against NumPy (with and without jit); k-means and per-class sampling;
on a synthetic stream whose classes are multimodal (three clusters each), the variant
keeps distinct seeds per class that cover every cluster, and every seed method stays
within its byte budget.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized

from autoseed_jax import continual
from autoseed_jax.core import kmeans, losses, seeds, tasks
from autoseed_jax.methods.autoseed_plus import class_mmd, memory_plan
from autoseed_jax.methods.autoseed import text_prototypes
from experiments.configs.common import method_config

D = 16
CLUSTERS = 3


def _unit(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def np_rbf(a, b, bandwidths):
  sq = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
  return np.mean([np.exp(-sq / (2 * s * s)) for s in bandwidths], axis=0)


def np_mmd(x, y, bandwidths):
  return (np_rbf(x, x, bandwidths).mean() + np_rbf(y, y, bandwidths).mean()
          - 2 * np_rbf(x, y, bandwidths).mean())


class NewLossesTest(chex.TestCase, parameterized.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_mmd_matches_numpy_on_the_valid_rows(self):
    rng = np.random.default_rng(0)
    x = _unit(rng.normal(size=(6, 5))).astype(np.float32)
    y = _unit(rng.normal(size=(9, 5))).astype(np.float32)
    x_mask = np.array([1, 1, 0, 1, 0, 1], bool)
    y_mask = np.array([1, 0, 1, 1, 1, 1, 0, 1, 1], bool)
    fn = self.variant(lambda a, b: losses.mmd_rbf(a, b, bandwidths=(0.3, 1.0), x_mask=x_mask,
                                                  y_mask=y_mask))
    want = np_mmd(x[x_mask], y[y_mask], (0.3, 1.0))
    np.testing.assert_allclose(fn(x, y), want, rtol=1e-5, atol=1e-6)

  @chex.variants(with_jit=True, without_jit=True)
  def test_class_mmd_is_the_mean_of_per_class_mmds(self):
    rng = np.random.default_rng(1)
    v = _unit(rng.normal(size=(6, 4))).astype(np.float32)
    slot = np.array([0, 0, 0, 1, 1, 1])
    ok = np.array([1, 1, 1, 1, 0, 1], bool)
    real = _unit(rng.normal(size=(2, 5, 4))).astype(np.float32)
    real_ok = np.array([[1, 1, 1, 0, 1], [1, 1, 1, 1, 1]], bool)
    fn = self.variant(lambda v: class_mmd(v, slot, ok, real, real_ok,
                                                   bandwidths=(0.5,)))
    want = np.mean([np_mmd(v[(slot == c) & ok], real[c][real_ok[c]], (0.5,)) for c in (0, 1)])
    np.testing.assert_allclose(fn(v), want, rtol=1e-5, atol=1e-6)

  def test_mmd_is_zero_for_equal_sets_and_prefers_spread_seeds(self):
    rng = np.random.default_rng(2)
    data = _unit(rng.normal(size=(40, 8)) + 3 * np.eye(8)[rng.integers(0, 4, 40)])
    data = data.astype(np.float32)
    np.testing.assert_allclose(losses.mmd_rbf(data, data, bandwidths=(0.5,)), 0.0, atol=1e-5)
    mean = _unit(data.mean(0, keepdims=True))
    collapsed = np.repeat(mean, 4, axis=0)
    spread = data[:4] * 0 + np.stack([_unit(data[data @ np.eye(8)[k] > 0.5].mean(0))
                                      for k in range(4)])
    assert float(losses.mmd_rbf(spread, data, bandwidths=(0.5,))) < float(
        losses.mmd_rbf(collapsed, data, bandwidths=(0.5,)))

  def test_mmd_gradient_is_finite_and_masked_rows_get_none(self):
    rng = np.random.default_rng(3)
    x = jnp.asarray(_unit(rng.normal(size=(4, 6))), jnp.float32)
    y = jnp.asarray(_unit(rng.normal(size=(7, 6))), jnp.float32)
    mask = jnp.array([True, False, True, True])
    grad = jax.grad(lambda a: losses.mmd_rbf(a, y, bandwidths=(0.5,), x_mask=mask))(x)
    assert np.all(np.isfinite(grad)) and np.abs(np.asarray(grad)[[0, 2, 3]]).sum() > 0
    np.testing.assert_array_equal(np.asarray(grad)[1], 0.0)


def _clustered(rng, centres, n):
  """n unit points around each of the unit ``centres`` [k, d] (cosine about 0.95)."""
  points = np.concatenate([c + 0.08 * rng.normal(size=(n, centres.shape[1])) for c in centres])
  return _unit(points).astype(np.float32)


def test_class_kmeans_finds_the_clusters_largest_first():
  rng = np.random.default_rng(0)
  centres = _unit(rng.normal(size=(3, D)))
  x = np.concatenate([_clustered(rng, centres[:1], 30), _clustered(rng, centres[1:2], 20),
                      _clustered(rng, centres[2:], 10), _unit(rng.normal(size=(12, D)))])
  weights = np.zeros((2, len(x)), np.float32)
  weights[0, :60] = 1.0  # class 0: the three clusters; class 1: the random rows
  weights[1, 60:] = 1.0
  found, sizes = kmeans.class_kmeans(jnp.asarray(x), jnp.asarray(weights),
                                      jax.random.PRNGKey(0), num_centres=3)
  np.testing.assert_allclose(np.asarray(sizes)[0], [30, 20, 10])
  assert np.asarray(sizes)[1].sum() == 12
  cos = np.sum(np.asarray(found)[0] * centres, axis=1)
  assert cos.min() > 0.98, cos
  np.testing.assert_allclose(np.linalg.norm(np.asarray(found), axis=-1), 1.0, atol=1e-5)


def test_sample_class_rows_draws_distinct_rows_of_the_class_and_pads():
  weights = np.zeros((2, 10), np.float32)
  weights[0, [1, 3, 5, 7, 9]] = 1.0
  weights[1, [0, 2]] = 1.0
  rows, valid = kmeans.sample_class_rows(jnp.asarray(weights), jax.random.PRNGKey(1), 4)
  rows, valid = np.asarray(rows), np.asarray(valid)
  assert valid[0].all() and len(set(rows[0])) == 4 and set(rows[0]) <= {1, 3, 5, 7, 9}
  assert valid[1].tolist() == [True, True, False, False] and set(rows[1][:2]) == {0, 2}
  rows, valid = kmeans.sample_class_rows(jnp.asarray(weights), jax.random.PRNGKey(1), 12)
  assert rows.shape == (2, 12) and np.asarray(valid).sum() == 7


def test_refine_on_sphere_lowers_the_loss_and_keeps_unit_norm():
  target = jnp.asarray(_unit(np.ones((1, D))), jnp.float32)
  v0 = jnp.asarray(_unit(np.random.default_rng(0).normal(size=(3, D))), jnp.float32)
  loss = lambda v: jnp.sum((v - target) ** 2)
  v = kmeans.refine_on_sphere(v0, loss, num_steps=50, learning_rate=0.05)
  assert float(loss(v)) < 0.5 * float(loss(v0))
  np.testing.assert_allclose(np.linalg.norm(np.asarray(v), axis=-1), 1.0, atol=1e-5)


def test_a_memory_without_text_prototypes_counts_no_bytes_for_them():
  full, bare = seeds.init_memory(4, D), seeds.init_memory(4, D, text_dim=0)
  assert seeds.bytes_per_seed(full) - seeds.bytes_per_seed(bare) == 4 * D
  v = jnp.asarray(_unit(np.random.default_rng(0).normal(size=(3, D))), jnp.float32)
  bare = seeds.add_seeds(bare, seeds.make_seeds(v, v[:, :0], jnp.array([2, 0, 2]), 0))
  assert int(seeds.memory_nbytes(bare)) == 3 * (4 * D + 13)
  bank = jnp.asarray(np.arange(3 * D, dtype=np.float32).reshape(3, D))
  w = np.asarray(text_prototypes(bare, bank))
  np.testing.assert_array_equal(w[:3], np.asarray(bank)[[2, 0, 2]])
  batch = seeds.sample_seeds(bare, jax.random.PRNGKey(0), 2)
  assert batch.w.shape == (2, 0)
  with pytest.raises(ValueError, match='do not match'):
    seeds.add_seeds(bare, seeds.make_seeds(v, v, jnp.array([0, 0, 0]), 0))


def _multimodal_stream(seed=0):
  """2 tasks x 2 classes in R^16; each class is three tight clusters (far apart)."""
  rng = np.random.default_rng(seed)
  text = _unit(rng.normal(size=(4, D)))
  centres = _unit(rng.normal(size=(4, CLUSTERS, D)) + 0.5 * text[:, None])
  train, test = [], []
  for classes in ((0, 1), (2, 3)):
    for split, n in ((train, 60), (test, 20)):
      x = np.concatenate([_clustered(rng, centres[c], n) for c in classes])
      split.append((x, np.repeat(classes, CLUSTERS * n)))
  stream = tasks.build_stream('multimodal', train=train, test=test, class_text=text,
                              class_names=[f'c{c}' for c in range(4)], seed=seed)
  return stream, centres


def _small_config(method):
  c = method_config()
  c.method = method
  c.steps_per_task, c.steps_per_chunk = 40, 40
  c.adapter_hidden, c.generator_hidden = 32, 64
  c.meta_steps, c.inner_steps, c.sketch_dim = 30, 1, 16
  c.meta_learning_rate = 1e-2
  c.candidates_per_class = 4
  c.memory_budget = 8  # bytes of 8 METHOD seeds: 8 (8·16 + 13) = 1128 B
  c.plus_centre_weight = 100.0
  c.mmd_points = 64
  c.summary_refine_steps = 50
  return c


@pytest.fixture(scope='module')
def multimodal():
  return _multimodal_stream()


@pytest.fixture(scope='module')
def plus_run(multimodal):
  stream, _ = multimodal
  return continual.run_sequence(_small_config('autoseed_plus'), stream)


@pytest.fixture(scope='module')
def kmeans_run(multimodal):
  stream, _ = multimodal
  return continual.run_sequence(_small_config('kmeans_seeds'), stream)


def _memory(result):
  memory = jax.tree.map(np.asarray, result.state.memory)
  return memory.v[memory.valid], memory.label[memory.valid], memory


@pytest.mark.parametrize('run', ['plus_run', 'kmeans_run'])
def test_seeds_are_distinct_and_cover_every_cluster_of_their_class(run, multimodal, request):
  _, centres = multimodal
  v, label, _ = _memory(request.getfixturevalue(run))
  for c in range(4):
    own = v[label == c]
    assert len(own) >= CLUSTERS, (c, len(own))
    pair = own @ own.T
    assert pair[np.triu_indices(len(own), 1)].max() < 0.995, 'duplicate seeds'
    nearest_seed = (centres[c] @ own.T).max(axis=1)  # each cluster's closest seed
    assert nearest_seed.min() > 0.9, (c, nearest_seed)


@pytest.mark.parametrize('run', ['plus_run', 'kmeans_run'])
def test_memory_stays_within_the_byte_budget_and_holds_no_text_prototypes(run, multimodal,
                                                                           request):
  result = request.getfixturevalue(run)
  stream, _ = multimodal
  config = _small_config('autoseed_plus')
  plan = memory_plan(config, D, stream.num_classes)
  assert plan.budget_bytes == 8 * (8 * D + 13)
  assert plan.budget == plan.budget_bytes // (4 * D + 13) == 14  # twice the seeds
  _, label, memory = _memory(result)
  assert memory.w.shape[1] == 0
  assert 0 < result.memory_bytes <= plan.budget_bytes
  assert result.memory_bytes == len(label) * (4 * D + 13)
  assert len(label) == plan.budget  # the budget is filled
  counts = np.bincount(label, minlength=4)
  assert counts.max() - counts.min() <= 1  # balanced over the classes


def test_plus_forgets_less_than_finetuning(plus_run, multimodal):
  stream, _ = multimodal
  finetune = continual.run_sequence(_small_config('finetune'), stream)
  print(plus_run.metrics, finetune.metrics)
  assert plus_run.metrics['forgetting'] < finetune.metrics['forgetting'] - 5
  assert plus_run.metrics['final_avg_acc'] > finetune.metrics['final_avg_acc']


def test_refined_seeds_run_within_budget(multimodal):
  stream, _ = multimodal
  result = continual.run_sequence(_small_config('refined_seeds'), stream)
  v, label, _ = _memory(result)
  assert len(label) == 14 and np.isfinite(v).all()
  np.testing.assert_allclose(np.linalg.norm(v, axis=-1), 1.0, atol=1e-4)


def test_bad_plus_settings_are_named(multimodal):
  stream, _ = multimodal
  for field, value, message in (('plus_seed_codes', 'gauss', 'plus_seed_codes'),
                                ('plus_mmd_weight', -1.0, 'plus_mmd_weight'),
                                ('plus_memory_bytes', 10, 'holds no seed')):
    config = _small_config('autoseed_plus')
    config[field] = value
    with pytest.raises(ValueError, match=message):
      continual.build_learner(config, stream)
  config = _small_config('autoseed_plus')
  config.plus_seed_codes = 'noise'
  with pytest.raises(ValueError, match='plus_centre_weight'):
    continual.build_learner(config, stream)


def test_a_state_with_a_memory_without_text_prototypes_checkpoints_and_restores(
    plus_run, multimodal, tmp_path):
  from autoseed_jax.tools import checkpoint  # pylint: disable=import-outside-toplevel
  stream, _ = multimodal
  learner = continual.build_learner(_small_config('autoseed_plus'), stream)
  target = learner.init(jax.random.PRNGKey(1), learner.put_test(stream.test))
  store = checkpoint.CheckpointStore(str(tmp_path / 'ckpt'), keep=2)
  store.save(plus_run.state)
  restored = store.restore_latest(target, warn=pytest.fail)
  assert restored is not None and restored.state.memory.w.shape == (14, 0)
  assert checkpoint.state_digest(restored.state) == checkpoint.state_digest(plus_run.state)


EIGHT_DEVICE_FORMS = {'autoseed_plus': ('jit8', 'pmap8'), 'refined_seeds': ('jit8', 'pmap8')}


@pytest.fixture(scope='module')
def eight_devices():
  """autoseed_plus and refined_seeds on 1 device, 8 with jit and 8 with pmap, in one child
  process (``EIGHT_DEVICE_FORMS``). refined_seeds' pmap form is the one that deadlocked
  most often before ``parallel.compile_step`` changed how it reads a pmap's outputs
  (docs/DEVICES.md)."""
  from helpers.device_runs import run_on_eight_devices  # pylint: disable=import-outside-toplevel
  return run_on_eight_devices('parallel_check.py', *(
      f"{method}={','.join(('one',) + forms)}" for method, forms in EIGHT_DEVICE_FORMS.items()))


@pytest.mark.parametrize('method, form', [(m, f) for m, forms in EIGHT_DEVICE_FORMS.items()
                                          for f in forms])
def test_eight_devices_match_one_device(eight_devices, method, form):
  one, many = eight_devices[method]['one'], eight_devices[method][form]
  for a, b in zip(jax.tree.leaves(one['gen_params']), jax.tree.leaves(many['gen_params'])):
    np.testing.assert_allclose(a, b, atol=1e-5)  # after the first meta-update
  assert many['meta_loss_last'] == pytest.approx(one['meta_loss_last'], rel=1e-5)
  np.testing.assert_allclose(many['acc_matrix'], one['acc_matrix'], atol=1e-4)
  np.testing.assert_allclose(many['memory_v'], one['memory_v'], atol=1e-4)


def test_the_defaults_are_the_settings_chosen_on_the_development_streams():
  """experiments/tune_plus.py's choices (experiments/tuning/, every stage of its ORDER, the
  pair and guard stages included) are what the methods use."""
  import json  # pylint: disable=import-outside-toplevel
  import pathlib  # pylint: disable=import-outside-toplevel
  from autoseed_jax.methods.autoseed_plus import defaults as plus_defaults
  from autoseed_jax.methods.summary_seeds import defaults as summary_defaults
  from experiments import tune_plus  # pylint: disable=import-outside-toplevel
  from experiments.configs.real_streams import real_stream_config  # pylint: disable=import-outside-toplevel
  tuning = pathlib.Path(__file__).resolve().parents[1] / 'experiments' / 'tuning'
  dev_streams = set(tune_plus.DEV_STREAMS + tune_plus.VL_DEV_STREAMS)
  assert dev_streams == {'animals-ci-dev', 'digits-ci-dev', 'animals-digits-dev', 'vl-scenes-dev'}
  for stage in tune_plus.ORDER:  # every stage ran, on the development streams only
    record = json.loads((tuning / f'{stage}.json').read_text())
    assert set(record['streams']) <= dev_streams
    assert list(record['streams']) == list(tune_plus.STAGE_STREAMS.get(stage,
                                                                      tune_plus.DEV_STREAMS))
    assert list(record['seeds']) == list(tune_plus.STAGE_SEEDS.get(stage, tune_plus.SEEDS))
  chosen = tune_plus.chosen_settings(tuning)
  assert chosen
  used = {**real_stream_config().to_dict(), **plus_defaults(), **summary_defaults()}
  assert {name: used[name] for name in chosen} == chosen


def test_a_settings_row_of_a_tuning_stage_needs_its_streams():
  from experiments import tune_plus  # pylint: disable=import-outside-toplevel
  per_stream = {'a': {'mean': 70.0, 'std': 1.0, 'min': 68.0, 'n': 3},
                'b': {'mean': 80.0, 'std': 2.0, 'min': 76.0, 'n': 3},
                'c': {'mean': None, 'std': None, 'min': None, 'n': 0}}
  row = tune_plus.setting_summary({'x': 1}, per_stream)
  assert (row['mean'], row['worst'], row['mean_of_minima']) == (75.0, 70.0, 72.0)
  assert tune_plus.setting_summary({'x': 1}, per_stream, every_stream=True)['mean'] == -1.0
  assert 'mean 75.00, worst 70.00, mean of minima 72.00' in tune_plus.summary_line('s', row)
