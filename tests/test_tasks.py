"""Stream validation: every bad input is refused before training, naming task and index."""

import numpy as np
import pytest

from autoseed_jax.tasks import build_stream

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
