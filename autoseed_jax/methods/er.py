"""ER-VLM: exemplar replay of real embeddings from a reservoir buffer (METHOD §7).

The buffer holds real training examples (frozen image embedding x, label y) in fixed
shapes: ``x [M, d] float32``, ``y [M] int32``, ``valid [M] bool`` and ``seen [] int32``, the
number of stream examples offered to it so far. After online adaptation on task t
(``consolidate``), every real training example of the task is offered once to the buffer
by reservoir sampling (Vitter's Algorithm R over the whole stream), so at any time the
buffer is a uniform sample without replacement of all training examples seen so far, at
most M of them. Every online-adaptation step then adds ``λ_er · L_task`` on a batch drawn
uniformly (with replacement) from the valid slots, with the classes seen so far as the
label space, to the engine's task loss on the real batch of the current task.

Memory, in bytes: a stored example is its embedding (d float32) and its label (int32),
``4 d + 4`` bytes (``bytes_per_example``); the valid flags and the counter are
bookkeeping and not counted. The budget is given in examples (``er_memory_examples``), in
bytes (``er_memory_bytes``: M = bytes // (4 d + 4)) or as a multiple of a full seed memory
(``er_memory_seed_multiple``: that many times the bytes of ``memory_budget`` Auto-Seed
seeds, ``bytes_matching_seed_memory``), so ER runs at the same bytes as the seed memory
(1) or ten times them (10) whatever the embedding dim. A budget of 0 is sequential
fine-tuning exactly: the replay term and the buffer insertion are left out of the compiled
program.

Vision-language streams (``autoseed_jax.core.task_kinds``): an exemplar is a whole row of any
task kind -- the query embedding, its paired text embedding (a retrieval / captioning
row's caption; a classification / VQA row needs only its label), its label and its kind
-- and the replay term is the kinds' task loss on the drawn rows
(``kind_losses.batch_loss``; pair rows are InfoNCE negatives of each other). Memory counts
``4 d + 4`` bytes for a classification / VQA exemplar and ``8 d + 4`` for a retrieval /
captioning one (``bytes_per_pair_example``); the buffer size M is the byte budget over
the larger of the two, so the bytes held never exceed the budget.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from autoseed_jax.core import kind_losses, seeds, task_kinds
from autoseed_jax.core.config_checks import check_fields
from autoseed_jax.methods.base import Context, Method

# Tag folded into the run key for the reservoir's randomness.
_RESERVOIR_TAG = 20


def defaults() -> dict:
  """ER-VLM hyperparameters and their defaults (config fields of the same names)."""
  return dict(
      er_memory_examples=100,  # M, examples kept (when the two fields below are 0)
      er_memory_bytes=0,       # > 0: memory budget in bytes, M = bytes // (4 d + 4)
      er_memory_seed_multiple=0.0,  # > 0: budget = this many full seed memories, in bytes
      er_batch_size=64,        # buffer examples replayed per step
      er_weight=1.0,           # λ_er, weight of the replay term
  )


def settings(config) -> dict:
  """``defaults()`` overridden by the fields present in ``config``."""
  return {name: config.get(name, value) for name, value in defaults().items()}


RULES = (
    ('er_memory_examples', '>= 0', 'M, exemplars kept; 0 with no other budget: fine-tuning'),
    ('er_memory_bytes', '>= 0', 'memory budget in bytes; 0: unused'),
    ('er_memory_seed_multiple', '>= 0', 'budget in full seed memories; 0: unused'),
    ('er_batch_size', '> 0', 'buffer examples replayed per step'),
    ('er_weight', '>= 0', 'λ_er, weight of the replay term'),
)


def validate(config) -> None:
  """Raises ValueError naming the first ER field (``RULES``) that cannot run."""
  s = settings(config)
  check_fields(s, RULES)
  if s['er_memory_bytes'] > 0 and s['er_memory_seed_multiple'] > 0:
    raise ValueError(
        f"invalid config: er_memory_bytes={s['er_memory_bytes']} and er_memory_seed_multiple="
        f"{s['er_memory_seed_multiple']} both set the ER budget; set one of them to 0.")


def bytes_per_example(dim: int) -> int:
  """Bytes one stored exemplar occupies: a float32 embedding of ``dim`` and an int32 label."""
  return 4 * dim + 4


def bytes_per_pair_example(dim: int) -> int:
  """Bytes of a retrieval / captioning exemplar: image and caption embeddings and a label."""
  return 8 * dim + 4


def bytes_matching_seed_memory(config, dim: int, factor: float = 1.0) -> int:
  """``factor`` × the bytes of a full Auto-Seed memory of ``config.memory_budget`` seeds
  (every per-seed field counted, ``seeds.bytes_per_seed``): the ``er_memory_bytes`` that
  gives ER the same memory as the seeds (factor 1) or ten times it (factor 10)."""
  per_seed = seeds.bytes_per_seed(seeds.init_memory(1, dim))
  return int(factor * config.memory_budget * per_seed)


def memory_examples(config, dim: int, per_example: int | None = None) -> int:
  """M, the buffer size in examples, from whichever budget field is set (see module doc);
  a byte budget buys ``per_example`` bytes per exemplar (default ``bytes_per_example``)."""
  per_example = per_example or bytes_per_example(dim)
  validate(config)
  s = settings(config)
  if s['er_memory_seed_multiple'] > 0:
    budget = bytes_matching_seed_memory(config, dim, s['er_memory_seed_multiple'])
    return budget // per_example
  if s['er_memory_bytes'] > 0:
    return int(s['er_memory_bytes']) // per_example
  return int(s['er_memory_examples'])


def init_buffer(capacity: int, dim: int, *, with_text: bool = False) -> dict:
  """An empty reservoir of ``capacity`` slots (at least 1 slot, so shapes never vanish);
  ``with_text``: also each row's paired text [M, d] and kind [M] (vision-language)."""
  slots = max(capacity, 1)
  buffer = dict(x=jnp.zeros((slots, dim), jnp.float32), y=jnp.zeros((slots,), jnp.int32),
                valid=jnp.zeros((slots,), bool), seen=jnp.zeros((), jnp.int32))
  if with_text:
    buffer.update(text=jnp.zeros((slots, dim), jnp.float32), kind=jnp.zeros((slots,), jnp.int32))
  return buffer


