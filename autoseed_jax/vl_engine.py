"""The engine's task loss and evaluation for every task kind (``vl_tasks``), jit-able.

Rows of any kind share one loss (``row_losses``), so a batch may mix kinds (the replay
buffers of ER and joint training hold rows of every task):

* a bank row (classification, VQA) is scored against the stream's text bank, over its
  own label space: the bank entries seen so far of its kind's family (class prompts for
  classification, answers for VQA; ``row_label_mask``); loss = cross-entropy of its label;
* a pair row (retrieval, captioning) is scored against the other pair rows of the batch:
  symmetric InfoNCE between the adapted query and text embeddings, rows with the same
  label (image id) counting as positives (``losses.info_nce_rows``).

``evaluate`` computes every task's primary score (``vl_tasks.PRIMARY_SCORE``, the entry of
R[i, j]) and the secondary metrics (``vl_tasks.METRIC_NAMES``; NaN where a kind has none)
in one jitted pass; captioning's BLEU-4 is computed on the host with sacrebleu through
``jax.pure_callback`` from the retrieved bank indices, so it is part of the same compiled
evaluation (and of resume and multi-device runs).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from autoseed_jax import losses, vl_metrics
from autoseed_jax.vl_tasks import (CAPTIONING, CLASSIFICATION, KIND_FAMILY, KINDS, METRIC_NAMES,
                                   PAIR_KINDS, RECALL_KS, RETRIEVAL, VQA, VLInfo)

_FAMILY_OF_KIND = np.asarray([KIND_FAMILY[k] for k in range(len(KINDS))], np.int32)


def is_pair(kinds) -> jax.Array:
  """[...] bool: which kind ids are pair kinds (retrieval, captioning)."""
  return jnp.isin(jnp.asarray(kinds), jnp.asarray(PAIR_KINDS))


def row_label_mask(seen, bank_family, kinds) -> jax.Array:
  """The label space of rows of ``kinds`` ([] or [B] kind ids): seen bank entries [C] of
  their family; [C] or [B, C] bool (all False for pair kinds)."""
  family = jnp.asarray(_FAMILY_OF_KIND)[jnp.asarray(kinds)]
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


def bleu_callback(info: VLInfo):
  """The host function of ``evaluate``: (best bank index [T, Nt], count [T]) -> BLEU-4 [T]
  float32 (NaN for tasks that are not captioning)."""

  def bleu(best, count):
    out = np.full((len(info.kinds),), np.nan, np.float32)
    for t, kind in enumerate(info.kinds):
      if kind != 'captioning':
        continue
      n = int(count[t])
      bank = info.caption_banks[t]
      hyps = [bank[int(i)] for i in np.asarray(best[t])[:n]]
      out[t] = vl_metrics.corpus_bleu4(hyps, info.references[t][:n])
    return out

  return bleu


def evaluate(embed, params, test, label_masks, info: VLInfo):
  """Every task's (primary score [T], secondary metrics [T, len(METRIC_NAMES)]).

  test: the stream's ``EvalSet``; label_masks: [T, C] the bank entries each task is
  evaluated over (the engine passes the seen entries and the task's own, as for
  classification); entries of the wrong family are dropped per kind.
  """
  class_emb = embed(params, text_z=test.class_text)[1]
  family = jnp.asarray(test.bank_family)

  def one(x, y, count, mask, kind, text, text_image, text_count, bank, bank_count, answers):
    img, _, scale = embed(params, image_z=x)
    valid = jnp.arange(x.shape[0]) < count
    own = mask & (family == jnp.asarray(_FAMILY_OF_KIND)[kind])
    pred = jnp.argmax(losses.class_logits(img, class_emb, scale, own), axis=-1)
    accuracy = 100.0 * jnp.sum((pred == y) & valid) / jnp.maximum(count, 1)
    vqa = vl_metrics.vqa_accuracy(pred, answers, valid)
    txt = embed(params, text_z=text)[1]
    recalls = vl_metrics.image_text_recalls(img @ txt.T, text_image, valid,
                                            jnp.arange(text.shape[0]) < text_count, RECALL_KS)
    bank_emb = embed(params, text_z=bank)[1]
    bank_ok = jnp.arange(bank.shape[0]) < bank_count
    best = jnp.argmax(jnp.where(bank_ok[None], img @ bank_emb.T, -jnp.inf), axis=1)
    return accuracy, vqa, recalls, best

  accuracy, vqa, recalls, best = jax.vmap(one)(
      test.x, test.y, test.count, label_masks, test.kind, test.text, test.text_image,
      test.text_count, test.bank, test.bank_count, test.answers)
  num_tasks = test.x.shape[0]
  if 'captioning' in info.kinds:
    # Under a seed axis (``seed_axis``) the host function runs once per seed.
    bleu = jax.pure_callback(bleu_callback(info),
                             jax.ShapeDtypeStruct((num_tasks,), jnp.float32), best, test.count,
                             vmap_method='sequential')
  else:
    bleu = jnp.full((num_tasks,), jnp.nan, jnp.float32)
  kind = test.kind
  pair = is_pair(kind)
  primary = jnp.select([kind == CLASSIFICATION, kind == RETRIEVAL, kind == CAPTIONING,
                        kind == VQA], [accuracy, jnp.mean(recalls, axis=1), bleu, vqa])
  nan = jnp.float32(jnp.nan)
  secondary = jnp.concatenate([
      jnp.where(pair[:, None], recalls, nan),
      jnp.where(kind == CAPTIONING, bleu, nan)[:, None],
      jnp.where(kind == VQA, vqa, nan)[:, None],
      jnp.where(kind == CLASSIFICATION, accuracy, nan)[:, None]], axis=1)
  assert secondary.shape[1] == len(METRIC_NAMES)
  return primary.astype(jnp.float32), secondary.astype(jnp.float32)
