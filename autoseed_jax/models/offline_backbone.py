"""The offline default backbone: a LiT-pretrained CNN image tower + the frozen MiniLM text tower.

No pretrained image weights exist offline, so the image tower (`image_encoder.ImageTower`,
about 140k parameters) was trained with `lit.py` against the locked all-MiniLM-L6-v2 text
tower on a pretraining split of the training images that the continual streams never see
(`autoseed_jax.streams.embed.pretraining_split`). Its checkpoint ships inside the package in
`assets/lit_tower/` (`params/`: orbax; `config.json`: tower config, training config, training
data). Rebuild it with `python experiments/pretrain_lit.py`.

Usage:
    backbone = load_offline_backbone()
    image_emb = backbone.encode_image(images)        # uint8 [N, H, W, 1|3] -> [N, 384]
    text_emb = backbone.encode_text(["a handwritten digit 3."])   # [1, 384]
"""

from __future__ import annotations

import functools
import hashlib
import json
import pathlib
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from autoseed_jax.models import backbone, image_encoder, lit, minilm

DEFAULT_CHECKPOINT_DIR = pathlib.Path(__file__).resolve().parent / "assets" / "lit_tower"
REBUILD_COMMAND = "python experiments/pretrain_lit.py"


def _flatten(params: Any) -> dict[str, np.ndarray]:
  leaves = jax.tree_util.tree_flatten_with_path(params)[0]
  return {"/".join(str(getattr(k, "key", k)) for k in path): np.asarray(leaf)
          for path, leaf in leaves}


def image_tower_fingerprint(params: Any, config: image_encoder.ImageTowerConfig) -> str:
  """Hex sha256 of the tower weights, its config and the preprocessing version."""
  extra = json.dumps({"tower": config.to_json(),
                      "preprocessing": image_encoder.PREPROCESSING_VERSION}, sort_keys=True)
  return backbone.weights_fingerprint(_flatten(params), extra)


class OfflineBackbone:
  """LiT image tower + MiniLM text tower as a `backbone.Backbone` (d = 384).

  tower_params / tower_config: the image tower; text_encoder: a `backbone.TextEncoder` with
  the same embed_dim (MiniLM); batch_size: images per jitted call.
  """

  def __init__(self, tower_params: Any, tower_config: image_encoder.ImageTowerConfig,
               text_encoder: backbone.TextEncoder, *, batch_size: int = 256,
               metadata: dict | None = None):
    if text_encoder.embed_dim != tower_config.embed_dim:
      raise ValueError(
          f"image tower width {tower_config.embed_dim} differs from the text encoder's "
          f"{text_encoder.embed_dim}; the two towers must share one embedding space.")
    if batch_size < 1:
      raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    self.tower_config = tower_config
    self.tower_params = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float32),
                                               tower_params)
    self.text_encoder = text_encoder
    self.embed_dim = tower_config.embed_dim
    self.batch_size = batch_size
    self.metadata = metadata or {}
    self.image_fingerprint = image_tower_fingerprint(tower_params, tower_config)
    self.fingerprint = hashlib.sha256(
        f"offline-lit|image {self.image_fingerprint}|text {text_encoder.fingerprint}"
        .encode()).hexdigest()
    self._encode = jax.jit(functools.partial(image_encoder.encode_images,
                                             config=tower_config))

  def encode_image(self, images: np.ndarray) -> np.ndarray:
    """images: [N, H, W, 1 or 3] uint8, square, side 8..128 (resized to 32x32 grayscale;
    see `image_encoder`) -> [N, 384] float32, each row unit-norm."""
    images = image_encoder.check_images(images)
    if images.shape[0] == 0:
      return np.zeros((0, self.embed_dim), np.float32)
    return backbone.batched(lambda batch: self._encode(self.tower_params, batch), images,
                            self.batch_size, desc="LiT image tower")

  def encode_text(self, texts: Sequence[str]) -> np.ndarray:
    """texts: N strings -> [N, 384] float32 unit-norm (the frozen MiniLM tower)."""
    return self.text_encoder.encode_text(texts)


def load_offline_backbone(checkpoint_dir: str | pathlib.Path | None = None, *,
                          text_encoder: backbone.TextEncoder | None = None,
                          batch_size: int = 256) -> OfflineBackbone:
  """Loads the committed LiT image tower (default `DEFAULT_CHECKPOINT_DIR`) and MiniLM.

  text_encoder: reuse an already loaded text tower (default: `minilm.load_minilm()`).
  Raises FileNotFoundError naming the script that rebuilds a missing checkpoint.
  """
  directory = DEFAULT_CHECKPOINT_DIR if checkpoint_dir is None else pathlib.Path(checkpoint_dir)
  missing = [p for p in (directory / lit.CONFIG_FILE, directory / lit.PARAMS_SUBDIR)
             if not p.exists()]
  if missing:
    raise FileNotFoundError(
        f"No LiT image-tower checkpoint in {directory} (missing {', '.join(map(str, missing))}). "
        f"Fix: rebuild it with `{REBUILD_COMMAND}` (writes {DEFAULT_CHECKPOINT_DIR}), or pass "
        f"checkpoint_dir= a directory written by autoseed_jax.models.lit.save_checkpoint.")
  params, tower_config, metadata = lit.restore_checkpoint(directory)
  text_encoder = minilm.load_minilm() if text_encoder is None else text_encoder
  return OfflineBackbone(params, tower_config, text_encoder, batch_size=batch_size,
                         metadata=metadata)
