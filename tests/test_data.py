"""Tests for autoseed_jax.data: TFDS builders without TensorFlow, reading TFDS datasets,
the embedding cache."""

import collections
import gzip
import hashlib
import json
import os
import pickle
import tempfile

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from autoseed_jax.data import builders, embedding_cache, sources
from helpers import TEST_XLA_FLAGS

EMBEDDED = {
    "animal_mnist": (builders.ANIMAL_MNIST_CLASS_NAMES, (28, 28, 1)),
    "sklearn_digits": (builders.SKLEARN_DIGITS_CLASS_NAMES, (8, 8, 1)),
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  path = tmp_path_factory.mktemp("tfds")
  for name in EMBEDDED:
    builders.prepare(name, path)
  return path


def _package_arrays(name):
  if name == "animal_mnist":
    return builders.load_animal_mnist_arrays()
  return builders.load_sklearn_digits_arrays()


def _ids(source):
  return [record["id"].decode() for record in source]


# ---------------------------------------------------------------- embedded datasets


@pytest.mark.parametrize("name", sorted(EMBEDDED))
def test_embedded_dataset_reads_back_with_expected_counts(name, data_dir):
  class_names, image_shape = EMBEDDED[name]
  _, package_labels = _package_arrays(name)
  per_class_total = np.bincount(package_labels, minlength=10)
  train_x, train_y, train_names = sources.load_arrays(name, "train", data_dir)
  test_x, test_y, test_names = sources.load_arrays(name, "test", data_dir)

  assert train_names == test_names == list(class_names)
  assert train_x.dtype == test_x.dtype == np.uint8
  assert train_y.dtype == test_y.dtype == np.int32
  assert train_x.shape == (len(train_y),) + image_shape
  assert test_x.shape == (len(test_y),) + image_shape
  test_counts = np.bincount(test_y, minlength=10)
  np.testing.assert_array_equal(test_counts + np.bincount(train_y, minlength=10),
                                per_class_total)
  np.testing.assert_array_equal(test_counts, np.round(0.2 * per_class_total).astype(int))
  if name == "animal_mnist":
    assert (test_counts == 200).all() and len(train_y) == 8000
  else:
    assert (len(train_y), len(test_y)) == (1438, 359)
    assert train_x.max() == 255


@pytest.mark.parametrize("name", sorted(EMBEDDED))
def test_embedded_records_equal_package_arrays(name, data_dir):
  images, labels = _package_arrays(name)
  source = sources.data_source(name, "test", data_dir)
  for position in (0, 7, len(source) - 1):
    record = source[position]
    index = int(record["id"].decode().split("/")[1])
    np.testing.assert_array_equal(record["image"][..., 0], images[index])
    assert record["label"] == labels[index]


def test_sklearn_digits_scaling_is_rint_255_over_16():
  from sklearn.datasets import load_digits

  images, _ = builders.load_sklearn_digits_arrays()
  raw = load_digits().images
  np.testing.assert_array_equal(images[raw == 16], 255)
  np.testing.assert_array_equal(images[raw == 0], 0)
  np.testing.assert_array_equal(images[raw == 8], 128)


@pytest.mark.parametrize("name", sorted(EMBEDDED))
def test_splits_partition_the_package_and_keep_duplicates_together(name, data_dir):
  images, _ = _package_arrays(name)
  train_ids = _ids(sources.data_source(name, "train", data_dir))
  test_ids = _ids(sources.data_source(name, "test", data_dir))
  train_index = {int(i.split("/")[1]) for i in train_ids}
  test_index = {int(i.split("/")[1]) for i in test_ids}
  assert not train_index & test_index
  assert train_index | test_index == set(range(len(images)))
  train_bytes = {images[i].tobytes() for i in train_index}
  assert not any(images[i].tobytes() in train_bytes for i in test_index)


def test_stratified_split_is_deterministic_and_seed_dependent():
  labels = np.repeat(np.arange(5), 40)
  groups = np.arange(200) // 2  # pairs of "identical" examples
  first = builders.stratified_split_indices(labels, test_fraction=0.25, seed=3, groups=groups)
  again = builders.stratified_split_indices(labels, test_fraction=0.25, seed=3, groups=groups)
  other = builders.stratified_split_indices(labels, test_fraction=0.25, seed=4, groups=groups)
  np.testing.assert_array_equal(first[1], again[1])
  assert not np.array_equal(first[1], other[1])
  np.testing.assert_array_equal(np.bincount(labels[first[1]]), [10] * 5)
  assert set(groups[first[0]]).isdisjoint(groups[first[1]])


def test_prepare_is_idempotent(data_dir):
  builder = builders.prepare("sklearn_digits", data_dir)
  info_file = os.path.join(os.fspath(builder.data_dir), "dataset_info.json")
  before = os.stat(info_file).st_mtime_ns
  again = builders.prepare("sklearn_digits", data_dir)
  assert os.stat(info_file).st_mtime_ns == before
  assert again.info.splits["train"].num_examples == 1438


def test_a_builder_for_an_unbuilt_dir_leaves_no_temporary_folder(monkeypatch, tmp_path):
  # TFDS makes an empty /tmp/tmp*tfds folder, never removed, for every builder of an
  # unbuilt dataset (DatasetInfo.initialize_from_bucket); ours skip that.
  scratch = tmp_path / 'tmp'
  scratch.mkdir()
  monkeypatch.setattr(tempfile, 'tempdir', str(scratch))
  builder = builders.embedded_builder('sklearn_digits', tmp_path / 'data')
  assert not builders.is_built(builder)
  assert list(scratch.iterdir()) == []


def test_default_dirs_follow_environment(monkeypatch, tmp_path):
  monkeypatch.setenv(builders.DATA_DIR_ENV, str(tmp_path / "d"))
  monkeypatch.setenv(embedding_cache.CACHE_DIR_ENV, str(tmp_path / "c"))
  assert builders.default_data_dir() == tmp_path / "d"
  assert embedding_cache.default_cache_dir() == tmp_path / "c"
  monkeypatch.delenv(builders.DATA_DIR_ENV)
  assert builders.default_data_dir().parts[-3:] == (".cache", "autoseed_jax", "tfds")


def test_restricted_unpickler_refuses_non_array_objects(tmp_path):
  path = tmp_path / "evil.gz"
  with gzip.open(path, "wb") as handle:
    pickle.dump(collections.OrderedDict(a=1), handle)
  with pytest.raises(pickle.UnpicklingError, match="only numpy arrays"):
    builders._load_pickled_array(path)  # pylint: disable=protected-access
  with gzip.open(path, "wb") as handle:
    pickle.dump(np.arange(3, dtype=np.uint8), handle)
  loaded = builders._load_pickled_array(path)  # pylint: disable=protected-access
  np.testing.assert_array_equal(loaded, [0, 1, 2])


def test_class_prompts_use_dataset_templates():
  assert sources.class_prompts("animal_mnist", ["bear"]) == [
      "a black and white silhouette of a bear."]
  assert sources.class_prompts("sklearn_digits", ["7"]) == ["a handwritten digit 7."]
  assert sources.class_prompts("cifar100", ["aquarium_fish"]) == ["a photo of a aquarium fish."]
  assert sources.readable_class_name("/a/apartment_building/outdoor") == (
      "apartment building outdoor")


# ---------------------------------------------------------------- errors


def test_unknown_dataset_lists_known_names():
  with pytest.raises(ValueError, match="Unknown dataset 'nope'") as error:
    sources.load_arrays("nope", "train")
  for name in ("animal_mnist", "sklearn_digits", "cifar100"):
    assert name in str(error.value)


def test_user_prepared_dataset_without_data_dir_says_how_to_prepare():
  with pytest.raises(ValueError, match="pip install tensorflow") as error:
    sources.load_arrays("cifar100", "train")
  assert "tfds build cifar100" in str(error.value)


def test_user_prepared_dataset_missing_from_data_dir(tmp_path):
  with pytest.raises(FileNotFoundError, match="not prepared") as error:
    sources.load_arrays("cifar100", "train", tmp_path)
  assert f"tfds build cifar100 --data_dir {tmp_path}" in str(error.value)


# ---------------------------------------------------------------- user-prepared TFDS datasets

FAKE_CIFAR_NAMES = [f"class_{i:02d}" for i in range(100)]


class _FakeCifar100(tfds.builder_cls("cifar100"), skip_registration=True):
  """TFDS's own cifar100 builder (features, name, version) fed with PIL images we make."""

  name = "cifar100"
  code_path = None

  def _split_generators(self, dl_manager):
    self.info.features["label"].names = FAKE_CIFAR_NAMES
    return {"train": self._fake_examples(0, 60), "test": self._fake_examples(60, 80)}

  def _fake_examples(self, start, stop):
    for index in range(start, stop):
      yield f"fake{index}", {
          "id": f"fake{index}",
          "image": Image.fromarray(fake_cifar_image(index)),
          "label": index % 100,
          "coarse_label": (index % 100) // 5,
      }


def fake_cifar_image(index):
  return np.random.default_rng(index).integers(0, 256, (32, 32, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def fake_cifar_dir(tmp_path_factory):
  path = tmp_path_factory.mktemp("cifar")
  _FakeCifar100(data_dir=os.fspath(path), file_format="array_record").download_and_prepare()
  return path


def test_prepared_cifar100_is_read_with_data_source(fake_cifar_dir):
  images, labels, class_names = sources.load_arrays("cifar100", "train", fake_cifar_dir)
  assert images.shape == (60, 32, 32, 3) and images.dtype == np.uint8
  assert class_names == FAKE_CIFAR_NAMES
  source = sources.data_source("cifar100", "train", fake_cifar_dir)
  for position in (0, 59):
    index = int(source[position]["id"].decode()[4:])
    np.testing.assert_array_equal(images[position], fake_cifar_image(index))  # PNG lossless
    assert labels[position] == index % 100


def test_tfrecord_only_dataset_explains_conversion(fake_cifar_dir, tmp_path):
  version_dir = tmp_path / "cifar100" / "3.0.2"
  version_dir.mkdir(parents=True)
  info = json.loads((fake_cifar_dir / "cifar100" / "3.0.2" / "dataset_info.json").read_text())
  info["fileFormat"] = "tfrecord"
  (version_dir / "dataset_info.json").write_text(json.dumps(info))
  with pytest.raises(ValueError, match="stored as tfrecord") as error:
    sources.load_arrays("cifar100", "train", tmp_path)
  assert "tfds convert_format" in str(error.value)
  assert "--out_file_format=array_record" in str(error.value)


def test_mock_data_cifar100_loads_without_tensorflow(tmp_path):
  with tfds.testing.mock_data(num_examples=12, policy=tfds.testing.MockPolicy.USE_CODE):
    images, labels, class_names = sources.load_arrays("cifar100", "test", tmp_path)
  assert images.shape == (12, 32, 32, 3) and images.dtype == np.uint8
  assert labels.dtype == np.int32 and ((0 <= labels) & (labels < 100)).all()
  assert len(class_names) == 100


def test_resize_center_crop_keeps_center():
  image = np.zeros((40, 80, 3), np.uint8)
  image[:, 30:50] = 255  # bright central band, 20 wide of 80
  out = sources.resize_center_crop(image, 20)
  assert out.shape == (20, 20, 3)
  assert out[:, 8:12].min() > 200 and out[:, :3].max() < 30


# ---------------------------------------------------------------- class-incremental CIFAR-100


@pytest.mark.parametrize("num_tasks,classes_per_task", [(10, 10), (20, 5), (50, 2)])
def test_cifar100_class_incremental_tasks(num_tasks, classes_per_task):
  tasks = sources.class_incremental_tasks(num_tasks)
  assert len(tasks) == num_tasks
  assert all(task.shape == (classes_per_task,) for task in tasks)
  order = np.concatenate(tasks)
  np.testing.assert_array_equal(order, sources.cifar100_class_order())
  assert sorted(order.tolist()) == list(range(100))


def test_cifar100_class_order_is_the_seed_1993_permutation():
  order = sources.cifar100_class_order()
  np.testing.assert_array_equal(order[:10], [68, 56, 78, 8, 23, 84, 90, 65, 74, 76])
  np.testing.assert_array_equal(order, sources.cifar100_class_order())
  assert not np.array_equal(order, sources.cifar100_class_order(seed=0))
  with pytest.raises(ValueError, match="cannot be split into 7"):
    sources.class_incremental_tasks(7)


# ---------------------------------------------------------------- embedding cache


class CountingEncoder:
  """Deterministic stand-in encoder that counts its calls: [N, ...] or P strings -> [N, dim]."""

  def __init__(self, dim=4):
    self.calls, self.dim = 0, dim

  def __call__(self, inputs):
    self.calls += 1
    if isinstance(inputs, list):
      values = np.array([len(prompt) for prompt in inputs], np.float32)
    else:
      values = np.asarray(inputs, np.float32).reshape(len(inputs), -1).mean(axis=1)
    return values[:, None] + np.arange(self.dim, dtype=np.float32)


def _images(n=6):
  return np.random.default_rng(0).integers(0, 256, (n, 8, 8, 1), dtype=np.uint8)


def _cache(encoder, tmp_path, images=None, fingerprint="bb-1", split="train"):
  return embedding_cache.cached_embeddings(
      encoder, fingerprint=fingerprint, dataset="toy", split=split,
      images=_images() if images is None else images, cache_dir=tmp_path)


def test_cache_hit_calls_encoder_once(tmp_path):
  encoder = CountingEncoder()
  first = _cache(encoder, tmp_path)
  second = _cache(encoder, tmp_path)
  assert encoder.calls == 1
  np.testing.assert_array_equal(first, second)
  assert first.shape == (6, 4)
  assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_cache_misses_on_new_fingerprint_split_or_images(tmp_path):
  encoder = CountingEncoder()
  _cache(encoder, tmp_path)
  _cache(encoder, tmp_path, fingerprint="bb-2")
  _cache(encoder, tmp_path, split="test")
  changed = _images()
  changed[0, 0, 0, 0] ^= 1
  _cache(encoder, tmp_path, images=changed)
  assert encoder.calls == 4


def test_cache_keeps_embeddings_of_other_xla_numerics_apart(tmp_path, monkeypatch):
  """The tests' XLA flags change embeddings' last bits: a cache they fill is not read by a
  run under XLA's defaults, and the defaults' key is the one it always was."""
  encoder = CountingEncoder()
  monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
  default_key = embedding_cache.cache_key(fingerprint="bb", dataset="d", split="train",
                                          inputs_digest="x")
  assert embedding_cache.numerics_flags() == ""
  _cache(encoder, tmp_path)
  keys = {default_key}
  for flag in TEST_XLA_FLAGS.split():  # each of the tests' flags alone keeps its own key
    monkeypatch.setenv("XLA_FLAGS", flag)
    keys.add(embedding_cache.cache_key(fingerprint="bb", dataset="d", split="train",
                                       inputs_digest="x"))
  assert len(keys) == 1 + len(TEST_XLA_FLAGS.split())
  monkeypatch.setenv("XLA_FLAGS", "--xla_backend_optimization_level=0")
  _cache(encoder, tmp_path)
  _cache(encoder, tmp_path)
  assert encoder.calls == 2
  monkeypatch.delenv("XLA_FLAGS")
  payload = {"fingerprint": "bb", "dataset": "d", "split": "train", "inputs": "x"}
  assert default_key == hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


@pytest.mark.parametrize("damage", ["truncate", "flip_byte", "drop_sidecar", "bad_sidecar"])
def test_damaged_cache_entry_is_recomputed(tmp_path, damage):
  encoder = CountingEncoder()
  expected = _cache(encoder, tmp_path)
  (array_path,) = tmp_path.glob("*.npy")
  sidecar_path = array_path.with_name(array_path.name[:-4] + ".json")
  data = array_path.read_bytes()
  if damage == "truncate":
    array_path.write_bytes(data[: len(data) - 10])
  elif damage == "flip_byte":
    array_path.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
  elif damage == "drop_sidecar":
    sidecar_path.unlink()
  else:
    sidecar_path.write_text("{not json")
  recomputed = _cache(encoder, tmp_path)
  assert encoder.calls == 2
  np.testing.assert_array_equal(recomputed, expected)
  _cache(encoder, tmp_path)
  assert encoder.calls == 2  # the rewritten entry is valid again


def test_cached_text_embeddings_hit_and_prompt_change(tmp_path):
  encoder = CountingEncoder(dim=3)
  prompts = sources.class_prompts("animal_mnist", builders.ANIMAL_MNIST_CLASS_NAMES)
  kwargs = dict(fingerprint="text-1", cache_dir=tmp_path)
  first = embedding_cache.cached_text_embeddings(encoder, prompts=prompts, **kwargs)
  embedding_cache.cached_text_embeddings(encoder, prompts=list(prompts), **kwargs)
  assert encoder.calls == 1 and first.shape == (10, 3)
  embedding_cache.cached_text_embeddings(encoder, prompts=prompts[::-1], **kwargs)
  assert encoder.calls == 2


def test_cache_rejects_encoder_output_of_wrong_shape(tmp_path):
  with pytest.raises(ValueError, match=r"\[N, d\] with N = 6"):
    _cache(lambda images: np.zeros((5, 4)), tmp_path)
  assert not list(tmp_path.glob("*.npy"))


def test_concurrent_runs_build_a_dataset_once(tmp_path):
  """Two processes preparing the same embedded dataset at once (two runs, or two test
  workers, on one machine): the build lock lets one build it and the other read it."""
  import subprocess  # pylint: disable=import-outside-toplevel
  import sys  # pylint: disable=import-outside-toplevel
  code = ('import sys; from autoseed_jax.data import builders, sources; '
          'builders.prepare("sklearn_digits", sys.argv[1]); '
          'print(len(sources.load_arrays("sklearn_digits", "test", sys.argv[1])[1]))')
  procs = [subprocess.Popen([sys.executable, '-c', code, str(tmp_path)], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
  outs = [p.communicate(timeout=300) for p in procs]
  assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in outs]
  assert [out.splitlines()[-1] for out, _ in outs] == ['359', '359']
  assert sum(out.count('building sklearn_digits') for out, _ in outs) == 1
