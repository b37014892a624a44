"""Tests for autoseed_jax.streams: the LiT pretraining split, the named real-data streams on
cached embeddings of the committed offline backbone (with their training images when
asked for), and their errors."""

import jax
import numpy as np
import pytest

from autoseed_jax import streams
from autoseed_jax.streams import embed, images
from autoseed_jax.data import builders
from autoseed_jax.models import image_encoder, offline_backbone
from helpers.backbones import CountingBackbone


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  path = tmp_path_factory.mktemp("tfds")
  for name in ("animal_mnist", "sklearn_digits"):
    builders.prepare(name, path)
  return path


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("embeddings")


@pytest.fixture(scope="module")
def offline():
  return offline_backbone.load_offline_backbone()


@pytest.fixture(scope="module")
def parts(data_dir):
  return {name: embed.load_split_arrays(name, data_dir)
          for name in ("animal_mnist", "sklearn_digits")}


@pytest.fixture(scope="module")
def animals_ci(offline, data_dir, cache_dir):
  return streams.get_stream("animals-ci", backbone=offline, data_dir=data_dir,
                            cache_dir=cache_dir)


def _rows(x, count):
  return np.asarray(x)[:int(count)]


def _content(images):
  return {image.tobytes() for image in images}


# ---------------------------------------------------------------- the pretraining split


def test_pretraining_split_has_the_documented_sizes(parts):
  animals, digits = parts["animal_mnist"], parts["sklearn_digits"]
  np.testing.assert_array_equal(np.bincount(animals["pretrain_y"]), [80] * 10)
  np.testing.assert_array_equal(np.bincount(animals["train_y"]), [720] * 10)
  np.testing.assert_array_equal(np.bincount(digits["pretrain_y"]),
                                [14, 15, 14, 15, 14, 15, 14, 14, 14, 14])
  assert len(digits["train_y"]) == 1295 and len(digits["test_y"]) == 359
  assert len(animals["test_y"]) == 2000


@pytest.mark.parametrize("name", ["animal_mnist", "sklearn_digits"])
def test_pretraining_images_never_reach_the_stream(parts, name):
  split = parts[name]
  pretrain = _content(split["pretrain_x"])
  assert not pretrain & _content(split["train_x"])
  assert not pretrain & _content(split["test_x"])


def test_pretraining_split_partitions_and_ignores_record_order(parts):
  animals = parts["animal_mnist"]
  images = np.concatenate([animals["pretrain_x"], animals["train_x"]])
  labels = np.concatenate([animals["pretrain_y"], animals["train_y"]])
  pre, rest = embed.pretraining_split(images, labels)
  assert np.intersect1d(pre, rest).size == 0
  assert pre.size + rest.size == len(labels)
  np.testing.assert_array_equal(pre, np.arange(800))  # exactly the images chosen above

  order = np.random.default_rng(1).permutation(len(labels))
  shuffled_pre, _ = embed.pretraining_split(images[order], labels[order])
  assert _content(images[order][shuffled_pre]) == _content(images[pre])


def test_duplicate_images_stay_on_one_side():
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, size=(40, 8, 8, 1), dtype=np.uint8)
  images[20:] = images[:20]  # every image twice
  labels = np.zeros(40, int)
  pre, rest = embed.pretraining_split(images, labels, fraction=0.25)
  assert pre.size == 10
  assert not _content(images[pre]) & _content(images[rest])


def test_pretraining_data_is_what_the_committed_tower_saw(offline, data_dir):
  data = embed.pretraining_data(data_dir)
  described = offline.metadata["training_data"]
  assert [len(x) for x in data["images"]] == [800, 143]
  assert data["datasets"] == described["datasets"]
  assert data["prompts"] == described["prompts"]
  assert data["labels"][1].min() == 10 and data["labels"][1].max() == 19


# ---------------------------------------------------------------- streams


