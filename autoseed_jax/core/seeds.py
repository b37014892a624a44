"""The seed memory: a fixed-capacity, immutable pytree of generated seeds (METHOD §2).

A seed is ``(v, w, label, task)``: a visual prototype ``v`` and a textual prototype ``w``
in the backbone's embedding space, the class it stands for and the task that made it.
The memory has a fixed capacity ``K``; empty slots have ``valid == False``. Every
operation returns a new memory of the same shapes, so jitted code that takes a memory
compiles once however full it is.

Selection rule shared by ``add`` and ``prune`` (the "balanced top-score" rule): keep at
most ``budget`` seeds, spread as evenly as possible over the classes present (class
counts differ by at most one among classes that lose seeds), and within each class keep
the seeds with the highest ``score``. Redundant candidates are filtered before they are
added (``autoseed_jax.core.selection``), so within a class the lowest-scored seed is the one
that is dropped first.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp

_BIG = jnp.iinfo(jnp.int32).max


@flax.struct.dataclass
class SeedMemory:
  """Fixed-capacity seed memory (or a batch of seeds: the same layout, any ``K``).

  Attributes:
    v: [K, d] float32 visual prototypes (unit norm where valid).
    w: [K, d] float32 textual prototypes (unit norm where valid); [K, 0] in a memory that
      stores none (a seed's w is then its class's text embedding, which the model keeps
      anyway; ``nbytes`` counts no bytes for it).
    label: [K] int32 class ids (-1 in empty slots).
    task: [K] int32 id of the task that generated the seed (-1 in empty slots).
    valid: [K] bool, which slots hold a seed.
    score: [K] float32 selection score (higher is better; gradient alignment, §4.3d).
  """

  v: jax.Array
  w: jax.Array
  label: jax.Array
  task: jax.Array
  valid: jax.Array
  score: jax.Array

  @property
  def capacity(self) -> int:
    return self.v.shape[0]

  @property
  def dim(self) -> int:
    return self.v.shape[1]

  def num_valid(self) -> jax.Array:
    """Number of filled slots, an int32 scalar."""
    return jnp.sum(self.valid, dtype=jnp.int32)


def init_memory(capacity: int, dim: int, dtype=jnp.float32, *,
                text_dim: int | None = None) -> SeedMemory:
  """An empty memory with ``capacity`` slots of ``dim``-dimensional prototypes.

  ``text_dim``: columns of the textual prototypes w (default ``dim``; 0: no w stored).
  """
  if capacity <= 0:
    raise ValueError(f'seed memory capacity must be positive, got {capacity}.')
  if dim <= 0:
    raise ValueError(f'embedding dim must be positive, got {dim}.')
  text_dim = dim if text_dim is None else text_dim
  if text_dim not in (0, dim):
    raise ValueError(f'text_dim must be 0 (no textual prototypes) or dim={dim}, got {text_dim}.')
  return SeedMemory(
      v=jnp.zeros((capacity, dim), dtype),
      w=jnp.zeros((capacity, text_dim), dtype),
      label=jnp.full((capacity,), -1, jnp.int32),
      task=jnp.full((capacity,), -1, jnp.int32),
      valid=jnp.zeros((capacity,), bool),
      score=jnp.full((capacity,), -jnp.inf, jnp.float32),
  )


def make_seeds(v, w, label, task, *, score=None, valid=None) -> SeedMemory:
  """Bundles new seeds ([n, d] prototypes, [n] labels) in the memory layout."""
  n = v.shape[0]
  label = jnp.broadcast_to(jnp.asarray(label, jnp.int32), (n,))
  task = jnp.broadcast_to(jnp.asarray(task, jnp.int32), (n,))
  valid = jnp.ones((n,), bool) if valid is None else jnp.asarray(valid, bool)
  score = jnp.zeros((n,), jnp.float32) if score is None else score
  return SeedMemory(v=v, w=w, label=jnp.where(valid, label, -1),
                    task=jnp.where(valid, task, -1), valid=valid,
                    score=jnp.where(valid, score.astype(jnp.float32), -jnp.inf))


def _rank_within_class(label, valid, score):
  """Rank of each seed among valid seeds of its class by descending score.

  Returns [K] int32 ranks (0 = best); invalid slots get a huge rank.
  """
  n = label.shape[0]
  sort_label = jnp.where(valid, label, _BIG)
  # lexsort: last key is primary. Sort by (label, -score, slot index) for determinism.
  order = jnp.lexsort((jnp.arange(n), -score, sort_label))
  sorted_label = sort_label[order]
  pos = jnp.arange(n)
  new_group = jnp.concatenate([jnp.ones((1,), bool), sorted_label[1:] != sorted_label[:-1]])
  group_start = jax.lax.cummax(jnp.where(new_group, pos, 0))
  rank_sorted = pos - group_start
  rank = jnp.zeros((n,), jnp.int32).at[order].set(rank_sorted.astype(jnp.int32))
  return jnp.where(valid, rank, _BIG)


def balanced_keep(label, valid, score, budget) -> jax.Array:
  """Which seeds to keep under the balanced top-score rule.

  Args:
    label: [K] int32 class ids.
    valid: [K] bool.
    score: [K] float32, higher is kept first within a class.
    budget: int32 scalar (may be traced), the most seeds to keep.

  Returns:
    [K] bool mask with ``sum <= budget`` (and ``== min(budget, num_valid)``).
  """
  n = label.shape[0]
  rank = _rank_within_class(label, valid, score)
  budget = jnp.clip(jnp.asarray(budget, jnp.int32), 0, n)
  # Water level q: the largest per-class quota with sum_c min(n_c, q) <= budget. The
  # number of seeds with rank < q is exactly that sum, so q is the (budget+1)-th
  # smallest rank (or "everything" when fewer than budget+1 seeds are valid).
  sorted_rank = jnp.sort(rank)
  q = jnp.where(budget < n, sorted_rank[jnp.minimum(budget, n - 1)], _BIG)
  below = valid & (rank < q)
  leftover = budget - jnp.sum(below, dtype=jnp.int32)
  # Leftover slots go to the best seeds sitting exactly at the water level.
  at_level = valid & (rank == q)
  level_order = jnp.lexsort((jnp.arange(n), -score, ~at_level))
  level_pos = jnp.zeros((n,), jnp.int32).at[level_order].set(jnp.arange(n, dtype=jnp.int32))
  return below | (at_level & (level_pos < leftover))


def _compact(seeds: SeedMemory, keep: jax.Array, capacity: int) -> SeedMemory:
  """Moves kept seeds to the front (stable) and cuts to ``capacity`` slots."""
  order = jnp.argsort(~keep, stable=True)[:capacity]
  kept = keep[order]
  picked = jax.tree.map(lambda a: a[order], seeds)
  return SeedMemory(
      v=jnp.where(kept[:, None], picked.v, 0.0),
      w=jnp.where(kept[:, None], picked.w, 0.0),
      label=jnp.where(kept, picked.label, -1),
      task=jnp.where(kept, picked.task, -1),
      valid=kept,
      score=jnp.where(kept, picked.score, -jnp.inf),
  )


def prune_memory(memory: SeedMemory, budget) -> SeedMemory:
  """Keeps at most ``budget`` seeds (balanced over classes, best score first).

  Args:
    memory: the memory, capacity K.
    budget: int or int32 scalar in [0, K]; may be traced (no recompilation).

  Returns:
    A memory of the same capacity with ``num_valid <= budget``; kept seeds are packed
    into the leading slots.
  """
  keep = balanced_keep(memory.label, memory.valid, memory.score, budget)
  return _compact(memory, keep, memory.capacity)


def prune_memory_bytes(memory: SeedMemory, budget_bytes, seed_bytes) -> SeedMemory:
  """Keeps the seeds the balanced top-score rule would keep, as many as fit in
  ``budget_bytes`` when seeds differ in size.

  The balanced rule with budget b keeps the first b seeds in the order (rank within class,
  −score, slot) (``balanced_keep``), so a larger budget keeps a superset; this keeps the
  longest prefix of that order whose bytes sum to at most ``budget_bytes``.

  Args:
    memory: the memory, capacity K.
    budget_bytes: int or int32 scalar (may be traced).
    seed_bytes: [K] int32 bytes of each slot's seed.
  """
  n = memory.capacity
  rank = _rank_within_class(memory.label, memory.valid, memory.score)
  order = jnp.lexsort((jnp.arange(n), -memory.score, rank))
  spent = jnp.cumsum(jnp.where(memory.valid, seed_bytes, 0)[order])
  keep_sorted = memory.valid[order] & (spent <= budget_bytes)
  keep = jnp.zeros((n,), bool).at[order].set(keep_sorted)
  return _compact(memory, keep, n)


def add_seeds(memory: SeedMemory, seeds: SeedMemory) -> SeedMemory:
  """Adds ``seeds`` (any count n) to ``memory`` without exceeding its capacity.

  When the union holds more than ``capacity`` valid seeds, the balanced top-score rule
  chooses which survive, so old classes are not silently overwritten.
  """
  if seeds.dim != memory.dim or seeds.w.shape[-1] != memory.w.shape[-1]:
    raise ValueError(f'seeds of dims v {seeds.dim}, w {seeds.w.shape[-1]} do not match the '
                     f'memory\'s v {memory.dim}, w {memory.w.shape[-1]}.')
  union = jax.tree.map(lambda a, b: jnp.concatenate([a, b.astype(a.dtype)]), memory, seeds)
  keep = balanced_keep(union.label, union.valid, union.score, memory.capacity)
  return _compact(union, keep, memory.capacity)


def sample_seeds(memory: SeedMemory, key: jax.Array, batch_size: int) -> SeedMemory:
  """Draws ``batch_size`` distinct valid seeds uniformly at random.

  Sampling is without replacement (Gumbel top-k over the valid slots), so a batch never
  holds the same seed twice. When fewer than ``batch_size`` seeds are valid, the extra
  rows come back with ``valid == False`` and must be masked by the caller (every loss
  in ``autoseed_jax.core.losses`` takes that mask). ``batch_size`` must be <= capacity.

  Returns:
    A SeedMemory of capacity ``batch_size``.
  """
  if batch_size > memory.capacity:
    raise ValueError(
        f'seed batch size {batch_size} exceeds the memory capacity {memory.capacity}; '
        'lower the seed batch size or raise the memory budget.')
  noise = jax.random.gumbel(key, (memory.capacity,))
  priority = jnp.where(memory.valid, noise, -jnp.inf)
  _, idx = jax.lax.top_k(priority, batch_size)
  batch = jax.tree.map(lambda a: a[idx], memory)
  return batch


def bytes_per_seed(memory: SeedMemory) -> int:
  """Bytes one stored seed occupies: v, w, label, task, score and its valid flag."""
  return sum(a.dtype.itemsize * (a[0].size) for a in jax.tree.leaves(memory))


def memory_nbytes(memory: SeedMemory) -> jax.Array:
  """Bytes actually used by valid seeds (every per-seed field counted), int32 scalar."""
  return memory.num_valid() * bytes_per_seed(memory)


def __getattr__(name: str):
  """Old names of this module (release 0.1), deprecated: ``autoseed_jax.RENAMED``."""
  import autoseed_jax  # pylint: disable=import-outside-toplevel
  return autoseed_jax.renamed_attribute('core.seeds', name)
