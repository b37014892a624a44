"""Vision-language task kinds and the one fixed-shape layout every kind shares.

Four kinds (METHOD §1, §6; the full design is docs/VL_TASKS.md):

  classification  an image against the bank of class prompts; primary score: accuracy
  retrieval       images and their captions (several per image); trained with symmetric
                  in-batch InfoNCE; primary score: mean recall, the mean of R@1/5/10
                  image->text and text->image over the task's test gallery (percent)
  captioning      trained like retrieval; a test image's caption is the best-scoring
                  caption of the task's fixed caption bank, scored by corpus BLEU-4
                  (sacrebleu) against the image's reference captions; primary: BLEU-4 x 100
  vqa             an (image, question) query, the unit-norm sum of the image and question
                  embeddings, scored against the texts of the candidate answers in CLIP
                  style (a bank of answer texts); primary: VQA accuracy, per question
                  min(#humans who gave the predicted answer / min(3, #humans), 1), percent

Every row of every task is a *pair*: a query embedding x (image or fused image+question)
and the text it should match. Classification and VQA rows name their text by a label into
one stream-wide *bank* of texts (class prompts, ``bank_family`` 0, and VQA answers,
family 1; each kind's label space is its own family); retrieval and captioning rows carry
their caption embedding, and their label is a stream-wide image id (captions of one image
are positives of each other). Fixed shapes across kinds: ``Task.train_x / train_text
[N, d]``, ``train_y [N]``, ``kind []``; the test set keeps queries in ``x [T, Nt, d]``,
captions in ``text [T, Ntt, d]`` with ``text_image``, each captioning task's bank in
``bank [T, B, d]`` and VQA's human answers in ``answers [T, Nt, H]`` (``tasks.Task``,
``tasks.EvalSet``). Padding rows are masked by counts, so tasks of any kind share one
compiled program.

Seed groups (METHOD §4.3a): a classification task's groups are its classes; every other
task's are the k-means clusters (scikit-learn ``KMeans``) of its training rows' text
embeddings (captions; for VQA the answer texts), M = ``clusters`` per task (fewer when the
task has fewer distinct texts). Group ids are stream-wide: classes keep their bank ids,
clusters follow the bank (ids >= C). ``Task.groups`` / ``group_text`` (the normalised
cluster means, or the class prompts) feed the generator's condition and anchors.

``build_vl_stream`` validates per-task arrays (``VLTask``) and packs them; ``VLInfo``
(``TaskStream.vl``) keeps what the host needs (caption strings for BLEU, names).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from autoseed_jax.core import tasks as tasks_lib

KINDS = ('classification', 'retrieval', 'captioning', 'vqa')
CLASSIFICATION, RETRIEVAL, CAPTIONING, VQA = range(len(KINDS))
PAIR_KINDS = (RETRIEVAL, CAPTIONING)
# The bank family (label space) of each bank kind; pair kinds have none (-1).
KIND_FAMILY = {CLASSIFICATION: 0, RETRIEVAL: -1, CAPTIONING: -1, VQA: 1}
FAMILIES = ('class prompt', 'VQA answer')
PRIMARY_SCORE = {
    'classification': 'accuracy (%)',
    'retrieval': 'mean recall: mean of R@1, R@5, R@10 image->text and text->image (%)',
    'captioning': 'BLEU-4 x 100 of the retrieved bank captions (sacrebleu, corpus level)',
    'vqa': 'VQA accuracy (%)',
}
PRIMARY_NAME = {'classification': 'accuracy', 'retrieval': 'mean recall',
                'captioning': 'BLEU-4', 'vqa': 'VQA acc'}
# Secondary metrics beside the primary score, one slot each (NaN where a kind has none).
METRIC_NAMES = ('i2t_R@1', 'i2t_R@5', 'i2t_R@10', 't2i_R@1', 't2i_R@5', 't2i_R@10',
                'BLEU-4', 'VQA acc', 'accuracy')
RECALL_KS = (1, 5, 10)


@dataclasses.dataclass
class PairSplit:
  """Images and their captions (retrieval / captioning), one split.

  image_x: [Ni, d] image embeddings; caption_x: [Nc, d] caption embeddings;
  caption_image: [Nc] int, the image of each caption; captions: the Nc caption strings
  (needed for a captioning task's test split: the BLEU references).
  """

  image_x: np.ndarray
  caption_x: np.ndarray
  caption_image: np.ndarray
  captions: Sequence[str] = ()


@dataclasses.dataclass
class BankSplit:
  """Queries labelled by bank entries (classification / VQA), one split.

  x: [n, d] query embeddings; y: [n] int bank ids; answers: [n, H] int bank ids of the
  human answers (-1 padding; VQA test split; None: y is the only answer).
  """

  x: np.ndarray
  y: np.ndarray
  answers: np.ndarray | None = None


@dataclasses.dataclass
class VLTask:
  """One task: its name, kind (``KINDS``), splits, and a captioning task's fixed bank."""

  name: str
  kind: str
  train: PairSplit | BankSplit
  test: PairSplit | BankSplit
  bank_captions: Sequence[str] = ()
  bank_x: np.ndarray | None = None


@dataclasses.dataclass(frozen=True)
class VLInfo:
  """Host-side facts of a vision-language stream (``TaskStream.vl``).

  kinds / task_names: per task. bank_family: [C] per bank entry. caption_banks: per task
  the bank's caption strings (() unless captioning). references: per task, per test image,
  its reference captions. num_groups: seed groups of the stream (bank entries + clusters).
  """

  kinds: tuple[str, ...]
  task_names: tuple[str, ...]
  bank_family: tuple[int, ...]
  caption_banks: tuple[tuple[str, ...], ...]
  references: tuple[tuple[tuple[str, ...], ...], ...]
  num_groups: int


def kind_id(kind: str, what: str) -> int:
  if kind not in KINDS:
    raise ValueError(f'{what}: kind {kind!r}; choose one of {KINDS}.')
  return KINDS.index(kind)


def kmeans_groups(text: np.ndarray, clusters: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """k-means of unit text embeddings [n, d] into min(clusters, distinct rows) groups.

  Returns (labels [n] int32 in 0..m-1, normalised cluster means [m, d] float32).
  """
  from sklearn.cluster import KMeans  # pylint: disable=import-outside-toplevel
  distinct = np.unique(np.round(text, 5), axis=0).shape[0]
  m = max(1, min(clusters, distinct))
  fit = KMeans(n_clusters=m, n_init=4, random_state=seed).fit(text.astype(np.float64))
  labels = fit.labels_.astype(np.int32)
  means = np.stack([text[labels == g].mean(axis=0) for g in range(m)])
  return labels, tasks_lib.unit_rows(means).astype(np.float32)


def _check(x, what: str, dim: int) -> np.ndarray:
  x = np.asarray(x, np.float32)
  if x.ndim != 2 or x.shape[1] != dim or x.shape[0] == 0:
    raise ValueError(f'{what}: embeddings must be a non-empty [N, {dim}] array, got {x.shape}.')
  if not np.isfinite(x).all():
    raise ValueError(f'{what}: embeddings contain NaN or Inf.')
  return x


def _check_pairs(split: PairSplit, what: str, dim: int):
  images = _check(split.image_x, f'{what} images', dim)
  captions = _check(split.caption_x, f'{what} captions', dim)
  owner = np.asarray(split.caption_image)
  if owner.shape != (captions.shape[0],) or owner.min() < 0 or owner.max() >= images.shape[0]:
    raise ValueError(f'{what}: caption_image must give each of the {captions.shape[0]} '
                     f'captions an image index in [0, {images.shape[0]}).')
  if images.shape[0] < 2:
    raise ValueError(f'{what}: a retrieval task needs at least 2 images.')
  return images, captions, owner.astype(np.int32)


def _check_bank_labels(y, what: str, family: np.ndarray, want: int) -> np.ndarray:
  y = np.asarray(y)
  if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or y.size == 0:
    raise ValueError(f'{what}: labels must be a non-empty [n] integer array, got {y.shape}.')
  if y.min() < 0 or y.max() >= family.size:
    raise ValueError(f'{what}: label out of range [0, {family.size}) (the bank).')
  wrong = np.flatnonzero(family[y] != want)
  if wrong.size:
    raise ValueError(f'{what}: label {int(y[wrong[0]])} is a {FAMILIES[family[y[wrong[0]]]]}, '
                     f'but this kind scores {FAMILIES[want]}s.')
  return y.astype(np.int32)


def build_vl_stream(name: str, tasks: Sequence[VLTask], *, bank_text: np.ndarray,
                    bank_names: Sequence[str], bank_family: Sequence[int], clusters: int = 8,
                    val_fraction: float = 0.05, seed: int = 0, description: str = '',
                    pad_multiple: int = 8) -> tasks_lib.TaskStream:
  """Validates vision-language tasks and packs them into one fixed-shape ``TaskStream``.

  Args:
    name: stream name.
    tasks: the tasks in order (any mix of ``KINDS``).
    bank_text: [C, d] text embeddings of every class prompt and VQA answer of the stream
      (C may be 0 for a pure retrieval/captioning stream: give shape [0, d]).
    bank_names: C names; bank_family: C families (0 class prompt, 1 VQA answer). A stream
      without any (C = 0) gets one unused entry of family -1, so shapes never vanish.
    clusters: M, k-means seed groups per non-classification task.
    val_fraction: held-out share of each task's training data (D_t^val): images (with
      all their captions) for retrieval/captioning, rows per label otherwise.
    seed: seed of the validation split, the row order and k-means.
    pad_multiple: row counts are padded to a multiple of this (data-parallel devices).

  Raises ValueError naming the task and the problem (wrong dims, NaN, labels out of range
  or of the wrong family, captions without images, a captioning task without a bank).
  """
  bank_text = np.asarray(bank_text, np.float32)
  if bank_text.ndim != 2:
    raise ValueError(f'bank_text must be [C, d], got {bank_text.shape}.')
  num_bank, dim = bank_text.shape
  family = np.asarray(bank_family, np.int32).reshape(-1)
  if len(bank_names) != num_bank or family.size != num_bank:
    raise ValueError(f'{num_bank} bank texts need {num_bank} names and families, got '
                     f'{len(bank_names)} and {family.size}.')
  if num_bank == 0:  # no classes or answers: one unused entry keeps the shapes non-empty
    bank_text, bank_names, family = np.zeros((1, dim), np.float32), ('(unused)',), \
        np.full((1,), -1, np.int32)
    num_bank = 1
  if not tasks:
    raise ValueError(f'stream {name!r} has no tasks.')
  if clusters < 1:
    raise ValueError(f'clusters={clusters} must be >= 1.')
  rng = np.random.default_rng(seed)
  parts, next_image, next_group = [], 0, num_bank
  for t, task in enumerate(tasks):
    what = f'task {t} ({task.name!r}) of stream {name!r}'
    kind = kind_id(task.kind, what)
    part = {'kind': kind, 'name': task.name}
    if kind in PAIR_KINDS:
      if not isinstance(task.train, PairSplit) or not isinstance(task.test, PairSplit):
        raise ValueError(f'{what}: a {task.kind} task takes PairSplit train and test data.')
      images, captions, owner = _check_pairs(task.train, f'{what} (train)', dim)
      order = rng.permutation(images.shape[0])
      n_val = min(max(int(round(val_fraction * images.shape[0])), 1 if val_fraction > 0 else 0),
                  images.shape[0] - 1)
      val_images = np.isin(owner, order[:n_val])
      rows = rng.permutation(captions.shape[0])
      x, text, y = images[owner], captions, owner + next_image
      groups, means = kmeans_groups(captions, clusters, seed)
      tr, va = rows[~val_images[rows]], rows[val_images[rows]]
      test_images, test_captions, test_owner = _check_pairs(task.test, f'{what} (test)', dim)
      part.update(classes=np.zeros((0,), np.int32), x=x[tr], text=text[tr], y=y[tr],
                  group=groups[tr] + next_group, vx=x[va], vtext=text[va], vy=y[va],
                  vgroup=groups[va] + next_group, group_ids=np.arange(len(means)) + next_group,
                  group_text=means, tx=test_images, ty=np.full(test_images.shape[0], -1, np.int32),
                  ttext=test_captions, timage=test_owner,
                  answers=np.full((test_images.shape[0], 1), -1, np.int32))
      next_image += images.shape[0] + test_images.shape[0]
      next_group += len(means)
      if kind == CAPTIONING:
        if task.bank_x is None or len(task.bank_captions) != len(task.bank_x):
          raise ValueError(f'{what}: a captioning task needs its fixed caption bank '
                           '(bank_captions and their embeddings bank_x).')
        if len(task.test.captions) != test_captions.shape[0]:
          raise ValueError(f'{what}: the test split needs its {test_captions.shape[0]} caption '
                           'strings (the BLEU-4 references).')
        part['bank'] = _check(task.bank_x, f'{what} caption bank', dim)
        refs = [[] for _ in range(test_images.shape[0])]
        for caption, image in zip(task.test.captions, test_owner):
          refs[image].append(str(caption))
        part['refs'] = tuple(tuple(r) for r in refs)
        part['bank_captions'] = tuple(str(c) for c in task.bank_captions)
    else:
      if not isinstance(task.train, BankSplit) or not isinstance(task.test, BankSplit):
        raise ValueError(f'{what}: a {task.kind} task takes BankSplit train and test data.')
      want = KIND_FAMILY[kind]
      x = _check(task.train.x, f'{what} (train)', dim)
      y = _check_bank_labels(task.train.y, f'{what} (train)', family, want)
      if x.shape[0] != y.shape[0]:
        raise ValueError(f'{what}: {x.shape[0]} training queries but {y.shape[0]} labels.')
      classes = np.unique(y)
      if classes.size < 2:
        raise ValueError(f'{what} has a single label; a task needs at least two.')
      tx = _check(task.test.x, f'{what} (test)', dim)
      ty = _check_bank_labels(task.test.y, f'{what} (test)', family, want)
      answers = (ty[:, None] if task.test.answers is None
                 else np.asarray(task.test.answers, np.int32))
      if answers.shape[0] != tx.shape[0] or ty.shape[0] != tx.shape[0]:
        raise ValueError(f'{what}: test queries, labels and answers differ in number.')
      if kind == CLASSIFICATION:
        group, group_ids, means = y, classes, bank_text[classes]
      else:
        labels, means = kmeans_groups(tasks_lib.unit_rows(bank_text[y]), clusters, seed)
        group, group_ids = labels + next_group, np.arange(len(means)) + next_group
        next_group += len(means)
      tr, va = tasks_lib.split_validation(y, val_fraction, rng)
      tr = rng.permutation(tr)
      text = bank_text[y]
      part.update(classes=classes.astype(np.int32), x=x[tr], text=text[tr], y=y[tr],
                  group=group[tr], vx=x[va], vtext=text[va], vy=y[va], vgroup=group[va],
                  group_ids=group_ids.astype(np.int32), group_text=means, tx=tx, ty=ty,
                  ttext=np.zeros((0, dim), np.float32), timage=np.zeros((0,), np.int32),
                  answers=answers)
    parts.append(part)

  def padded(n):
    return -(-max(n, 1) // pad_multiple) * pad_multiple

  n_tr = padded(max(p['x'].shape[0] for p in parts))
  n_va = padded(max(p['vx'].shape[0] for p in parts))
  n_te = padded(max(p['tx'].shape[0] for p in parts))
  n_tt = padded(max(p['ttext'].shape[0] for p in parts))
  n_bank = padded(max(p.get('bank', np.zeros((0, dim))).shape[0] for p in parts))
  n_cls = max(1, max(p['classes'].size for p in parts))
  n_groups = max(p['group_ids'].size for p in parts)
  humans = max(p['answers'].shape[1] for p in parts)
  packed = []
  for t, p in enumerate(parts):
    classes = tasks_lib.pad_rows(p['classes'], n_cls, -1)
    groups = tasks_lib.pad_rows(p['group_ids'], n_groups, -1)
    packed.append(tasks_lib.Task(
        index=np.int32(t), classes=classes,
        class_text=bank_text[np.maximum(classes, 0)] * (classes >= 0)[:, None],
        train_x=tasks_lib.pad_rows(p['x'], n_tr), train_y=tasks_lib.pad_rows(p['y'], n_tr),
        train_count=np.int32(p['x'].shape[0]),
        val_x=tasks_lib.pad_rows(p['vx'], n_va), val_y=tasks_lib.pad_rows(p['vy'], n_va), val_count=np.int32(p['vx'].shape[0]),
        kind=np.int32(p['kind']), train_text=tasks_lib.pad_rows(p['text'], n_tr),
        val_text=tasks_lib.pad_rows(p['vtext'], n_va), train_group=tasks_lib.pad_rows(p['group'], n_tr, -1),
        val_group=tasks_lib.pad_rows(p['vgroup'], n_va, -1), groups=groups,
        group_text=tasks_lib.pad_rows(p['group_text'].astype(np.float32), n_groups)))
  class_mask = np.zeros((len(parts), num_bank), bool)
  for t, p in enumerate(parts):
    class_mask[t, p['classes']] = True
  test = tasks_lib.EvalSet(
      x=np.stack([tasks_lib.pad_rows(p['tx'], n_te) for p in parts]),
      y=np.stack([tasks_lib.pad_rows(p['ty'], n_te, -1) for p in parts]),
      count=np.array([p['tx'].shape[0] for p in parts], np.int32),
      class_mask=class_mask, class_text=bank_text,
      kind=np.array([p['kind'] for p in parts], np.int32), bank_family=family,
      text=np.stack([tasks_lib.pad_rows(p['ttext'], n_tt) for p in parts]),
      text_image=np.stack([tasks_lib.pad_rows(p['timage'], n_tt, -1) for p in parts]),
      text_count=np.array([p['ttext'].shape[0] for p in parts], np.int32),
      bank=np.stack([tasks_lib.pad_rows(p.get('bank', np.zeros((0, dim), np.float32)), n_bank)
                     for p in parts]),
      bank_count=np.array([p.get('bank', np.zeros((0, dim))).shape[0] for p in parts],
                          np.int32),
      answers=np.stack([tasks_lib.pad_rows(np.pad(p['answers'], ((0, 0), (0, humans - p['answers'].shape[1])),
                                    constant_values=-1), n_te, -1) for p in parts]),
  )
  info = VLInfo(
      kinds=tuple(KINDS[p['kind']] for p in parts), task_names=tuple(p['name'] for p in parts),
      bank_family=tuple(int(f) for f in family),
      caption_banks=tuple(p.get('bank_captions', ()) for p in parts),
      references=tuple(p.get('refs', ()) for p in parts), num_groups=next_group)
  return tasks_lib.TaskStream(name=name, tasks=tuple(packed), test=test,
                              class_names=tuple(bank_names), description=description, vl=info)


def seed_groups(task: tasks_lib.Task):
  """(groups [G], group_text [G, d], train_group [N], val_group [Nv]) of a task: its seed
  groups (``Task.groups``) on a vision-language stream, its classes otherwise."""
  if task.groups is None:
    return task.classes, task.class_text, task.train_y, task.val_y
  return task.groups, task.group_text, task.train_group, task.val_group