def test_animals_ci_has_five_tasks_of_two_classes(animals_ci):
  stream = animals_ci
  assert stream.name == "animals-ci" and stream.num_tasks == 5
  assert [stream.task_classes(t) for t in range(5)] == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
  assert [int(t.train_count) for t in stream.tasks] == [1368] * 5  # 2 x (720 - 36)
  assert [int(t.val_count) for t in stream.tasks] == [72] * 5
  assert stream.test.count.tolist() == [400] * 5
  assert stream.dim == 384 and stream.num_classes == 10
  assert stream.class_names[:2] == ("bear", "bird")
  assert stream.description == streams.STREAMS["animals-ci"].description


def test_stream_embeddings_are_the_backbones(animals_ci, offline, parts):
  animals = parts["animal_mnist"]
  in_task = np.isin(animals["test_y"], [0, 1])
  np.testing.assert_allclose(_rows(animals_ci.test.x[0], 400),
                             offline.encode_image(animals["test_x"][in_task]), atol=1e-6)
  task = animals_ci.tasks[0]
  stream_rows = np.concatenate([_rows(task.train_x, task.train_count),
                                _rows(task.val_x, task.val_count)])
  in_task = np.isin(animals["train_y"], [0, 1])
  expected = offline.encode_image(animals["train_x"][in_task])
  np.testing.assert_allclose(np.unique(stream_rows, axis=0), np.unique(expected, axis=0),
                             atol=1e-6)
  prompts = ["a black and white silhouette of a bear.", "a black and white silhouette of a bird."]
  np.testing.assert_allclose(animals_ci.test.class_text[:2], offline.encode_text(prompts),
                             atol=1e-6)


def test_zero_shot_is_moderate_and_leaves_room_to_adapt(animals_ci):
  """The default backbone must leave continual learning something to do."""
  stream = animals_ci
  test_x = np.concatenate([_rows(stream.test.x[t], stream.test.count[t]) for t in range(5)])
  test_y = np.concatenate([_rows(stream.test.y[t], stream.test.count[t]) for t in range(5)])
  zero_shot = np.mean(np.argmax(test_x @ np.asarray(stream.test.class_text).T, 1) == test_y)
  train_x = np.concatenate([_rows(t.train_x, t.train_count) for t in stream.tasks])
  train_y = np.concatenate([_rows(t.train_y, t.train_count) for t in stream.tasks])
  features = np.c_[train_x, np.ones(len(train_x))]
  weights = np.linalg.solve(features.T @ features + 1e-2 * np.eye(features.shape[1]),
                            features.T @ np.eye(10)[train_y])
  ridge = np.mean(np.argmax(np.c_[test_x, np.ones(len(test_x))] @ weights, 1) == test_y)
  print(f"animals zero-shot {zero_shot:.3f}, ridge probe {ridge:.3f}")
  assert 0.4 < zero_shot < 0.75
  assert ridge > zero_shot + 0.15


def test_animals_digits_is_two_domains(offline, data_dir, cache_dir):
  stream = streams.get_stream("animals-digits", backbone=offline, data_dir=data_dir,
                              cache_dir=cache_dir)
  assert stream.num_tasks == 2 and stream.num_classes == 20
  assert stream.task_classes(0) == list(range(10))
  assert stream.task_classes(1) == list(range(10, 20))
  assert [int(t.train_count) for t in stream.tasks] == [6840, 1230]
  assert [int(t.val_count) for t in stream.tasks] == [360, 65]
  assert stream.test.count.tolist() == [2000, 359]
  assert stream.class_names[10] == "digit 0"
  np.testing.assert_allclose(stream.test.class_text[10],
                             offline.encode_text(["a handwritten digit 0."])[0], atol=1e-6)


def test_cache_hit_skips_encoding(offline, data_dir, tmp_path):
  counting = CountingBackbone(offline)
  first = streams.get_stream("animals-ci", backbone=counting, data_dir=data_dir,
                             cache_dir=tmp_path, train_fraction=0.1)
  assert counting.image_calls == 2  # stream-train and test of animal_mnist
  second = streams.get_stream("animals-ci", backbone=counting, data_dir=data_dir,
                              cache_dir=tmp_path, train_fraction=0.1)
  assert counting.image_calls == 2
  np.testing.assert_array_equal(first.tasks[3].train_x, second.tasks[3].train_x)
  # train_fraction 0.1 keeps 72 of 720 per class; 4 of them go to validation.
  assert [int(t.train_count) for t in first.tasks] == [136] * 5
  assert [int(t.val_count) for t in first.tasks] == [8] * 5


