"""Task streams on cached embeddings: fixed-shape task pytrees and their validation.

A continual run sees a stream of tasks. Each task arrives as a ``Task`` pytree whose
arrays are padded to the largest task of the stream (with counts saying how many rows
are real), so every task has the same shapes and the jitted steps compile once.

``build_stream`` turns per-task arrays (embeddings, labels) into a ``TaskStream``,
checking the input first (empty tasks, one-class tasks, labels out of range, wrong
embedding dims, NaN/Inf) and holding out a stratified validation split of each task's
training data (``val_fraction``, 5% by default; METHOD §4.2, used by the seed update).

A stream may also carry each task's training images on the frozen image tower's input
grid (``train_pixels``, for replay in pixel space: method ``dgr_pixel``); they follow
their embedding rows through the validation split and the padding. Streams without images
keep ``train_pixels=None``, which adds no leaf to the pytree.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import flax.struct
import jax
import numpy as np


@flax.struct.dataclass
class Task:
  """One task of a stream, padded to the stream's shapes.

  Attributes:
    index: [] int32, position of the task in the stream (0-based).
    classes: [Ct] int32 class ids of this task (-1 in padding slots).
    class_text: [Ct, d] frozen text embeddings f_T(prompt(c)) of those classes.
    train_x: [N, d] frozen image embeddings used for online adaptation.
    train_y: [N] int32 labels.
    train_count: [] int32, real rows of train_x.
    val_x: [Nv, d] held-out image embeddings D_t^val (seed update only).
    val_y: [Nv] int32.
    val_count: [] int32.
    train_pixels: [N, H, W, C] float32 training images on the image tower's input grid
      (e.g. [N, 32, 32, 1] in [-1, 1], ``models.image_encoder.preprocess_images``), row i
      the image whose embedding is train_x[i], padding rows zero; None when the stream
      has no images (then the field adds no leaf to the pytree).

  Vision-language streams (``autoseed_jax.core.task_kinds``, docs/VL_TASKS.md) fill the fields
  below; a class-incremental stream leaves them None (no leaves):
    kind: [] int32, the task kind (``task_kinds.KINDS``).
    train_text / val_text: [N, d] / [Nv, d], each row's paired text embedding (its
      caption, or the bank text of its label).
    train_group / val_group: [N] / [Nv] int32, each row's seed group (its class, or its
      k-means cluster of the task's text embeddings).
    groups: [Gt] int32 the task's seed groups (-1 in padding slots); group_text: [Gt, d]
      their text (class prompts, or cluster means).
  """

  index: jax.Array
  classes: jax.Array
  class_text: jax.Array
  train_x: jax.Array
  train_y: jax.Array
  train_count: jax.Array
  val_x: jax.Array
  val_y: jax.Array
  val_count: jax.Array
  train_pixels: jax.Array | None = None
  kind: jax.Array | None = None
  train_text: jax.Array | None = None
  val_text: jax.Array | None = None
  train_group: jax.Array | None = None
  val_group: jax.Array | None = None
  groups: jax.Array | None = None
  group_text: jax.Array | None = None


@flax.struct.dataclass
class EvalSet:
  """Test data of every task, stacked.

  Attributes:
    x: [T, Nt, d] frozen test image embeddings.
    y: [T, Nt] int32 labels.
    count: [T] int32 real rows per task.
    class_mask: [T, C] bool, the classes of each task.
    class_text: [C, d] frozen text embeddings of every class of the stream.

  Vision-language streams (``autoseed_jax.core.task_kinds``) also fill (None otherwise):
    kind: [T] int32 task kinds; bank_family: [C] int32, 0 for a class prompt, 1 for a VQA
      answer (the label space of each kind).
    text: [T, Ntt, d] test captions of the retrieval / captioning tasks (x holds their
      images); text_image: [T, Ntt] int32, the row of x each caption belongs to;
      text_count: [T] int32.
    bank: [T, B, d] the fixed caption bank of each captioning task; bank_count: [T].
    answers: [T, Nt, H] int32, the human answers (bank ids, -1 padding) of each VQA row.
  """

  x: jax.Array
  y: jax.Array
  count: jax.Array
  class_mask: jax.Array
  class_text: jax.Array
  kind: jax.Array | None = None
  bank_family: jax.Array | None = None
  text: jax.Array | None = None
  text_image: jax.Array | None = None
  text_count: jax.Array | None = None
  bank: jax.Array | None = None
  bank_count: jax.Array | None = None
  answers: jax.Array | None = None


@dataclasses.dataclass(frozen=True)
class TaskStream:
  """A named sequence of tasks plus the test data of all of them."""

  name: str
  tasks: tuple[Task, ...]
  test: EvalSet
  class_names: tuple[str, ...]
  description: str = ''
  vl: object | None = None  # task_kinds.VLInfo of a vision-language stream, else None

  @property
  def num_tasks(self) -> int:
    return len(self.tasks)

  @property
  def num_classes(self) -> int:
    return int(self.test.class_text.shape[0])

  @property
  def dim(self) -> int:
    return int(self.test.class_text.shape[1])

  def task_classes(self, t: int) -> list[int]:
    return [int(c) for c in np.asarray(self.tasks[t].classes) if c >= 0]


def _check_embeddings(x, what: str, dim: int) -> np.ndarray:
  x = np.asarray(x, np.float32)
  if x.ndim != 2 or x.shape[1] != dim:
    raise ValueError(
        f'{what}: embeddings must have shape [N, {dim}] (the class text embedding dim), '
        f'got {x.shape}. Encode images and prompts with the same backbone.')
  bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
  if bad.size:
    raise ValueError(
        f'{what}: {bad.size} embedding(s) contain NaN or Inf, first at index {bad[0]}. '
        'Check the encoder output or the cached embedding file (delete it to recompute).')
  return x


def _check_labels(y, what: str, num_classes: int, n: int) -> np.ndarray:
  y = np.asarray(y)
  if y.shape != (n,):
    raise ValueError(f'{what}: expected {n} labels, got shape {y.shape}.')
  if not np.issubdtype(y.dtype, np.integer):
    raise ValueError(f'{what}: labels must be integers, got dtype {y.dtype}.')
  out = np.flatnonzero((y < 0) | (y >= num_classes))
  if out.size:
    raise ValueError(
        f'{what}: label {int(y[out[0]])} at index {out[0]} is out of range [0, {num_classes}); '
        f'the stream has {num_classes} classes (one text embedding per class).')
  return y.astype(np.int32)


def _check_pixels(pixels, what: str, num_rows: int, image_shape) -> np.ndarray:
  """pixels: [n, H, W, C] images of a task's n training rows -> float32, or ValueError."""
  pixels = np.asarray(pixels)
  if pixels.ndim != 4 or (image_shape is not None and pixels.shape[1:] != image_shape):
    want = 'H, W, C' if image_shape is None else ', '.join(map(str, image_shape))
    raise ValueError(
        f'{what}: train_pixels must have shape [N, {want}] (one image per training row, '
        f'the same grid in every task), got {pixels.shape}. Preprocess every image onto the '
        'image tower\'s input grid (models.image_encoder.preprocess_images).')
  if pixels.shape[0] != num_rows:
    raise ValueError(
        f'{what}: {pixels.shape[0]} train_pixels rows for {num_rows} training embeddings; '
        'row i of train_pixels must be the image whose embedding is row i of the training '
        'data. Pass the images in the order they were embedded.')
  if pixels.dtype.kind not in 'biuf':
    raise ValueError(f'{what}: train_pixels must be real numbers, got dtype {pixels.dtype}.')
  pixels = pixels.astype(np.float32)
  bad = np.flatnonzero(~np.isfinite(pixels.reshape(num_rows, -1)).all(axis=1))
  if bad.size:
    raise ValueError(
        f'{what}: {bad.size} train_pixels image(s) contain NaN or Inf, first at index '
        f'{bad[0]}. Check the image preprocessing.')
  return pixels


