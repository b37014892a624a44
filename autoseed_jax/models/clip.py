"""CLIP (OpenAI / OpenCLIP ViT models) in Flax: the frozen image and text towers, loading of
local OpenCLIP weights, and `CLIPBackbone`, the `backbone.Backbone` the rest of autoseed_jax uses.

Architecture (METHOD §1: the frozen f_I, f_T giving unit-norm embeddings in R^d):
- Both towers are pre-LN transformers: x + attn(ln_1(x)), then x + mlp(ln_2(x)); the MLP is
  width -> 4*width -> width with GELU (OpenCLIP-trained weights) or QuickGELU
  x*sigmoid(1.702x) (OpenAI's weights: `quick_gelu=True`). LayerNorm epsilon is 1e-5.
- Image tower: non-overlapping patches (a stride-p convolution without bias), a class token,
  learned positional embeddings, ln_pre, the transformer, ln_post on the class token, `proj`.
- Text tower: token + positional embeddings, causally masked transformer, ln_final, the
  features at the <end_of_text> token (the largest id of each row), `text_projection`.

Weights are never downloaded: `load_clip_params` reads a local OpenCLIP
`open_clip_model.safetensors` (or an .npz with the same keys) and checks every shape.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import pathlib
import re
from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from autoseed_jax.models import backbone
from autoseed_jax.models.clip_tokenizer import CLIPTokenizer, get_tokenizer

# Per-channel RGB mean and std of CLIP's training images, for inputs scaled to [0, 1].
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
LAYER_NORM_EPSILON = 1e-5
# Full float32 matmuls (no TF32/bf16 passes on GPUs/TPUs): the backbone runs once per input
# and its embeddings are cached, so exactness is worth more than speed.
MATMUL_PRECISION = jax.lax.Precision.HIGHEST
# Bump when a change to this file changes the embeddings (it is part of the fingerprint).
_IMPLEMENTATION_VERSION = "autoseed_jax.clip/1"

WHERE_TO_GET_WEIGHTS = (
    "autoseed_jax never downloads weights; bring them yourself: e.g. the file "
    "`open_clip_model.safetensors` of an OpenCLIP model on the Hugging Face Hub "
    "(such as laion/CLIP-ViT-B-32-laion2B-s34B-b79K; `huggingface-cli download <repo> "
    "open_clip_model.safetensors`), or OpenAI's original `ViT-B-32.pt` converted once with "
    "autoseed_jax.models.clip.convert_openai_checkpoint (needs torch)."
)


# ---------------------------------------------------------------------------------------------
# Config


@dataclasses.dataclass(frozen=True)
class CLIPConfig:
  """Shapes of a ViT CLIP model. Build a named one with `get_clip_config`, a custom one
  directly (`CLIPConfig(embed_dim=64, image_size=32, patch_size=8, ...)`), or read one off
  a checkpoint with `infer_clip_config`.

  quick_gelu: True for OpenAI's original weights, False for OpenCLIP-trained weights (the
    activation has no parameters, so a checkpoint cannot tell; a wrong choice gives
    slightly wrong embeddings, not an error).
  """

  embed_dim: int
  image_size: int
  patch_size: int
  vision_width: int
  vision_layers: int
  vision_heads: int
  text_width: int
  text_layers: int
  text_heads: int
  context_length: int = 77
  vocab_size: int = 49408
  mlp_ratio: float = 4.0
  quick_gelu: bool = False

  def __post_init__(self):
    for field in dataclasses.fields(self):
      value = getattr(self, field.name)
      if field.name == "quick_gelu":
        if not isinstance(value, bool):
          raise ValueError(f"CLIPConfig.quick_gelu must be a bool, got {value!r}")
      elif field.name == "mlp_ratio":
        if not value > 0:
          raise ValueError(f"CLIPConfig.mlp_ratio must be > 0, got {value!r}")
      elif not (isinstance(value, int) and value >= 1):
        raise ValueError(f"CLIPConfig.{field.name} must be an int >= 1, got {value!r}")
    if self.image_size % self.patch_size:
      raise ValueError(
          f"CLIPConfig.image_size ({self.image_size}) must be a multiple of patch_size "
          f"({self.patch_size})"
      )
    for tower in ("vision", "text"):
      width, heads = getattr(self, f"{tower}_width"), getattr(self, f"{tower}_heads")
      if width % heads:
        raise ValueError(
            f"CLIPConfig.{tower}_width ({width}) must be a multiple of {tower}_heads "
            f"({heads})"
        )

  @property
  def grid_size(self) -> int:
    """Patches per image side."""
    return self.image_size // self.patch_size

  def vision_mlp_width(self) -> int:
    return int(self.vision_width * self.mlp_ratio)

  def text_mlp_width(self) -> int:
    return int(self.text_width * self.mlp_ratio)

  def to_json(self) -> str:
    return json.dumps(dataclasses.asdict(self), sort_keys=True)


_NAMED_CONFIGS = {
    "ViT-B-32": dict(embed_dim=512, image_size=224, patch_size=32, vision_width=768,
                     vision_layers=12, vision_heads=12, text_width=512, text_layers=12,
                     text_heads=8),
    "ViT-B-16": dict(embed_dim=512, image_size=224, patch_size=16, vision_width=768,
                     vision_layers=12, vision_heads=12, text_width=512, text_layers=12,
                     text_heads=8),
    "ViT-L-14": dict(embed_dim=768, image_size=224, patch_size=14, vision_width=1024,
                     vision_layers=24, vision_heads=16, text_width=768, text_layers=12,
                     text_heads=12),
}  # fmt: skip


def clip_config_names() -> list[str]:
  return sorted(_NAMED_CONFIGS)


def get_clip_config(name: str, **overrides: Any) -> CLIPConfig:
  """A named CLIP config: 'ViT-B-32', 'ViT-B-16', 'ViT-L-14' (also spelled 'ViT-B/32');
  a '-quickgelu' suffix (OpenCLIP's name for OpenAI-weight configs) sets quick_gelu=True.

  overrides: CLIPConfig fields to change, e.g. quick_gelu=True or vision_layers=2.
  """
  base_name = name.replace("/", "-")
  quick_gelu = base_name.endswith("-quickgelu")
  base_name = base_name.removesuffix("-quickgelu")
  if base_name not in _NAMED_CONFIGS:
    raise ValueError(
        f"Unknown CLIP config {name!r}; known: {clip_config_names()} (optionally with a "
        f"'-quickgelu' suffix). For other shapes build CLIPConfig(...) yourself or use "
        f"infer_clip_config(load_state_dict(path))."
    )
  fields = {**_NAMED_CONFIGS[base_name], "quick_gelu": quick_gelu, **overrides}
  return CLIPConfig(**fields)


# ---------------------------------------------------------------------------------------------
# Flax modules


def quick_gelu(x: jax.Array) -> jax.Array:
  return x * jax.nn.sigmoid(1.702 * x)


def _layer_norm(name: str) -> nn.LayerNorm:
  return nn.LayerNorm(epsilon=LAYER_NORM_EPSILON, name=name)


class SelfAttention(nn.Module):
  """Multi-head self-attention with a fused q/k/v projection.

  x: [N, L, W] -> [N, L, W]; with causal=True position i attends to positions <= i.
  """

  num_heads: int

  @nn.compact
  def __call__(self, x: jax.Array, causal: bool) -> jax.Array:
    batch, length, width = x.shape
    head_dim = width // self.num_heads
    qkv = nn.Dense(3 * width, precision=MATMUL_PRECISION, name="qkv")(x)
    qkv = qkv.reshape(batch, length, 3, self.num_heads, head_dim)
    queries, keys, values = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # [N, L, H, D] each
    logits = jnp.einsum(
        "nqhd,nkhd->nhqk", queries * head_dim**-0.5, keys, precision=MATMUL_PRECISION
    )
    if causal:
      allowed = jnp.tril(jnp.ones((length, length), dtype=bool))
      logits = jnp.where(allowed, logits, -jnp.inf)
    weights = jax.nn.softmax(logits, axis=-1)
    attended = jnp.einsum("nhqk,nkhd->nqhd", weights, values, precision=MATMUL_PRECISION)
    attended = attended.reshape(batch, length, width)
    return nn.Dense(width, precision=MATMUL_PRECISION, name="out")(attended)


class FeedForward(nn.Module):
  """x: [N, L, W] -> [N, L, W] through a hidden layer of width mlp_width."""

  mlp_width: int
  use_quick_gelu: bool

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    hidden = nn.Dense(self.mlp_width, precision=MATMUL_PRECISION, name="c_fc")(x)
    hidden = quick_gelu(hidden) if self.use_quick_gelu else nn.gelu(hidden, approximate=False)
    return nn.Dense(x.shape[-1], precision=MATMUL_PRECISION, name="c_proj")(hidden)


class ResidualAttentionBlock(nn.Module):
  """Pre-LN transformer block. x: [N, L, W] -> [N, L, W]."""

  num_heads: int
  mlp_width: int
  use_quick_gelu: bool

  @nn.compact
  def __call__(self, x: jax.Array, causal: bool) -> jax.Array:
    x = x + SelfAttention(self.num_heads, name="attn")(_layer_norm("ln_1")(x), causal)
    feed_forward = FeedForward(self.mlp_width, self.use_quick_gelu, name="mlp")
    return x + feed_forward(_layer_norm("ln_2")(x))


class Transformer(nn.Module):
  """A stack of `num_layers` blocks named resblocks_0, resblocks_1, ...

  x: [N, L, W] -> [N, L, W]."""

  num_layers: int
  num_heads: int
  mlp_width: int
  use_quick_gelu: bool

  @nn.compact
  def __call__(self, x: jax.Array, causal: bool) -> jax.Array:
    for index in range(self.num_layers):
      block = ResidualAttentionBlock(
          self.num_heads, self.mlp_width, self.use_quick_gelu, name=f"resblocks_{index}"
      )
      x = block(x, causal)
    return x


class VisionTransformer(nn.Module):
  """CLIP's image tower. pixels: [N, S, S, 3] float32, CLIP-normalised -> [N, embed_dim]."""

  config: CLIPConfig

  @nn.compact
  def __call__(self, pixels: jax.Array) -> jax.Array:
    config = self.config
    width, patch = config.vision_width, config.patch_size
    patches = nn.Conv(
        width, (patch, patch), strides=(patch, patch), padding="VALID", use_bias=False,
        precision=MATMUL_PRECISION, name="patch_embed",
    )(pixels)  # fmt: skip
    patches = patches.reshape(patches.shape[0], -1, width)  # [N, G*G, W], row-major
    scale = width**-0.5
    class_embedding = self.param(
        "class_embedding", nn.initializers.normal(scale), (width,)
    )
    positional_embedding = self.param(
        "positional_embedding", nn.initializers.normal(scale), (config.grid_size**2 + 1, width)
    )
    class_tokens = jnp.broadcast_to(class_embedding, (patches.shape[0], 1, width))
    x = jnp.concatenate([class_tokens.astype(patches.dtype), patches], axis=1)
    x = _layer_norm("ln_pre")(x + positional_embedding)
    x = Transformer(
        config.vision_layers, config.vision_heads, config.vision_mlp_width(),
        config.quick_gelu, name="transformer",
    )(x, causal=False)  # fmt: skip
    pooled = _layer_norm("ln_post")(x[:, 0])
    proj = self.param("proj", nn.initializers.normal(scale), (width, config.embed_dim))
    return jnp.matmul(pooled, proj, precision=MATMUL_PRECISION)


class TextTransformer(nn.Module):
  """CLIP's text tower. token_ids: [N, L] int, L <= context_length, each row
  <start_of_text> ... <end_of_text> 0... -> [N, embed_dim] (features at <end_of_text>)."""

  config: CLIPConfig

  @nn.compact
  def __call__(self, token_ids: jax.Array) -> jax.Array:
    config = self.config
    width = config.text_width
    embed = nn.Embed(
        config.vocab_size, width, embedding_init=nn.initializers.normal(0.02),
        name="token_embedding",
    )  # fmt: skip
    positional_embedding = self.param(
        "positional_embedding", nn.initializers.normal(0.01), (config.context_length, width)
    )
    length = token_ids.shape[1]
    x = embed(token_ids) + positional_embedding[:length]
    x = Transformer(
        config.text_layers, config.text_heads, config.text_mlp_width(), config.quick_gelu,
        name="transformer",
    )(x, causal=True)  # fmt: skip
    x = _layer_norm("ln_final")(x)
    end_positions = jnp.argmax(token_ids, axis=-1)  # <end_of_text> has the largest id
    pooled = jnp.take_along_axis(x, end_positions[:, None, None], axis=1)[:, 0]
    text_projection = self.param(
        "text_projection", nn.initializers.normal(width**-0.5), (width, config.embed_dim)
    )
    return jnp.matmul(pooled, text_projection, precision=MATMUL_PRECISION)


class CLIPModel(nn.Module):
  """Both towers and the logit scale. Params: {'visual', 'text', 'logit_scale'}."""

  config: CLIPConfig

  def setup(self):
    self.visual = VisionTransformer(self.config)
    self.text = TextTransformer(self.config)
    initial_scale = nn.initializers.constant(math.log(1 / 0.07))
    self.logit_scale = self.param("logit_scale", initial_scale, ())

  def encode_image(self, pixels: jax.Array) -> jax.Array:
    """pixels: [N, S, S, 3] CLIP-normalised -> [N, embed_dim] (not normalised)."""
    return self.visual(pixels)

  def encode_text(self, token_ids: jax.Array) -> jax.Array:
    """token_ids: [N, L] int -> [N, embed_dim] (not normalised)."""
    return self.text(token_ids)

  def __call__(self, pixels: jax.Array, token_ids: jax.Array):
    """-> (image features [N, d], text features [M, d], logit_scale []) (log scale)."""
    return self.visual(pixels), self.text(token_ids), self.logit_scale


def init_clip_params(config: CLIPConfig, rng: jax.Array) -> dict:
  """Randomly initialised params (for tests and shape checks; real use loads weights)."""
  pixels = jnp.zeros((1, config.image_size, config.image_size, 3), jnp.float32)
  token_ids = jnp.zeros((1, config.context_length), jnp.int32)
  return CLIPModel(config).init(rng, pixels, token_ids)["params"]


def clip_param_shapes(config: CLIPConfig) -> dict:
  """The params pytree of `config` as jax.ShapeDtypeStruct leaves (no memory used)."""
  return jax.eval_shape(lambda: init_clip_params(config, jax.random.key(0)))


# ---------------------------------------------------------------------------------------------
# Pure jitted encoders


def l2_normalize(x: jax.Array, eps: float = 1e-12) -> jax.Array:
  """x: [N, d] -> rows divided by max(norm, eps)."""
  return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), eps)


