"""The evaluation of every task kind (``task_kinds``) in one jitted pass.

``evaluate`` computes every task's primary score (``task_kinds.PRIMARY_SCORE``, the entry
of R[i, j]) and the secondary metrics (``task_kinds.METRIC_NAMES``; NaN where a kind has
none); captioning's BLEU-4 is computed on the host with sacrebleu through
``jax.pure_callback`` from the retrieved bank indices, so it is part of the same compiled
evaluation (and of resume and multi-device runs).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from autoseed_jax.core import kind_metrics, losses
from autoseed_jax.core.kind_losses import FAMILY_OF_KIND, is_pair
from autoseed_jax.core.task_kinds import (CAPTIONING, CLASSIFICATION, METRIC_NAMES, RECALL_KS,
                                          RETRIEVAL, VQA, VLInfo)


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
      out[t] = kind_metrics.corpus_bleu4(hyps, info.references[t][:n])
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
    own = mask & (family == jnp.asarray(FAMILY_OF_KIND)[kind])
    pred = jnp.argmax(losses.class_logits(img, class_emb, scale, own), axis=-1)
    accuracy = 100.0 * jnp.sum((pred == y) & valid) / jnp.maximum(count, 1)
    vqa = kind_metrics.vqa_accuracy(pred, answers, valid)
    txt = embed(params, text_z=text)[1]
    recalls = kind_metrics.image_text_recalls(img @ txt.T, text_image, valid,
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
