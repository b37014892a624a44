"""The task loss of every task kind (``task_kinds``), jit-able.

Rows of any kind share one loss (``row_losses``), so a batch may mix kinds (the replay
buffers of ER and joint training hold rows of every task):

* a bank row (classification, VQA) is scored against the stream's text bank, over its
  own label space: the bank entries seen so far of its kind's family (class prompts for
  classification, answers for VQA; ``row_label_mask``); loss = cross-entropy of its label;
* a pair row (retrieval, captioning) is scored against the other pair rows of the batch:
  symmetric InfoNCE between the adapted query and text embeddings, rows with the same
  label (image id) counting as positives (``losses.info_nce_rows``).

The evaluation of every kind is ``kind_eval.evaluate``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from autoseed_jax.core import losses
from autoseed_jax.core.task_kinds import KIND_FAMILY, KINDS, PAIR_KINDS

FAMILY_OF_KIND = np.asarray([KIND_FAMILY[k] for k in range(len(KINDS))], np.int32)


def is_pair(kinds) -> jax.Array:
  """[...] bool: which kind ids are pair kinds (retrieval, captioning)."""
  return jnp.isin(jnp.asarray(kinds), jnp.asarray(PAIR_KINDS))


def row_label_mask(seen, bank_family, kinds) -> jax.Array:
  """The label space of rows of ``kinds`` ([] or [B] kind ids): seen bank entries [C] of
  their family; [C] or [B, C] bool (all False for pair kinds)."""
  family = jnp.asarray(FAMILY_OF_KIND)[jnp.asarray(kinds)]
  return seen & (jnp.asarray(bank_family) == family[..., None])


def row_losses(img, txt, class_emb, scale, y, kinds, label_mask, valid) -> jax.Array:
  """[B] per-row task losses of adapted rows of any kind (see the module doc).

  img / txt: [B, d] adapted query and paired-text embeddings; class_emb: [C, d] adapted
  bank; y: [B] labels (bank ids, or image ids for pair rows); kinds: [] or [B];
  label_mask: [C] or [B, C]; valid: [B] bool (padding rows and the rows that are not
  pair rows never act as InfoNCE negatives).
  """
  pair = jnp.broadcast_to(is_pair(kinds), y.shape)
  logits = losses.class_logits(img, class_emb, scale, label_mask)
  safe = jnp.clip(y, 0, class_emb.shape[0] - 1)
  ce = -jnp.take_along_axis(jax.nn.log_softmax(logits, axis=-1), safe[:, None], axis=-1)[:, 0]
  nce = losses.info_nce_rows(img, txt, scale, mask=valid & pair, labels=y)
  return jnp.where(pair, nce, ce)


def batch_loss(embed, params, *, bank, seen, bank_family, kinds, x, text, y, weights,
               normalizer=None) -> jax.Array:
  """Σ w_i ℓ_i / Σ w_i (or / ``normalizer``) over rows (x [B, d], text [B, d], y [B]) of
  ``kinds`` under ``params``; ``embed`` is the engine's (params, image_z, text_z) ->
  (h_I, h_T, scale). Rows with weight 0 are padding (no InfoNCE negatives either)."""
  img, txt, scale = embed(params, x, text)
  class_emb = embed(params, text_z=bank)[1]
  per_row = row_losses(img, txt, class_emb, scale, y, kinds,
                       row_label_mask(seen, bank_family, kinds), weights > 0)
  total = jnp.sum(weights) if normalizer is None else normalizer
  return jnp.sum(per_row * weights) / jnp.maximum(total, 1.0)


def __getattr__(name: str):
  """Old names of this module (release 0.1), deprecated: ``autoseed_jax.RENAMED``."""
  import autoseed_jax  # pylint: disable=import-outside-toplevel
  return autoseed_jax.renamed_attribute('core.kind_losses', name)
