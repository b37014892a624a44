"""The seed generator G_φ (METHOD §4.3b): a hypernetwork from task gradients to seeds.

G_φ maps ``[u_c ; e_c ; z]`` to a seed ``(v, w)``, both unit norm, where ``u_c`` [m] is
the sketched task gradient of class c, ``e_c`` [d] the class's text embedding and
``z ~ N(0, I)`` noise. METHOD leaves the parameterisation open; we make it residual on
``e_c`` by default (``residual=True``): ``v = normalize(e_c + Δ_v)``,
``w = normalize(e_c + Δ_w)``, because a seed must live near its class and a plain MLP
would start from random directions. With ``residual=False`` the MLP outputs (v, w)
directly. φ persists across tasks (forward transfer).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from autoseed_jax.core.losses import l2_normalize


class SeedGenerator(nn.Module):
  """MLP hypernetwork G_φ: ([..., m], [..., d], [..., z]) -> (v [..., d], w [..., d])."""

  hidden_dim: int = 256
  num_layers: int = 2
  residual: bool = True
  output_init_scale: float = 0.1

  @nn.compact
  def __call__(self, condition, class_text, noise, visual_base=None):
    """``visual_base`` [..., d]: with ``residual``, v = normalize(visual_base + Δ_v)
    instead of normalize(e_c + Δ_v) (w stays residual on e_c); None: e_c."""
    d = class_text.shape[-1]
    h = jnp.concatenate([condition, class_text, noise], axis=-1)
    for i in range(self.num_layers):
      h = nn.gelu(nn.Dense(self.hidden_dim, name=f'hidden_{i}')(h))
    out = nn.Dense(2 * d, name='out', kernel_init=nn.initializers.variance_scaling(
        self.output_init_scale, 'fan_in', 'normal'))(h)
    delta_v, delta_w = jnp.split(out, 2, axis=-1)
    if self.residual:
      base = class_text if visual_base is None else visual_base
      return l2_normalize(base + delta_v), l2_normalize(class_text + delta_w)
    return l2_normalize(delta_v), l2_normalize(delta_w)


def init_generator(model: SeedGenerator, key, *, sketch_dim: int, dim: int, noise_dim: int):
  """Parameters of ``model`` for conditions [m], class texts [d] and noise [noise_dim]."""
  return model.init(key, jnp.zeros((1, sketch_dim)), jnp.zeros((1, dim)),
                    jnp.zeros((1, noise_dim)))


def generate_seeds(model: SeedGenerator, params, key, *, condition, class_text,
             num_per_class: int, noise_dim: int, noise=None, visual_base=None):
  """Generates ``num_per_class`` seeds for each of n classes.

  Args:
    model: the generator module (static).
    params: φ.
    key: PRNG key for the noise z.
    condition: [n, m] sketched task gradients u_c.
    class_text: [n, d] class text embeddings e_c.
    num_per_class: k, seeds per class.
    noise_dim: size of z.
    noise: [n, k, noise_dim] the z of every seed; None: drawn from N(0, I) with ``key``.
    visual_base: [n, d] where the residual generator starts v (default: class_text).

  Returns:
    (v, w), each [n, k, d] and unit norm.
  """
  n = condition.shape[0]
  if noise is None:
    noise = jax.random.normal(key, (n, num_per_class, noise_dim))
  cond = jnp.broadcast_to(condition[:, None, :], (n, num_per_class, condition.shape[-1]))
  text = jnp.broadcast_to(class_text[:, None, :], (n, num_per_class, class_text.shape[-1]))
  if visual_base is not None:
    visual_base = jnp.broadcast_to(visual_base[:, None, :], text.shape)
  return model.apply(params, cond, text, noise, visual_base)


def random_seeds(key, class_text, *, num_per_class: int, sigma: float):
  """The "random seeds" ablation (METHOD §5): v = normalize(e_c + σε), w = e_c.

  Args:
    class_text: [n, d] class text embeddings e_c.

  Returns:
    (v, w), each [n, k, d].
  """
  n, d = class_text.shape
  eps = jax.random.normal(key, (n, num_per_class, d))
  w = jnp.broadcast_to(l2_normalize(class_text)[:, None, :], (n, num_per_class, d))
  return l2_normalize(w + sigma * eps), w


def __getattr__(name: str):
  """Old names of this module (release 0.1), deprecated: ``autoseed_jax.RENAMED``."""
  import autoseed_jax  # pylint: disable=import-outside-toplevel
  return autoseed_jax.renamed_attribute('core.generator', name)
