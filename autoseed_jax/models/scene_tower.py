"""The scene image tower of the offline vision-language backbone, and its LiT pretraining.

The offline vision-language stream (``vl-scenes``) shows 48x48 grayscale scenes of two or
three objects side by side (``autoseed_jax.data.scenes``), described by captions that name
objects, counts and left/right relations. The class-level LiT tower (``image_encoder``)
averages its last feature map over all positions, which throws away where things are, so
the scenes get their own tower: the same conv stages (``image_encoder.conv_stages``: three
3x3 conv + GroupNorm + GELU + 2x2 average-pool stages, 48 -> 6), then an average over the
*height* only, keeping the 6 columns, flattened and projected to 384 (``SceneTower``). It
keeps the horizontal layout the relations need; about 390k parameters.

Pretraining (``pretrain_scene_tower``), LiT-style (locked text): MiniLM embeds every caption
once; each step draws ``batch_size`` scenes and one of each scene's captions, and trains the
tower and a temperature on symmetric in-batch InfoNCE between the scene embeddings and the
frozen caption embeddings, with identical caption strings counted as positives
(``losses.info_nce`` with labels). The pretraining scenes are composed from the object
images of the pretraining split (``streams.embed.pretraining_split``) that no stream uses
(``experiments/pretrain_scene_lit.py``). The checkpoint ships in ``assets/scene_tower/``
(same layout as the class-level tower, ``lit.save_checkpoint``).

``SceneBackbone`` is the tower plus MiniLM as a ``backbone.Backbone`` (d = 384): images
uint8 [N, 48, 48, 1] -> unit-norm embeddings.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import pathlib
import time
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from autoseed_jax.core import losses
from autoseed_jax.data import scenes
from autoseed_jax.models import backbone, image_encoder, lit

DEFAULT_CHECKPOINT_DIR = pathlib.Path(__file__).resolve().parent / 'assets' / 'scene_tower'
REBUILD_COMMAND = 'python experiments/pretrain_scene_lit.py'
PREPROCESSING_VERSION = 'scene-gray48-[-1,1]/1'


@dataclasses.dataclass(frozen=True)
class SceneTowerConfig:
  """Sizes of the scene tower: conv stage widths, output width, GroupNorm groups and the
  (square) input side, which must be divisible by 2^stages."""

  widths: tuple[int, ...] = (32, 64, 128)
  embed_dim: int = 384
  groups: int = 8
  input_size: int = scenes.CANVAS

  def __post_init__(self):
    if not self.widths or any(w <= 0 or w % self.groups for w in self.widths):
      raise ValueError(f'widths {self.widths} must be positive multiples of groups={self.groups}.')
    if self.input_size % 2 ** len(self.widths):
      raise ValueError(f'input_size {self.input_size} must be divisible by '
                       f'{2 ** len(self.widths)} ({len(self.widths)} pooling stages).')

  @classmethod
  def from_dict(cls, values: dict) -> 'SceneTowerConfig':
    return cls(**{**values, 'widths': tuple(values['widths'])})


class SceneTower(nn.Module):
  """[N, S, S, 1] pixels in [-1, 1] -> [N, embed_dim] features (not normalised)."""

  config: SceneTowerConfig

  @nn.compact
  def __call__(self, pixels: jax.Array) -> jax.Array:
    x = image_encoder.conv_stages(pixels, self.config.widths, self.config.groups)
    x = jnp.mean(x, axis=1)  # over the height: the columns (left to right) stay apart
    return nn.Dense(self.config.embed_dim, name='projection')(x.reshape(x.shape[0], -1))


def init_scene_tower(config: SceneTowerConfig, key: jax.Array):
  dummy = jnp.zeros((1, config.input_size, config.input_size, 1), jnp.float32)
  return SceneTower(config).init(key, dummy)['params']


def check_scene_images(images, config: SceneTowerConfig) -> np.ndarray:
  """images: uint8 [N, S, S, 1] with S = input_size, else ValueError naming the fix."""
  images = np.asarray(images)
  want = (config.input_size, config.input_size, 1)
  if images.ndim != 4 or images.shape[1:] != want or images.dtype != np.uint8:
    raise ValueError(f'the scene tower takes uint8 images [N, {", ".join(map(str, want))}], '
                     f'got {images.dtype} {images.shape}; compose scenes with '
                     'autoseed_jax.data.scenes.render.')
  return images


def preprocess(images: jax.Array) -> jax.Array:
  """uint8 [N, S, S, 1] -> float32 in [-1, 1]."""
  return images.astype(jnp.float32) / 127.5 - 1.0


def encode_scenes(params, images: jax.Array, *, config: SceneTowerConfig) -> jax.Array:
  """[N, S, S, 1] uint8 -> [N, embed_dim] unit-norm embeddings."""
  return losses.l2_normalize(SceneTower(config).apply({'params': params}, preprocess(images)))


# ---------------------------------------------------------------------------------------------
# LiT pretraining on captioned scenes


def scene_lit_loss(params, pixels, caption_ids, caption_text, *, config: SceneTowerConfig):
  """Symmetric in-batch InfoNCE of scene embeddings against their frozen captions.

  pixels: [B, S, S, 1] float32 in [-1, 1]; caption_ids: [B] int32 rows of caption_text
  (equal ids are positives); caption_text: [K, d] frozen unit-norm caption embeddings.
  """
  image = losses.l2_normalize(SceneTower(config).apply({'params': params['tower']}, pixels))
  return losses.info_nce(image, caption_text[caption_ids], jnp.exp(params['log_logit_scale']),
                         labels=caption_ids)


def scene_train_step(state, step, pixels, scene_captions, caption_text, key, *,
                     config: SceneTowerConfig, lit_config: lit.LitConfig,
                     optimizer: optax.GradientTransformation):
  """One step on ``batch_size`` scenes drawn uniformly, one of each scene's captions.

  pixels: [N, S, S, 1] float32 every pretraining scene; scene_captions: [N, 5] int32 rows
  of caption_text [K, d]. Returns (state, loss before the update).
  """
  k_batch, k_caption, k_shift = jax.random.split(jax.random.fold_in(key, step), 3)
  idx = jax.random.randint(k_batch, (lit_config.batch_size,), 0, pixels.shape[0])
  which = jax.random.randint(k_caption, (lit_config.batch_size,), 0, scene_captions.shape[1])
  ids = scene_captions[idx, which]
  batch = lit.random_shift(k_shift, pixels[idx], lit_config.max_shift)
  loss, grads = jax.value_and_grad(scene_lit_loss)(state['params'], batch, ids, caption_text,
                                                   config=config)
  updates, opt = optimizer.update(grads, state['opt'], state['params'])
  return {'params': optax.apply_updates(state['params'], updates), 'opt': opt}, loss


def pretrain_scene_tower(images: np.ndarray, scene_captions: np.ndarray,
                         caption_text: np.ndarray, *, lit_config: lit.LitConfig,
                         config: SceneTowerConfig = SceneTowerConfig(),
                         log: Callable[[dict], None] | None = None, log_every: int = 50):
  """Trains the scene tower against locked caption embeddings.

  images: uint8 [N, S, S, 1]; scene_captions: [N, C] int rows of caption_text [K, d].
  Returns (params {'tower', 'log_logit_scale'} as numpy, history {'step', 'loss', 'seconds'}).
  """
  pixels = preprocess(jnp.asarray(check_scene_images(images, config)))
  optimizer = lit.make_optimizer(lit_config)
  k_init, k_run = jax.random.split(jax.random.PRNGKey(lit_config.seed))
  params = {'tower': init_scene_tower(config, k_init),
            'log_logit_scale': jnp.log(jnp.float32(lit_config.init_logit_scale))}
  state = {'params': params, 'opt': optimizer.init(params)}
  step_fn = jax.jit(functools.partial(scene_train_step, config=config, lit_config=lit_config,
                                      optimizer=optimizer), donate_argnums=(0,))
  scene_captions = jnp.asarray(scene_captions, jnp.int32)
  caption_text = jnp.asarray(caption_text, jnp.float32)
  history = {'step': [], 'loss': [], 'seconds': []}
  start = time.perf_counter()
  for step in range(lit_config.num_steps):
    state, loss = step_fn(state, jnp.int32(step), pixels, scene_captions, caption_text, k_run)
    if step % log_every == 0 or step == lit_config.num_steps - 1:
      record = {'step': step, 'loss': float(loss), 'seconds': time.perf_counter() - start}
      for name, value in record.items():
        history[name].append(value)
      if log is not None:
        log(record)
  return jax.tree.map(np.asarray, state['params']), history


# ---------------------------------------------------------------------------------------------
# The backbone


class SceneBackbone:
  """Scene tower + MiniLM text tower as a ``backbone.Backbone`` (d = 384)."""

  def __init__(self, tower_params: Any, config: SceneTowerConfig,
               text_encoder: backbone.TextEncoder, *, batch_size: int = 256,
               metadata: dict | None = None):
    if text_encoder.embed_dim != config.embed_dim:
      raise ValueError(f'scene tower width {config.embed_dim} differs from the text '
                       f"encoder's {text_encoder.embed_dim}.")
    self.config = config
    self.tower_params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), tower_params)
    self.text_encoder = text_encoder
    self.embed_dim = config.embed_dim
    self.batch_size = batch_size
    self.metadata = metadata or {}
    flat = {jax.tree_util.keystr(path): np.asarray(leaf)
            for path, leaf in jax.tree_util.tree_flatten_with_path(tower_params)[0]}
    extra = json.dumps({'tower': dataclasses.asdict(config),
                        'preprocessing': PREPROCESSING_VERSION}, sort_keys=True)
    self.image_fingerprint = backbone.weights_fingerprint(flat, extra)
    self.fingerprint = hashlib.sha256(
        f'scene-lit|image {self.image_fingerprint}|text {text_encoder.fingerprint}'
        .encode()).hexdigest()
    self._encode = jax.jit(functools.partial(encode_scenes, config=config))

  def encode_image(self, images: np.ndarray) -> np.ndarray:
    """uint8 [N, 48, 48, 1] scenes -> [N, 384] float32 unit-norm."""
    images = check_scene_images(images, self.config)
    if images.shape[0] == 0:
      return np.zeros((0, self.embed_dim), np.float32)
    return backbone.batched(lambda batch: self._encode(self.tower_params, batch), images,
                            self.batch_size, desc='scene tower')

  def encode_text(self, texts: Sequence[str]) -> np.ndarray:
    return self.text_encoder.encode_text(texts)


def load_scene_backbone(checkpoint_dir=None, *, text_encoder=None) -> SceneBackbone:
  """The committed scene tower (default ``DEFAULT_CHECKPOINT_DIR``) with MiniLM.

  Raises FileNotFoundError naming the script that rebuilds a missing checkpoint.
  """
  from autoseed_jax.models import minilm  # pylint: disable=import-outside-toplevel
  directory = pathlib.Path(checkpoint_dir or DEFAULT_CHECKPOINT_DIR)
  if not (directory / lit.CONFIG_FILE).exists() or not (directory / lit.PARAMS_SUBDIR).exists():
    raise FileNotFoundError(f'No scene-tower checkpoint in {directory}. Fix: rebuild it with '
                            f'`{REBUILD_COMMAND}`.')
  params, config, metadata = lit.restore_checkpoint(
      directory, config_from_dict=SceneTowerConfig.from_dict, init_tower=init_scene_tower)
  return SceneBackbone(params, config, text_encoder or minilm.load_minilm(), metadata=metadata)
