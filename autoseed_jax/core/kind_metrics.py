"""Vision-language metrics (METHOD §6): retrieval R@K, captioning BLEU-4, VQA accuracy.

* ``recall_at_k`` (jit-able): for every query row the rank of its best-scoring positive
  among the valid candidates (the number of candidates scoring strictly higher); R@K is the
  percentage of queries (with at least one positive) whose rank is < K. Image->text uses
  an image's captions as its positives; text->image a caption's image.
* ``corpus_bleu4`` (host): corpus-level BLEU-4 of hypotheses against their references
  with sacrebleu (``BLEU(lowercase=True)``: 13a tokenisation, exponential smoothing of
  zero n-gram counts, brevity penalty over the corpus), as a percentage. Images may have
  different numbers of references.
* ``vqa_accuracy`` (jit-able): per question min(#human answers equal to the prediction /
  min(3, #human answers), 1), in percent: the VQA v2 rule (without its average over the
  10-choose-9 subsets of annotators); with one human answer it is exact match.
"""

from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp


def best_positive_rank(scores, positive, candidate_ok):
  """[Q] ranks: per row of scores [Q, K], how many valid candidates score strictly higher
  than the row's best positive (positive: [Q, K] bool; candidate_ok: [K] bool)."""
  best = jnp.max(jnp.where(positive & candidate_ok, scores, -jnp.inf), axis=1)
  higher = (scores > best[:, None]) & candidate_ok
  return jnp.sum(higher, axis=1)


def recall_at_k(scores, positive, query_ok, candidate_ok, ks=(1, 5, 10)):
  """[len(ks)] R@K in percent over the valid queries that have a valid positive.

  scores: [Q, K]; positive: [Q, K] bool; query_ok: [Q] bool; candidate_ok: [K] bool.
  """
  rank = best_positive_rank(scores, positive, candidate_ok)
  counted = query_ok & jnp.any(positive & candidate_ok, axis=1)
  total = jnp.maximum(jnp.sum(counted), 1)
  return jnp.stack([100.0 * jnp.sum(counted & (rank < k)) / total for k in ks])


def image_text_recalls(sims, text_image, image_ok, text_ok, ks=(1, 5, 10)):
  """[2 * len(ks)]: R@K image->text then text->image.

  sims: [Ni, Nt] image-caption scores; text_image: [Nt] int, the image of each caption;
  image_ok: [Ni] bool, text_ok: [Nt] bool (padding False).
  """
  positive = text_image[None, :] == jnp.arange(sims.shape[0])[:, None]  # [Ni, Nt]
  return jnp.concatenate([recall_at_k(sims, positive, image_ok, text_ok, ks),
                          recall_at_k(sims.T, positive.T, text_ok, image_ok, ks)])


def vqa_accuracy(pred, answers, valid):
  """Percent; pred: [n] int answer ids; answers: [n, H] human answer ids (-1 padding);
  valid: [n] bool."""
  matches = jnp.sum((answers == pred[:, None]) & (answers >= 0), axis=1)
  humans = jnp.sum(answers >= 0, axis=1)
  credit = jnp.minimum(matches / jnp.maximum(jnp.minimum(humans, 3), 1), 1.0)
  return 100.0 * jnp.sum(jnp.where(valid, credit, 0.0)) / jnp.maximum(jnp.sum(valid), 1)


def corpus_bleu4(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> float:
  """Corpus BLEU-4 (percent) with sacrebleu; references[i] are hypothesis i's references."""
  from sacrebleu.metrics import BLEU  # pylint: disable=import-outside-toplevel
  if len(hypotheses) != len(references) or not hypotheses:
    raise ValueError(f'{len(hypotheses)} hypotheses for {len(references)} reference lists.')
  most = max(len(r) for r in references)
  if min(len(r) for r in references) == 0:
    raise ValueError('every hypothesis needs at least one reference caption.')
  streams = [[r[k] if k < len(r) else None for r in references] for k in range(most)]
  return float(BLEU(lowercase=True).corpus_score(list(hypotheses), streams).score)
