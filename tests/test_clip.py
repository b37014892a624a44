"""Parity of our CLIP (Flax) and CLIP tokenizer with open_clip, and their input checks.

The reference outputs in tests/fixtures/clip_tiny/ were computed by open_clip 3.3.0 with
tests/fixtures/make_clip_fixture.py; nothing here imports torch.
"""

import dataclasses
import json
import pathlib

import jax
import numpy as np
import pytest
import safetensors.numpy

from autoseed_jax.models import backbone, clip
from autoseed_jax.models.clip_tokenizer import CLIPTokenizer, clean_text, get_tokenizer

FIXTURE_DIR = pathlib.Path(__file__).parent / "fixtures" / "clip_tiny"
WEIGHTS = FIXTURE_DIR / "open_clip_model.safetensors"
# Measured: at most 2.2e-7 on CPU; LayerNorm eps 1e-6 instead of 1e-5 would give 1.6e-5.
PARITY_TOLERANCE = 2e-6


@pytest.fixture(scope="module")
def reference():
  with np.load(FIXTURE_DIR / "reference.npz", allow_pickle=False) as archive:
    return {key: archive[key] for key in archive.files}


@pytest.fixture(scope="module")
def tiny_config(reference):
  return clip.CLIPConfig(**json.loads(str(reference["config_json"])))


@pytest.fixture(scope="module")
def backbones(tiny_config):
  """activation name -> CLIPBackbone over the fixture weights (batch 3: pads the last batch)."""
  return {
      "gelu": clip.CLIPBackbone.from_checkpoint(WEIGHTS, tiny_config, batch_size=3),
      "quickgelu": clip.CLIPBackbone.from_checkpoint(
          WEIGHTS, dataclasses.replace(tiny_config, quick_gelu=True), batch_size=3
      ),
  }


# --- tokenizer ------------------------------------------------------------------------------


def test_token_ids_equal_open_clip(reference):
  texts = [str(text) for text in reference["texts"]]
  token_ids = get_tokenizer()(texts)
  assert token_ids.dtype == np.int32
  np.testing.assert_array_equal(token_ids, reference["token_ids"])


def test_long_text_is_truncated_with_end_of_text_last(reference):
  tokenizer = get_tokenizer()
  long_text = str(reference["texts"][-1])
  assert len(tokenizer.encode(long_text)) > 77
  row = tokenizer([long_text])[0]
  assert row.shape == (77,)
  assert row[0] == tokenizer.start_of_text_id == 49406
  assert row[-1] == tokenizer.end_of_text_id == 49407
  assert np.all(row != 0)


def test_empty_text_is_start_end_then_padding():
  row = get_tokenizer()([""])[0]
  assert row[:2].tolist() == [49406, 49407]
  assert np.all(row[2:] == 0)


def test_short_context_length_truncates():
  tokenizer = CLIPTokenizer(context_length=5)
  row = tokenizer(["one two three four five six"])[0]
  assert row.tolist()[0] == 49406 and row.tolist()[-1] == 49407 and len(row) == 5


def test_decode_inverts_encode_up_to_cleanup():
  tokenizer = get_tokenizer()
  row = tokenizer(["A Photo of a CAT, café!"])[0]
  assert tokenizer.decode(row) == "<start_of_text>a photo of a cat , café ! <end_of_text>"


@pytest.mark.parametrize(
    "raw, cleaned",
    [
        ("  Hello \t\n World  ", "hello world"),
        ("\u201cquoted\u201d \u2019s", "\"quoted\" 's"),
        ("\ufb01ne \uff26\uff35\uff2c\uff2c\u3000width", "fine full width"),
        ("Tom &amp;amp; Jerry &EACUTE;t&eacute;", "tom & jerry été"),
        ("e\u0301", "\u00e9"),  # NFC
        ("red\x1b[31m text\x00", "red text"),
    ],
)
def test_clean_text(raw, cleaned):
  assert clean_text(raw) == cleaned


def test_missing_merges_file_raises(tmp_path):
  with pytest.raises(FileNotFoundError, match="bpe_simple_vocab_16e6"):
    CLIPTokenizer(merges_path=tmp_path / "nothing.txt.gz")


# --- embeddings -----------------------------------------------------------------------------


@pytest.mark.parametrize("activation", ["gelu", "quickgelu"])
def test_image_embeddings_match_open_clip(backbones, reference, activation):
  model = backbones[activation]
  for images_key, reference_key in [
      ("images_uint8", f"image_embeddings_{activation}"),
      ("images_float", f"float_image_embeddings_{activation}"),
  ]:
    embeddings = model.encode_image(reference[images_key])
    assert embeddings.shape == reference[reference_key].shape
    assert embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-6)
    max_error = np.abs(embeddings - reference[reference_key]).max()
    assert max_error < PARITY_TOLERANCE, f"{images_key}: max abs diff {max_error}"


