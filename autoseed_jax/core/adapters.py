"""The continually updated part of the VLM (METHOD §1): residual adapters + temperature.

    h_I(z) = normalize(z + α · MLP_I(z))      image adapter (CLIP-Adapter style)
    h_T(z) = normalize(z + α · MLP_T(z))      text adapter
    logit_scale = exp(log τ)

The last layer of each MLP starts at zero, so an untrained adapter is the identity on the
unit sphere and the initial model is exactly the zero-shot backbone (the row b of
METHOD §6). Parameters are a plain pytree:
``{'params': {'image_adapter': ..., 'text_adapter': ..., 'log_logit_scale': []}}``.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from autoseed_jax.core.losses import l2_normalize


class ResidualAdapter(nn.Module):
  """z [..., d] -> normalize(z + alpha * MLP(z)) [..., d]."""

  hidden_dim: int
  alpha: float

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    h = nn.relu(nn.Dense(self.hidden_dim, name='fc1')(z))
    delta = nn.Dense(z.shape[-1], kernel_init=nn.initializers.zeros, name='fc2')(h)
    return l2_normalize(z + self.alpha * delta)


class VLAdapter(nn.Module):
  """Image adapter, text adapter and learnable temperature on a frozen backbone.

  Use through ``init``/``apply``; the methods ``encode_image``, ``encode_text`` and
  ``logit_scale`` are the three pieces (``apply(params, z, method='encode_image')``).
  """

  hidden_dim: int = 256
  alpha: float = 0.5
  init_logit_scale: float = 10.0

  def setup(self):
    self.image_adapter = ResidualAdapter(self.hidden_dim, self.alpha)
    self.text_adapter = ResidualAdapter(self.hidden_dim, self.alpha)
    self.log_logit_scale = self.param(
        'log_logit_scale', lambda _: jnp.log(jnp.asarray(self.init_logit_scale, jnp.float32)))

  def encode_image(self, z: jax.Array) -> jax.Array:
    """[..., d] frozen image embeddings -> [..., d] adapted, unit norm."""
    return self.image_adapter(z)

  def encode_text(self, z: jax.Array) -> jax.Array:
    """[..., d] frozen text embeddings -> [..., d] adapted, unit norm."""
    return self.text_adapter(z)

  def logit_scale(self) -> jax.Array:
    """exp(log τ), a scalar."""
    return jnp.exp(self.log_logit_scale)

  def __call__(self, image_z: jax.Array, text_z: jax.Array):
    """Returns (h_I(image_z), h_T(text_z), logit_scale)."""
    return self.encode_image(image_z), self.encode_text(text_z), self.logit_scale()


def init_adapter(model: VLAdapter, key: jax.Array, dim: int):
  """Parameters for ``model`` on ``dim``-dimensional embeddings."""
  dummy = jnp.zeros((1, dim), jnp.float32)
  return model.init(key, dummy, dummy)


def adapted(model: VLAdapter, params, image_z=None, text_z=None):
  """(h_I(image_z) or None, h_T(text_z) or None, logit_scale) in one ``apply``."""

  def run(module):
    img = None if image_z is None else module.encode_image(image_z)
    txt = None if text_z is None else module.encode_text(text_z)
    return img, txt, module.logit_scale()

  return nn.apply(run, model)(params)
