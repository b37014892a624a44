"""Deep generative replay (Shin et al. 2017) with a VAE generator (METHOD §7).

A scholar is a generator and a solver. The solver is the engine's adapted model θ; the
generator is a VAE (``ReplayVAE``) kept in the extras, trained continually on its own
replays plus the new task's data:

* Online adaptation on task t adds ``λ_dgr · L_replay`` at every step: ``dgr_batch_size``
  samples x̂ of the VAE trained up to task t−1 (z ~ N(0, I), decoded), labelled by the
  previous solver θ⁻ (``state.prev_params``): soft labels p⁻(·|x̂) = softmax of θ⁻'s logits
  over the classes seen before task t (``dgr_soft_labels``), or their argmax; L_replay is
  the cross-entropy of θ's softmax over all seen classes against them. On the first task
  there is nothing to replay and the term is 0.
* ``consolidate`` trains the VAE for ``dgr_vae_steps`` Adam steps (a ``lax.scan``),
  starting from its previous parameters, on batches where each row is, with probability
  1/t, a real training example of task t and otherwise a sample of the frozen previous
  VAE, so every task so far is represented about equally. Its loss is the negative ELBO
  ``dgr_recon_weight · ‖x − x̂‖² + KL(q(z|x) ‖ N(0, I))`` per example.

Two spaces (``space``):

* ``'embedding'`` (method ``dgr``): the VAE models the cached unit-norm image embeddings
  directly; its decoder output is L2-normalised.
* ``'pixel'`` (method ``dgr_pixel``): the VAE models the frozen image tower's input grid
  (``[32, 32, 1]`` in [-1, 1], ``models.image_encoder``; tanh decoder output) and every
  replayed image goes through the frozen tower (``ImageTower``, loaded from
  ``dgr_tower_dir``, default the offline backbone's committed tower) to give the embedding
  the solver sees. It reads each task's training images on that grid, aligned with
  ``train_x``, from ``Task.train_pixels [N, 32, 32, 1] float32``: streams built with
  images have it (``streams.get_stream(..., pixels=True)``, ``tasks.build_stream(...,
  train_pixels=...)``); on a stream without them consolidation raises a ValueError
  naming that fix.

The VAE parameters are a generator, not stored data, so ``memory_bytes`` is 0.

Vision-language streams (method ``dgr``): a row is a pair -- the query embedding and its
paired text embedding (caption, or the bank text of its label) -- so the VAE models the
concatenation [x ; t] (2d, each half L2-normalised by the decoder), and a replayed pair is
labelled by θ⁻ twice: its bank posterior over the entries seen before (as above) and its
in-batch image->text and text->image distributions over the replayed batch; the replay
term is the cross-entropy of θ's distributions against both (the second from the second
task on). ``dgr_pixel`` generates images only, while retrieval, captioning and VQA rows
are (image, text) pairs, so it runs classification tasks only.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from autoseed_jax.core import task_kinds
from autoseed_jax.core.losses import class_logits, l2_normalize
from autoseed_jax.core.config_checks import check_fields
from autoseed_jax.methods.base import Context, Method
from autoseed_jax.models import image_encoder

SPACES = ('embedding', 'pixel')
# Methods that read each task's training images (Task.train_pixels): a run of one of them
# needs its stream built with them (streams.get_stream(..., pixels=True)).
PIXEL_METHODS = ('dgr_pixel',)

# Tags folded into the run key so each use of randomness has its own stream.
_VAE_INIT_TAG, _VAE_TRAIN_TAG = 23, 24

PIXEL_SHAPE = (image_encoder.INPUT_SIZE, image_encoder.INPUT_SIZE, 1)


def defaults() -> dict:
  """Generative-replay hyperparameters and their defaults (config fields of the same names)."""
  return dict(
      dgr_weight=1.0,           # λ_dgr, weight of the replay term during adaptation
      dgr_batch_size=64,        # replayed samples per adaptation step
      dgr_soft_labels=True,     # θ⁻'s softmax as targets (False: its argmax)
      dgr_latent_dim=16,        # VAE latent size
      dgr_hidden=256,           # VAE hidden width (two layers in encoder and decoder)
      dgr_vae_steps=500,        # Adam steps on the VAE after each task
      dgr_vae_batch_size=64,    # rows per VAE step (real and replayed mixed)
      dgr_vae_learning_rate=1e-3,
      dgr_recon_weight=50.0,    # weight of ‖x − x̂‖² in the negative ELBO (1 / 2σ²)
      dgr_tower_dir='',         # dgr_pixel: image-tower checkpoint ('' = offline backbone's)
  )


def settings(config) -> dict:
  """``defaults()`` overridden by the fields present in ``config``."""
  return {name: config.get(name, value) for name, value in defaults().items()}


class ReplayVAE(nn.Module):
  """A fully connected VAE on flat vectors: x [B, D] -> (x̂ [B, D], μ, log σ² [B, latent]).

  ``output`` maps the decoder's last layer to data space: 'sphere' L2-normalises (unit
  embeddings), 'two_spheres' L2-normalises each half (a pair of unit embeddings), 'tanh'
  squashes to [-1, 1] (pixels).
  """

  data_dim: int
  hidden_dim: int
  latent_dim: int
  output: str = 'sphere'

  def setup(self):
    self.enc = [nn.Dense(self.hidden_dim), nn.Dense(self.hidden_dim)]
    self.enc_mean = nn.Dense(self.latent_dim)
    self.enc_logvar = nn.Dense(self.latent_dim)
    self.dec = [nn.Dense(self.hidden_dim), nn.Dense(self.hidden_dim)]
    self.dec_out = nn.Dense(self.data_dim)

  def encode(self, x: jax.Array):
    """x [B, D] -> (μ [B, latent], log σ² [B, latent])."""
    h = x
    for layer in self.enc:
      h = nn.gelu(layer(h))
    return self.enc_mean(h), self.enc_logvar(h)

  def decode(self, z: jax.Array) -> jax.Array:
    """z [B, latent] -> x̂ [B, D] in data space."""
    h = z
    for layer in self.dec:
      h = nn.gelu(layer(h))
    out = self.dec_out(h)
    if self.output == 'two_spheres':
      half = self.data_dim // 2
      return jnp.concatenate([l2_normalize(out[:, :half]), l2_normalize(out[:, half:])], -1)
    return l2_normalize(out) if self.output == 'sphere' else jnp.tanh(out)

  def __call__(self, x: jax.Array, key: jax.Array):
    mean, logvar = self.encode(x)
    z = mean + jnp.exp(0.5 * logvar) * jax.random.normal(key, mean.shape)
    return self.decode(z), mean, logvar


def negative_elbo(vae: ReplayVAE, params, x, key, *, recon_weight: float) -> jax.Array:
  """mean over rows of ``recon_weight · ‖x − x̂‖² + KL(q(z|x) ‖ N(0, I))``; x: [B, D]."""
  recon, mean, logvar = vae.apply(params, x, key)
  sq_error = jnp.sum((x - recon) ** 2, axis=-1)
  kl = 0.5 * jnp.sum(jnp.exp(logvar) + mean**2 - 1.0 - logvar, axis=-1)
  return jnp.mean(recon_weight * sq_error + kl)


def sample_vae(vae: ReplayVAE, params, key, num: int) -> jax.Array:
  """``num`` samples of the VAE's prior decoded to data space, [num, D]."""
  z = jax.random.normal(key, (num, vae.latent_dim))
  return vae.apply(params, z, method=ReplayVAE.decode)


