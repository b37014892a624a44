"""Summary seeds: per-class points computed from a task's real embeddings (docs/autoseed_plus.md).

A *summary seed* is a visual prototype v computed, not generated: the centres of a
spherical k-means of one class's real image embeddings, optionally refined for a few
hundred steps on distribution matching (MMD) and classification under the current
adapters. They are the baselines ``kmeans_seeds`` and ``refined_seeds``
(``methods/summary_seeds.py``) and the yardstick for what a generator of seeds adds.

All functions are pure and jit-able on fixed shapes: a task's rows are [N, d] with
per-class weights [n, N] (1 where a row belongs to the class, 0 elsewhere, as in
``methods.autoseed.SeedUpdateData``).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax

from autoseed_jax.core.losses import l2_normalize


def sample_class_rows(class_weights: jax.Array, key: jax.Array,
                      num: int) -> tuple[jax.Array, jax.Array]:
  """Up to ``num`` distinct rows of each class, uniformly at random (Gumbel top-k).

  Args:
    class_weights: [n, N], > 0 where a row belongs to the class.
    num: rows per class (a class with fewer rows gets them all, the rest invalid).

  Returns:
    (rows [n, num] int32 row indices, valid [n, num] bool).
  """
  noise = jax.random.gumbel(key, class_weights.shape)
  priority = jnp.where(class_weights > 0, noise, -jnp.inf)
  top, rows = jax.lax.top_k(priority, min(num, class_weights.shape[1]))
  if num > class_weights.shape[1]:  # fewer rows than asked for: pad with invalid ones
    pad = ((0, 0), (0, num - class_weights.shape[1]))
    top, rows = jnp.pad(top, pad, constant_values=-jnp.inf), jnp.pad(rows, pad)
  return rows.astype(jnp.int32), jnp.isfinite(top)


def _kmeans_one_class(x, weight, key, num_centres: int, iterations: int):
  """Spherical k-means of the rows of x [N, d] with weight [N] > 0 (k-means++ start)."""
  first = jax.random.categorical(key, jnp.where(weight > 0, 0.0, -jnp.inf))
  centres = jnp.zeros((num_centres, x.shape[1]), x.dtype).at[0].set(x[first])

  def seed_next(i, centres):
    # k-means++: the next centre is drawn with probability ∝ squared distance (2 − 2 cos)
    # to the nearest centre chosen so far.
    cos = x @ centres.T
    cos = jnp.where(jnp.arange(num_centres)[None] < i, cos, -jnp.inf)
    dist = jnp.maximum(2.0 - 2.0 * jnp.max(cos, axis=1), 1e-12)
    logits = jnp.where(weight > 0, jnp.log(dist), -jnp.inf)
    pick = jax.random.categorical(jax.random.fold_in(key, i), logits)
    return centres.at[i].set(x[pick])

  centres = jax.lax.fori_loop(1, num_centres, seed_next, centres)

  def lloyd(_, centres):
    assign = jax.nn.one_hot(jnp.argmax(x @ centres.T, axis=1), num_centres) * weight[:, None]
    sums = assign.T @ x
    return jnp.where(jnp.sum(assign, axis=0)[:, None] > 0, l2_normalize(sums), centres)

  centres = jax.lax.fori_loop(0, iterations, lloyd, centres)
  assign = jax.nn.one_hot(jnp.argmax(x @ centres.T, axis=1), num_centres) * weight[:, None]
  return centres, jnp.sum(assign, axis=0)


def class_kmeans(x: jax.Array, class_weights: jax.Array, key: jax.Array, *,
                 num_centres: int, iterations: int = 20) -> tuple[jax.Array, jax.Array]:
  """Spherical k-means centres of every class's rows.

  Args:
    x: [N, d] unit-norm embeddings of the task.
    class_weights: [n, N], > 0 where a row belongs to the class.
    num_centres: k, centres per class (a class with fewer than k distinct rows repeats
      some of them).
    iterations: Lloyd iterations after the k-means++ start.

  Returns:
    (centres [n, k, d] unit norm, sizes [n, k] float32: the class rows nearest each centre,
    in the same order), centres sorted by size, largest first.
  """
  keys = jax.random.split(key, class_weights.shape[0])
  centres, sizes = jax.vmap(
      lambda w, k: _kmeans_one_class(x, w, k, num_centres, iterations))(class_weights, keys)
  order = jnp.argsort(-sizes, axis=1)
  return (jnp.take_along_axis(centres, order[..., None], axis=1),
          jnp.take_along_axis(sizes, order, axis=1))


def refine_on_sphere(v: jax.Array, loss_fn: Callable[[jax.Array], jax.Array], *,
                     num_steps: int, learning_rate: float) -> jax.Array:
  """``num_steps`` Adam steps on the points v [S, d] of ``loss_fn(unit v) -> scalar``,
  projected back onto the unit sphere after each step; returns unit-norm v."""
  optimizer = optax.adam(learning_rate)

  def step(carry, _):
    v, opt_state = carry
    grads = jax.grad(loss_fn)(v)
    updates, opt_state = optimizer.update(grads, opt_state, v)
    return (l2_normalize(optax.apply_updates(v, updates)), opt_state), None

  (v, _), _ = jax.lax.scan(step, (l2_normalize(v), optimizer.init(v)), None, length=num_steps)
  return v