@pytest.mark.parametrize("activation", ["gelu", "quickgelu"])
def test_text_embeddings_match_open_clip(backbones, reference, activation):
  texts = [str(text) for text in reference["texts"]]
  embeddings = backbones[activation].encode_text(texts)
  expected = reference[f"text_embeddings_{activation}"]
  assert embeddings.shape == expected.shape and embeddings.dtype == np.float32
  np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-6)
  max_error = np.abs(embeddings - expected).max()
  assert max_error < PARITY_TOLERANCE, f"max abs diff {max_error}"


def test_activation_flag_changes_embeddings(reference):
  gap = np.abs(reference["text_embeddings_gelu"] - reference["text_embeddings_quickgelu"]).max()
  assert gap > 1e-3  # so the two parity tests above each pin the activation


def test_jitted_and_unjitted_text_encoders_agree(backbones, reference):
  model = backbones["gelu"]
  token_ids = reference["token_ids"][:2]
  jitted = clip.encode_text_fn(model.params, token_ids, model.config)
  with jax.disable_jit():
    eager = clip.encode_text_fn(model.params, token_ids, model.config)
  np.testing.assert_allclose(np.asarray(jitted), np.asarray(eager), atol=1e-6)
  np.testing.assert_allclose(np.asarray(jitted), reference["text_embeddings_gelu"][:2], atol=1e-5)


def test_backbone_interface(backbones, reference):
  model = backbones["gelu"]
  assert isinstance(model, backbone.Backbone)
  assert model.embed_dim == 64 and model.image_size == 32
  assert model.encode_text([]).shape == (0, 64)
  assert model.encode_image(np.zeros((0, 32, 32, 3), np.uint8)).shape == (0, 64)
  stored = safetensors.numpy.load_file(str(WEIGHTS))["logit_scale"]
  assert model.logit_scale == pytest.approx(float(np.exp(stored)), rel=1e-6)


def test_fingerprint_tracks_weights_and_config(backbones, tiny_config):
  fingerprint = backbones["gelu"].fingerprint
  assert len(fingerprint) == 64 and int(fingerprint, 16) >= 0
  assert clip.CLIPBackbone.from_checkpoint(WEIGHTS, tiny_config).fingerprint == fingerprint
  assert backbones["quickgelu"].fingerprint != fingerprint
  params = clip.load_clip_params(WEIGHTS, tiny_config)
  params["visual"]["ln_post"]["bias"] = params["visual"]["ln_post"]["bias"] + 1e-3
  assert clip.CLIPBackbone(params, tiny_config).fingerprint != fingerprint


def test_npz_checkpoint_loads_like_safetensors(tmp_path, tiny_config):
  state_dict = safetensors.numpy.load_file(str(WEIGHTS))
  np.savez(tmp_path / "weights.npz", **state_dict)
  from_npz = clip.load_clip_params(tmp_path / "weights.npz", tiny_config)
  from_safetensors = clip.load_clip_params(WEIGHTS, tiny_config)
  jax.tree_util.tree_map(np.testing.assert_array_equal, from_npz, from_safetensors)


# --- bad input ------------------------------------------------------------------------------


def test_wrong_image_size_raises(backbones):
  with pytest.raises(ValueError, match=r"expects 32x32 images.*got 16x16.*resize"):
    backbones["gelu"].encode_image(np.zeros((2, 16, 16, 3), np.uint8))


def test_channels_first_images_raise(backbones):
  with pytest.raises(ValueError, match=r"\[N, 32, 32, 3\].*\(2, 3, 32, 32\)"):
    backbones["gelu"].encode_image(np.zeros((2, 3, 32, 32), np.uint8))


def test_float_images_outside_unit_range_raise(backbones):
  with pytest.raises(ValueError, match=r"\[0, 1\].*divide"):
    backbones["gelu"].encode_image(np.full((1, 32, 32, 3), 255.0, np.float32))


def test_integer_images_other_than_uint8_raise(backbones):
  with pytest.raises(ValueError, match="uint8"):
    backbones["gelu"].encode_image(np.zeros((1, 32, 32, 3), np.int64))


def test_single_string_to_encode_text_raises(backbones):
  with pytest.raises(ValueError, match="wrap it in a list"):
    backbones["gelu"].encode_text("a photo of a cat")


def test_missing_weights_file_raises(tmp_path, tiny_config):
  missing = tmp_path / "open_clip_model.safetensors"
  with pytest.raises(FileNotFoundError) as error:
    clip.load_clip_params(missing, tiny_config)
  assert str(missing) in str(error.value)
  assert "never downloads" in str(error.value)
  assert "open_clip_model.safetensors" in str(error.value)


def test_wrong_shape_in_checkpoint_raises(tmp_path, tiny_config):
  state_dict = safetensors.numpy.load_file(str(WEIGHTS))
  state_dict["visual.proj"] = np.zeros((48, 32), np.float32)
  path = tmp_path / "bad.safetensors"
  safetensors.numpy.save_file(state_dict, str(path))
  with pytest.raises(ValueError) as error:
    clip.load_clip_params(path, tiny_config)
  message = str(error.value)
  assert "'visual.proj'" in message
  assert "(48, 32)" in message and "expects (48, 64)" in message
  assert "infer_clip_config" in message and "get_clip_config" in message