def train_vae(vae: ReplayVAE, params, prev_params, real, real_count, real_fraction, key, *,
              optimizer, num_steps: int, batch_size: int, recon_weight: float):
  """Adam steps on the VAE over a mixture of real rows and samples of the previous VAE.

  Args:
    real: [N, D] the new task's data (rows >= ``real_count`` are padding).
    real_fraction: [] probability that a row of a batch is real (else a replay of
      ``prev_params``).

  Returns:
    (params, [num_steps] losses).
  """

  def step(carry, key):
    params, opt_state = carry
    k_idx, k_mix, k_fake, k_elbo = jax.random.split(key, 4)
    idx = jax.random.randint(k_idx, (batch_size,), 0, jnp.maximum(real_count, 1))
    fake = jax.lax.stop_gradient(sample_vae(vae, prev_params, k_fake, batch_size))
    is_real = jax.random.uniform(k_mix, (batch_size,)) < real_fraction
    batch = jnp.where(is_real[:, None], real[idx], fake)
    loss, grads = jax.value_and_grad(
        lambda p: negative_elbo(vae, p, batch, k_elbo, recon_weight=recon_weight))(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), loss

  (params, _), losses = jax.lax.scan(step, (params, optimizer.init(params)),
                                     jax.random.split(key, num_steps))
  return params, losses