def normalize_pixels(images: jax.Array) -> jax.Array:
  """images: [N, H, W, 3] uint8, or float in [0, 1] -> float32 CLIP-normalised."""
  pixels = images.astype(jnp.float32)
  if images.dtype == jnp.uint8:
    pixels = pixels / 255.0
  mean = jnp.asarray(CLIP_MEAN, jnp.float32)
  std = jnp.asarray(CLIP_STD, jnp.float32)
  return (pixels - mean) / std


@functools.partial(jax.jit, static_argnames=("config",))
def encode_image_fn(params: dict, images: jax.Array, config: CLIPConfig) -> jax.Array:
  """images: [N, S, S, 3] uint8, or float in [0, 1], S = config.image_size
  -> [N, embed_dim] float32 unit-norm image embeddings f_I."""
  features = CLIPModel(config).apply(
      {"params": params}, normalize_pixels(images), method=CLIPModel.encode_image
  )
  return l2_normalize(features)


@functools.partial(jax.jit, static_argnames=("config",))
def encode_text_fn(params: dict, token_ids: jax.Array, config: CLIPConfig) -> jax.Array:
  """token_ids: [N, context_length] int (CLIPTokenizer output)
  -> [N, embed_dim] float32 unit-norm text embeddings f_T."""
  features = CLIPModel(config).apply({"params": params}, token_ids, method=CLIPModel.encode_text)
  return l2_normalize(features)


