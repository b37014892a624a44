"""LiT pretraining (locked text, trained image) of the CNN image tower, as pure functions.

The text tower (MiniLM) is frozen; only the image tower and a temperature are trained. The
objective is cross-entropy of each image against the frozen class-prompt embeddings of every
class in the pretraining data:

    loss = CE(softmax_c(exp(log τ) · f_I(x) · e_cᵀ), label(x)),   e_c = f_T(prompt(c)) frozen

(`autoseed_jax.core.losses.task_loss` over the full class bank). With labelled data this is the
same target as in-batch InfoNCE with label-aware positives, but every step sees all the
negatives (20 classes) instead of the classes that happen to be in the batch, and it does not
need a text-to-image term (the text side is locked). The tower's embeddings land next to the
prompt embeddings, which is what makes zero-shot classification with the prompts work.

State is a plain dict `{"params": {"tower", "log_logit_scale"}, "opt": optax state}`; one
jitted `train_step` (state donated) draws its batch inside with `fold_in(key, step)`, so the
whole run is reproducible from `LitConfig.seed`. Checkpoints: the tower params with orbax
`StandardCheckpointer` in `<dir>/params`, and `<dir>/config.json` holding the tower config,
the LiT config, the learned temperature and a description of the training data.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import pathlib
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp

from autoseed_jax.core import losses
from autoseed_jax.models import image_encoder

PARAMS_SUBDIR = "params"
CONFIG_FILE = "config.json"


@dataclasses.dataclass(frozen=True)
class LitConfig:
  """Hyperparameters of LiT pretraining.

  num_steps: optimiser steps (deliberately bounded; see experiments/pretrain_lit.py).
  batch_size: images per step, drawn with replacement, class-balanced (every class is
    equally likely, whatever its number of images).
  max_shift: random translation of each training image by up to this many pixels
    (on the 32x32 grid, zero padding); 0 turns augmentation off.
  """

  num_steps: int = 100
  batch_size: int = 128
  learning_rate: float = 3e-3
  weight_decay: float = 1e-4
  warmup_steps: int = 20
  init_logit_scale: float = 10.0
  max_shift: int = 2
  seed: int = 0

  def __post_init__(self):
    if self.num_steps <= 0 or self.batch_size <= 0:
      raise ValueError(
          f"num_steps ({self.num_steps}) and batch_size ({self.batch_size}) must be > 0."
      )
    if self.max_shift < 0:
      raise ValueError(f"max_shift must be >= 0, got {self.max_shift}.")


def make_optimizer(config: LitConfig) -> optax.GradientTransformation:
  """AdamW with linear warm-up then cosine decay to 0 over `num_steps`."""
  schedule = optax.warmup_cosine_decay_schedule(
      init_value=0.0,
      peak_value=config.learning_rate,
      warmup_steps=min(config.warmup_steps, config.num_steps - 1),
      decay_steps=config.num_steps,
  )
  return optax.adamw(schedule, weight_decay=config.weight_decay)


def lit_loss(params, pixels: jax.Array, labels: jax.Array, class_text: jax.Array, *,
             tower_config: image_encoder.ImageTowerConfig) -> jax.Array:
  """CE of images against the frozen class-prompt bank.

  params: {"tower": ImageTower params, "log_logit_scale": []}.
  pixels: [B, 32, 32, 1] float32 preprocessed images (`image_encoder.preprocess_images`).
  labels: [B] int32 in [0, C). class_text: [C, d] frozen unit-norm prompt embeddings.
  Returns a float32 scalar.
  """
  features = image_encoder.ImageTower(tower_config).apply({"params": params["tower"]}, pixels)
  image_emb = image_encoder.l2_normalize(features)
  return losses.task_loss(image_emb, class_text, labels, jnp.exp(params["log_logit_scale"]))


def init_train_state(key: jax.Array, *, tower_config: image_encoder.ImageTowerConfig,
                     config: LitConfig, optimizer: optax.GradientTransformation) -> dict:
  """{"params": {"tower", "log_logit_scale"}, "opt": optimizer state}."""
  params = {
      "tower": image_encoder.init_image_tower(tower_config, key),
      "log_logit_scale": jnp.log(jnp.asarray(config.init_logit_scale, jnp.float32)),
  }
  return {"params": params, "opt": optimizer.init(params)}


def random_shift(key: jax.Array, pixels: jax.Array, max_shift: int) -> jax.Array:
  """pixels: [B, S, S, 1] -> each image translated by (dy, dx) in [-max_shift, max_shift],
  the background (-1, black) filling the uncovered border."""
  if max_shift == 0:
    return pixels
  size = pixels.shape[1]
  padded = jnp.pad(pixels, ((0, 0), (max_shift, max_shift), (max_shift, max_shift), (0, 0)),
                   constant_values=-1.0)
  offsets = jax.random.randint(key, (pixels.shape[0], 2), 0, 2 * max_shift + 1)

  def crop(image, offset):
    return jax.lax.dynamic_slice(image, (offset[0], offset[1], 0), (size, size, 1))

  return jax.vmap(crop)(padded, offsets)


def class_balanced_log_weights(labels: jax.Array, num_classes: int) -> jax.Array:
  """labels: [N] int -> [N] log sampling weights, -log(count of the example's class), so a
  draw picks every present class with equal probability."""
  counts = jnp.zeros((num_classes,), jnp.float32).at[labels].add(1.0)
  return -jnp.log(counts[labels])


def train_step(state: dict, step: jax.Array, pixels: jax.Array, labels: jax.Array,
               class_text: jax.Array, key: jax.Array, *, tower_config, config: LitConfig,
               optimizer: optax.GradientTransformation) -> tuple[dict, jax.Array]:
  """One optimiser step on a class-balanced batch drawn from the whole pretraining set.

  pixels: [N, 32, 32, 1] all preprocessed pretraining images; labels: [N] int32;
  class_text: [C, d]; key: the run key (the step's key is `fold_in(key, step)`).
  Returns (new state, loss of the batch before the update).
  """
  k_batch, k_shift = jax.random.split(jax.random.fold_in(key, step))
  log_weights = class_balanced_log_weights(labels, class_text.shape[0])
  idx = jax.random.categorical(k_batch, log_weights, shape=(config.batch_size,))
  batch = random_shift(k_shift, pixels[idx], config.max_shift)
  loss, grads = jax.value_and_grad(lit_loss)(
      state["params"], batch, labels[idx], class_text, tower_config=tower_config)
  updates, opt = optimizer.update(grads, state["opt"], state["params"])
  return {"params": optax.apply_updates(state["params"], updates), "opt": opt}, loss


def make_train_step(*, tower_config, config: LitConfig,
                    optimizer: optax.GradientTransformation) -> Callable:
  """`train_step` with its static arguments bound, jitted, state donated."""
  return jax.jit(
      functools.partial(train_step, tower_config=tower_config, config=config,
                        optimizer=optimizer),
      donate_argnums=(0,),
  )


def pretrain_image_tower(
    images: list[np.ndarray],
    labels: list[np.ndarray],
    class_text: np.ndarray,
    *,
    config: LitConfig = LitConfig(),
    tower_config: image_encoder.ImageTowerConfig = image_encoder.ImageTowerConfig(),
    log: Callable[[dict], None] | None = None,
    log_every: int = 50,
) -> tuple[dict, dict]:
  """Trains the image tower against a locked text bank.

  images: one uint8 array [N_i, H_i, W_i, 1 or 3] per dataset (sizes may differ between
    datasets; each is preprocessed to 32x32 first). labels: one [N_i] int array per dataset,
    already offset into the shared class bank. class_text: [C, d] frozen prompt embeddings.
  Returns (params {"tower", "log_logit_scale"} as numpy, history {"step", "loss", "seconds"}).
  """
  if len(images) != len(labels) or not images:
    raise ValueError(f"need one label array per image array, got {len(images)} and "
                     f"{len(labels)} (and at least one).")
  class_text = jnp.asarray(class_text, jnp.float32)
  if class_text.ndim != 2 or class_text.shape[1] != tower_config.embed_dim:
    raise ValueError(f"class_text must be [C, {tower_config.embed_dim}], got "
                     f"{class_text.shape}.")
  pixels = jnp.concatenate(
      [image_encoder.preprocess_images(jnp.asarray(image_encoder.check_images(x)))
       for x in images])
  all_labels = np.concatenate([np.asarray(y) for y in labels]).astype(np.int32)
  if all_labels.shape[0] != pixels.shape[0]:
    raise ValueError(f"{pixels.shape[0]} images but {all_labels.shape[0]} labels.")
  if all_labels.min() < 0 or all_labels.max() >= class_text.shape[0]:
    raise ValueError(f"labels must be in [0, {class_text.shape[0]}), got range "
                     f"[{all_labels.min()}, {all_labels.max()}].")

  optimizer = make_optimizer(config)
  key = jax.random.PRNGKey(config.seed)
  k_init, k_run = jax.random.split(key)
  state = init_train_state(k_init, tower_config=tower_config, config=config,
                           optimizer=optimizer)
  step_fn = make_train_step(tower_config=tower_config, config=config, optimizer=optimizer)
  labels_device = jnp.asarray(all_labels)
  history = {"step": [], "loss": [], "seconds": []}
  start = time.perf_counter()
  for step in range(config.num_steps):
    state, loss = step_fn(state, jnp.int32(step), pixels, labels_device, class_text, k_run)
    if step % log_every == 0 or step == config.num_steps - 1:
      record = {"step": step, "loss": float(loss),
                "seconds": time.perf_counter() - start}
      for name, value in record.items():
        history[name].append(value)
      if log is not None:
        log(record)
  params = jax.tree_util.tree_map(np.asarray, state["params"])
  return params, history


def save_checkpoint(directory: str | pathlib.Path, tower_params, *,
                    tower_config: image_encoder.ImageTowerConfig, metadata: dict) -> pathlib.Path:
  """Writes `<directory>/params` (orbax) and `<directory>/config.json`; replaces both.

  metadata: JSON-serialisable dict (LiT config, learned temperature, training data...).
  Returns the absolute directory.
  """
  directory = pathlib.Path(directory).resolve()
  directory.mkdir(parents=True, exist_ok=True)
  with ocp.StandardCheckpointer() as checkpointer:
    checkpointer.save(directory / PARAMS_SUBDIR, tower_params, force=True)
  payload = {"tower_config": dataclasses.asdict(tower_config), **metadata}
  (directory / CONFIG_FILE).write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
  return directory


def save_pretrained(directory, tower_params, *, tower_config, metadata: dict,
                    summary: dict) -> pathlib.Path:
  """``save_checkpoint`` then one JSON line on stdout: the directory, the wall time
  (``metadata['seconds']``), the learned temperature and ``summary`` (what the pretraining
  script measured). Returns the directory."""
  directory = save_checkpoint(directory, tower_params, tower_config=tower_config,
                              metadata=metadata)
  print(json.dumps({"checkpoint": str(directory), "seconds": round(metadata["seconds"], 1),
                    **summary, "learned_logit_scale": metadata["learned_logit_scale"]}))
  return directory


def restore_checkpoint(directory: str | pathlib.Path, *,
                       config_from_dict: Callable = image_encoder.ImageTowerConfig.from_dict,
                       init_tower: Callable = image_encoder.init_image_tower,
                       ) -> tuple[Any, image_encoder.ImageTowerConfig, dict]:
  """Reads a checkpoint written by `save_checkpoint`.

  Returns (tower params pytree of numpy float32, its ImageTowerConfig, the whole config.json
  dict). Raises FileNotFoundError when a part is missing; orbax raises if the stored shapes
  differ from those the stored config implies. Another tower's checkpoint (the scene tower,
  `scene_tower.py`) is read with its `config_from_dict` and `init_tower(config, key)`.
  """
  directory = pathlib.Path(directory).resolve()
  config_path, params_path = directory / CONFIG_FILE, directory / PARAMS_SUBDIR
  for required in (config_path, params_path):
    if not required.exists():
      raise FileNotFoundError(f"LiT checkpoint part {required} is missing.")
  metadata = json.loads(config_path.read_text())
  tower_config = config_from_dict(metadata["tower_config"])
  target = jax.eval_shape(lambda: init_tower(tower_config, jax.random.PRNGKey(0)))
  with ocp.StandardCheckpointer() as checkpointer:
    params = checkpointer.restore(params_path, target)
  return jax.tree_util.tree_map(np.asarray, params), tower_config, metadata