def reservoir_insert(buffer: dict, x: jax.Array, y: jax.Array, count: jax.Array,
                     key: jax.Array, *, more: dict | None = None) -> dict:
  """Offers the first ``count`` rows of (x, y) to the buffer by reservoir sampling.

  Algorithm R, vectorised: the example offered as the n-th of the stream (0-based) goes
  to slot n while n < M, else to slot j ~ U{0..n} when j < M (and is dropped otherwise);
  where several examples of this call land in one slot the last one wins, exactly as if
  they had been offered one by one.

  Args:
    buffer: ``{'x': [M, d], 'y': [M], 'valid': [M] bool, 'seen': [] int32}``.
    x: [N, d] embeddings; y: [N] int32 labels; count: [] int32, real rows (rest padding).
    key: PRNG key of this insertion.
    more: other per-row arrays [N, ...] stored beside x under the same keys of the buffer
      (``text``, ``kind``).

  Returns:
    The updated buffer (same shapes); ``seen`` grows by ``count``.
  """
  capacity = buffer['x'].shape[0]
  n = x.shape[0]
  rows = jnp.arange(n, dtype=jnp.int32)
  position = buffer['seen'] + rows  # stream index of each offered example
  draw = jax.random.randint(key, (n,), 0, jnp.maximum(position + 1, 1))
  slot = jnp.where(position < capacity, position, draw)
  slot = jnp.where((rows < count) & (slot < capacity), slot, capacity)  # capacity = dropped
  winner = jnp.full((capacity + 1,), -1, jnp.int32).at[slot].max(rows)[:capacity]
  written = winner >= 0
  source = jnp.maximum(winner, 0)
  rows = {'x': x, 'y': y, **(more or {})}
  out = {name: jnp.where(written.reshape((-1,) + (1,) * (a.ndim - 1)), a[source], buffer[name])
         for name, a in rows.items()}
  return dict(out, valid=buffer['valid'] | written,
              seen=buffer['seen'] + count.astype(jnp.int32))