# ---------------------------------------------------------------------------------------------
# OpenCLIP checkpoint <-> our params


def _linear(array: np.ndarray) -> np.ndarray:
  """torch Linear weight [out, in] -> Flax Dense kernel [in, out]."""
  return array.T


def _conv(array: np.ndarray) -> np.ndarray:
  """torch Conv2d weight [out, in, kh, kw] -> Flax Conv kernel [kh, kw, in, out]."""
  return array.transpose(2, 3, 1, 0)


def _same(array: np.ndarray) -> np.ndarray:
  return array


def _scalar(array: np.ndarray) -> np.ndarray:
  return array.reshape(())


def _block_entries(checkpoint_prefix: str, param_prefix: tuple, width: int, mlp_width: int):
  """(checkpoint key, checkpoint shape, param path, transform) for one transformer block."""
  entries = []
  for norm in ("ln_1", "ln_2"):
    entries.append((f"{norm}.weight", (width,), (norm, "scale"), _same))
    entries.append((f"{norm}.bias", (width,), (norm, "bias"), _same))
  entries += [
      ("attn.in_proj_weight", (3 * width, width), ("attn", "qkv", "kernel"), _linear),
      ("attn.in_proj_bias", (3 * width,), ("attn", "qkv", "bias"), _same),
      ("attn.out_proj.weight", (width, width), ("attn", "out", "kernel"), _linear),
      ("attn.out_proj.bias", (width,), ("attn", "out", "bias"), _same),
      ("mlp.c_fc.weight", (mlp_width, width), ("mlp", "c_fc", "kernel"), _linear),
      ("mlp.c_fc.bias", (mlp_width,), ("mlp", "c_fc", "bias"), _same),
      ("mlp.c_proj.weight", (width, mlp_width), ("mlp", "c_proj", "kernel"), _linear),
      ("mlp.c_proj.bias", (width,), ("mlp", "c_proj", "bias"), _same),
  ]
  return [
      (checkpoint_prefix + key, shape, param_prefix + path, transform)
      for key, shape, path, transform in entries
  ]


