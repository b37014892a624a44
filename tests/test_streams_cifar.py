"""Tests for the CIFAR-100 streams of autoseed_jax.streams (cifar100-10/20/50) on mocked TFDS
data: task split in the Continual-CLIP class order, embeddings through the cache, the resize
for fixed-size backbones, pixels, the missing-data error, and streams.load_stream end to end."""

import hashlib
import pathlib
import types

import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds

from autoseed_jax import streams
from autoseed_jax.streams import embed
from autoseed_jax.data import builders, sources
from autoseed_jax.models import offline_backbone
from helpers.backbones import CountingBackbone, FixedSizeBackbone

CLIP_FIXTURE = (pathlib.Path(__file__).parent / "fixtures" / "clip_tiny"
                / "open_clip_model.safetensors")
# Mock records: TRAIN has TRAIN_PER_CLASS images of every class, TEST one per class.
TRAIN_PER_CLASS = 3
NUM_CLASSES = 100


class PatternSource:
  """A TFDS-like data source: record i has label i % 100 and a random 32x32x3 uint8 image
  seeded by (split, i), so every class has examples and TRAIN differs from TEST."""

  def __init__(self, dataset_info, split: str, size: int):
    self.dataset_info = dataset_info
    self.split = split
    self.size = size

  def __len__(self):
    return self.size

  def __getitem__(self, index):
    if not 0 <= index < self.size:
      raise IndexError(index)
    seed = int(hashlib.sha256(f"{self.split}/{index}".encode()).hexdigest()[:8], 16)
    image = np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    return {"image": image, "label": np.int64(index % NUM_CLASSES), "id": f"{index}"}


# Mocked TFDS has no label file (CIFAR-100's names come from its download), so the mock
# source carries its own names; the underscores test the conversion to words.
MOCK_CLASS_NAMES = [f"thing_{i}" for i in range(NUM_CLASSES)]
MOCK_INFO = types.SimpleNamespace(
    features={"label": tfds.features.ClassLabel(names=MOCK_CLASS_NAMES)})


def _as_data_source(builder, split, **unused):
  del builder, unused
  size = NUM_CLASSES * (TRAIN_PER_CLASS if split == "train" else 1)
  return PatternSource(MOCK_INFO, split, size)


def mock_cifar100():
  return tfds.testing.mock_data(policy=tfds.testing.MockPolicy.USE_CODE,
                                as_data_source_fn=_as_data_source)


@pytest.fixture(scope="module")
def offline():
  return offline_backbone.load_offline_backbone()


@pytest.fixture(scope="module")
def counted_builds(offline, tmp_path_factory):
  """cifar100-10 built twice into one fresh cache: (first stream, second stream, the
  counting backbone of each build)."""
  cache_dir = tmp_path_factory.mktemp("embeddings")
  data_dir = tmp_path_factory.mktemp("tfds")
  built = []
  for _ in range(2):
    counting = CountingBackbone(offline)
    with mock_cifar100():
      stream = streams.get_stream("cifar100-10", backbone=counting, data_dir=data_dir,
                                  cache_dir=cache_dir)
    built.append((stream, counting))
  return built


def _rows(x, count):
  return np.asarray(x)[:int(count)]


def test_cifar100_streams_are_registered():
  for num_tasks in (10, 20, 50):
    spec = streams.STREAMS[f"cifar100-{num_tasks}"]
    assert f"{num_tasks} tasks x {100 // num_tasks} classes" in spec.description