def load_tower(tower_dir: str):
  """(tower params, ImageTowerConfig) from a LiT checkpoint (default: the offline one)."""
  from autoseed_jax.models import lit, offline_backbone  # pylint: disable=import-outside-toplevel
  directory = tower_dir or offline_backbone.DEFAULT_CHECKPOINT_DIR
  params, tower_config, _ = lit.restore_checkpoint(directory)
  return params, tower_config


def validate(config) -> None:
  """Raises ValueError naming a generative-replay field that cannot run."""
  check_fields(settings(config), (
      ('dgr_weight', '>= 0', 'λ_dgr, weight of the replay term'),
      ('dgr_batch_size', '> 0', 'replayed samples per adaptation step'),
      ('dgr_latent_dim', '> 0', 'VAE latent size'),
      ('dgr_hidden', '> 0', 'VAE hidden width'),
      ('dgr_vae_steps', '> 0', 'Adam steps on the VAE after each task'),
      ('dgr_vae_batch_size', '> 0', 'rows per VAE step'),
      ('dgr_vae_learning_rate', '> 0', "the VAE's Adam step size"),
      ('dgr_recon_weight', '> 0', 'weight of the reconstruction term, 1 / 2σ²')))


def make_dgr(context: Context, *, space: str) -> Method:
  """Builds the generative-replay hooks in ``space`` ('embedding' or 'pixel')."""
  if space not in SPACES:
    raise ValueError(f'generative replay space {space!r}; choose one of {SPACES}.')
  validate(context.config)
  s = settings(context.config)
  vl = context.vl
  if space == 'embedding' and vl is not None:
    vae = ReplayVAE(2 * context.dim, s['dgr_hidden'], s['dgr_latent_dim'], output='two_spheres')

    def to_embedding(samples):
      return samples[:, :context.dim]

    def task_data(task):
      return jnp.concatenate([task.train_x, task.train_text], axis=-1)
  elif space == 'embedding':
    vae = ReplayVAE(context.dim, s['dgr_hidden'], s['dgr_latent_dim'], output='sphere')

    def to_embedding(samples):
      return samples

    def task_data(task):
      return task.train_x
  else:
    tower_params, tower_config = load_tower(s['dgr_tower_dir'])
    if tower_config.embed_dim != context.dim:
      raise ValueError(
          f'dgr_pixel: the image tower in {s["dgr_tower_dir"] or "the offline backbone"} '
          f'gives {tower_config.embed_dim}-d embeddings but the stream has {context.dim}; '
          'point dgr_tower_dir at the tower that embedded the stream.')
    tower = image_encoder.ImageTower(tower_config)
    pixel_dim = PIXEL_SHAPE[0] * PIXEL_SHAPE[1] * PIXEL_SHAPE[2]
    vae = ReplayVAE(pixel_dim, s['dgr_hidden'], s['dgr_latent_dim'], output='tanh')

    def to_embedding(samples):
      pixels = samples.reshape((-1,) + PIXEL_SHAPE)
      return l2_normalize(tower.apply({'params': tower_params}, pixels))

    def task_data(task):
      pixels = task.train_pixels
      grid = ', '.join(map(str, PIXEL_SHAPE))
      if pixels is None:
        raise ValueError(
            'dgr_pixel needs the training images of each task on the image tower\'s input '
            f'grid (Task.train_pixels [N, {grid}] float32 in [-1, 1], row i the image of '
            'train_x[i]), and this stream has none. Build it with its images: '
            'streams.get_stream(name, pixels=True) or tasks.build_stream(..., '
            'train_pixels=...); or use method dgr (embedding space).')
      if tuple(pixels.shape[1:]) != PIXEL_SHAPE:
        raise ValueError(
            f'dgr_pixel: the stream\'s train_pixels are [N, '
            f'{", ".join(map(str, pixels.shape[1:]))}] images but the image tower takes '
            f'[N, {grid}]; preprocess them with models.image_encoder.preprocess_images.')
      return pixels.reshape(pixels.shape[0], -1)

  optimizer = optax.adam(s['dgr_vae_learning_rate'])

  def init_state(key):
    params = vae.init(jax.random.fold_in(key, _VAE_INIT_TAG),
                      jnp.zeros((1, vae.data_dim), jnp.float32), jax.random.PRNGKey(0))
    return {'extras': {'vae': params}}

  def replay_targets(state, samples):
    """θ⁻'s targets on replayed embeddings: [B, C] probabilities over prev_seen."""
    img, class_emb, scale = context.embed(state.prev_params, samples, state.class_bank)
    logits = class_logits(img, class_emb, scale, state.prev_seen)
    if s['dgr_soft_labels']:
      return jax.nn.softmax(logits, axis=-1)
    return jax.nn.one_hot(jnp.argmax(logits, axis=-1), logits.shape[-1])

  def extra_loss(params, state, x, y, key, text=None):
    """λ_dgr · CE(θ's softmax over seen classes; θ⁻'s labels) on replayed samples."""
    del x, y, text
    pairs = jax.lax.stop_gradient(sample_vae(vae, state.extras['vae'], key, s['dgr_batch_size']))
    samples = to_embedding(pairs)
    targets = jax.lax.stop_gradient(replay_targets(state, samples))
    img, class_emb, scale = context.embed(params, samples, state.class_bank)
    log_p = jax.nn.log_softmax(class_logits(img, class_emb, scale, state.seen), axis=-1)
    replay = -jnp.mean(jnp.sum(targets * log_p, axis=-1))
    replay = jnp.where(jnp.any(state.prev_seen), replay, 0.0)
    terms = {'replay': replay}
    if vl is not None:
      terms['pair_replay'] = jnp.where(state.tasks_done > 0,
                                       pair_replay_loss(params, state, pairs), 0.0)
      replay = replay + terms['pair_replay']
    return s['dgr_weight'] * replay, terms

  def pair_replay_loss(params, state, pairs):
    """Soft CE of θ's in-batch image->text / text->image distributions on replayed pairs
    [B, 2d] against θ⁻'s."""
    x, t = pairs[:, :context.dim], pairs[:, context.dim:]
    img, txt, scale = context.embed(params, x, t)
    prev_img, prev_txt, prev_scale = jax.lax.stop_gradient(
        context.embed(state.prev_params, x, t))
    logits, prev = scale * img @ txt.T, prev_scale * prev_img @ prev_txt.T
    loss = 0.0
    for a, b in ((logits, prev), (logits.T, prev.T)):
      loss += -jnp.mean(jnp.sum(jax.nn.softmax(b, -1) * jax.nn.log_softmax(a, -1), -1)) / 2
    return loss

  def consolidate(state, task, *, axis_name=None):
    """Trains the VAE on task t's data mixed with replays of the previous VAE."""
    del axis_name  # computed replicated (under pmap every device holds the whole task)
    key = jax.random.fold_in(jax.random.fold_in(state.key, _VAE_TRAIN_TAG), task.index)
    previous = state.extras['vae']
    real_fraction = 1.0 / (state.tasks_done.astype(jnp.float32) + 1.0)
    params, losses = train_vae(
        vae, previous, previous, task_data(task), task.train_count, real_fraction, key,
        optimizer=optimizer, num_steps=s['dgr_vae_steps'],
        batch_size=s['dgr_vae_batch_size'], recon_weight=s['dgr_recon_weight'])
    window = max(1, min(10, s['dgr_vae_steps'] // 4))
    info = {'vae_loss_first': jnp.mean(losses[:window]),
            'vae_loss_last': jnp.mean(losses[-window:])}
    return state.replace(extras={'vae': params}), info

  if space == 'embedding':
    return Method(name='dgr', init_state=init_state, extra_loss=extra_loss,
                  consolidate=consolidate, kinds=task_kinds.KINDS)
  return Method(name='dgr_pixel', init_state=init_state, extra_loss=extra_loss,
                consolidate=consolidate,
                refusal='it generates images alone, and the task\'s rows are (image, text) '
                        'pairs; dgr replays embedding pairs')


def dgr(context: Context) -> Method:
  """Generative replay in the backbone's embedding space (method ``dgr``)."""
  return make_dgr(context, space='embedding')


def dgr_pixel(context: Context) -> Method:
  """Generative replay in pixel space through the frozen image tower (``dgr_pixel``)."""
  return make_dgr(context, space='pixel')