def checkpoint_layout(config: CLIPConfig) -> list[tuple[str, tuple, tuple, Any]]:
  """Every OpenCLIP state-dict entry of `config`: (key, shape in the checkpoint, path in our
  params, function from the checkpoint array to our array)."""
  vision, text = config.vision_width, config.text_width
  patch, embed = config.patch_size, config.embed_dim
  layout = [
      ("visual.conv1.weight", (vision, 3, patch, patch), ("visual", "patch_embed", "kernel"),
       _conv),
      ("visual.class_embedding", (vision,), ("visual", "class_embedding"), _same),
      ("visual.positional_embedding", (config.grid_size**2 + 1, vision),
       ("visual", "positional_embedding"), _same),
      ("visual.ln_pre.weight", (vision,), ("visual", "ln_pre", "scale"), _same),
      ("visual.ln_pre.bias", (vision,), ("visual", "ln_pre", "bias"), _same),
      ("visual.ln_post.weight", (vision,), ("visual", "ln_post", "scale"), _same),
      ("visual.ln_post.bias", (vision,), ("visual", "ln_post", "bias"), _same),
      ("visual.proj", (vision, embed), ("visual", "proj"), _same),
      ("token_embedding.weight", (config.vocab_size, text),
       ("text", "token_embedding", "embedding"), _same),
      ("positional_embedding", (config.context_length, text),
       ("text", "positional_embedding"), _same),
      ("ln_final.weight", (text,), ("text", "ln_final", "scale"), _same),
      ("ln_final.bias", (text,), ("text", "ln_final", "bias"), _same),
      ("text_projection", (text, embed), ("text", "text_projection"), _same),
      ("logit_scale", (), ("logit_scale",), _scalar),
  ]  # fmt: skip
  for index in range(config.vision_layers):
    layout += _block_entries(
        f"visual.transformer.resblocks.{index}.",
        ("visual", "transformer", f"resblocks_{index}"),
        vision,
        config.vision_mlp_width(),
    )
  for index in range(config.text_layers):
    layout += _block_entries(
        f"transformer.resblocks.{index}.",
        ("text", "transformer", f"resblocks_{index}"),
        text,
        config.text_mlp_width(),
    )
  return layout


