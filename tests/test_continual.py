"""End to end on the synthetic stream: the method works, compiles once, is deterministic."""

import jax
import numpy as np
import pytest

from autoseed_jax import continual
from autoseed_jax.core import seeds
from autoseed_jax.tools.profiling import count_compilations
from autoseed_jax.streams.synthetic import make_synthetic_stream
from experiments.configs.common import method_config


@pytest.fixture(scope='module')
def stream():
  return make_synthetic_stream(num_tasks=4, classes_per_task=2, dim=64, train_per_class=120,
                               test_per_class=60, seed=1)


def small_config(method='autoseed', **overrides):
  c = method_config()
  c.method = method
  c.steps_per_task = 150
  c.steps_per_chunk = 75
  c.adapter_hidden = 64
  c.generator_hidden = 64
  c.meta_steps = 10
  c.memory_budget = 40
  for k, v in overrides.items():
    c[k] = v
  return c


@pytest.fixture(scope='module')
def finetune_result(stream):
  return continual.run_sequence(small_config('finetune'), stream)


@pytest.fixture(scope='module')
def autoseed_result(stream):
  return continual.run_sequence(small_config('autoseed'), stream)


def test_full_method_forgets_measurably_less_than_finetuning(finetune_result, autoseed_result):
  ft, ours = finetune_result.metrics, autoseed_result.metrics
  assert ft['forgetting'] > 50, ft  # the benchmark really makes fine-tuning forget
  assert ours['forgetting'] < ft['forgetting'] - 20, (ours, ft)
  assert ours['final_avg_acc'] > ft['final_avg_acc'] + 15, (ours, ft)


def test_each_task_is_learned(finetune_result, autoseed_result):
  for result in (finetune_result, autoseed_result):
    np.testing.assert_array_less(80.0, np.diag(result.acc_matrix))


def test_zero_shot_rows_equal_the_initial_model(stream):
  r = continual.run_sequence(small_config('zeroshot'), stream)
  # With untrained adapters, R[i-1, i] uses the same label space as b_i.
  for j in range(1, stream.num_tasks):
    assert r.acc_matrix[j - 1, j] == pytest.approx(r.initial_acc[j])
  assert r.metrics['fwt'] == pytest.approx(0.0)


def test_memory_respects_budget_and_holds_every_seen_class(autoseed_result, stream):
  memory = autoseed_result.state.memory
  assert 0 < int(memory.num_valid()) <= 40
  labels = set(np.asarray(memory.label)[np.asarray(memory.valid)].tolist())
  assert labels == set(range(stream.num_classes))
  assert autoseed_result.memory_bytes == int(memory.num_valid()) * seeds.bytes_per_seed(memory)
  v = np.asarray(memory.v)[np.asarray(memory.valid)]
  np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)


def test_state_is_one_pytree_of_arrays_that_round_trips(autoseed_result):
  """The run state flattens to arrays only and rebuilds from its leaves: what checkpoints,
  device placement and vmap rely on."""
  state = autoseed_result.state
  leaves, treedef = jax.tree.flatten(state)
  assert leaves and all(isinstance(x, jax.Array) for x in leaves)
  rebuilt = jax.tree.unflatten(treedef, [x + 0 for x in leaves])
  assert isinstance(rebuilt, continual.ContinualState)
  assert jax.tree.structure(rebuilt) == treedef
  for a, b in zip(jax.tree.leaves(rebuilt), leaves):
    np.testing.assert_array_equal(a, b)
  assert int(rebuilt.tasks_done) == 4 and rebuilt.memory is not None


def test_later_tasks_compile_nothing_and_runs_are_bit_identical(stream):
  config = small_config('autoseed', steps_per_task=20, steps_per_chunk=10, meta_steps=2)
  learner = continual.build_learner(config, stream)
  test = jax.device_put(stream.test)
  state = learner.init(jax.random.PRNGKey(config.seed), test)
  with count_compilations() as first:
    state = learner.learn_task(state, jax.device_put(stream.tasks[0]), test=test)
  assert first.count > 0  # the counter does see the first task's compilations
  with count_compilations() as later:
    for task in stream.tasks[1:]:
      state = learner.learn_task(state, jax.device_put(task), test=test)
  assert later.count == 0, f'{later.count} compilations while learning tasks 2..T'

  # Determinism: the same config and seed give bit-identical results.
  again = continual.run_sequence(config, stream, learner=learner)
  np.testing.assert_array_equal(np.asarray(state.acc_matrix), again.acc_matrix)
  jax.tree.map(np.testing.assert_array_equal, state.memory, again.state.memory)
  jax.tree.map(np.testing.assert_array_equal, state.params, again.state.params)
  config.seed = 1  # the seed lives in the state, so the compiled learner is reused
  other = continual.run_sequence(config, stream, learner=learner)
  assert not np.array_equal(np.asarray(state.memory.v), np.asarray(other.state.memory.v))


def test_kept_sketch_matrix_gives_the_same_seeds_as_redrawing_it(stream):
  kept = small_config('autoseed', steps_per_task=20, steps_per_chunk=20, meta_steps=2)
  redrawn = small_config('autoseed', steps_per_task=20, steps_per_chunk=20, meta_steps=2,
                         sketch_cache=False)
  a, b = continual.run_sequence(kept, stream), continual.run_sequence(redrawn, stream)
  np.testing.assert_allclose(a.acc_matrix, b.acc_matrix, atol=1e-4)
  np.testing.assert_allclose(np.asarray(a.state.memory.v), np.asarray(b.state.memory.v),
                             atol=1e-4)


def test_no_meta_update_leaves_the_generator_at_its_initialisation(stream):
  config = small_config('autoseed', steps_per_task=20, steps_per_chunk=20,
                        seed_source='generator_no_meta')
  r = continual.run_sequence(config, stream)
  init = continual.build_learner(config, stream).init(
      jax.random.PRNGKey(config.seed), jax.device_put(stream.test))
  jax.tree.map(np.testing.assert_array_equal, init.gen_params, r.state.gen_params)
  assert int(r.state.memory.num_valid()) > 0


def test_random_seeds_without_pruning_keep_full_memory(stream):
  config = small_config('autoseed', steps_per_task=20, steps_per_chunk=20,
                        seed_source='random', prune=False, seeds_per_class=3,
                        memory_budget=3, seed_batch_size=8)
  r = continual.run_sequence(config, stream)
  assert r.state.memory.capacity == stream.num_classes * 3
  assert int(r.state.memory.num_valid()) == stream.num_classes * 3
  # Random seeds: w is exactly the class text embedding.
  memory = r.state.memory
  valid = np.asarray(memory.valid)
  text = np.asarray(stream.test.class_text)[np.asarray(memory.label)[valid]]
  text /= np.linalg.norm(text, axis=1, keepdims=True)
  np.testing.assert_allclose(np.asarray(memory.w)[valid], text, atol=1e-5)


def test_bad_config_values_are_named(stream):
  for field, value, match in [('memory_budget', 0, 'memory_budget=0 must be > 0'),
                              ('seeds_per_class', 0, 'seeds_per_class=0'),
                              ('method', 'foo', "method='foo'"),
                              ('seed_source', 'bar', "seed_source='bar'")]:
    with pytest.raises(ValueError, match=match):
      continual.build_learner(small_config(**{field: value}), stream)
  with pytest.raises(ValueError, match='exceeds memory_capacity'):
    continual.build_learner(small_config(memory_budget=50, memory_capacity=40), stream)
