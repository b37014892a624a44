"""Scoring and choosing generated seed candidates (METHOD §4.3d).

Each candidate seed is scored by gradient alignment: the cosine between the gradient of
the replay loss on that one seed and the gradient of the task loss on the held-out real
data of its class, both under the current parameters θ_t. Per class the best-scored
candidates are kept greedily, skipping any whose visual prototype is closer than a
cosine threshold to one already kept (redundant).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree


def flat_grad(loss_fn: Callable, params, *args) -> jax.Array:
  """∇ loss_fn(params, *args) flattened to [P]."""
  return ravel_pytree(jax.grad(loss_fn)(params, *args))[0]


def gradient_alignment_scores(seed_loss: Callable, params, seed_inputs, class_slot,
                              class_grads: jax.Array, *, batch_size: int = 16) -> jax.Array:
  """cos(∇θ seed_loss(θ; s), class_grads[class_slot(s)]) for every candidate s.

  Args:
    seed_loss: ``(params, one_seed_inputs) -> scalar``.
    params: θ_t.
    seed_inputs: pytree whose leaves have a leading candidate axis [S, ...].
    class_slot: [S] int32, row of ``class_grads`` each candidate is compared with.
    class_grads: [n, P] flattened reference gradients (task loss on D_t^val,c).
    batch_size: candidates whose gradients are held in memory at once.

  Returns:
    [S] float32 cosines in [-1, 1] (0 when either gradient is zero).
  """

  def one(args):
    inputs, slot = args
    g = flat_grad(seed_loss, params, inputs)
    ref = class_grads[slot]
    denom = jnp.linalg.norm(g) * jnp.linalg.norm(ref)
    return jnp.where(denom > 0, g @ ref / jnp.maximum(denom, 1e-30), 0.0)

  return jax.lax.map(one, (seed_inputs, class_slot), batch_size=batch_size)


def select_diverse(v: jax.Array, score: jax.Array, ok: jax.Array, *, num_keep: int,
                   max_cosine: float) -> jax.Array:
  """Greedy per-class choice of the best, mutually non-redundant candidates.

  Args:
    v: [n, S, d] unit-norm visual prototypes of S candidates for each of n classes.
    score: [n, S] higher is better.
    ok: [n, S] bool, candidates allowed at all (padding classes are False).
    num_keep: k, the most seeds kept per class.
    max_cosine: a candidate whose cosine to an already kept seed of its class exceeds
      this is skipped (use a value > 1 to switch the redundancy filter off).

  Returns:
    [n, S] bool, at most ``num_keep`` True per class.
  """

  def per_class(v_c, score_c, ok_c):
    order = jnp.argsort(-jnp.where(ok_c, score_c, -jnp.inf))
    sims = v_c @ v_c.T

    def body(i, kept):
      cand = order[i]
      redundant = jnp.any(kept & (sims[cand] > max_cosine))
      room = jnp.sum(kept) < num_keep
      return kept.at[cand].set(ok_c[cand] & room & ~redundant)

    return jax.lax.fori_loop(0, v_c.shape[0], body, jnp.zeros(v_c.shape[0], bool))

  return jax.vmap(per_class)(v, score, ok)