# Entries some checkpoints carry that are not weights (OpenAI's .pt has the first three).
_NON_WEIGHT_KEYS = ("input_resolution", "context_length", "vocab_size")


def _is_non_weight_key(key: str) -> bool:
  return key in _NON_WEIGHT_KEYS or key.endswith("attn_mask")


def _config_fix_hint(config: CLIPConfig) -> str:
  return (
      "Fix: pass the CLIPConfig this checkpoint was trained with (get_clip_config(name) for "
      f"{clip_config_names()}, or infer_clip_config(load_state_dict(path)) to read the shapes "
      f"off the file); the config used was {config}."
  )


def convert_state_dict(
    state_dict: Mapping[str, np.ndarray], config: CLIPConfig, source: str = "the checkpoint"
) -> dict:
  """OpenCLIP state dict (key -> array) -> our float32 params pytree, checking every key and
  shape against `config`. Raises ValueError naming the key, expected and found shape."""
  layout = checkpoint_layout(config)
  expected_keys = {key for key, *_ in layout}
  present = {key for key in state_dict if not _is_non_weight_key(key)}
  missing = sorted(expected_keys - present)
  unexpected = sorted(present - expected_keys)
  if missing:
    raise ValueError(
        f"{source} lacks {len(missing)} weights that config needs, e.g. {missing[:5]}. "
        + _config_fix_hint(config)
    )
  if unexpected:
    raise ValueError(
        f"{source} has {len(unexpected)} weights this CLIP does not use, e.g. "
        f"{unexpected[:5]}: either the config has too few layers or the checkpoint is a "
        f"different architecture (layer scale, attention pooling, text projection bias, "
        f"ResNet or timm towers are not supported). " + _config_fix_hint(config)
    )
  params: dict = {}
  for key, expected_shape, path, transform in layout:
    array = np.asarray(state_dict[key])
    found_shape = tuple(array.shape)
    shape_ok = found_shape == expected_shape or (expected_shape == () and array.size == 1)
    if not shape_ok:
      raise ValueError(
          f"Weight {key!r} in {source} has shape {found_shape}, but the config expects "
          f"{expected_shape}. " + _config_fix_hint(config)
      )
    if not np.issubdtype(array.dtype, np.floating):
      raise ValueError(
          f"Weight {key!r} in {source} has dtype {array.dtype}; expected floating point "
          f"weights (float32/float16)."
      )
    node = params
    for name in path[:-1]:
      node = node.setdefault(name, {})
    node[path[-1]] = np.array(transform(array.astype(np.float32, copy=False)), order="C")
  return params


