"""Task-gradient conditions and the bilevel meta-update of G_φ (METHOD §4.3a–c).

* ``sketch`` / ``task_gradient_condition``: per-class gradients of the task loss,
  flattened and projected by a fixed seeded Gaussian matrix R [m, P]:
  ``u_c = R g_c / ‖R g_c‖``. Each parameter leaf's block of R is drawn from
  ``fold_in(sketch_key, leaf_index)``, so the same key always gives the same R (the
  sketch is deterministic). ``sketch_blocks`` draws R once (m·P float32: 202 MB for the
  default adapters) so that a run can keep it between seed updates; without it, R is
  regenerated on every call (drawing its m·P Gaussians costs far more than applying it).
* ``unrolled_inner_loop``: θ' = θ₀ − α ∇ L_inner(θ₀) repeated n times with ``lax.scan``;
  differentiable with respect to anything ``L_inner`` closes over (the generator). With
  ``max_grad_norm`` each gradient is first clipped to that global norm: our addition to
  METHOD §4.3c (docs/DEVICES.md), because the meta-update otherwise drives the plain loop
  to divergence, where it turns float rounding into different seeds.
* ``meta_update``: M optax steps on φ of an outer loss that runs the inner loop.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax


def sketch_blocks(tree, key: jax.Array, sketch_dim: int) -> tuple[jax.Array, ...]:
  """The blocks of the Gaussian R [sketch_dim, P] for ``tree``'s leaves (shapes only).

  Returns:
    one [sketch_dim, leaf size] float32 block per leaf, in ``jax.tree.leaves`` order.
  """
  return tuple(jax.random.normal(jax.random.fold_in(key, i), (sketch_dim, leaf.size))
               for i, leaf in enumerate(jax.tree.leaves(tree)))


def sketch(tree, key: jax.Array | None, sketch_dim: int,
           blocks: tuple[jax.Array, ...] | None = None) -> jax.Array:
  """R · flatten(tree) for a fixed Gaussian R [sketch_dim, P] derived from ``key``.

  Args:
    blocks: R from ``sketch_blocks(tree, key, sketch_dim)``, drawn earlier; when None,
      R is drawn here from ``key``.

  Returns:
    [sketch_dim] float32 (not normalised).
  """
  leaves = jax.tree.leaves(tree)
  if blocks is None:
    blocks = sketch_blocks(tree, key, sketch_dim)
  if len(blocks) != len(leaves):
    raise ValueError(f'sketch: {len(blocks)} blocks of R for {len(leaves)} parameter leaves; '
                     'draw them with sketch_blocks on the same parameter tree.')
  total = jnp.zeros((sketch_dim,), jnp.float32)
  for leaf, block in zip(leaves, blocks):
    total = total + block @ leaf.reshape(-1).astype(jnp.float32)
  return total / jnp.sqrt(float(sketch_dim))


def task_gradient_condition(per_class_loss: Callable, params, class_weights: jax.Array, *,
                            sketch_key: jax.Array | None, sketch_dim: int = 128,
                            blocks: tuple[jax.Array, ...] | None = None) -> jax.Array:
  """Sketched, normalised per-class task gradients u_c (METHOD §4.3a).

  Args:
    per_class_loss: ``(params, weights [N]) -> scalar``, the task loss on the task's data
      with example weights (1 for examples of the class, 0 elsewhere).
    params: θ_t, the parameters after online adaptation.
    class_weights: [n, N] float/bool, one row of example weights per class.
    sketch_key: fixes R; use the same key for the whole run.
    sketch_dim: m.
    blocks: R drawn once with ``sketch_blocks(params, sketch_key, sketch_dim)``; when
      None it is drawn here (same values, more time).

  Returns:
    [n, m] unit-norm conditions (a zero row for a class without examples).
  """
  grads = jax.vmap(jax.grad(per_class_loss), in_axes=(None, 0))(
      params, class_weights.astype(jnp.float32))
  if blocks is None:  # drawn once here and applied to all classes as one matrix product
    blocks = sketch_blocks(params, sketch_key, sketch_dim)
  r = jax.vmap(lambda g: sketch(g, None, sketch_dim, blocks))(grads)
  return r / jnp.maximum(jnp.linalg.norm(r, axis=-1, keepdims=True), 1e-12)


def unrolled_inner_loop(inner_loss: Callable, params0, *, learning_rate: float,
                        num_steps: int, max_grad_norm: float = 0.0):
  """n steps of gradient descent on ``inner_loss(params)``, written with lax.scan.

  Differentiating the result with respect to variables ``inner_loss`` closes over gives
  the full (second-order) meta-gradient through the unrolled loop.

  Args:
    max_grad_norm: > 0 clips each step's gradient to this global norm
      (``optax.clip_by_global_norm``), so no inner step is longer than
      ``learning_rate * max_grad_norm``; 0 is plain gradient descent.

  Returns:
    θ' after ``num_steps`` steps.
  """
  clip = optax.clip_by_global_norm(max_grad_norm) if max_grad_norm > 0 else None

  def step(params, _):
    grads = jax.grad(inner_loss)(params)
    if clip is not None:
      grads, _ = clip.update(grads, clip.init(grads))
    return jax.tree.map(lambda p, g: p - learning_rate * g, params, grads), None

  params, _ = jax.lax.scan(step, params0, None, length=num_steps)
  return params


def meta_update(outer_loss: Callable, gen_params, gen_opt_state, key: jax.Array, *,
                optimizer: optax.GradientTransformation, num_steps: int,
                axis_name: str | None = None, keep_best: bool = False):
  """M optimiser steps on φ of ``outer_loss(φ, key) -> scalar`` (METHOD §4.3c).

  Each step draws a fresh key (``fold_in(key, step)``) for the generator's noise.
  Under ``pmap`` (``axis_name`` set) each device's ``outer_loss`` returns its share of
  the global loss (the shares sum to it); gradients and losses are summed over devices,
  so every device takes the same step as a single device would.

  ``keep_best`` (ours, docs/autoseed_plus.md §6): the outer loss of the final iterate φ_M
  is evaluated too (key ``fold_in(key, num_steps)``), and the iterate φ_i, i = 0..M, with
  the lowest loss is returned with the optimiser state it had (ties: the earliest; a NaN
  loss is never the lowest), so the update never ends worse, by its own objective, than
  the best point it passed through (φ_0 included).

  Returns:
    (φ, optimiser state, outer losses [num_steps] before each step; with ``keep_best``
    [num_steps + 1], the last the final iterate's).
  """

  def loss_and_grads(params, i):
    loss, grads = jax.value_and_grad(outer_loss)(params, jax.random.fold_in(key, i))
    if axis_name is not None:
      loss, grads = jax.lax.psum((loss, grads), axis_name)
    return loss, grads

  def step(carry, i):
    params, opt_state = carry[:2]
    loss, grads = loss_and_grads(params, i)
    updates, new_opt_state = optimizer.update(grads, opt_state, params)
    new = (optax.apply_updates(params, updates), new_opt_state)
    if keep_best:
      best_params, best_opt_state, best_loss = carry[2:]
      better = loss < best_loss
      best = jax.tree.map(lambda a, b: jnp.where(better, a, b), (params, opt_state),
                          (best_params, best_opt_state))
      new = new + best + (jnp.where(better, loss, best_loss),)
    return new, loss

  carry = (gen_params, gen_opt_state)
  if keep_best:
    carry = carry + (gen_params, gen_opt_state, jnp.asarray(jnp.inf, jnp.float32))
  carry, losses = jax.lax.scan(step, carry, jnp.arange(num_steps))
  if not keep_best:
    return carry[0], carry[1], losses
  params, opt_state, best_params, best_opt_state, best_loss = carry
  if axis_name is None:
    final_loss = outer_loss(params, jax.random.fold_in(key, num_steps))
  else:
    final_loss = jax.lax.psum(outer_loss(params, jax.random.fold_in(key, num_steps)), axis_name)
  better = final_loss < best_loss
  best_params, best_opt_state = jax.tree.map(
      lambda a, b: jnp.where(better, a, b), (params, opt_state), (best_params, best_opt_state))
  return best_params, best_opt_state, jnp.concatenate([losses, final_loss[None]])
