"""Task-gradient sketches, the unrolled inner loop and the meta-update (METHOD §4.3)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import optax

from autoseed_jax.core import meta


def _params(seed=0):
  rng = np.random.default_rng(seed)
  return {'a': jnp.asarray(rng.normal(size=(3, 4)), jnp.float32),
          'b': jnp.asarray(rng.normal(size=(5,)), jnp.float32)}


def test_sketch_is_deterministic_linear_and_key_dependent():
  tree, other = _params(0), _params(1)
  key = jax.random.PRNGKey(7)
  s1 = meta.sketch(tree, key, 16)
  np.testing.assert_array_equal(s1, meta.sketch(tree, key, 16))
  both = jax.tree.map(lambda x, y: 2 * x + y, tree, other)
  np.testing.assert_allclose(meta.sketch(both, key, 16),
                             2 * s1 + meta.sketch(other, key, 16), rtol=1e-5, atol=1e-5)
  assert not np.allclose(s1, meta.sketch(tree, jax.random.PRNGKey(8), 16))


def test_sketch_roughly_preserves_inner_products():
  rng = np.random.default_rng(0)
  x = {'w': jnp.asarray(rng.normal(size=(2000,)), jnp.float32)}
  y = {'w': x['w'] + jnp.asarray(rng.normal(size=(2000,)), jnp.float32)}
  key = jax.random.PRNGKey(0)
  sx, sy = meta.sketch(x, key, 512), meta.sketch(y, key, 512)
  cos_true = float(jnp.dot(x['w'], y['w']) / jnp.linalg.norm(x['w']) / jnp.linalg.norm(y['w']))
  cos_sketch = float(sx @ sy / jnp.linalg.norm(sx) / jnp.linalg.norm(sy))
  assert abs(cos_true - cos_sketch) < 0.1


def test_task_gradient_condition_unit_rows_and_matches_manual():
  params = _params(0)
  data = jnp.asarray(np.random.default_rng(1).normal(size=(10, 4)), jnp.float32)

  def loss(p, weights):
    pred = jnp.tanh(data @ p['a'].T) @ jnp.ones((3,)) + p['b'][0]
    return jnp.sum(weights * pred**2) / jnp.maximum(weights.sum(), 1.0)

  weights = jnp.asarray(np.eye(2).repeat(5, axis=1), jnp.float32)  # 2 classes x 10 examples
  key = jax.random.PRNGKey(3)
  u = meta.task_gradient_condition(loss, params, weights, sketch_key=key, sketch_dim=8)
  assert u.shape == (2, 8)
  np.testing.assert_allclose(np.linalg.norm(u, axis=1), 1.0, rtol=1e-5)
  manual = meta.sketch(jax.grad(loss)(params, weights[1]), key, 8)
  np.testing.assert_allclose(u[1], manual / jnp.linalg.norm(manual), rtol=1e-4, atol=1e-6)
  u2 = jax.jit(lambda p: meta.task_gradient_condition(
      loss, p, weights, sketch_key=key, sketch_dim=8))(params)
  np.testing.assert_allclose(u, u2, rtol=1e-5, atol=1e-6)
  # R drawn once (sketch_blocks) and passed in gives the same conditions.
  blocks = meta.sketch_blocks(params, key, 8)
  assert [b.shape for b in blocks] == [(8, x.size) for x in jax.tree.leaves(params)]
  u3 = meta.task_gradient_condition(loss, params, weights, sketch_key=None, sketch_dim=8,
                                    blocks=blocks)
  np.testing.assert_allclose(u, u3, rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match='blocks of R'):
    meta.sketch(params, None, 8, blocks[:1])


def test_unrolled_inner_loop_equals_a_python_loop():
  params = _params(2)
  loss = lambda p: jnp.sum(p['a'] ** 2) + jnp.sum(jnp.sin(p['b']))
  got = meta.unrolled_inner_loop(loss, params, learning_rate=0.1, num_steps=3)
  want = params
  for _ in range(3):
    g = jax.grad(loss)(want)
    want = jax.tree.map(lambda p, gg: p - 0.1 * gg, want, g)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5), got, want)


def test_clipped_inner_loop_bounds_every_step_and_is_differentiable():
  params = _params(3)
  scale = 4.0
  loss = lambda p, s=scale: s * jnp.sum(p['a'] ** 2) + jnp.sum(jnp.sin(p['b']))
  got = meta.unrolled_inner_loop(loss, params, learning_rate=0.1, num_steps=3,
                                 max_grad_norm=0.5)
  want = params
  for _ in range(3):
    g = jax.grad(loss)(want)
    norm = float(optax.global_norm(g))
    assert norm > 0.5  # the clip is active on every step of this loss
    want = jax.tree.map(lambda p, gg: p - 0.1 * gg * 0.5 / norm, want, g)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), got, want)
  # The meta-gradient flows through the clip (to a variable the inner loss closes over).
  outer = lambda s: jnp.sum(meta.unrolled_inner_loop(
      lambda p: loss(p, s), params, learning_rate=0.1, num_steps=3, max_grad_norm=0.5)['a'])
  assert np.isfinite(jax.grad(outer)(scale)) and jax.grad(outer)(scale) != 0


def test_meta_update_lowers_the_outer_loss_through_the_inner_loop():
  # Bilevel toy: φ produces "seeds" s = φ·z; the inner loop fits θ to s; the outer loss
  # asks the fitted θ to match a target. Only the meta-gradient through the unrolled
  # inner loop can move φ the right way (the outer loss does not see φ otherwise).
  target = jnp.array([1.0, -2.0, 0.5])
  theta0 = jnp.zeros(3)

  def outer(phi, key):
    z = 1.0 + 0.1 * jax.random.normal(key, ())
    seeds = phi['w'] * z
    inner = lambda theta: jnp.sum((theta - seeds) ** 2)
    theta = meta.unrolled_inner_loop(inner, theta0, learning_rate=0.2, num_steps=4)
    return jnp.sum((theta - target) ** 2)

  phi = {'w': jnp.zeros(3)}
  opt = optax.adam(0.1)
  new_phi, _, losses = jax.jit(lambda p, s, k: meta.meta_update(
      outer, p, s, k, optimizer=opt, num_steps=60))(phi, opt.init(phi), jax.random.PRNGKey(0))
  assert losses.shape == (60,)
  before = float(outer(phi, jax.random.PRNGKey(1)))
  after = float(outer(new_phi, jax.random.PRNGKey(1)))
  assert after < 0.05 * before