def load_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """Reads an OpenCLIP checkpoint: `.safetensors` (via safetensors.numpy) or `.npz` with the
  same keys. Returns key -> numpy array, as stored."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"No CLIP weights file at {path}. " + WHERE_TO_GET_WEIGHTS)
  if path.suffix == ".safetensors":
    import safetensors.numpy

    try:
      return dict(safetensors.numpy.load_file(str(path)))
    except Exception as error:  # safetensors raises its own error types
      raise ValueError(
          f"Could not read {path} as safetensors ({error}). Check the file is complete; "
          f"bfloat16 files must first be converted to float32 or float16."
      ) from error
  if path.suffix == ".npz":
    with np.load(path, allow_pickle=False) as archive:
      return {key: archive[key] for key in archive.files}
  raise ValueError(
      f"Unsupported CLIP weights file {path}: expected a .safetensors or .npz file with "
      f"OpenCLIP key names (convert OpenAI .pt files with convert_openai_checkpoint)."
  )


def load_clip_params(path: str | os.PathLike, config: CLIPConfig) -> dict:
  """Local OpenCLIP weights file -> our params pytree (float32 numpy leaves), every shape
  checked against `config`."""
  return convert_state_dict(load_state_dict(path), config, source=str(path))


def _count_blocks(state_dict: Mapping[str, np.ndarray], prefix: str) -> int:
  pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
  indices = {int(match.group(1)) for key in state_dict if (match := pattern.match(key))}
  return max(indices) + 1 if indices else 0


def infer_clip_config(
    state_dict: Mapping[str, np.ndarray],
    *,
    quick_gelu: bool = False,
    vision_head_width: int = 64,
    text_head_width: int = 64,
) -> CLIPConfig:
  """Reads a CLIPConfig off an OpenCLIP state dict's shapes.

  Head counts are not stored in the weights: they are width // head_width, with head width
  64 in all OpenAI and OpenCLIP ViT models. quick_gelu cannot be read either (see CLIPConfig).
  """
  required = ("visual.conv1.weight", "visual.positional_embedding", "visual.proj",
              "visual.transformer.resblocks.0.mlp.c_fc.weight", "token_embedding.weight",
              "positional_embedding", "text_projection")  # fmt: skip
  missing = [key for key in required if key not in state_dict]
  if missing:
    raise ValueError(
        f"Cannot infer a CLIP ViT config: the state dict lacks {missing}; is this an "
        f"OpenCLIP/OpenAI ViT checkpoint (not ResNet, timm or Hugging Face format)?"
    )
  vision_width, _, patch_size, _ = state_dict["visual.conv1.weight"].shape
  num_positions = state_dict["visual.positional_embedding"].shape[0]
  grid_size = math.isqrt(num_positions - 1)
  if grid_size**2 + 1 != num_positions:
    raise ValueError(
        f"visual.positional_embedding has {num_positions} rows, not 1 + a square number of "
        f"patches; non-square image tower not supported"
    )
  vocab_size, text_width = state_dict["token_embedding.weight"].shape
  mlp_width = state_dict["visual.transformer.resblocks.0.mlp.c_fc.weight"].shape[0]
  return CLIPConfig(
      embed_dim=int(state_dict["visual.proj"].shape[1]),
      image_size=int(grid_size * patch_size),
      patch_size=int(patch_size),
      vision_width=int(vision_width),
      vision_layers=_count_blocks(state_dict, "visual.transformer.resblocks."),
      vision_heads=max(1, int(vision_width) // vision_head_width),
      text_width=int(text_width),
      text_layers=_count_blocks(state_dict, "transformer.resblocks."),
      text_heads=max(1, int(text_width) // text_head_width),
      context_length=int(state_dict["positional_embedding"].shape[0]),
      vocab_size=int(vocab_size),
      mlp_ratio=mlp_width / vision_width,
      quick_gelu=quick_gelu,
  )


def convert_openai_checkpoint(
    pt_path: str | os.PathLike, out_path: str | os.PathLike
) -> CLIPConfig:
  """Converts OpenAI's original CLIP `.pt` file (TorchScript archive or plain state dict) to a
  float32 `.safetensors` file that `load_clip_params` reads. Needs torch (imported here
  only). Returns the checkpoint's config, with quick_gelu=True as OpenAI's weights need."""
  pt_path = pathlib.Path(pt_path)
  if not pt_path.is_file():
    raise FileNotFoundError(f"No OpenAI CLIP checkpoint at {pt_path}. " + WHERE_TO_GET_WEIGHTS)
  try:
    import torch
  except ImportError as error:
    raise ImportError(
        "convert_openai_checkpoint needs PyTorch to read OpenAI's .pt file (`pip install "
        "torch` in a separate environment is enough; run the conversion once there). "
        "autoseed_jax itself never imports torch; OpenCLIP's open_clip_model.safetensors "
        "files need no conversion."
    ) from error
  import safetensors.numpy

  try:
    state = torch.jit.load(str(pt_path), map_location="cpu").state_dict()
  except RuntimeError:  # not a TorchScript archive: a pickled state dict
    state = torch.load(str(pt_path), map_location="cpu", weights_only=True)
    state = state.get("state_dict", state)
  arrays = {
      key.removeprefix("module."): value.detach().to(torch.float32).cpu().numpy()
      for key, value in state.items()
      if not _is_non_weight_key(key.removeprefix("module."))
  }
  config = infer_clip_config(arrays, quick_gelu=True)
  convert_state_dict(arrays, config, source=str(pt_path))  # validates keys and shapes
  safetensors.numpy.save_file(arrays, str(out_path), metadata={"quick_gelu": "true"})
  return config


# ---------------------------------------------------------------------------------------------
# The backbone


def _path_name(path: tuple) -> str:
  return "/".join(str(getattr(entry, "key", entry)) for entry in path)


def _flatten_params(params: Mapping[str, Any]) -> dict[str, np.ndarray]:
  """params pytree -> {'visual/ln_pre/scale': numpy array, ...}."""
  leaves = jax.tree_util.tree_flatten_with_path(params)[0]
  return {_path_name(path): np.asarray(leaf) for path, leaf in leaves}


def check_params(params: Mapping[str, Any], config: CLIPConfig) -> None:
  """Raises ValueError unless `params` has exactly the structure and shapes of `config`."""
  expected_shapes = {
      _path_name(path): tuple(leaf.shape)
      for path, leaf in jax.tree_util.tree_flatten_with_path(clip_param_shapes(config))[0]
  }
  found = _flatten_params(params)
  if set(found) != set(expected_shapes):
    missing = sorted(set(expected_shapes) - set(found))[:5]
    extra = sorted(set(found) - set(expected_shapes))[:5]
    raise ValueError(
        f"CLIP params do not match the config: missing {missing}, unexpected {extra}. "
        f"Load them with load_clip_params(path, config)."
    )
  for name, shape in expected_shapes.items():
    if found[name].shape != shape:
      raise ValueError(
          f"CLIP param {name!r} has shape {found[name].shape}, the config expects "
          f"{shape}. " + _config_fix_hint(config)
      )


class CLIPBackbone:
  """Frozen CLIP as a `backbone.Backbone`: unit-norm float32 embeddings of images and text.

  params: our params pytree (e.g. from `load_clip_params`); config: its CLIPConfig.
  batch_size: rows per jitted call (the last batch is padded, so each call compiles once).
  """

  def __init__(self, params: Mapping[str, Any], config: CLIPConfig, *, batch_size: int = 64):
    if batch_size < 1:
      raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    check_params(params, config)
    self.config = config
    self.batch_size = batch_size
    self.embed_dim = config.embed_dim
    self.image_size = config.image_size
    self.params = jax.tree_util.tree_map(lambda leaf: jnp.asarray(leaf, jnp.float32), params)

  @classmethod
  def from_checkpoint(
      cls,
      path: str | os.PathLike,
      config: CLIPConfig | str | None = None,
      *,
      batch_size: int = 64,
      quick_gelu: bool = False,
  ) -> "CLIPBackbone":
    """Loads local weights. config: a CLIPConfig, a name for `get_clip_config`, or None to
    read the shapes off the file (then quick_gelu says which activation; see CLIPConfig)."""
    state_dict = load_state_dict(path)
    if config is None:
      config = infer_clip_config(state_dict, quick_gelu=quick_gelu)
    elif isinstance(config, str):
      config = get_clip_config(config)
    params = convert_state_dict(state_dict, config, source=str(path))
    return cls(params, config, batch_size=batch_size)

  @functools.cached_property
  def fingerprint(self) -> str:
    """Hex sha256 of the weights, config, preprocessing and tokenizer."""
    extra = json.dumps(
        {
            "implementation": _IMPLEMENTATION_VERSION,
            "config": self.config.to_json(),
            "mean": CLIP_MEAN,
            "std": CLIP_STD,
            "tokenizer": "clip-bpe_simple_vocab_16e6",
        },
        sort_keys=True,
    )
    return backbone.weights_fingerprint(_flatten_params(self.params), extra)

  @property
  def logit_scale(self) -> float:
    """exp(logit_scale): the temperature CLIP was trained with (about 100)."""
    return float(np.exp(self.params["logit_scale"]))

  @property
  def tokenizer(self) -> CLIPTokenizer:
    return get_tokenizer(self.config.context_length)

  def _check_images(self, images: np.ndarray) -> np.ndarray:
    size = self.image_size
    if images.ndim != 4 or images.shape[-1] != 3:
      raise ValueError(
          f"encode_image expects images of shape [N, {size}, {size}, 3] (RGB, channels "
          f"last), got shape {images.shape}."
      )
    if images.shape[1:3] != (size, size):
      raise ValueError(
          f"encode_image expects {size}x{size} images (the config's image_size), got "
          f"{images.shape[1]}x{images.shape[2]}. Fix: resize the images to {size}x{size} "
          f"before encoding (CLIP's own preprocessing: bicubic resize of the shorter side "
          f"to {size}, then a center crop)."
      )
    if images.dtype == np.uint8:
      return images
    if not np.issubdtype(images.dtype, np.floating):
      raise ValueError(
          f"encode_image expects uint8 images in [0, 255] or float images in [0, 1], "
          f"got dtype {images.dtype}."
      )
    if images.size and (np.nanmin(images) < 0.0 or np.nanmax(images) > 1.0):
      raise ValueError(
          f"Float images must lie in [0, 1], got values in [{np.nanmin(images)}, "
          f"{np.nanmax(images)}]. Fix: divide 0..255 values by 255 (or pass uint8)."
      )
    if not np.all(np.isfinite(images)):
      raise ValueError("encode_image got NaN or infinite pixel values.")
    return images.astype(np.float32)

  def encode_image(self, images: np.ndarray) -> np.ndarray:
    """images: [N, S, S, 3] uint8 in [0, 255] or float in [0, 1], S = image_size (already
    resized) -> [N, embed_dim] float32 unit-norm (f_I, METHOD §1)."""
    images = self._check_images(np.asarray(images))
    if images.shape[0] == 0:
      return np.zeros((0, self.embed_dim), np.float32)
    return backbone.batched(
        lambda batch: encode_image_fn(self.params, batch, self.config),
        images,
        self.batch_size,
        desc="CLIP images",
    )

  def tokenize(self, texts: Sequence[str]) -> np.ndarray:
    """texts: N strings -> [N, context_length] int32 token ids."""
    if isinstance(texts, str):
      raise ValueError(
          "encode_text expects a sequence of strings, got a single str; wrap it in a list."
      )
    texts = list(texts)
    for index, text in enumerate(texts):
      if not isinstance(text, str):
        raise ValueError(f"texts[{index}] is {type(text).__name__}, expected str.")
    tokenizer = self.tokenizer
    if tokenizer.vocab_size > self.config.vocab_size:
      raise ValueError(
          f"The config's vocab_size ({self.config.vocab_size}) is smaller than CLIP's "
          f"tokenizer vocabulary ({tokenizer.vocab_size}); this text tower cannot encode "
          f"CLIP tokens. Use a config with vocab_size={tokenizer.vocab_size}."
      )
    return tokenizer(texts)

  def encode_text(self, texts: Sequence[str]) -> np.ndarray:
    """texts: N strings -> [N, embed_dim] float32 unit-norm (f_T, METHOD §1). Texts longer
    than context_length tokens are truncated."""
    token_ids = self.tokenize(texts)
    if token_ids.shape[0] == 0:
      return np.zeros((0, self.embed_dim), np.float32)
    return backbone.batched(
        lambda batch: encode_text_fn(self.params, batch, self.config),
        token_ids,
        self.batch_size,
        desc="CLIP texts",
    )
