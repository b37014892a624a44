"""Losses of Auto-Seed VL2 (METHOD §3), as pure functions on embeddings.

Every loss takes embeddings that have already been passed through the (adapted) model,
so it composes with any model: call your own encoder, then the loss. All return float32
scalars, are differentiable, and accept an optional ``mask`` ([B] bool) over rows, so
fixed-size batches with empty slots (a seed memory that is not yet full) work under
``jit``. A batch whose mask is all False gives a loss of exactly 0 (and zero gradients).

Shapes: ``B`` rows in a batch, ``C`` class slots (a fixed-size bank with a
``class_mask`` saying which classes are candidates), ``d`` embedding dim.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

# Finite stand-in for -inf on masked logits: softmax gives exactly 0 there and
# 0 * log(0) terms stay finite (a true -inf would give NaN in the KL term).
NEG_INF = -1e9


def _masked_mean(values: jax.Array, mask: jax.Array | None) -> jax.Array:
  if mask is None:
    return jnp.mean(values)
  mask = mask.astype(values.dtype)
  return jnp.sum(values * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def l2_normalize(x: jax.Array, axis: int = -1, eps: float = 1e-12) -> jax.Array:
  """x / ||x|| along ``axis`` (zero vectors stay zero)."""
  return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis=axis, keepdims=True), eps))


def class_logits(image_emb, class_emb, logit_scale, class_mask=None) -> jax.Array:
  """Scaled cosine logits over a class bank.

  Args:
    image_emb: [B, d] unit-norm image (or visual-prototype) embeddings.
    class_emb: [C, d] unit-norm class text embeddings.
    logit_scale: scalar, exp of the learnable log temperature.
    class_mask: [C] bool, candidate classes, or [B, C] (a label space per row); others
      get ``NEG_INF``.

  Returns:
    [B, C] float32 logits.
  """
  logits = logit_scale * image_emb @ class_emb.T
  if class_mask is not None:
    logits = jnp.where(class_mask, logits, NEG_INF)
  return logits


def _cross_entropy(logits, labels):
  """Per-row CE with integer labels; labels outside [0, C) give 0 (masked anyway)."""
  log_p = jax.nn.log_softmax(logits, axis=-1)
  safe = jnp.clip(labels, 0, logits.shape[-1] - 1)
  return -jnp.take_along_axis(log_p, safe[:, None], axis=-1)[:, 0]


def info_nce(image_emb, text_emb, logit_scale, *, mask=None, labels=None) -> jax.Array:
  """Symmetric in-batch InfoNCE between paired image and text embeddings.

  Args:
    image_emb: [B, d] unit-norm embeddings; row i is paired with ``text_emb[i]``.
    text_emb: [B, d] unit-norm embeddings.
    logit_scale: scalar temperature multiplier.
    mask: optional [B] bool; masked rows are neither anchors nor negatives.
    labels: optional [B] int class ids. When given, every pair with the same label is a
      positive (targets spread uniformly over them), which keeps several seeds of one
      class in a batch from being pushed apart. Without labels only the diagonal is.

  Returns:
    Scalar: mean over valid rows of (CE image->text + CE text->image) / 2.
  """
  valid = jnp.ones((image_emb.shape[0],), bool) if mask is None else mask
  return _masked_mean(info_nce_rows(image_emb, text_emb, logit_scale, mask=mask,
                                    labels=labels), valid)


def info_nce_rows(image_emb, text_emb, logit_scale, *, mask=None, labels=None) -> jax.Array:
  """``info_nce`` per row: [B] (CE image->text + CE text->image) / 2 of each row (the
  negatives and positives as in ``info_nce``; masked rows give finite values to ignore)."""
  b = image_emb.shape[0]
  valid = jnp.ones((b,), bool) if mask is None else mask
  logits = logit_scale * image_emb @ text_emb.T
  pair_ok = valid[:, None] & valid[None, :]
  logits = jnp.where(pair_ok, logits, NEG_INF)
  if labels is None:
    positive = jnp.eye(b, dtype=bool)
  else:
    positive = labels[:, None] == labels[None, :]
  positive = positive & pair_ok
  targets = positive / jnp.maximum(jnp.sum(positive, axis=1, keepdims=True), 1)
  targets_t = positive.T / jnp.maximum(jnp.sum(positive.T, axis=1, keepdims=True), 1)
  ce_i2t = -jnp.sum(targets * jax.nn.log_softmax(logits, axis=1), axis=1)
  ce_t2i = -jnp.sum(targets_t * jax.nn.log_softmax(logits.T, axis=1), axis=1)
  return 0.5 * (ce_i2t + ce_t2i)


def info_nce_row(i, image_emb, text_emb, logit_scale, *, mask=None, labels=None) -> jax.Array:
  """Row ``i`` of ``info_nce_rows`` at O(B d) cost: (CE of image i over the texts + CE of
  text i over the images) / 2, positives as in ``info_nce`` (the rows with ``i``'s label,
  or ``i`` alone). image_emb, text_emb: [B, d]; mask, labels: [B]; returns a scalar."""
  b = image_emb.shape[0]
  valid = jnp.ones((b,), bool) if mask is None else mask
  positive = (jnp.arange(b) == i) if labels is None else (labels == labels[i])
  positive = positive & valid
  total = 0.0
  for scores in (logit_scale * text_emb @ image_emb[i], logit_scale * image_emb @ text_emb[i]):
    log_p = jax.nn.log_softmax(jnp.where(valid, scores, NEG_INF))
    total += -jnp.sum(jnp.where(positive, log_p, 0.0)) / jnp.maximum(jnp.sum(positive), 1) / 2
  return total


def task_loss(image_emb, class_emb, labels, logit_scale, *, class_mask=None,
              mask=None) -> jax.Array:
  """Classification task loss L_task (METHOD §3): CE over the seen-class bank.

  Args:
    image_emb: [B, d] adapted image embeddings h_I(f_I(x)).
    class_emb: [C, d] adapted class text embeddings h_T(f_T(prompt(c))).
    labels: [B] int32 class ids in [0, C).
    logit_scale: scalar.
    class_mask: [C] bool, the classes seen so far (W_seen).
    mask: [B] bool, valid rows.
  """
  logits = class_logits(image_emb, class_emb, logit_scale, class_mask)
  return _masked_mean(_cross_entropy(logits, labels), mask)


def replay_loss(seed_image_emb, seed_text_emb, labels, class_emb, logit_scale, *,
                class_mask=None, mask=None, infonce_weight: float = 1.0,
                ce_mask=None, positive_labels=None) -> jax.Array:
  """Replay loss L_replay on seeds (METHOD §3).

  The task loss with the adapted visual prototypes h_I(v) standing for images, plus
  ``infonce_weight`` times in-batch InfoNCE between h_I(v_i) and h_T(w_j) (pairs of the
  same class are positives, see ``info_nce``).

  Args:
    seed_image_emb: [B, d] h_I(v).
    seed_text_emb: [B, d] h_T(w).
    labels: [B] int32 seed classes.
    class_emb, logit_scale, class_mask: as in ``task_loss``.
    mask: [B] bool valid seeds.
    ce_mask: [B] bool, the seeds the CE term is taken over (default ``mask``; seeds of
      k-means clusters, which stand for no bank label, are left out of it).
    positive_labels: [B] ids that make seeds InfoNCE positives of each other (default
      ``labels``; ``pair_groups.infonce_labels``).
  """
  ce = task_loss(seed_image_emb, class_emb, labels, logit_scale,
                 class_mask=class_mask, mask=mask if ce_mask is None else ce_mask)
  nce = info_nce(seed_image_emb, seed_text_emb, logit_scale, mask=mask,
                 labels=labels if positive_labels is None else positive_labels)
  return ce + infonce_weight * nce


def distillation_kl(logits, prev_logits, *, temperature: float, mask=None) -> jax.Array:
  """T² · KL(p⁻ ‖ p) with p = softmax(logits / T), averaged over valid rows."""
  log_p = jax.nn.log_softmax(logits / temperature, axis=-1)
  log_q = jax.nn.log_softmax(prev_logits / temperature, axis=-1)
  kl = jnp.sum(jnp.exp(log_q) * (log_q - log_p), axis=-1)
  return temperature**2 * _masked_mean(kl, mask)


def consistency_loss(image_emb, prev_image_emb, text_emb, prev_text_emb, *,
                     class_emb, prev_class_emb, logit_scale, prev_logit_scale,
                     class_mask=None, mask=None, kd_temperature: float = 2.0) -> jax.Array:
  """Consistency loss L_consist(θ, θ⁻; seeds) (METHOD §3).

  ``mean ‖h_I(v) − h_I⁻(v)‖² + ‖h_T(w) − h_T⁻(w)‖² + T² · KL(p⁻(·|v) ‖ p(·|v))``,
  where p (p⁻) is the softmax over the class bank of the current (previous) model at
  temperature T. The previous model's outputs are treated as constants.

  Args:
    image_emb / prev_image_emb: [B, d] h_I(v) under θ and θ⁻.
    text_emb / prev_text_emb: [B, d] h_T(w) under θ and θ⁻.
    class_emb / prev_class_emb: [C, d] class bank under θ and θ⁻.
    logit_scale / prev_logit_scale: scalars of θ and θ⁻.
    class_mask: [C] bool, the classes the KL is taken over (the engine passes the
      classes seen before the current task, the ones θ⁻ knows).
    mask: [B] bool valid seeds.
    kd_temperature: T_kd.
  """
  prev_image_emb, prev_text_emb, prev_class_emb, prev_logit_scale = jax.lax.stop_gradient(
      (prev_image_emb, prev_text_emb, prev_class_emb, prev_logit_scale))
  feature_drift = (jnp.sum((image_emb - prev_image_emb) ** 2, axis=-1)
                   + jnp.sum((text_emb - prev_text_emb) ** 2, axis=-1))
  logits = class_logits(image_emb, class_emb, logit_scale, class_mask)
  prev_logits = class_logits(prev_image_emb, prev_class_emb, prev_logit_scale, class_mask)
  return (_masked_mean(feature_drift, mask)
          + distillation_kl(logits, prev_logits, temperature=kd_temperature, mask=mask))


def alignment_loss(v, w, *, mask=None) -> jax.Array:
  """L_align = mean(1 − cos(v, w)) over valid seeds (METHOD §3). v, w: [B, d]."""
  cos = jnp.sum(l2_normalize(v) * l2_normalize(w), axis=-1)
  return _masked_mean(1.0 - cos, mask)


def anchor_loss(v, w, labels, image_means, text_means, *, mask=None) -> jax.Array:
  """L_anchor = mean ‖v − μ_I[c]‖² + ‖w − μ_T[c]‖² over valid seeds (METHOD §3).

  Args:
    v, w: [B, d] seeds.
    labels: [B] int32 seed classes c.
    image_means: [C, d] real image-embedding class means μ_I (the engine passes them
      L2-normalised, since seeds live on the unit sphere).
    text_means: [C, d] class text means μ_T.
  """
  safe = jnp.clip(labels, 0, image_means.shape[0] - 1)
  dist = (jnp.sum((v - jnp.take(image_means, safe, axis=0)) ** 2, axis=-1)
          + jnp.sum((w - jnp.take(text_means, safe, axis=0)) ** 2, axis=-1))
  return _masked_mean(dist, mask)


def rbf_kernel(a, b, *, bandwidths) -> jax.Array:
  """Mean over bandwidths σ of exp(−‖a_i − b_j‖² / (2σ²)). a: [n, d], b: [m, d] -> [n, m]."""
  sq = (jnp.sum(a * a, -1)[:, None] + jnp.sum(b * b, -1)[None, :] - 2.0 * a @ b.T)
  sq = jnp.maximum(sq, 0.0)
  return jnp.mean(jnp.stack([jnp.exp(-sq / (2.0 * s * s)) for s in bandwidths]), axis=0)


def _weighted_mean_kernel(kernel, wa, wb):
  return (wa @ kernel @ wb) / jnp.maximum(jnp.sum(wa) * jnp.sum(wb), 1e-12)


def mmd_rbf(x, y, *, bandwidths, x_mask=None, y_mask=None) -> jax.Array:
  """Squared maximum mean discrepancy between two sets under an RBF kernel (biased,
  V-statistic): ``mean k(x, x') + mean k(y, y') − 2 mean k(x, y)`` over valid rows.

  Used as a distribution-matching term (docs/autoseed_plus.md): a class's seeds x against
  its real embeddings y. Unlike a pull toward the class mean, it is smallest when the
  seeds spread like the data (its k(x, x') part repels seeds from each other).

  Args:
    x: [n, d] (seeds); y: [m, d] (real examples).
    bandwidths: RBF widths σ (the kernel is the mean over them).
    x_mask / y_mask: optional [n] / [m] bool valid rows. A side without valid rows gives 0.

  Returns:
    A float32 scalar >= 0 (up to rounding).
  """
  wx = jnp.ones(x.shape[0]) if x_mask is None else x_mask.astype(jnp.float32)
  wy = jnp.ones(y.shape[0]) if y_mask is None else y_mask.astype(jnp.float32)
  value = (_weighted_mean_kernel(rbf_kernel(x, x, bandwidths=bandwidths), wx, wx)
           + _weighted_mean_kernel(rbf_kernel(y, y, bandwidths=bandwidths), wy, wy)
           - 2.0 * _weighted_mean_kernel(rbf_kernel(x, y, bandwidths=bandwidths), wx, wy))
  return jnp.where((jnp.sum(wx) > 0) & (jnp.sum(wy) > 0), value, 0.0)