def test_cifar100_10_tasks_follow_the_continual_clip_order(counted_builds, offline):
  stream = counted_builds[0][0]
  order = sources.cifar100_class_order()
  assert stream.name == "cifar100-10" and len(stream.tasks) == 10
  assert stream.description == streams.STREAMS["cifar100-10"].description
  first = np.asarray(stream.tasks[0].classes)
  np.testing.assert_array_equal(np.sort(first), np.sort(order[:10]))
  assert np.sort(first).tolist() == sorted([68, 56, 78, 8, 23, 84, 90, 65, 74, 76])
  seen = []
  for t, task in enumerate(stream.tasks):
    classes = np.asarray(task.classes)
    np.testing.assert_array_equal(np.sort(classes), np.sort(order[10 * t:10 * t + 10]))
    train_y = _rows(task.train_y, task.train_count)
    val_y = _rows(task.val_y, task.val_count)
    assert np.isin(train_y, classes).all() and np.isin(val_y, classes).all()
    # every TRAIN image of the task's classes is in train or val (3 per class)
    assert len(train_y) + len(val_y) == TRAIN_PER_CLASS * 10
    x = np.concatenate([_rows(task.train_x, task.train_count),
                        _rows(task.val_x, task.val_count)])
    assert x.shape[1] == offline.embed_dim == 384
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    test_x = _rows(stream.test.x[t], stream.test.count[t])
    test_y = _rows(stream.test.y[t], stream.test.count[t])
    assert sorted(test_y.tolist()) == sorted(classes.tolist())  # one TEST image per class
    np.testing.assert_allclose(np.linalg.norm(test_x, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(np.flatnonzero(stream.test.class_mask[t]), np.sort(classes))
    seen.append(classes)
  assert sorted(np.concatenate(seen).tolist()) == list(range(100))


def test_cifar100_class_names_and_text_are_the_datasets(counted_builds, offline):
  stream = counted_builds[0][0]
  assert stream.class_names == tuple(f"thing {i}" for i in range(NUM_CLASSES))
  text = np.asarray(stream.test.class_text)
  expected = offline.encode_text(["a photo of a thing 0.", "a photo of a thing 1.",
                                  "a photo of a thing 2."])
  np.testing.assert_allclose(text[:3], expected, atol=1e-5)
  task = stream.tasks[0]
  np.testing.assert_allclose(np.asarray(task.class_text),
                             text[np.asarray(task.classes)], atol=1e-6)


def test_second_build_reads_the_embedding_cache(counted_builds):
  (first, first_counts), (second, second_counts) = counted_builds
  assert first_counts.image_calls == 2 and first_counts.text_calls == 1
  assert second_counts.image_calls == 0 and second_counts.text_calls == 0
  np.testing.assert_array_equal(np.asarray(first.tasks[3].train_x),
                                np.asarray(second.tasks[3].train_x))
  np.testing.assert_array_equal(np.asarray(first.test.x), np.asarray(second.test.x))
  np.testing.assert_array_equal(np.asarray(first.test.class_text),
                                np.asarray(second.test.class_text))


@pytest.mark.parametrize("num_tasks", [20, 50])
def test_cifar100_20_and_50_split_the_same_order(num_tasks, tmp_path):
  backbone = FixedSizeBackbone(32)
  with mock_cifar100():
    stream = streams.get_stream(f"cifar100-{num_tasks}", backbone=backbone,
                                data_dir=tmp_path / "tfds", cache_dir=tmp_path / "cache")
  per_task = 100 // num_tasks
  order = sources.cifar100_class_order()
  assert len(stream.tasks) == num_tasks
  for t in (0, num_tasks - 1):
    np.testing.assert_array_equal(np.sort(np.asarray(stream.tasks[t].classes)),
                                  np.sort(order[per_task * t:per_task * (t + 1)]))


def test_fixed_size_backbone_gets_images_resized(tmp_path):
  backbone = FixedSizeBackbone(40)
  with mock_cifar100():
    stream = streams.get_stream("cifar100-50", backbone=backbone, data_dir=tmp_path / "tfds",
                                cache_dir=tmp_path / "cache", train_fraction=0.5)
  assert backbone.seen_shapes and all(s[1:] == (40, 40, 3) for s in backbone.seen_shapes)
  # train_fraction 0.5 keeps round(0.5 * 3) = 2 of each class's 3 TRAIN images
  assert sum(s[0] for s in backbone.seen_shapes) == 2 * 100 + 100
  assert sorted(p.name.split("_")[1] for p in (tmp_path / "cache").glob("cifar100_*.npy")) == [
      "test-bicubic40", "train-bicubic40"]
  assert np.asarray(stream.tasks[0].train_x).shape[1] == 16
  image = np.zeros((32, 32, 3), np.uint8)
  image[:, 16:] = 200
  encode, tag = embed.image_encode_fn(backbone, (32, 32, 3))
  assert tag == "-bicubic40"
  assert encode(image[None]).shape == (1, 16)
  np.testing.assert_array_equal(backbone.seen_shapes[-1], (1, 40, 40, 3))
  assert embed.image_encode_fn(FixedSizeBackbone(32), (32, 32, 3))[1] == ""


def test_grayscale_images_reach_an_rgb_backbone_as_three_equal_channels():
  backbone = FixedSizeBackbone(32)
  encode, tag = embed.image_encode_fn(backbone, (32, 32, 1))
  assert tag == "-rgb"
  gray = np.arange(2 * 32 * 32, dtype=np.uint8).reshape(2, 32, 32, 1)
  assert encode(gray).shape == (2, 16)
  assert backbone.seen_shapes[-1] == (2, 32, 32, 3)
  encode, tag = embed.image_encode_fn(FixedSizeBackbone(40), (32, 32, 1))
  assert tag == "-rgb-bicubic40"


def test_pixels_with_offline_backbone_are_the_gray_tower_grid(offline, tmp_path):
  with mock_cifar100():
    stream = streams.get_stream("cifar100-10", backbone=offline, data_dir=tmp_path / "tfds",
                                cache_dir=tmp_path / "cache", pixels=True)
    train_x, train_y, _ = sources.load_arrays("cifar100", "train", tmp_path / "tfds")
  task = stream.tasks[2]
  pixels = _rows(task.train_pixels, task.train_count)
  assert pixels.shape[1:] == (32, 32, 1)
  rows = np.flatnonzero(np.isin(train_y, np.asarray(task.classes)))
  grid = embed.tower_input_grid(train_x[rows])
  # each replayed image is the grayscale grid of one of the task's training images, and
  # its embedding is that image's embedding
  matches = [np.flatnonzero((grid == p).all(axis=(1, 2, 3))) for p in pixels]
  assert all(m.size == 1 for m in matches)
  embedded = offline.encode_image(train_x[rows][np.concatenate(matches)])
  np.testing.assert_allclose(_rows(task.train_x, task.train_count), embedded, atol=1e-5)


def test_pixels_with_another_backbone_raise(tmp_path):
  with mock_cifar100(), pytest.raises(ValueError, match="pixels=True.*offline backbone"):
    streams.get_stream("cifar100-10", backbone=FixedSizeBackbone(32),
                       data_dir=tmp_path, cache_dir=tmp_path, pixels=True)


def test_missing_cifar100_names_how_to_prepare_it(tmp_path, monkeypatch):
  backbone = FixedSizeBackbone(32)
  with pytest.raises(FileNotFoundError) as error:
    streams.get_stream("cifar100-20", backbone=backbone, data_dir=tmp_path / "nothing",
                       cache_dir=tmp_path / "cache")
  message = str(error.value)
  assert "'cifar100-20'" in message
  assert f"tfds build cifar100 --data_dir {tmp_path / 'nothing'} --file_format array_record" in (
      message)
  assert "--config.stream.data_dir" in message and "$AUTOSEED_DATA_DIR=DIR" in message
  # without data_dir the stream looks in the default data directory and says so
  monkeypatch.setenv(builders.DATA_DIR_ENV, str(tmp_path / "default"))
  with pytest.raises(FileNotFoundError, match=f"--data_dir {tmp_path / 'default'} "):
    streams.get_stream("cifar100-10", backbone=backbone, cache_dir=tmp_path / "cache")


@pytest.mark.parametrize("backbone,dim", [("offline", 384), (f"clip:{CLIP_FIXTURE}", 64)])
def test_load_stream_builds_cifar100(backbone, dim, tmp_path):
  config = ml_collections.ConfigDict(dict(
      name="cifar100-10", backbone=backbone, data_dir=str(tmp_path / "tfds"),
      cache_dir=str(tmp_path / "cache"), seed=0, val_fraction=0.05, train_fraction=1.0))
  with mock_cifar100():
    stream = streams.load_stream(config)
  assert stream.name == "cifar100-10" and len(stream.tasks) == 10
  assert stream.tasks[0].train_pixels is None
  assert np.asarray(stream.test.x).shape[2] == np.asarray(stream.tasks[0].train_x).shape[1] == dim
  assert list((tmp_path / "cache").glob("cifar100_train_*.npy"))


def test_embedded_grayscale_streams_run_on_an_rgb_fixed_size_backbone(tmp_path):
  backbone = FixedSizeBackbone(40)
  stream = streams.get_stream("animals-ci", backbone=backbone, cache_dir=tmp_path / "cache",
                              train_fraction=0.05)
  assert backbone.seen_shapes and all(s[1:] == (40, 40, 3) for s in backbone.seen_shapes)
  assert np.asarray(stream.tasks[0].train_x).shape[1] == 16
