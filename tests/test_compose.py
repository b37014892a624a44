"""Using seeds, the generator and the consistency loss from a user's own train step.

This is the README's "compose with your own model" example, run as a test: a user has
their own Flax model and optax optimiser, and adds Auto-Seed VL2's seed replay and
consistency term to their own jitted step without using our engine.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from autoseed_jax import generator, losses, seeds

D, C = 16, 4


class UserModel(nn.Module):
  """Someone else's model: maps embeddings to a new space (any architecture works)."""

  @nn.compact
  def __call__(self, z):
    return losses.l2_normalize(z + nn.Dense(D)(nn.relu(nn.Dense(32)(z))))


def test_user_train_step_with_seed_replay_and_consistency():
  key = jax.random.PRNGKey(0)
  model = UserModel()
  params = model.init(key, jnp.zeros((1, D)))
  prev_params = jax.tree.map(jnp.copy, params)     # the user's θ⁻
  class_text = losses.l2_normalize(jax.random.normal(key, (C, D)))

  # Seeds for classes 0 and 1 from the (untrained) hypernetwork, kept in a memory.
  gen = generator.SeedGenerator(hidden_dim=32)
  gen_params = generator.init_generator(gen, key, sketch_dim=8, dim=D, noise_dim=4)
  condition = losses.l2_normalize(jax.random.normal(key, (2, 8)))
  v, w = generator.generate(gen, gen_params, key, condition=condition,
                            class_text=class_text[:2], num_per_class=3, noise_dim=4)
  memory = seeds.add(seeds.init_memory(16, D),
                     seeds.make_seeds(v.reshape(-1, D), w.reshape(-1, D),
                                      jnp.repeat(jnp.arange(2), 3), task=0))

  optimizer = optax.adam(1e-2)
  opt_state = optimizer.init(params)
  x = losses.l2_normalize(jax.random.normal(jax.random.PRNGKey(1), (32, D)))
  y = jnp.full((32,), 2)                            # the new task's class

  @jax.jit
  def train_step(params, opt_state, memory, step_key):
    batch = seeds.sample(memory, step_key, 8)       # seed replay batch (masked)

    def loss_fn(params):
      classes = model.apply(params, class_text)
      own = losses.task_loss(model.apply(params, x), classes, y, 10.0)
      consistency = losses.consistency_loss(
          model.apply(params, batch.v), model.apply(prev_params, batch.v),
          model.apply(params, batch.w), model.apply(prev_params, batch.w),
          class_emb=classes, prev_class_emb=model.apply(prev_params, class_text),
          logit_scale=10.0, prev_logit_scale=10.0, class_mask=jnp.arange(C) < 2,
          mask=batch.valid)
      return own + consistency, consistency

    (loss, consistency), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, consistency

  consistencies = []
  for i in range(30):
    params, opt_state, c = train_step(params, opt_state, memory, jax.random.PRNGKey(i))
    consistencies.append(float(c))
  assert consistencies[0] < 1e-6                     # θ = θ⁻ at the start
  assert all(np.isfinite(consistencies)) and max(consistencies) > 0
  # The consistency term keeps the old classes' seeds where θ⁻ put them.
  drift = jnp.abs(model.apply(params, memory.v[:6]) - model.apply(prev_params, memory.v[:6]))
  assert float(drift.max()) < 0.5
