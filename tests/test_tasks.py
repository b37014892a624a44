"""Stream validation: every bad input is refused before training, naming task and index."""

import jax
import numpy as np
import pytest

from autoseed_jax.core.tasks import build_stream

D = 8


def _task(classes, n_per_class=6, seed=0):
  rng = np.random.default_rng(seed)
  y = np.repeat(np.asarray(classes), n_per_class)
  return rng.normal(size=(y.size, D)).astype(np.float32), y


def _build(train, test=None, class_text=None, names=None):
  class_text = np.eye(4, D, dtype=np.float32) if class_text is None else class_text
  return build_stream('toy', train=train, test=test if test is not None else train,
                      class_text=class_text,
                      class_names=names or [f'c{i}' for i in range(class_text.shape[0])])


def test_a_valid_stream_is_padded_to_common_shapes():
  stream = _build([_task([0, 1]), _task([2, 3], n_per_class=9)])
  assert stream.num_tasks == 2 and stream.num_classes == 4 and stream.dim == D
  shapes = {t.train_x.shape for t in stream.tasks}
  assert len(shapes) == 1 and shapes.pop()[0] % 8 == 0
  assert [int(t.train_count) + int(t.val_count) for t in stream.tasks] == [12, 18]
  assert all(int(t.val_count) >= 2 for t in stream.tasks)  # >= 1 per class held out


@pytest.mark.parametrize('make, message', [
    (lambda: _build([_task([0, 1]), (np.zeros((0, D), np.float32), np.zeros(0, int))],
                    test=[_task([0, 1]), _task([2, 3])]),
     'task 1 of stream .toy. is empty'),
    (lambda: _build([_task([0, 1]), _task([2])]), "task 1 of stream 'toy' has a single class"),
    (lambda: _build([_task([0, 7])]), 'label 7 at index 6 is out of range \\[0, 4\\)'),
    (lambda: _build([(np.ones((4, D + 1), np.float32), np.array([0, 0, 1, 1]))]),
     'embeddings must have shape \\[N, 8\\]'),
    (lambda: _build([], test=[]), 'has no tasks'),
])
def test_bad_streams_are_refused_with_the_reason(make, message):
  with pytest.raises(ValueError, match=message):
    make()


def test_nan_or_inf_is_reported_with_task_and_index():
  x, y = _task([0, 1])
  x[5, 2] = np.nan
  with pytest.raises(ValueError, match=r"task 1 of stream 'toy' \(train\): 1 embedding\(s\) "
                                       r"contain NaN or Inf, first at index 5"):
    _build([_task([2, 3]), (x, y)], test=[_task([2, 3]), _task([0, 1])])
  tx, ty = _task([0, 1])
  tx[3, 0] = np.inf
  with pytest.raises(ValueError, match=r'\(test\).*first at index 3'):
    _build([_task([0, 1])], test=[(tx, ty)])


def test_class_names_and_test_labels_must_match_the_training_data():
  with pytest.raises(ValueError, match='3 class names for 4 class embeddings'):
    _build([_task([0, 1])], names=['a', 'b', 'c'])
  with pytest.raises(ValueError, match='test labels \\[3\\] do not occur in its training data'):
    _build([_task([0, 1])], test=[_task([0, 3])])


# --------------------------------------------------------------------------------------
# Training images (Task.train_pixels) follow their rows through the split and the padding.


def _images_of(x):
  """One 4x4x1 image per embedding row, holding that row's first two values."""
  return np.broadcast_to(x[:, None, None, :1] + 10 * x[:, None, None, 1:2],
                         (x.shape[0], 4, 4, 1)).copy()


def test_train_pixels_follow_their_rows_through_split_and_padding():
  train = [_task([0, 1], n_per_class=7, seed=1), _task([2, 3], n_per_class=12, seed=2)]
  stream = build_stream('toy', train=train, test=train, class_text=np.eye(4, D, dtype=np.float32),
                        class_names=list('abcd'), val_fraction=0.25,
                        train_pixels=[_images_of(x) for x, _ in train])
  for task in stream.tasks:
    n = int(task.train_count)
    assert int(task.val_count) > 0  # rows were split off, so the order had to be followed
    assert task.train_pixels.dtype == np.float32
    assert task.train_pixels.shape == (task.train_x.shape[0], 4, 4, 1)
    np.testing.assert_array_equal(task.train_pixels[:n], _images_of(np.asarray(task.train_x[:n])))
    assert not task.train_pixels[n:].any()  # padding rows are zero images
  # The embeddings and the split are those of the same stream built without images.
  plain = build_stream('toy', train=train, test=train, class_text=np.eye(4, D, dtype=np.float32),
                       class_names=list('abcd'), val_fraction=0.25)
  for with_px, without in zip(stream.tasks, plain.tasks):
    np.testing.assert_array_equal(with_px.train_x, without.train_x)
    np.testing.assert_array_equal(with_px.val_x, without.val_x)


def test_a_stream_without_images_adds_no_leaf():
  stream = _build([_task([0, 1])])
  task = stream.tasks[0]
  assert task.train_pixels is None
  paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(task)[0]]
  assert len(paths) == 9 and not any('pixels' in p for p in paths)


@pytest.mark.parametrize('pixels, message', [
    (lambda x: [_images_of(x)[:-1]], r"task 0 of stream 'toy': 11 train_pixels rows for 12 "
     r'training embeddings; row i of train_pixels must be the image'),
    (lambda x: [_images_of(x)[..., 0]], r'train_pixels must have shape \[N, H, W, C\]'),
    (lambda x: [_images_of(x), _images_of(x)], 'train_pixels has 2 tasks but train has 1'),
    (lambda x: [np.where(np.arange(12)[:, None, None, None] == 4, np.nan, _images_of(x))],
     r'1 train_pixels image\(s\) contain NaN or Inf, first at index 4'),
    (lambda x: [_images_of(x).astype(str)], 'train_pixels must be real numbers'),
])
def test_bad_train_pixels_are_refused_with_the_reason(pixels, message):
  x, y = _task([0, 1])
  with pytest.raises(ValueError, match=message):
    build_stream('toy', train=[(x, y)], test=[(x, y)], class_text=np.eye(4, D, dtype=np.float32),
                 class_names=list('abcd'), train_pixels=pixels(x))


def test_train_pixels_must_share_one_grid():
  train = [_task([0, 1]), _task([2, 3])]
  small = _images_of(train[1][0])[:, :2, :2]
  with pytest.raises(ValueError, match=r'task 1 .*train_pixels must have shape \[N, 4, 4, 1\].*'
                                       r'got \(12, 2, 2, 1\)'):
    build_stream('toy', train=train, test=train, class_text=np.eye(4, D, dtype=np.float32),
                 class_names=list('abcd'),
                 train_pixels=[_images_of(train[0][0]), small])
