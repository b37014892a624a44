"""Joint training: every task's training data kept and trained on (upper bound, METHOD §7).

The extras hold every earlier task's training embeddings in one fixed-size buffer,
``x [T·N, d]``, ``y [T·N] int32`` and ``count [] int32`` (rows ``< count`` are real), where
T is the number of tasks and N the stream's padded rows per task, so nothing is ever
dropped. ``consolidate`` appends the task just learned.

Each online-adaptation step on task t minimises, over the union U of the tasks seen so far,

    L_task(B_t) + (t − 1) · L_task(B_old)

where the engine's real batch B_t comes from task t and B_old is drawn uniformly from the
stored rows of tasks 1..t−1, with all seen classes as the label space. When tasks have
equal sizes (the class-incremental streams) its expectation is t times the mean loss over
U, i.e. the joint objective up to a constant factor (which Adam's normalisation removes),
every example of U weighted equally. With unequal task sizes the current task counts as
much as an average earlier task (the hooks do not see the current task's size before it
is learned). The union is sampled without changing the engine's batch, so no engine hook
is needed.

The buffer size needs N: the engine passes it as ``context.train_rows``; a ``Context``
built by hand without it (0) must set the config field ``joint_buffer_rows`` instead.

Vision-language streams: the buffer also keeps each row's paired text and kind, and the
old rows' term is the kinds' task loss (``kind_losses.batch_loss``; see ``er``'s module doc);
memory counts ``8 d + 4`` bytes for a retrieval / captioning row.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

import numpy as np

from autoseed_jax.core import kind_losses, task_kinds
from autoseed_jax.core.config_checks import check_fields
from autoseed_jax.methods.base import Context, Method
from autoseed_jax.methods.er import bytes_per_example, bytes_per_pair_example, task_rows_extra


def defaults() -> dict:
  """Joint-training hyperparameters and their defaults (config fields of the same names)."""
  return dict(
      joint_batch_size=64,    # rows drawn from earlier tasks' data per step
      joint_buffer_rows=0,    # rows per task of the buffer for a Context without train_rows
  )


def settings(config) -> dict:
  """``defaults()`` overridden by the fields present in ``config``."""
  return {name: config.get(name, value) for name, value in defaults().items()}


def validate(config) -> None:
  """Raises ValueError naming a joint-training field that cannot run."""
  check_fields(settings(config), (
      ('joint_batch_size', '> 0', 'rows drawn from earlier tasks per step'),
      ('joint_buffer_rows', '>= 0', 'rows per task of the buffer; 0: the stream\'s')))


def rows_per_task(context: Context) -> int:
  """N, the stream's padded training rows per task (engine field, else the config's)."""
  rows = context.train_rows or settings(context.config)['joint_buffer_rows']
  if rows <= 0:
    raise ValueError(
        'invalid config: joint training needs the rows per task of the stream; set '
        'joint_buffer_rows to the padded training rows of one task '
        '(stream.tasks[0].train_x.shape[0]).')
  return int(rows)


def append_task(buffer: dict, x: jax.Array, y: jax.Array, count: jax.Array, *,
                more: dict | None = None) -> dict:
  """Appends the ``count`` real rows of (x [N, d], y [N]) after the buffer's real rows.

  The whole padded block is written at offset ``count`` of the buffer; its padding rows lie
  past the new count and are overwritten by the next task. The buffer has room for every
  task of the stream (T·N rows), so the write never runs past its end. ``more``: other
  per-row arrays [N, ...] appended under the same keys (``text``, ``kind``).
  """
  start = buffer['count']
  rows = {'x': x, 'y': y, **(more or {})}
  out = {name: jax.lax.dynamic_update_slice(buffer[name], a, (start,) + (0,) * (a.ndim - 1))
         for name, a in rows.items()}
  return dict(out, count=start + count.astype(jnp.int32))


def joint(context: Context) -> Method:
  """Builds the joint-training hooks for ``context.config`` (see module doc)."""
  validate(context.config)
  s = settings(context.config)
  rows = rows_per_task(context)
  capacity = context.num_tasks * rows
  vl = context.vl

  def init_state(key):
    del key
    buffer = dict(x=jnp.zeros((capacity, context.dim), jnp.float32),
                  y=jnp.zeros((capacity,), jnp.int32), count=jnp.zeros((), jnp.int32))
    if vl is not None:
      buffer.update(text=jnp.zeros((capacity, context.dim), jnp.float32),
                    kind=jnp.zeros((capacity,), jnp.int32))
    return {'extras': buffer}

  def extra_loss(params, state, x, y, key, text=None):
    """(t − 1) · L_task on a uniform batch of earlier tasks' rows."""
    del x, y, text
    buffer = state.extras
    idx = jax.random.randint(key, (s['joint_batch_size'],), 0, jnp.maximum(buffer['count'], 1))
    weights = (idx < buffer['count']).astype(jnp.float32)
    if vl is None:
      old = context.weighted_task_loss(params, state.class_bank, state.seen, buffer['x'][idx],
                                       buffer['y'][idx], weights)
    else:
      old = kind_losses.batch_loss(
          context.embed, params, bank=state.class_bank, seen=state.seen,
          bank_family=vl.bank_family, kinds=buffer['kind'][idx], x=buffer['x'][idx],
          text=buffer['text'][idx], y=buffer['y'][idx], weights=weights)
    return state.tasks_done.astype(jnp.float32) * old, {'joint_old': old}

  def consolidate(state, task, *, axis_name=None):
    """Appends the task just learned to the buffer."""
    del axis_name  # computed replicated (under pmap every device holds the whole task)
    if task.train_x.shape[0] != rows:
      raise ValueError(f'joint_buffer_rows={rows} but the stream has '
                       f'{task.train_x.shape[0]} padded training rows per task; set it to that.')
    buffer = append_task(state.extras, task.train_x, task.train_y, task.train_count,
                         more=None if vl is None else task_rows_extra(task))
    return state.replace(extras=buffer), {'stored_rows': buffer['count']}

  def memory_bytes(state):
    count = int(state.extras['count'])
    if vl is None:
      return count * bytes_per_example(context.dim)
    pair = np.asarray(kind_losses.is_pair(np.asarray(state.extras['kind'])[:count]))
    return (int((~pair).sum()) * bytes_per_example(context.dim)
            + int(pair.sum()) * bytes_per_pair_example(context.dim))

  return Method(name='joint', init_state=init_state, extra_loss=extra_loss,
                consolidate=consolidate, memory_bytes=memory_bytes, kinds=task_kinds.KINDS)
