"""A small Flax CNN image tower: uint8 images -> [N, 384] unit-norm embeddings.

It is the image half of the offline default backbone (`offline_backbone.py`): no pretrained
image weights exist offline, so this tower is trained LiT-style (`lit.py`) against the frozen
MiniLM text tower, whose width (384) it shares.

Preprocessing (`preprocess_images`, part of the jitted encoder) maps every accepted input to
one fixed grid, `[N, 32, 32, 1]` float32 in [-1, 1]:
- RGB inputs become grayscale with the ITU-R BT.601 luma weights (0.299, 0.587, 0.114);
- square images of side `MIN_SIDE`..`MAX_SIDE` are resized to 32x32 with bilinear
  interpolation (half-pixel centres; antialiased when shrinking). So animal-mnist's 28x28
  silhouettes are upsampled by 32/28 and scikit-learn's 8x8 digits by 4;
- pixels are scaled from 0..255 to [-1, 1].
Inputs that cannot be mapped this way (wrong rank, channel count, dtype, non-square or a side
out of range) raise ValueError from `check_images`.
"""

from __future__ import annotations

import dataclasses
import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

INPUT_SIZE = 32
MIN_SIDE = 8
MAX_SIDE = 128
LUMA_WEIGHTS = (0.299, 0.587, 0.114)
# Bump when a change here changes the embeddings (it is part of the backbone fingerprint).
PREPROCESSING_VERSION = "gray-bilinear32-[-1,1]/1"


@dataclasses.dataclass(frozen=True)
class ImageTowerConfig:
  """Sizes of the CNN tower.

  widths: channels of the conv stages; each stage is a 3x3 conv, GroupNorm, GELU and a 2x2
    average pool, so 32x32 inputs end at 4x4 after three stages.
  embed_dim: output width (must equal the text tower's, 384 for MiniLM).
  groups: GroupNorm groups per stage (each width must be a multiple).
  """

  widths: tuple[int, ...] = (32, 64, 128)
  embed_dim: int = 384
  groups: int = 8

  def __post_init__(self):
    if not self.widths or any(w <= 0 or w % self.groups for w in self.widths):
      raise ValueError(
          f"widths {self.widths} must be positive multiples of groups={self.groups}."
      )
    if self.embed_dim <= 0:
      raise ValueError(f"embed_dim must be positive, got {self.embed_dim}.")

  def to_json(self) -> str:
    return json.dumps(dataclasses.asdict(self), sort_keys=True)

  @classmethod
  def from_dict(cls, values: dict) -> "ImageTowerConfig":
    values = dict(values)
    values["widths"] = tuple(values["widths"])
    return cls(**values)


class ImageTower(nn.Module):
  """[N, 32, 32, 1] float pixels in [-1, 1] -> [N, embed_dim] float32 features (not normalised)."""

  config: ImageTowerConfig

  @nn.compact
  def __call__(self, pixels: jax.Array) -> jax.Array:
    x = conv_stages(pixels, self.config.widths, self.config.groups)
    x = jnp.mean(x, axis=(1, 2))
    return nn.Dense(self.config.embed_dim, name="projection")(x)


def conv_stages(pixels: jax.Array, widths, groups: int) -> jax.Array:
  """The tower's conv stages, called inside a module's ``nn.compact`` method (submodules
  ``conv_<i>``, ``norm_<i>``): per stage a 3x3 conv, GroupNorm, GELU and a 2x2 average pool.
  pixels: [N, S, S, C] -> [N, S / 2^stages, S / 2^stages, widths[-1]]."""
  x = pixels
  for index, width in enumerate(widths):
    x = nn.Conv(width, (3, 3), padding="SAME", name=f"conv_{index}")(x)
    x = nn.GroupNorm(num_groups=groups, name=f"norm_{index}")(x)
    x = nn.gelu(x)
    x = nn.avg_pool(x, (2, 2), strides=(2, 2))
  return x


def check_images(images) -> np.ndarray:
  """Validates encoder input. images: [N, H, W, 1 or 3] uint8 with H == W in
  [MIN_SIDE, MAX_SIDE] -> the same array as numpy. Raises ValueError naming the problem."""
  images = np.asarray(images)
  if images.ndim != 4 or images.shape[-1] not in (1, 3):
    raise ValueError(
        f"encode_image expects images of shape [N, H, W, 1] (grayscale) or [N, H, W, 3] "
        f"(RGB), got shape {images.shape}. Add a channel axis to [N, H, W] arrays with "
        f"images[..., None]."
    )
  if images.dtype != np.uint8:
    raise ValueError(
        f"encode_image expects uint8 pixels in 0..255, got dtype {images.dtype}. Fix: "
        f"convert, e.g. np.clip(np.rint(x * 255), 0, 255).astype(np.uint8) for floats in [0, 1]."
    )
  height, width = images.shape[1:3]
  if height != width or not MIN_SIDE <= height <= MAX_SIDE:
    raise ValueError(
        f"encode_image maps square images with a side of {MIN_SIDE}..{MAX_SIDE} pixels to "
        f"{INPUT_SIZE}x{INPUT_SIZE}; got {height}x{width}. Fix: center-crop or pad to a "
        f"square and resize into that range first (e.g. "
        f"autoseed_jax.data.sources.resize_center_crop(image, {INPUT_SIZE}))."
    )
  return images


def preprocess_images(images: jax.Array) -> jax.Array:
  """images: [N, H, W, 1 or 3] uint8, H == W (see `check_images`) -> [N, 32, 32, 1] float32
  in [-1, 1]: luma for RGB, bilinear resize to 32x32, 0..255 -> [-1, 1]."""
  pixels = images.astype(jnp.float32) / 255.0
  if pixels.shape[-1] == 3:
    pixels = pixels @ jnp.asarray(LUMA_WEIGHTS, jnp.float32)[:, None]
  if pixels.shape[1:3] != (INPUT_SIZE, INPUT_SIZE):
    pixels = jax.image.resize(
        pixels, (pixels.shape[0], INPUT_SIZE, INPUT_SIZE, 1), method="bilinear", antialias=True
    )
  return pixels * 2.0 - 1.0


def l2_normalize(x: jax.Array, eps: float = 1e-12) -> jax.Array:
  """x: [N, d] -> rows divided by max(norm, eps)."""
  return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), eps)


def encode_images(params, images: jax.Array, *, config: ImageTowerConfig) -> jax.Array:
  """params: ImageTower params pytree; images: [N, H, W, 1 or 3] uint8 (checked with
  `check_images` beforehand) -> [N, embed_dim] float32 unit-norm embeddings."""
  features = ImageTower(config).apply({"params": params}, preprocess_images(images))
  return l2_normalize(features)


def init_image_tower(config: ImageTowerConfig, key: jax.Array):
  """Fresh ImageTower params pytree for `config`."""
  dummy = jnp.zeros((1, INPUT_SIZE, INPUT_SIZE, 1), jnp.float32)
  return ImageTower(config).init(key, dummy)["params"]