def split_validation(y: np.ndarray, fraction: float, rng: np.random.Generator):
  """Stratified hold-out: at least one example per class when the class has >= 2.

  Returns:
    (train_idx, val_idx), int arrays into y.
  """
  train_idx, val_idx = [], []
  for c in np.unique(y):
    idx = rng.permutation(np.flatnonzero(y == c))
    n_val = int(round(fraction * idx.size))
    if fraction > 0 and idx.size >= 2:
      n_val = min(max(n_val, 1), idx.size - 1)
    val_idx.append(idx[:n_val])
    train_idx.append(idx[n_val:])
  return np.sort(np.concatenate(train_idx)), np.sort(np.concatenate(val_idx))


def pad_rows(a: np.ndarray, n: int, fill=0) -> np.ndarray:
  """a: [m, ...] -> [n, ...] (n >= m): the rows of ``a``, then ``fill``."""
  a = np.asarray(a)
  out = np.full((n,) + a.shape[1:], fill, a.dtype)
  out[:a.shape[0]] = a
  return out


def unit_rows(x: np.ndarray) -> np.ndarray:
  """x: [..., d] -> each row divided by its L2 norm (rows of norm < 1e-12 by 1e-12), in
  NumPy (``losses.l2_normalize`` is the jit-able form)."""
  return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def build_stream(name: str, *, train: Sequence[tuple[np.ndarray, np.ndarray]],
                 test: Sequence[tuple[np.ndarray, np.ndarray]], class_text: np.ndarray,
                 class_names: Sequence[str], val_fraction: float = 0.05, seed: int = 0,
                 description: str = '', pad_multiple: int = 8,
                 train_pixels: Sequence[np.ndarray] | None = None) -> TaskStream:
  """Validates per-task arrays and packs them into a fixed-shape ``TaskStream``.

  Args:
    name: stream name (e.g. 'animals-ci').
    train: per task, (image embeddings [n_t, d], labels [n_t]).
    test: per task, (image embeddings [m_t, d], labels [m_t]).
    class_text: [C, d] frozen text embeddings of every class's prompt.
    class_names: C names.
    val_fraction: share of each task's training data held out as D_t^val.
    seed: seed of the validation split.
    description: one line shown with results.
    pad_multiple: per-task row counts are padded up to a multiple of this, so the rows
      split evenly over that many data-parallel devices (or any divisor of it).
    train_pixels: optional, per task the images of its training rows, [n_t, H, W, C] on
      the image tower's input grid, row i the image of train[t][0][i]. They follow their
      rows through the validation split (the validation rows' images are dropped) and
      the padding (zero images) into ``Task.train_pixels``. None: tasks without images.

  Raises:
    ValueError naming the task, index and fix for: no tasks, train/test count mismatch,
    an empty task, a task with one class, labels out of range, wrong embedding dims,
    NaN/Inf embeddings, train_pixels not one image per training row (or NaN/Inf).
  """
  class_text = np.asarray(class_text, np.float32)
  if class_text.ndim != 2:
    raise ValueError(f'class_text must be [C, d], got shape {class_text.shape}.')
  num_classes, dim = class_text.shape
  _check_embeddings(class_text, 'class text embeddings', dim)
  if len(class_names) != num_classes:
    raise ValueError(f'{len(class_names)} class names for {num_classes} class embeddings.')
  if not train:
    raise ValueError(f'stream {name!r} has no tasks.')
  if len(train) != len(test):
    raise ValueError(f'stream {name!r}: {len(train)} training tasks but {len(test)} test tasks.')
  if not 0.0 <= val_fraction < 1.0:
    raise ValueError(f'val_fraction must be in [0, 1), got {val_fraction}.')
  if train_pixels is not None and len(train_pixels) != len(train):
    raise ValueError(f'stream {name!r}: train_pixels has {len(train_pixels)} tasks but train '
                     f'has {len(train)}; give one image array per task (or none at all).')

  rng = np.random.default_rng(seed)
  parts, pixel_parts, image_shape = [], [], None
  for t, ((x, y), (tx, ty)) in enumerate(zip(train, test)):
    what = f'task {t} of stream {name!r}'
    x = _check_embeddings(x, f'{what} (train)', dim)
    tx = _check_embeddings(tx, f'{what} (test)', dim)
    if x.shape[0] == 0 or tx.shape[0] == 0:
      raise ValueError(f'{what} is empty (train {x.shape[0]}, test {tx.shape[0]} examples); '
                       'remove it from the stream or give it data.')
    y = _check_labels(y, f'{what} (train)', num_classes, x.shape[0])
    ty = _check_labels(ty, f'{what} (test)', num_classes, tx.shape[0])
    classes = np.unique(y)
    if classes.size < 2:
      raise ValueError(
          f'{what} has a single class ({class_names[classes[0]]!r}); a task needs at least '
          'two classes for its classification loss to teach anything. Merge it with a '
          'neighbouring task.')
    extra = np.setdiff1d(np.unique(ty), classes)
    if extra.size:
      raise ValueError(f'{what}: test labels {extra.tolist()} do not occur in its training data.')
    if train_pixels is not None:
      pixels = _check_pixels(train_pixels[t], what, x.shape[0], image_shape)
      image_shape = pixels.shape[1:]
    tr_idx, va_idx = split_validation(y, val_fraction, rng)
    parts.append((classes, x[tr_idx], y[tr_idx], x[va_idx], y[va_idx], tx, ty))
    if train_pixels is not None:
      pixel_parts.append(pixels[tr_idx])

  def padded(n):
    return -(-max(n, 1) // pad_multiple) * pad_multiple

  n_cls = max(p[0].size for p in parts)
  n_tr = padded(max(p[1].shape[0] for p in parts))
  n_va = padded(max(p[3].shape[0] for p in parts))
  n_te = padded(max(p[5].shape[0] for p in parts))
  tasks = []
  for t, (classes, x, y, vx, vy, _, _) in enumerate(parts):
    padded_classes = pad_rows(classes.astype(np.int32), n_cls, -1)
    tasks.append(Task(
        index=np.int32(t),
        classes=padded_classes,
        class_text=class_text[np.maximum(padded_classes, 0)] * (padded_classes >= 0)[:, None],
        train_x=pad_rows(x, n_tr), train_y=pad_rows(y, n_tr), train_count=np.int32(x.shape[0]),
        val_x=pad_rows(vx, n_va), val_y=pad_rows(vy, n_va), val_count=np.int32(vx.shape[0]),
        train_pixels=pad_rows(pixel_parts[t], n_tr) if pixel_parts else None,
    ))
  class_mask = np.zeros((len(parts), num_classes), bool)
  for t, p in enumerate(parts):
    class_mask[t, p[0]] = True
  test_set = EvalSet(
      x=np.stack([pad_rows(p[5], n_te) for p in parts]),
      y=np.stack([pad_rows(p[6], n_te) for p in parts]),
      count=np.array([p[5].shape[0] for p in parts], np.int32),
      class_mask=class_mask,
      class_text=class_text,
  )
  return TaskStream(name=name, tasks=tuple(tasks), test=test_set,
                    class_names=tuple(class_names), description=description)
