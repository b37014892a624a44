"""Summary groups of every task kind: what a seed of a summarising method stands for.

The summarising seed methods (``kmeans_seeds``, ``refined_seeds``, ``autoseed_plus``; and any
statistics replay, e.g. a class-Gaussian replay in its pair form) cut a task's training rows
into *groups* and summarise each group by a few (v, w) pairs (docs/VL_TASKS.md §6):

  kind             group                          points summarised      w of a seed
  classification   a class (bank id)              image embeddings x     the class prompt (bank)
  vqa              an answer (bank id)            fused queries x        the answer's text (bank)
  retrieval,       a text k-means cluster of the  (image, caption) pairs the captions' mean,
  captioning       task (``Task.groups``, >= C)   in a joint space       **stored** with the seed

A seed labelled by a bank entry (a class or an answer) needs no stored w: its text is the
bank's, which the model keeps anyway. A seed of a pair group stores its w, and costs its
bytes (``seed_nbytes``). Rows of pair groups are points of a joint space (``joint_points``):
``'concat'`` [x ; t] / √2 (the cosine of two points is the mean of their image and caption
cosines) or ``'sum'`` normalize(x + t); rows of bank groups are x (with a zero text half in
the concatenated space, so the same program serves every kind). ``group_summaries`` clusters
each group's points (spherical k-means, ``kmeans.class_kmeans``) and gives each centre's
members' normalised mean image and mean text embeddings.

Everything is pure and jit-able on fixed shapes; the task kind may be traced, so one
compiled seed update serves every kind of a stream (``tasks.Task`` pads classes and groups).

For a class-Gaussian replay in pair form: ``summary_groups(task, num_bank)`` gives the
groups and their row weights; ``joint_points`` the rows in the joint space; the Gaussian of
a group is then fitted to its joint points (``train_weights`` rows), a sample split into
its image half and text half (``split_joint``) and each half normalised; a sample of a bank
group takes the bank text as w (``seed_text``); replay is ``methods.autoseed.replay_on_seeds``
(answer CE for bank groups, InfoNCE for every seed, positives from ``infonce_labels``).
Stored bytes: the per-group statistics in place of seeds, counted by the same rule (a w part
only for pair groups). Built in ``core.group_stats`` (the 'concat' space only: a 'sum' point
has no halves to split; replay through ``seed_replay_terms`` with the family's PairReplay).
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from autoseed_jax.core import kmeans, seeds
from autoseed_jax.core.losses import l2_normalize
from autoseed_jax.core.task_kinds import PAIR_KINDS

JOINT_MODES = ('concat', 'sum')
POSITIVES = ('group', 'seed')


@flax.struct.dataclass
class SummaryGroups:
  """The groups of one task, a pytree (rows per group slot; padding slots have ``ok``
  False).

  Attributes:
    labels: [n] int32 label a group's seeds carry: a bank id (class, answer) or a pair
      group's cluster id (>= the bank size C); 0 in padding slots.
    ok: [n] bool, real groups.
    stores_text: [n] bool, the group's seeds store their own w (pair groups).
    text: [n, d] unit text of the group: the bank text, or a pair group's caption mean.
    train_weights: [n, N] float32, 1 where a training row belongs to the group.
    val_weights: [n, Nv] float32, the same for D_t^val.
    image_means: [n, d] unit-norm means of the group's training queries x.
  """

  labels: jax.Array
  ok: jax.Array
  stores_text: jax.Array
  text: jax.Array
  train_weights: jax.Array
  val_weights: jax.Array
  image_means: jax.Array


def is_pair_kind(kind) -> jax.Array:
  """[] bool: whether a (possibly traced) kind id is retrieval or captioning."""
  return jnp.isin(jnp.asarray(kind), jnp.asarray(PAIR_KINDS))


def _pad(a, n, value):
  return jnp.pad(a, [(0, n - a.shape[0])] + [(0, 0)] * (a.ndim - 1), constant_values=value)


def summary_groups(task) -> SummaryGroups:
  """The summary groups of ``task`` (a ``tasks.Task``; see the module doc).

  A classification stream (``task.groups`` None) has its classes. On a vision-language
  stream a bank kind (classification, VQA) has its bank entries (``task.classes``, rows by
  ``train_y``) and a pair kind its seed groups (``task.groups``, rows by ``train_group``);
  n = max(classes, groups) slots, chosen by the (traced) ``task.kind``.
  """
  in_train = jnp.arange(task.train_x.shape[0]) < task.train_count
  in_val = jnp.arange(task.val_x.shape[0]) < task.val_count
  if task.groups is None:
    ids, text, train_id, val_id = task.classes, task.class_text, task.train_y, task.val_y
    pair = jnp.zeros((), bool)
  else:
    n = max(task.classes.shape[0], task.groups.shape[0])
    pair = is_pair_kind(task.kind)
    ids = jnp.where(pair, _pad(task.groups, n, -1), _pad(task.classes, n, -1))
    text = jnp.where(pair, _pad(task.group_text, n, 0.0), _pad(task.class_text, n, 0.0))
    train_id = jnp.where(pair, task.train_group, task.train_y)
    val_id = jnp.where(pair, task.val_group, task.val_y)
  ok = ids >= 0
  train_w = ((train_id[None] == ids[:, None]) & in_train[None] & ok[:, None]).astype(jnp.float32)
  val_w = ((val_id[None] == ids[:, None]) & in_val[None] & ok[:, None]).astype(jnp.float32)
  return SummaryGroups(labels=jnp.where(ok, ids, 0), ok=ok, stores_text=ok & pair,
                       text=l2_normalize(text), train_weights=train_w, val_weights=val_w,
                       image_means=l2_normalize(train_w @ task.train_x))


def joint_points(x, text, pair, mode: str = 'concat') -> jax.Array:
  """The rows of a task as points of the joint space (module doc).

  Args:
    x: [N, d] unit query embeddings; text: [N, d] unit paired texts.
    pair: [] or [N] bool, rows of a pair kind (the others are summarised by x alone).
    mode: ``'concat'`` -> [N, 2d] rows [x ; t] / √2 (bank rows [x ; 0]); ``'sum'`` ->
      [N, d] rows normalize(x + t) (bank rows x).
  """
  if mode not in JOINT_MODES:
    raise ValueError(f'joint mode {mode!r}; choose one of {JOINT_MODES}.')
  pair = jnp.broadcast_to(jnp.asarray(pair), x.shape[:1])[:, None]
  if mode == 'concat':
    both = jnp.concatenate([x, text], axis=-1) / np.sqrt(2.0)
    alone = jnp.concatenate([x, jnp.zeros_like(text)], axis=-1)
    return jnp.where(pair, both, alone)
  return jnp.where(pair, l2_normalize(x + text), x)


def split_joint(points: jax.Array, dim: int) -> tuple[jax.Array, jax.Array]:
  """(image half, text half) of points [..., 2d] of the ``'concat'`` space, each unit norm
  (a zero half stays zero)."""
  return l2_normalize(points[..., :dim]), l2_normalize(points[..., dim:])


def group_summaries(points, x, text, weights, key, *, num_centres: int,
                    iterations: int = 20) -> tuple[jax.Array, jax.Array, jax.Array]:
  """k summary pairs per group: spherical k-means of each group's joint points, then each
  centre's members' normalised mean image and text embeddings.

  Args:
    points: [N, D] unit joint points (``joint_points``); x, text: [N, d] the rows' query
      and text embeddings; weights: [n, N] group membership (``train_weights``).
    num_centres: k per group; iterations: Lloyd iterations after the k-means++ start.

  Returns:
    (v [n, k, d], w [n, k, d], sizes [n, k] float32 members of each centre), largest
    centre first; a centre without members has size 0 and v = w = 0.
  """
  centres, _ = kmeans.class_kmeans(points, weights, key, num_centres=num_centres,
                                   iterations=iterations)
  nearest = jnp.argmax(jnp.einsum('nd,gkd->gnk', points, centres), axis=-1)   # [n, N]
  members = jax.nn.one_hot(nearest, num_centres) * weights[..., None]           # [n, N, k]
  v = l2_normalize(jnp.einsum('gnk,nd->gkd', members, x))
  w = l2_normalize(jnp.einsum('gnk,nd->gkd', members, text))
  return v, w, jnp.sum(members, axis=1)


def seed_text(memory_w, label, bank, num_bank: int) -> jax.Array:
  """[K, d] the w of seeds: the bank text for a seed labelled by a bank entry (label < C),
  the stored ``memory_w`` [K, d] for a seed of a pair group. bank: [C, d]."""
  is_bank = (label >= 0) & (label < num_bank)
  return jnp.where(is_bank[:, None], jnp.take(bank, jnp.clip(label, 0, num_bank - 1), axis=0),
                   memory_w)


def seed_nbytes(memory: seeds.SeedMemory, num_bank: int) -> jax.Array:
  """[K] int32 bytes of each slot's seed (0 for empty slots): every per-seed field
  (``seeds.bytes_per_seed``), less w for a seed labelled by a bank entry (its w is the
  bank's, not stored)."""
  full = seeds.bytes_per_seed(memory)
  text_bytes = memory.w.dtype.itemsize * memory.w.shape[-1]
  is_bank = (memory.label >= 0) & (memory.label < num_bank)
  return jnp.where(memory.valid, full - jnp.where(is_bank, text_bytes, 0), 0).astype(jnp.int32)


def memory_nbytes(memory: seeds.SeedMemory, num_bank: int) -> jax.Array:
  """int32 bytes held by the valid seeds of a memory of pair and bank seeds."""
  return jnp.sum(seed_nbytes(memory, num_bank))


def prune_to_bytes(memory: seeds.SeedMemory, budget_bytes: int, num_bank: int) -> seeds.SeedMemory:
  """``seeds.prune_memory_bytes`` with each seed's bytes from ``seed_nbytes``."""
  return seeds.prune_memory_bytes(memory, budget_bytes, seed_nbytes(memory, num_bank))


def infonce_labels(label, num_bank: int, positives: str = 'group') -> jax.Array:
  """[S] ids whose equality makes two seeds InfoNCE positives of each other.

  ``'group'``: seeds of one label (METHOD §3); ``'seed'``: a seed of a pair group
  (label >= C) is the positive of itself alone (as two different images are negatives in
  the task's loss), bank seeds keep their label.
  """
  if positives not in POSITIVES:
    raise ValueError(f'positives {positives!r}; choose one of {POSITIVES}.')
  if positives == 'group':
    return label
  own = -2 - jnp.arange(label.shape[0], dtype=label.dtype)  # never a label (>= -1)
  return jnp.where(label >= num_bank, own, label)


def add_to_memory(memory: seeds.SeedMemory, v, w, label, task_index, score, valid,
                  group_stores_text, slot, *, text_prototypes: bool, pair_text: bool,
                  budget: int, budget_bytes: int, num_bank: int) -> seeds.SeedMemory:
  """The summarising family's memory after adding new seeds v, w [S, d] (labels, scores,
  ``valid`` [S]; the group slot [S] of each, ``group_stores_text`` [n] whether a group
  slot is a pair group's, None without pair groups) and pruning:
  w is stored for every seed (``text_prototypes``), only for seeds of pair groups, which
  then pay for it (``pair_text``; the prune keeps ``budget_bytes``), or for none (0
  columns; the prune keeps ``budget`` seeds)."""
  if text_prototypes:
    stored_w = w
  elif pair_text:
    stored_w = jnp.where(group_stores_text[slot][:, None], w, 0.0)
  else:
    stored_w = v[:, :0]
  merged = seeds.add_seeds(memory, seeds.make_seeds(v, stored_w, label, task_index,
                                                    score=score, valid=valid))
  if pair_text:
    return prune_to_bytes(merged, budget_bytes, num_bank)
  return seeds.prune_memory(merged, budget)