def sample_buffer(buffer: dict, key: jax.Array, batch_size: int):
  """``batch_size`` rows drawn uniformly with replacement from the valid slots.

  Returns (x [B, d], y [B], valid [B] bool); all rows are invalid while the buffer is
  empty. Valid slots are always the leading ones (reservoir slots fill in order).
  """
  rows = sample_rows(buffer, key, batch_size)
  return rows['x'], rows['y'], rows['valid']


def er(context: Context) -> Method:
  """Builds the ER-VLM hooks for ``context.config`` (see module doc)."""
  config, dim = context.config, context.dim
  s = settings(config)
  vl = context.vl
  capacity = memory_examples(config, dim,  # validates the config
                             None if vl is None else bytes_per_pair_example(dim))
  per_example = bytes_per_example(dim)

  def init_state(key):
    del key
    return {'extras': init_buffer(capacity, dim, with_text=vl is not None)}

  def extra_loss(params, state, x, y, key, text=None):
    """λ_er · L_task on a batch of buffer examples, over the classes seen so far."""
    del x, y, text
    if vl is not None:
      rows = sample_rows(state.extras, key, s['er_batch_size'])
      replay = kind_losses.batch_loss(
          context.embed, params, bank=state.class_bank, seen=state.seen,
          bank_family=vl.bank_family, kinds=rows['kind'], x=rows['x'], text=rows['text'],
          y=rows['y'], weights=rows['valid'].astype(jnp.float32))
      return s['er_weight'] * replay, {'replay': replay}
    bx, by, valid = sample_buffer(state.extras, key, s['er_batch_size'])
    replay = context.weighted_task_loss(params, state.class_bank, state.seen, bx, by,
                                        valid.astype(jnp.float32))
    return s['er_weight'] * replay, {'replay': replay}

  def consolidate(state, task, *, axis_name=None):
    """Offers every real training example of ``task`` to the reservoir."""
    del axis_name  # computed replicated (under pmap every device holds the whole task)
    key = jax.random.fold_in(jax.random.fold_in(state.key, _RESERVOIR_TAG), task.index)
    more = None if vl is None else task_rows_extra(task)
    buffer = reservoir_insert(state.extras, task.train_x, task.train_y, task.train_count, key,
                              more=more)
    return state.replace(extras=buffer), {
        'buffer_size': jnp.sum(buffer['valid'], dtype=jnp.int32), 'stream_seen': buffer['seen']}

  def memory_bytes(state):
    if capacity == 0:
      return 0
    valid = np.asarray(state.extras['valid'])
    if vl is None:
      return int(valid.sum()) * per_example
    pair = np.asarray(kind_losses.is_pair(np.asarray(state.extras['kind'])))
    return int((valid & ~pair).sum()) * per_example + int(
        (valid & pair).sum()) * bytes_per_pair_example(dim)

  if capacity == 0:  # no memory: exactly sequential fine-tuning
    return Method(name='er', init_state=init_state, kinds=task_kinds.KINDS)
  return Method(name='er', init_state=init_state, extra_loss=extra_loss,
                consolidate=consolidate, memory_bytes=memory_bytes, kinds=task_kinds.KINDS)


def task_rows_extra(task) -> dict:
  """A vision-language task's per-row arrays stored beside (x, y): paired text [N, d] and
  kind [N] (every row of a task has its kind)."""
  return {'text': task.train_text,
          'kind': jnp.full(task.train_y.shape, task.kind, jnp.int32)}


def sample_rows(buffer: dict, key: jax.Array, batch_size: int) -> dict:
  """``batch_size`` rows (every per-row array of the buffer, and ``valid``) drawn uniformly
  with replacement from the valid slots (the leading ones)."""
  filled = jnp.sum(buffer['valid'], dtype=jnp.int32)
  idx = jax.random.randint(key, (batch_size,), 0, jnp.maximum(filled, 1))
  return {name: a[idx] for name, a in buffer.items() if name != 'seen'}
