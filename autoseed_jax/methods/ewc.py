"""Elastic Weight Consolidation (Kirkpatrick et al. 2017), online form (METHOD §7).

After online adaptation on task t (``consolidate``), the diagonal empirical Fisher of θ_t
on the task's training data,

    F_t = mean_i (∇_θ ℓ(θ_t; x_i, y_i))²,

ℓ the task loss (CE over the classes seen so far) of one example, is computed from
per-example gradients (``vmap``) in chunks of ``ewc_fisher_batch`` rows (the rows split
over the devices under pmap). It is accumulated online (Schwarz et al. 2018):
``F ← γ F + F_t`` with ``γ = ewc_decay`` (1: the plain sum over tasks), and the anchor
becomes θ* = θ_t. Every online-adaptation step then adds the penalty

    λ_ewc / 2 · Σ_k F_k (θ_k − θ*_k)²

over every adapter parameter (the temperature included). Before the first consolidation F
is zero, so the penalty is 0. The extras are ``{'fisher': F, 'anchor': θ*}``, two pytrees
shaped like θ.

The empirical Fisher of a model that fits its task almost perfectly is small (per-example
gradients near zero), so useful λ_ewc are large. The default 1e8 was chosen on the synthetic
stream (experiments/configs/synthetic.py; final average accuracy 38.6% at 1e6, 59.5% at
1e7, 86.3% at 1e8, 84.2% at 1e9); on animals-ci (real_streams settings) it gives 51.6%,
51.9%, 52.4% at 1e7, 1e8, 1e9. Tune it per stream.

Vision-language streams: ℓ is the task kind's loss of one row (``kind_losses.row_losses``);
a retrieval / captioning row's in-batch InfoNCE takes the other rows of its chunk of
``ewc_fisher_batch`` rows as negatives, and its gradient is taken through its own
embeddings (and the bank's), the other rows' embeddings held fixed
(``squared_row_gradient_sum``). These Fisher chunks are computed whole on every device
(not split over devices), so a multi-device run gives the single-device Fisher.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from autoseed_jax.core import kind_losses, parallel, task_kinds
from autoseed_jax.core.adapters import init_adapter
from autoseed_jax.core.config_checks import check_fields
from autoseed_jax.methods.base import Context, Method


def defaults() -> dict:
  """EWC hyperparameters and their defaults (config fields of the same names)."""
  return dict(
      ewc_weight=1e8,        # λ_ewc (large: the empirical Fisher of a well-fit model is small)
      ewc_decay=1.0,         # γ of online EWC: F ← γ F + F_t (1 = sum over tasks)
      ewc_fisher_batch=64,   # examples per vmapped chunk of per-example gradients
  )


def settings(config) -> dict:
  """``defaults()`` overridden by the fields present in ``config``."""
  return {name: config.get(name, value) for name, value in defaults().items()}


def validate(config) -> None:
  """Raises ValueError naming an EWC field that cannot run."""
  check_fields(settings(config), (
      ('ewc_weight', '>= 0', 'λ_ewc'),
      ('ewc_decay', 'in [0, 1]', 'γ of online EWC; 1 sums the Fisher over tasks'),
      ('ewc_fisher_batch', '> 0', 'examples per chunk of per-example gradients')))


def squared_gradient_sum(example_loss, params, x, y, weights, *, chunk: int):
  """Σ_i w_i (∇_θ ℓ(θ; x_i, y_i))², per-example gradients vmapped ``chunk`` rows at a time.

  Args:
    example_loss: ``(params, x [d], y []) -> scalar`` loss of one example.
    params: θ, any pytree.
    x: [N, d] inputs; y: [N] int32 labels; weights: [N] float32 (0 for padding rows).
    chunk: rows per vmapped block (bounds memory to ``chunk`` gradients at a time).

  Returns:
    A pytree like ``params``, every entry >= 0.
  """
  per_example = jax.vmap(jax.grad(example_loss), in_axes=(None, 0, 0))
  return _chunked_squared_sum(lambda p, block, bw: per_example(p, *block), params, (x, y),
                              weights, chunk=chunk)


def squared_row_gradient_sum(row_loss, params, rows, weights, *, chunk: int):
  """Σ_i w_i (∇_θ ℓ_i)² where ℓ_i, row i's loss, may depend on the other rows of its chunk.

  Args:
    row_loss: ``(params, rows of one chunk, valid [chunk] bool, i) -> scalar`` loss of the
      chunk's row i.
    rows: tuple of [N, ...] arrays; weights: [N] float32 (0 for padding rows).
  """

  def grads(p, block, bw):
    def one(i):
      return jax.grad(lambda q: row_loss(q, block, bw > 0, i))(p)
    return jax.vmap(one)(jnp.arange(chunk))

  return _chunked_squared_sum(grads, params, rows, weights, chunk=chunk)


def _chunked_squared_sum(grads_fn, params, rows, weights, *, chunk: int):
  """Σ_i w_i g_i² over rows split into chunks; ``grads_fn(params, chunk rows, chunk
  weights)`` gives the chunk's per-row gradients (leading axis ``chunk``)."""
  n = weights.shape[0]
  blocks = -(-n // chunk)
  pad = blocks * chunk - n

  def split(a):
    return jnp.pad(a, ((0, pad),) + ((0, 0),) * (a.ndim - 1)).reshape(
        (blocks, chunk) + a.shape[1:])

  def add_block(total, block):
    rows_block, bw = block
    grads = grads_fn(params, rows_block, bw)
    return jax.tree.map(lambda t, g: t + jnp.einsum('n...,n->...', g * g, bw), total,
                        grads), None

  zero = jax.tree.map(jnp.zeros_like, params)
  total, _ = jax.lax.scan(add_block, zero, (tuple(split(a) for a in rows), split(weights)))
  return total


def fisher_diagonal(example_loss, params, x, y, count, *, chunk: int, parallelism=None,
                    axis_name=None):
  """Diagonal empirical Fisher: mean over the first ``count`` rows of squared gradients.

  x: [N, d]; y: [N] int32; count: [] int32 real rows (the rest is padding). Under pmap
  (``axis_name`` set, with the engine's ``parallelism``) each device sums its share of the
  rows and the shares are added over devices.
  """
  weights = (jnp.arange(x.shape[0]) < count).astype(jnp.float32)
  if axis_name is not None:
    x, y, weights = (parallel.shard_rows(a, parallelism, axis_name) for a in (x, y, weights))
  total = squared_gradient_sum(example_loss, params, x, y, weights, chunk=chunk)
  if axis_name is not None:
    total = jax.lax.psum(total, axis_name)
  return jax.tree.map(lambda t: t / jnp.maximum(count, 1).astype(t.dtype), total)


def ewc_penalty(params, fisher, anchor) -> jax.Array:
  """½ Σ F (θ − θ*)², a scalar (multiply by λ_ewc)."""
  terms = jax.tree.map(lambda p, f, a: jnp.sum(f * (p - a) ** 2), params, fisher, anchor)
  return 0.5 * sum(jax.tree.leaves(terms))


def ewc(context: Context) -> Method:
  """Builds the EWC hooks for ``context.config`` (see module doc)."""
  validate(context.config)
  s = settings(context.config)

  def init_state(key):
    # θ's shapes: the engine's adapter initialised on the same dim (values unused).
    shapes = init_adapter(context.adapter, key, context.dim)
    zeros = jax.tree.map(jnp.zeros_like, shapes)
    return {'extras': {'fisher': zeros, 'anchor': zeros}}

  def extra_loss(params, state, x, y, key, text=None):
    del x, y, key, text
    penalty = ewc_penalty(params, state.extras['fisher'], state.extras['anchor'])
    return s['ewc_weight'] * penalty, {'ewc': penalty}

  def consolidate(state, task, *, axis_name=None):
    """F ← γ F + F_t with F_t at θ_t on the task's training data; θ* ← θ_t."""
    bank, seen = state.class_bank, state.seen

    def example_loss(params, x, y):
      return context.weighted_task_loss(params, bank, seen, x[None], y[None],
                                        jnp.ones((1,), jnp.float32))

    if context.vl is None:
      task_fisher = fisher_diagonal(example_loss, state.params, task.train_x, task.train_y,
                                    task.train_count, chunk=s['ewc_fisher_batch'],
                                    parallelism=context.parallelism, axis_name=axis_name)
    else:
      label_mask = kind_losses.row_label_mask(seen, context.vl.bank_family, task.kind)

      def row_loss(params, rows, valid, i):
        """Row i's loss; the other rows of its chunk enter through their embeddings under
        θ_t held fixed (the gradient of ℓ_i through row i's own embeddings and the bank)."""
        x, text, y = rows
        others = jax.lax.stop_gradient(context.embed(params, x, text)[:2])
        img, txt, scale = context.embed(params, x[i][None], text[i][None])
        class_emb = context.embed(params, text_z=bank)[1]
        return kind_losses.row_losses(others[0].at[i].set(img[0]), others[1].at[i].set(txt[0]),
                                    class_emb, scale, y, task.kind, label_mask, valid)[i]

      weights = (jnp.arange(task.train_x.shape[0]) < task.train_count).astype(jnp.float32)
      total = squared_row_gradient_sum(row_loss, state.params,
                                       (task.train_x, task.train_text, task.train_y),
                                       weights, chunk=s['ewc_fisher_batch'])
      task_fisher = jax.tree.map(
          lambda t: t / jnp.maximum(task.train_count, 1).astype(t.dtype), total)
    fisher = jax.tree.map(lambda f, new: s['ewc_decay'] * f + new,
                          state.extras['fisher'], task_fisher)
    info = {'fisher_mean': jnp.mean(jnp.concatenate(
        [jnp.ravel(f) for f in jax.tree.leaves(task_fisher)]))}
    return state.replace(extras={'fisher': fisher, 'anchor': state.params}), info

  return Method(name='ewc', init_state=init_state, extra_loss=extra_loss,
                consolidate=consolidate, kinds=task_kinds.KINDS)