def test_unknown_stream_lists_the_known_ones():
  with pytest.raises(ValueError, match="animals-ci, animals-ci-dev, animals-digits,"):
    streams.get_stream("cifar-ci")


def test_bad_arguments_raise(offline, data_dir, cache_dir):
  with pytest.raises(ValueError, match="train_fraction"):
    streams.get_stream("animals-ci", backbone=offline, train_fraction=0.0)
  with pytest.raises(ValueError, match="Backbone"):
    streams.get_stream("animals-ci", backbone=object(), data_dir=data_dir,
                       cache_dir=cache_dir)


def test_pixel_streams_carry_the_images_that_were_embedded(offline, data_dir, cache_dir):
  """pixels=True: row i of train_pixels is the tower-grid image whose embedding is
  train_x[i], through the subsample, task split, validation split and padding."""
  tower = image_encoder.ImageTower(offline.tower_config)
  encode = jax.jit(lambda pixels: image_encoder.l2_normalize(
      tower.apply({"params": offline.tower_params}, pixels)))
  for name in ("animals-ci", "animals-digits"):
    kwargs = dict(backbone=offline, data_dir=data_dir, cache_dir=cache_dir,
                  train_fraction=0.05)
    plain = streams.get_stream(name, **kwargs)
    with_pixels = streams.get_stream(name, pixels=True, **kwargs)
    assert all(t.train_pixels is None for t in plain.tasks)
    for task, same in zip(with_pixels.tasks, plain.tasks):
      np.testing.assert_array_equal(task.train_x, same.train_x)
      np.testing.assert_array_equal(task.val_x, same.val_x)
      n = int(task.train_count)
      pixels = np.asarray(task.train_pixels)
      assert pixels.shape == (task.train_x.shape[0], 32, 32, 1)
      assert pixels.dtype == np.float32
      assert -1.0 <= pixels[:n].min() < pixels[:n].max() <= 1.0
      assert not pixels[n:].any()
      np.testing.assert_allclose(np.asarray(encode(pixels[:n])), _rows(task.train_x, n),
                                 atol=1e-5)


# ---------------------------------------------------------------- development streams


def test_dev_test_split_holds_out_a_fifth_of_every_class():
  y = np.repeat(np.arange(3), [10, 20, 7])
  train, test = images.dev_test_split(y, np.random.default_rng(0))
  assert sorted(np.concatenate([train, test]).tolist()) == list(range(len(y)))
  assert np.bincount(y[test]).tolist() == [2, 4, 1]


def test_dev_streams_use_stream_train_images_only(animals_ci, offline, data_dir, cache_dir):
  stream = streams.get_stream("animals-ci-dev", backbone=offline, data_dir=data_dir,
                              cache_dir=cache_dir)
  assert [stream.task_classes(t) for t in range(5)] == [
      sorted(images.ANIMALS_DEV_CLASS_ORDER[i:i + 2]) for i in range(0, 10, 2)]
  train = {row.tobytes() for t in stream.tasks for x, n in ((t.train_x, t.train_count),
                                                            (t.val_x, t.val_count))
           for row in _rows(x, n)}
  test = {row.tobytes() for x, n in zip(stream.test.x, stream.test.count) for row in _rows(x, n)}
  reported_train = {row.tobytes() for t in animals_ci.tasks
                    for x, n in ((t.train_x, t.train_count), (t.val_x, t.val_count))
                    for row in _rows(x, n)}
  reported_test = {row.tobytes() for x, n in zip(animals_ci.test.x, animals_ci.test.count)
                   for row in _rows(x, n)}
  assert len(train & test) == 64  # twins of Animal-MNIST's 203 pairs of identical images
  assert train | test == reported_train  # all of stream-train, nothing else
  assert not (train | test) & reported_test
  assert sum(int(n) for n in stream.test.count) == 1440  # 144 of 720 per class
  with pytest.raises(ValueError, match="has no images"):
    streams.get_stream("animals-digits-dev", backbone=offline, data_dir=data_dir,
                       cache_dir=cache_dir, pixels=True)
