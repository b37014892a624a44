"""Tests for the CNN image tower (models/image_encoder.py), LiT pretraining (models/lit.py) and
the offline backbone built on the committed checkpoint (models/offline_backbone.py)."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from autoseed_jax.models import backbone, image_encoder, lit, minilm, offline_backbone

TINY = image_encoder.ImageTowerConfig(widths=(8, 16), embed_dim=384, groups=4)


@pytest.fixture(scope="module")
def tiny_params():
  return image_encoder.init_image_tower(TINY, jax.random.PRNGKey(0))


@pytest.fixture(scope="module")
def text_encoder():
  return minilm.load_minilm()


@pytest.fixture(scope="module")
def offline(text_encoder):
  return offline_backbone.load_offline_backbone(text_encoder=text_encoder, batch_size=32)


def _images(shape, seed=0):
  return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


# ---------------------------------------------------------------- the tower


@pytest.mark.parametrize("shape", [(5, 28, 28, 1), (5, 8, 8, 1), (5, 32, 32, 3), (5, 64, 64, 1)])
def test_tower_gives_unit_norm_384_embeddings(tiny_params, shape):
  images = image_encoder.check_images(_images(shape))
  out = np.asarray(image_encoder.encode_images(tiny_params, jnp.asarray(images), config=TINY))
  assert out.shape == (5, 384)
  assert out.dtype == np.float32
  np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_preprocessing_maps_sizes_and_colour_to_32x32_gray():
  constant = np.full((2, 8, 8, 1), 255, np.uint8)
  pixels = np.asarray(image_encoder.preprocess_images(jnp.asarray(constant)))
  assert pixels.shape == (2, 32, 32, 1)
  np.testing.assert_allclose(pixels, 1.0, atol=1e-6)  # bilinear keeps a constant image

  native = _images((2, 32, 32, 1))
  np.testing.assert_allclose(image_encoder.preprocess_images(jnp.asarray(native)),
                             native / 127.5 - 1.0, atol=1e-6)  # 32x32 is not resampled

  rgb = _images((2, 32, 32, 3), seed=1)
  luma = rgb.astype(np.float64) @ np.array(image_encoder.LUMA_WEIGHTS) / 255.0
  np.testing.assert_allclose(image_encoder.preprocess_images(jnp.asarray(rgb))[..., 0],
                             luma * 2 - 1, atol=1e-5)


@pytest.mark.parametrize("images, message", [
    (np.zeros((2, 28, 28), np.uint8), "shape"),
    (np.zeros((2, 28, 28, 2), np.uint8), "shape"),
    (np.zeros((2, 28, 20, 1), np.uint8), "28x20"),
    (np.zeros((2, 4, 4, 1), np.uint8), "4x4"),
    (np.zeros((2, 256, 256, 1), np.uint8), "256x256"),
    (np.zeros((2, 28, 28, 1), np.float32), "uint8"),
])
def test_bad_images_raise_value_error(images, message):
  with pytest.raises(ValueError, match=message):
    image_encoder.check_images(images)


def test_tower_is_small():
  params = image_encoder.init_image_tower(image_encoder.ImageTowerConfig(),
                                          jax.random.PRNGKey(0))
  count = sum(leaf.size for leaf in jax.tree_util.tree_leaves(params))
  assert 100_000 < count < 300_000


# ---------------------------------------------------------------- LiT


def test_lit_loss_matches_numpy_cross_entropy(tiny_params):
  rng = np.random.default_rng(0)
  class_text = rng.normal(size=(4, 384)).astype(np.float32)
  class_text /= np.linalg.norm(class_text, axis=1, keepdims=True)
  pixels = rng.uniform(-1, 1, size=(6, 32, 32, 1)).astype(np.float32)
  labels = np.array([0, 1, 2, 3, 0, 1], np.int32)
  params = {"tower": tiny_params, "log_logit_scale": jnp.log(7.0)}
  loss = lit.lit_loss(params, pixels, labels, class_text, tower_config=TINY)

  features = np.asarray(image_encoder.ImageTower(TINY).apply({"params": tiny_params}, pixels),
                        np.float64)
  features /= np.linalg.norm(features, axis=1, keepdims=True)
  logits = 7.0 * features @ class_text.T
  log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
  expected = -np.mean(log_p[np.arange(6), labels])
  assert float(loss) == pytest.approx(expected, rel=1e-4)


def test_class_balanced_sampling_weights():
  labels = jnp.array([0, 0, 0, 1, 2, 2])
  weights = np.exp(lit.class_balanced_log_weights(labels, 4))
  np.testing.assert_allclose(weights, [1 / 3, 1 / 3, 1 / 3, 1, 0.5, 0.5], rtol=1e-6)


def test_lit_loss_decreases_on_a_tiny_problem():
  rng = np.random.default_rng(0)
  class_text = rng.normal(size=(3, 384)).astype(np.float32)
  class_text /= np.linalg.norm(class_text, axis=1, keepdims=True)
  # Three visually distinct classes: dark, bright, and left-half-bright 12x12 images.
  dark = rng.integers(0, 60, size=(8, 12, 12, 1))
  bright = rng.integers(190, 256, size=(8, 12, 12, 1))
  half = np.concatenate([bright[:, :, :6], dark[:, :, 6:]], axis=2)
  images = np.concatenate([dark, bright, half]).astype(np.uint8)
  labels = np.repeat(np.arange(3), 8).astype(np.int32)
  config = lit.LitConfig(num_steps=25, batch_size=16, learning_rate=1e-2, warmup_steps=2,
                         max_shift=1)
  params, history = lit.pretrain_image_tower([images], [labels], class_text, config=config,
                                             tower_config=TINY, log_every=5)
  pixels = image_encoder.preprocess_images(jnp.asarray(images))
  init = {"tower": image_encoder.init_image_tower(TINY, jax.random.split(
      jax.random.PRNGKey(config.seed))[0]), "log_logit_scale": jnp.log(10.0)}
  before = float(lit.lit_loss(init, pixels, labels, class_text, tower_config=TINY))
  after = float(lit.lit_loss(params, pixels, labels, class_text, tower_config=TINY))
  assert history["loss"][0] == pytest.approx(before, rel=0.2)
  assert after < 0.5 * before
  assert history["step"] == [0, 5, 10, 15, 20, 24]


def test_pretrain_rejects_mismatched_inputs(tiny_params):
  text = np.eye(3, 384, dtype=np.float32)
  images = np.zeros((4, 8, 8, 1), np.uint8)
  with pytest.raises(ValueError, match="labels must be in"):
    lit.pretrain_image_tower([images], [np.array([0, 1, 2, 3])], text, tower_config=TINY)
  with pytest.raises(ValueError, match="class_text must be"):
    lit.pretrain_image_tower([images], [np.zeros(4, int)], text[:, :10], tower_config=TINY)


def test_checkpoint_round_trips_through_orbax(tmp_path, tiny_params):
  metadata = {"training_data": {"datasets": ["toy"]}, "learned_logit_scale": 3.5}
  lit.save_checkpoint(tmp_path / "ckpt", tiny_params, tower_config=TINY, metadata=metadata)
  params, config, restored_meta = lit.restore_checkpoint(tmp_path / "ckpt")
  assert config == TINY
  assert restored_meta["training_data"] == {"datasets": ["toy"]}
  assert restored_meta["learned_logit_scale"] == 3.5
  assert jax.tree_util.tree_structure(params) == jax.tree_util.tree_structure(tiny_params)
  jax.tree_util.tree_map(np.testing.assert_array_equal, params, tiny_params)
  saved = json.loads((tmp_path / "ckpt" / lit.CONFIG_FILE).read_text())
  assert saved["tower_config"]["widths"] == [8, 16]


# ---------------------------------------------------------------- the offline backbone


def test_committed_checkpoint_loads_as_a_backbone(offline, text_encoder):
  assert isinstance(offline, backbone.Backbone)
  assert offline.embed_dim == 384
  meta = offline.metadata
  assert meta["training_data"]["fraction"] == 0.1
  assert [d["num_images"] for d in meta["training_data"]["datasets"]] == [800, 143]
  assert meta["text_tower"]["fingerprint"] == text_encoder.fingerprint
  out = offline.encode_image(_images((40, 28, 28, 1)))
  assert out.shape == (40, 384) and out.dtype == np.float32
  np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
  np.testing.assert_allclose(offline.encode_text(["a handwritten digit 3."]),
                             text_encoder.encode_text(["a handwritten digit 3."]), atol=1e-6)
  with pytest.raises(ValueError, match="5x7"):
    offline.encode_image(np.zeros((1, 5, 7, 1), np.uint8))


def test_fingerprint_combines_both_towers(offline, text_encoder):
  again = offline_backbone.OfflineBackbone(offline.tower_params, offline.tower_config,
                                           text_encoder)
  assert again.fingerprint == offline.fingerprint
  changed_params = jax.tree_util.tree_map(lambda x: x, offline.tower_params)
  changed_params["projection"]["bias"] = changed_params["projection"]["bias"] + 1e-3
  changed_image = offline_backbone.OfflineBackbone(changed_params, offline.tower_config,
                                                   text_encoder)
  assert changed_image.fingerprint != offline.fingerprint

  class OtherText:
    embed_dim = 384
    fingerprint = "0" * 64

    def encode_text(self, texts):
      return np.zeros((len(texts), 384), np.float32)

  changed_text = offline_backbone.OfflineBackbone(offline.tower_params, offline.tower_config,
                                                  OtherText())
  assert changed_text.fingerprint != offline.fingerprint
  assert changed_text.image_fingerprint == offline.image_fingerprint


def test_missing_checkpoint_names_the_rebuild_script(tmp_path, text_encoder):
  with pytest.raises(FileNotFoundError, match="experiments/pretrain_lit.py"):
    offline_backbone.load_offline_backbone(tmp_path / "nothing", text_encoder=text_encoder)
