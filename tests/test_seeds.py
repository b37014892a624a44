"""The seed memory: capacity, best-score retention, class balance, sampling, no recompiles."""

import collections

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from autoseed_jax.core import seeds

D = 4


def _batch(labels, scores, task=0, seed=0):
  rng = np.random.default_rng(seed)
  n = len(labels)
  v = rng.normal(size=(n, D)).astype(np.float32)
  return seeds.make_seeds(jnp.asarray(v), jnp.asarray(v[::-1].copy()),
                          jnp.asarray(labels), task, score=jnp.asarray(scores, jnp.float32))


def _contents(memory):
  valid = np.asarray(memory.valid)
  return list(zip(np.asarray(memory.label)[valid].tolist(),
                  [round(float(s), 4) for s in np.asarray(memory.score)[valid]]))


def test_init_memory_is_empty_with_fixed_shapes():
  memory = seeds.init_memory(10, D)
  chex.assert_shape([memory.v, memory.w], (10, D))
  chex.assert_shape([memory.label, memory.task, memory.valid, memory.score], (10,))
  assert int(memory.num_valid()) == 0 and int(seeds.memory_nbytes(memory)) == 0
  with pytest.raises(ValueError, match='capacity must be positive'):
    seeds.init_memory(0, D)


def test_add_never_exceeds_capacity_and_keeps_best_per_class_balanced():
  memory = seeds.init_memory(6, D)
  # Class 0 has 6 candidates, class 1 has 2: balance gives class 1 both, class 0 four.
  batch = _batch([0, 0, 0, 0, 0, 0, 1, 1], [0.1, 0.9, 0.5, 0.3, 0.7, 0.2, 0.4, 0.6])
  out = seeds.add_seeds(memory, batch)
  assert int(out.num_valid()) == 6
  got = collections.Counter(lab for lab, _ in _contents(out))
  assert got == {0: 4, 1: 2}
  kept_class0 = sorted(s for lab, s in _contents(out) if lab == 0)
  assert kept_class0 == [0.3, 0.5, 0.7, 0.9]  # the four highest of class 0


def test_prune_balances_classes_within_one_and_keeps_highest_scores():
  rng = np.random.default_rng(0)
  labels = np.repeat(np.arange(5), [7, 3, 6, 6, 2])
  scores = rng.uniform(size=labels.size)
  memory = seeds.add_seeds(seeds.init_memory(32, D), _batch(labels, scores))
  for budget in [0, 1, 4, 9, 13, 17, 24, 40]:
    pruned = seeds.prune_memory(memory, budget)
    contents = _contents(pruned)
    assert len(contents) == min(budget, labels.size)
    counts = collections.Counter(lab for lab, _ in contents)
    # Water-filling: a class that lost seeds is within one of the fullest class.
    available = collections.Counter(labels.tolist())
    fullest = max(counts.values(), default=0)
    for c in available:
      assert counts.get(c, 0) == available[c] or counts.get(c, 0) >= fullest - 1
    for c in available:
      want = sorted(round(float(s), 4) for s in scores[labels == c].astype(np.float32))
      want = want[::-1][:counts.get(c, 0)]
      assert sorted((s for lab, s in contents if lab == c), reverse=True) == want


def test_prune_packs_kept_seeds_first_and_clears_the_rest():
  memory = seeds.add_seeds(seeds.init_memory(8, D), _batch([0, 1, 0, 1, 2], [5, 4, 3, 2, 1]))
  pruned = seeds.prune_memory(memory, 3)
  np.testing.assert_array_equal(np.asarray(pruned.valid), [1, 1, 1, 0, 0, 0, 0, 0])
  assert np.all(np.asarray(pruned.label)[3:] == -1)
  assert np.all(np.asarray(pruned.v)[3:] == 0)


def test_sample_returns_only_valid_slots_without_repeats():
  memory = seeds.add_seeds(seeds.init_memory(20, D), _batch(np.arange(7) % 3, np.arange(7)))
  valid_v = {tuple(np.round(row, 5)) for row in np.asarray(memory.v)[np.asarray(memory.valid)]}
  for i in range(20):
    batch = seeds.sample_seeds(memory, jax.random.PRNGKey(i), 5)
    rows = [tuple(np.round(r, 5)) for r in np.asarray(batch.v)[np.asarray(batch.valid)]]
    assert len(rows) == 5 and len(set(rows)) == 5 and set(rows) <= valid_v
  big = seeds.sample_seeds(memory, jax.random.PRNGKey(0), 12)
  assert int(big.valid.sum()) == 7  # only 7 valid: the rest come back masked
  with pytest.raises(ValueError, match='exceeds the memory capacity'):
    seeds.sample_seeds(memory, jax.random.PRNGKey(0), 21)


def test_sample_covers_all_valid_seeds_uniformly():
  memory = seeds.add_seeds(seeds.init_memory(10, D), _batch([0, 1, 2, 3], [1, 1, 1, 1]))
  draws = jax.vmap(lambda k: seeds.sample_seeds(memory, k, 1).label[0])(
      jax.random.split(jax.random.PRNGKey(0), 4000))
  freq = np.bincount(np.asarray(draws), minlength=4) / 4000
  np.testing.assert_allclose(freq, 0.25, atol=0.03)


def test_nbytes_counts_valid_seeds_only():
  memory = seeds.add_seeds(seeds.init_memory(10, D), _batch([0, 1, 2], [1, 2, 3]))
  per_seed = 2 * D * 4 + 4 + 4 + 4 + 1  # v, w float32; label, task int32; score; valid
  assert seeds.bytes_per_seed(memory) == per_seed
  assert int(seeds.memory_nbytes(memory)) == 3 * per_seed


def test_jitted_operations_compile_once_as_the_memory_fills():
  add = jax.jit(seeds.add_seeds)
  prune = jax.jit(seeds.prune_memory)
  memory = seeds.init_memory(12, D)
  for t in range(5):
    memory = prune(add(memory, _batch([2 * t, 2 * t + 1, 2 * t], [1.0, 2.0, 3.0], task=t,
                                      seed=t)), jnp.int32(9))
    assert int(memory.num_valid()) <= 9
  assert add._cache_size() == 1 and prune._cache_size() == 1
  assert set(np.asarray(memory.task)[np.asarray(memory.valid)].tolist()) == {0, 1, 2, 3, 4}


def test_add_rejects_a_dim_mismatch():
  with pytest.raises(ValueError, match="do not match the memory's v 5"):
    seeds.add_seeds(seeds.init_memory(4, D + 1), _batch([0], [1.0]))
