"""Learning without Forgetting (Li & Hoiem 2016) on the adapters (METHOD §7).

No memory. Every online-adaptation step on task t adds, on the engine's real batch of
task t,

    λ_lwf · T² · KL(p⁻(·|x) ‖ p(·|x)),

where p and p⁻ are the softmax of θ's and θ⁻'s scaled cosine logits over the classes seen
before task t (``state.prev_seen``, the classes θ⁻ knows) at temperature T, and θ⁻ = the
parameters at the end of task t−1 (``state.prev_params``, treated as constants). On the
first task no class was seen before, so both distributions are the same and the term is 0.

Vision-language streams: the previous model's outputs on the current batch also include
its image-text matching, so from the second task on a second term distils the in-batch
distributions over the batch's paired texts (image -> text and text -> image, the
softmax of the scaled cosines of each row against the batch's other side):
``λ_lwf · T² · (KL(p⁻_i2t ‖ p_i2t) + KL(p⁻_t2i ‖ p_t2i)) / 2`` (``pair_distillation_loss``).
"""

from __future__ import annotations

import jax

import jax.numpy as jnp

from autoseed_jax.core import losses, task_kinds
from autoseed_jax.core.config_checks import check_fields
from autoseed_jax.methods.base import Context, Method


def defaults() -> dict:
  """LwF hyperparameters and their defaults (config fields of the same names)."""
  return dict(
      lwf_weight=1.0,        # λ_lwf
      lwf_temperature=2.0,   # T of the distillation softmax
  )


def settings(config) -> dict:
  """``defaults()`` overridden by the fields present in ``config``."""
  return {name: config.get(name, value) for name, value in defaults().items()}


def validate(config) -> None:
  """Raises ValueError naming an LwF field that cannot run."""
  check_fields(settings(config), (('lwf_weight', '>= 0', 'λ_lwf'),
                                  ('lwf_temperature', '> 0', 'T of the distillation softmax')))


def distillation_loss(context: Context, params, prev_params, class_bank, prev_seen, x, *,
                      temperature: float):
  """T² · KL(p⁻ ‖ p) over the ``prev_seen`` classes on x [B, d]; 0 when θ = θ⁻."""
  img, class_emb, scale = context.embed(params, x, class_bank)
  prev_img, prev_class, prev_scale = jax.lax.stop_gradient(
      context.embed(prev_params, x, class_bank))
  logits = losses.class_logits(img, class_emb, scale, prev_seen)
  prev_logits = losses.class_logits(prev_img, prev_class, prev_scale, prev_seen)
  return losses.distillation_kl(logits, prev_logits, temperature=temperature)


def pair_distillation_loss(context: Context, params, prev_params, x, text, *,
                           temperature: float):
  """T² · mean of KL(p⁻ ‖ p) over the in-batch image->text and text->image distributions
  of x [B, d] against their paired texts [B, d]; 0 when θ = θ⁻."""
  img, txt, scale = context.embed(params, x, text)
  prev_img, prev_txt, prev_scale = jax.lax.stop_gradient(context.embed(prev_params, x, text))
  logits, prev_logits = scale * img @ txt.T, prev_scale * prev_img @ prev_txt.T
  return 0.5 * (losses.distillation_kl(logits, prev_logits, temperature=temperature)
                + losses.distillation_kl(logits.T, prev_logits.T, temperature=temperature))


def lwf(context: Context) -> Method:
  """Builds the LwF hooks for ``context.config`` (see module doc)."""
  validate(context.config)
  s = settings(context.config)

  def extra_loss(params, state, x, y, key, text=None):
    del y, key
    kd = distillation_loss(context, params, state.prev_params, state.class_bank,
                           state.prev_seen, x, temperature=s['lwf_temperature'])
    terms = {'distillation': kd}
    if text is not None:
      pair_kd = pair_distillation_loss(context, params, state.prev_params, x, text,
                                       temperature=s['lwf_temperature'])
      terms['pair_distillation'] = jnp.where(state.tasks_done > 0, pair_kd, 0.0)
      kd = kd + terms['pair_distillation']
    return s['lwf_weight'] * kd, terms

  return Method(name='lwf', extra_loss=extra_loss, kinds=task_kinds.KINDS)