def test_checkpoint_for_another_config_raises(tiny_config):
  wider = dataclasses.replace(tiny_config, vision_width=96, vision_heads=6)
  expected_message = r"'visual.conv1.weight'.*\(48, 3, 8, 8\).*\(96, 3, 8, 8\)"
  with pytest.raises(ValueError, match=expected_message):
    clip.load_clip_params(WEIGHTS, wider)


def test_missing_and_unexpected_keys_raise(tiny_config):
  state_dict = safetensors.numpy.load_file(str(WEIGHTS))
  without_ln_final = {k: v for k, v in state_dict.items() if not k.startswith("ln_final")}
  with pytest.raises(ValueError, match=r"lacks 2 weights.*ln_final"):
    clip.convert_state_dict(without_ln_final, tiny_config)
  deeper = dataclasses.replace(tiny_config, text_layers=1)
  with pytest.raises(ValueError, match=r"does not use.*transformer\.resblocks\.1\."):
    clip.convert_state_dict(state_dict, deeper)


def test_unsupported_file_type_raises(tmp_path, tiny_config):
  path = tmp_path / "weights.pt"
  path.write_bytes(b"not a checkpoint")
  with pytest.raises(ValueError, match="convert_openai_checkpoint"):
    clip.load_clip_params(path, tiny_config)


def test_params_with_wrong_shape_rejected_by_backbone(tiny_config):
  params = clip.load_clip_params(WEIGHTS, tiny_config)
  params["text"]["text_projection"] = np.zeros((32, 8), np.float32)
  with pytest.raises(ValueError, match=r"text/text_projection.*\(32, 8\).*\(32, 64\)"):
    clip.CLIPBackbone(params, tiny_config)


def test_convert_openai_checkpoint_needs_torch(tmp_path):
  try:
    import torch  # noqa: F401

    pytest.skip("torch is installed here; the no-torch error path cannot be exercised")
  except ImportError:
    pass
  pt_path = tmp_path / "ViT-B-32.pt"
  pt_path.write_bytes(b"placeholder")
  with pytest.raises(ImportError, match="needs PyTorch"):
    clip.convert_openai_checkpoint(pt_path, tmp_path / "out.safetensors")


# --- configs --------------------------------------------------------------------------------


def test_infer_clip_config_reads_fixture_shapes(tiny_config):
  state_dict = clip.load_state_dict(WEIGHTS)
  inferred = clip.infer_clip_config(state_dict, vision_head_width=16, text_head_width=8)
  assert inferred == tiny_config


@pytest.mark.parametrize(
    "name, expected_total, expected_vision",
    [
        ("ViT-B-32", 151_277_313, 87_849_216),  # counts from open_clip 3.3.0 create_model
        ("ViT-B-16", 149_620_737, 86_192_640),
        ("ViT-L-14", 427_616_513, 303_966_208),
    ],
)
def test_named_config_parameter_counts(name, expected_total, expected_vision):
  shapes = clip.clip_param_shapes(clip.get_clip_config(name))
  count = lambda tree: sum(int(np.prod(leaf.shape)) for leaf in jax.tree_util.tree_leaves(tree))
  assert count(shapes) == expected_total
  assert count(shapes["visual"]) == expected_vision


def test_vit_b_32_checkpoint_layout_matches_open_clip():
  open_clip_shapes = json.loads((FIXTURE_DIR / "vit_b_32_state_dict_shapes.json").read_text())
  layout = clip.checkpoint_layout(clip.get_clip_config("ViT-B-32"))
  assert {key: list(shape) for key, shape, _, _ in layout} == open_clip_shapes


def test_checkpoint_layout_fills_every_param(tiny_config):
  params = clip.load_clip_params(WEIGHTS, tiny_config)
  expected = clip.clip_param_shapes(tiny_config)
  shapes = jax.tree_util.tree_map(lambda leaf: leaf.shape, params)
  assert shapes == jax.tree_util.tree_map(lambda leaf: leaf.shape, expected)


def test_get_clip_config_names_and_overrides():
  assert clip.get_clip_config("ViT-B/32") == clip.get_clip_config("ViT-B-32")
  assert not clip.get_clip_config("ViT-B-16").quick_gelu
  assert clip.get_clip_config("ViT-B-16-quickgelu").quick_gelu
  small = clip.get_clip_config("ViT-L-14", vision_layers=2, text_layers=1)
  assert (small.vision_layers, small.text_layers, small.vision_width) == (2, 1, 1024)
  with pytest.raises(ValueError, match="ViT-B-32"):
    clip.get_clip_config("ViT-H-14")


def test_invalid_config_raises():
  with pytest.raises(ValueError, match="multiple of patch_size"):
    clip.get_clip_config("ViT-B-32", image_size=100)
  with pytest.raises(ValueError, match="multiple of text_heads"):
    clip.get_clip_config("ViT-B-32", text_heads=7)
