"""CoOp-style learnable text context (Zhou et al. 2022) on the frozen text tower (METHOD §7).

The class embeddings are not the cached prompt embeddings: M learned context vectors
t_1..t_M in the text tower's token-embedding space (one set shared by every class:
CoOp's unified context) take the place of the first M word pieces of the prompt

    [start] t_1 ... t_M  <rest of the context phrase>  <class name> . [end]

and the whole sequence runs through the frozen text tower f_T (MiniLM for the offline
backbone, or the CLIP text transformer), giving w_c = f_T(prompt_c(t)) ∈ R^d, unit norm.
Training minimises the engine's task loss over t alone: the tower's weights are
constants of the step functions (never in the optimiser's parameters), the image side is
the frozen embedding (no image adapter; ``normalize(z)``) and the logit scale stays at
``init_logit_scale``, as CoOp keeps CLIP's.

Context initialisation (``coop_context_init``): a phrase such as "a photo of a"; its first
M word pieces initialise t and the rest of it stays as fixed tokens (MaPLe's rule; CoOp's
own code takes M = all of the phrase), so with t at its initialisation w_c is exactly the
tower's embedding of the text "a photo of a {class}." (the parity the tests check). An
empty phrase draws t ~ N(0, 0.02²), CoOp's random initialisation, and the prompt is
``[start] t_1..t_M {class}. [end]``.

Every class's token ids are built once, when the method is built, from the stream's class
names (``Context.class_names``), padded to one length L: the step functions see constant
[C, L] arrays, so nothing recompiles from task to task. Every step encodes all C classes
(C·L tokens through the tower, forward and backward); classes not seen yet are masked by
the engine as usual. On animals-ci (C = 10, L = 10) a step cost about 95 ms on a shared
2-core CPU against 3.5 ms for adapter fine-tuning. The tower's weights are closed over, so
every compiled step function holds them as constants (about 42 MB for MiniLM's layers;
about 1 s more compile time than passing them as arguments).

The text tower (``prompt_text_tower``): '' follows ``config.stream.backbone`` (else
'offline'); 'offline' is MiniLM (all-MiniLM-L6-v2, the offline backbone's text tower);
'clip:<path>' the text transformer of a local OpenCLIP checkpoint. It must be the tower
that embedded the stream's class prompts: only then are learned prompts and cached image
embeddings in one space (a different width is refused; a different tower of the same
width cannot be detected).

``PromptTower`` is the frozen tower on token embeddings, with deep-prompt slots for MaPLe
(``autoseed_jax.methods.maple``): at the input of layers 1..J−1 the hidden states of the
prompt positions are replaced by given vectors.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from autoseed_jax.core.config_checks import check_fields
from autoseed_jax.core.losses import l2_normalize
from autoseed_jax.methods.base import Context, Method

# Tag folded into the run key for the random context initialisation.
_COOP_INIT_TAG = 31
# Std of CoOp's random context initialisation (and of MaPLe's deep prompts).
CONTEXT_INIT_STD = 0.02
# Why prompt learning on class names runs classification tasks only (Method.refusal).
PROMPT_REFUSAL = ('it learns prompts for class names, and the task has none (it matches '
                  'images to captions, or questions to answers)')


def defaults() -> dict:
  """CoOp hyperparameters and their defaults (config fields of the same names)."""
  return dict(
      coop_context_length=4,            # M, learned context vectors (shared by all classes)
      coop_context_init='a photo of a',  # phrase whose first M word pieces initialise the
                                         # context ('' = random N(0, 0.02²))
      prompt_text_tower='',             # '' = config.stream.backbone, else 'offline'
                                        # (MiniLM) | 'clip:<path>' (coop and maple)
  )


def settings(config) -> dict:
  """``defaults()`` overridden by the fields present in ``config``."""
  return {name: config.get(name, value) for name, value in defaults().items()}


def validate(config) -> None:
  """Raises ValueError naming a CoOp field that cannot run (the text tower is checked
  when it is loaded)."""
  check_fields(settings(config), (('coop_context_length', '> 0', 'M, learned context vectors'),))


# ---------------------------------------------------------------------------------------------
# The frozen text tower on token embeddings


@dataclasses.dataclass(frozen=True)
class PromptTower:
  """A frozen text tower that encodes token embeddings instead of token ids.

  Attributes:
    name: the tower spec ('offline' or 'clip:<path>').
    width: W, the token-embedding (hidden) width.
    embed_dim: d, the output embedding width.
    num_layers: transformer layers (the most a deep prompt can reach).
    start_id, end_id: the ids of the start and end tokens ([CLS]/[SEP], SOT/EOT).
    max_length: the longest token sequence the tower takes.
    pieces: ``text -> list[int]``, word-piece ids without start/end tokens.
    word_embeddings: [V, W] the frozen token-embedding table (host numpy; read at build time).
    params: the frozen weights ``encode`` uses (everything but the token-embedding table).
    encode_fn: see ``encode``.
  """

  name: str
  width: int
  embed_dim: int
  num_layers: int
  start_id: int
  end_id: int
  max_length: int
  pieces: Callable[[str], list[int]]
  word_embeddings: np.ndarray
  params: Any
  encode_fn: Callable

  def encode(self, tokens, mask, end, *, deep_prompts=None, prompt_start=1,
             return_hidden=False):
    """Class embeddings from token embeddings (METHOD §1's f_T, prompts in the loop).

    Args:
      tokens: [C, L, W] token embeddings (learned context already in place).
      mask: [C, L] bool, real tokens.
      end: [C] int, the position of each row's end token.
      deep_prompts: [J−1, M, W] or None: the hidden states of positions
        ``prompt_start .. prompt_start+M−1`` at the input of layers 1..J−1 are replaced by
        these (MaPLe's deep prompts); None leaves every layer as it is.
      return_hidden: also return the inputs of every layer, [num_layers, C, L, W].
    Returns:
      [C, d] unit-norm embeddings (and the hidden states when asked).
    """
    params = jax.lax.stop_gradient(self.params)
    return self.encode_fn(params, tokens, mask, end, deep_prompts, prompt_start, return_hidden)


def _replace_prompts(hidden, deep_prompts, layer, start):
  """hidden [C, L, W] with positions start..start+M−1 set to deep_prompts[layer−1]."""
  if deep_prompts is None or layer == 0 or layer > deep_prompts.shape[0]:
    return hidden
  prompts = deep_prompts[layer - 1]
  return hidden.at[:, start:start + prompts.shape[0]].set(
      jnp.broadcast_to(prompts, (hidden.shape[0],) + prompts.shape))


def minilm_tower(encoder=None) -> PromptTower:
  """MiniLM (``models.minilm``) as a PromptTower: BERT embeddings LayerNorm over
  token + position + type-0 embeddings, post-LN layers, mean pooling over real tokens."""
  from autoseed_jax.models import minilm  # pylint: disable=import-outside-toplevel
  encoder = encoder or minilm.load_minilm()
  cfg, tokenizer = encoder.config, encoder.tokenizer
  frozen = {k: v for k, v in encoder.params.items() if k != 'word_embeddings'}

  def encode_fn(params, tokens, mask, end, deep_prompts, start, return_hidden):
    del end  # mean pooling
    length = tokens.shape[1]
    hidden = (tokens + params['position_embeddings']['embedding'][:length]
              + params['token_type_embeddings']['embedding'][0])
    hidden = nn.LayerNorm(epsilon=cfg.layer_norm_eps).apply(
        {'params': params['embeddings_layer_norm']}, hidden)
    inputs = []
    for i in range(cfg.num_layers):
      hidden = _replace_prompts(hidden, deep_prompts, i, start)
      inputs.append(hidden)
      hidden = minilm.BertLayer(cfg).apply({'params': params[f'layer_{i}']}, hidden, mask)
    out = minilm.mean_pool_normalize(hidden, mask)
    return (out, jnp.stack(inputs)) if return_hidden else out

  return PromptTower(
      name='offline', width=cfg.hidden_size, embed_dim=cfg.hidden_size,
      num_layers=cfg.num_layers, start_id=tokenizer.token_to_id('[CLS]'),
      end_id=tokenizer.token_to_id('[SEP]'), max_length=cfg.max_seq_length,
      pieces=lambda text: tokenizer.encode(text, add_special_tokens=False).ids,
      word_embeddings=np.asarray(encoder.params['word_embeddings']['embedding']),
      params=frozen, encode_fn=encode_fn)


def clip_tower(params, config, name: str = 'clip') -> PromptTower:
  """CLIP's text transformer (``models.clip``) as a PromptTower: token + positional
  embeddings, causal pre-LN blocks, ln_final, the features at the end token, projection.

  params: the CLIP params pytree (its 'text' entry is used); config: its CLIPConfig.
  """
  from autoseed_jax.models import clip  # pylint: disable=import-outside-toplevel
  from autoseed_jax.models.clip_tokenizer import get_tokenizer  # pylint: disable=import-outside-toplevel
  text = params['text']
  frozen = jax.tree.map(lambda leaf: jnp.asarray(leaf, jnp.float32),
                        {k: v for k, v in text.items() if k != 'token_embedding'})
  tokenizer = get_tokenizer(config.context_length)

  def encode_fn(params, tokens, mask, end, deep_prompts, start, return_hidden):
    del mask  # causal attention: padding after the end token never reaches it
    hidden = tokens + params['positional_embedding'][:tokens.shape[1]]
    inputs = []
    for i in range(config.text_layers):
      hidden = _replace_prompts(hidden, deep_prompts, i, start)
      inputs.append(hidden)
      block = clip.ResidualAttentionBlock(config.text_heads, config.text_mlp_width(),
                                          config.quick_gelu)
      hidden = block.apply({'params': params['transformer'][f'resblocks_{i}']}, hidden,
                           causal=True)
    hidden = nn.LayerNorm(epsilon=clip.LAYER_NORM_EPSILON).apply(
        {'params': params['ln_final']}, hidden)
    pooled = jnp.take_along_axis(hidden, end[:, None, None], axis=1)[:, 0]
    out = l2_normalize(jnp.matmul(pooled, params['text_projection'],
                                  precision=clip.MATMUL_PRECISION))
    return (out, jnp.stack(inputs)) if return_hidden else out

  return PromptTower(
      name=name, width=config.text_width, embed_dim=config.embed_dim,
      num_layers=config.text_layers, start_id=tokenizer.start_of_text_id,
      end_id=tokenizer.end_of_text_id, max_length=config.context_length,
      pieces=tokenizer.encode,
      word_embeddings=np.asarray(text['token_embedding']['embedding'], np.float32),
      params=frozen, encode_fn=encode_fn)


def tower_spec(config) -> str:
  """The text tower a config asks for: ``prompt_text_tower``, else the stream's backbone."""
  spec = config.get('prompt_text_tower', '')
  if not spec:
    stream = config.get('stream')
    spec = (stream.get('backbone', 'offline') if stream is not None else 'offline')
  return spec


@functools.lru_cache(maxsize=2)
def load_tower(spec: str) -> PromptTower:
  """The frozen text tower named by ``spec`` ('offline' or 'clip:<path>'), loaded once."""
  if spec == 'offline':
    return minilm_tower()
  if spec.startswith('clip:'):
    from autoseed_jax.models.clip import CLIPBackbone  # pylint: disable=import-outside-toplevel
    backbone = CLIPBackbone.from_checkpoint(spec[len('clip:'):])
    return clip_tower(backbone.params, backbone.config, name=spec)
  raise ValueError(f"invalid config: prompt_text_tower={spec!r}; use 'offline' (MiniLM) or "
                   "'clip:/path/to/open_clip_model.safetensors' (the stream's backbone).")


# ---------------------------------------------------------------------------------------------
# Class prompts as constant token arrays


@dataclasses.dataclass(frozen=True)
class ClassPrompts:
  """Every class's prompt as fixed arrays (built once; constants of the step functions).

  Attributes:
    tokens: [C, L, W] float32 frozen token embeddings (the context slots hold the
      embeddings of the phrase's word pieces, or of the start token for a random init).
    mask: [C, L] bool, real tokens.
    end: [C] int32, the position of each end token.
    context_init: [M, W] float32, the context's initial value (None: draw it randomly).
    start: position of the first context slot (1, after the start token).
    texts: the C prompt texts the arrays encode (with the initial context).
  """

  tokens: np.ndarray
  mask: np.ndarray
  end: np.ndarray
  context_init: np.ndarray | None
  start: int
  texts: tuple[str, ...]

  def with_context(self, context: jax.Array) -> jax.Array:
    """[C, L, W] token embeddings with the context [M, W] in slots start..start+M−1."""
    num_classes = self.tokens.shape[0]
    return jnp.asarray(self.tokens).at[:, self.start:self.start + context.shape[0]].set(
        jnp.broadcast_to(context, (num_classes,) + context.shape))


def build_class_prompts(tower: PromptTower, class_names, *, context_length: int,
                        context_init: str, field: str = 'coop') -> ClassPrompts:
  """The prompts ``[start] <context phrase> {class}. [end]`` of every class, padded to one length.

  ``context_init`` non-empty: its first ``context_length`` word pieces are the learnable
  slots (initialised with their embeddings). Empty: ``context_length`` slots are inserted
  before the class name and initialised randomly by the caller.
  """
  if not class_names:
    raise ValueError(f'{field}: the stream has no class names to build prompts from.')
  if context_length <= 0:
    raise ValueError(f'invalid config: {field}_context_length={context_length} must be > 0.')
  phrase = context_init.strip()
  phrase_ids = tower.pieces(phrase) if phrase else []
  if phrase and len(phrase_ids) < context_length:
    raise ValueError(
        f'invalid config: {field}_context_init={context_init!r} has {len(phrase_ids)} word '
        f'pieces for {field}_context_length={context_length} context vectors; use a longer '
        f'phrase, {field}_context_length<={len(phrase_ids)}, or {field}_context_init=\'\' '
        '(random initialisation).')
  rows, texts = [], []
  for name in class_names:
    if phrase:
      text = f'{phrase} {name}.'
      ids = tower.pieces(text)
      if ids[:len(phrase_ids)] != phrase_ids:
        raise ValueError(f'{field}: the tokens of {text!r} do not begin with those of '
                         f'{phrase!r}; end the context phrase at a word boundary.')
      rows.append([tower.start_id] + ids + [tower.end_id])
    else:
      text = f'{name}.'
      rows.append([tower.start_id] * (1 + context_length) + tower.pieces(text) + [tower.end_id])
    texts.append(text)
  length = max(len(r) for r in rows)
  if length > tower.max_length:
    raise ValueError(f'{field}: a class prompt has {length} tokens, more than the text '
                     f'tower takes ({tower.max_length}); shorten {field}_context_init or '
                     'the class names.')
  ids = np.zeros((len(rows), length), np.int64)
  mask = np.zeros((len(rows), length), bool)
  for i, row in enumerate(rows):
    ids[i, :len(row)], mask[i, :len(row)] = row, True
  tokens = tower.word_embeddings[ids].astype(np.float32)
  tokens[~mask] = 0.0
  init = (tower.word_embeddings[phrase_ids[:context_length]].astype(np.float32)
          if phrase else None)
  return ClassPrompts(tokens=tokens, mask=mask,
                      end=np.array([len(r) - 1 for r in rows], np.int32),
                      context_init=init, start=1, texts=tuple(texts))


def initial_context(prompts: ClassPrompts, key, context_length: int, width: int) -> jax.Array:
  """[M, W]: the phrase's word-piece embeddings, or N(0, 0.02²) for a random init."""
  if prompts.context_init is not None:
    return jnp.asarray(prompts.context_init)
  return CONTEXT_INIT_STD * jax.random.normal(key, (context_length, width), jnp.float32)


def check_tower_fits(tower: PromptTower, context: Context, method: str) -> None:
  """Raises ValueError when the tower's embeddings cannot be the stream's class embeddings."""
  if tower.embed_dim != context.dim:
    raise ValueError(
        f'{method}: the text tower {tower.name!r} gives {tower.embed_dim}-d embeddings but the '
        f'stream has {context.dim}-d ones; prompt learning needs the stream embedded by that '
        'backbone (set prompt_text_tower to the stream\'s backbone, e.g. \'clip:<path>\').')


def check_class_bank(text_z, prompts: ClassPrompts, method: str) -> None:
  """The engine's class bank must be the stream's C classes (the rows prompts are built for)."""
  if text_z is not None and text_z.shape[0] != prompts.tokens.shape[0]:
    raise ValueError(f'{method}: class embeddings were asked for {text_z.shape[0]} classes, '
                     f'but prompts exist for the stream\'s {prompts.tokens.shape[0]}.')


def frozen_image(image_z):
  """[N, d] cached image embeddings, unit norm (the image side CoOp leaves untouched)."""
  return None if image_z is None else l2_normalize(image_z)


@dataclasses.dataclass(frozen=True)
class CoOpMethod(Method):
  """``Method`` plus what tests and tools read: the tower, the prompts, ``class_embeddings``."""

  tower: PromptTower | None = None
  prompts: ClassPrompts | None = None
  class_embeddings: Callable | None = None


def coop(context: Context, *, tower: PromptTower | None = None) -> Method:
  """Builds the CoOp hooks for ``context`` (see module doc); ``tower`` overrides the config's."""
  validate(context.config)
  s = settings(context.config)
  tower = tower or load_tower(tower_spec(context.config))
  check_tower_fits(tower, context, 'coop')
  prompts = build_class_prompts(tower, context.class_names,
                                context_length=s['coop_context_length'],
                                context_init=s['coop_context_init'], field='coop')
  scale = jnp.float32(context.config.init_logit_scale)
  mask, end = jnp.asarray(prompts.mask), jnp.asarray(prompts.end)

  def class_embeddings(params):
    """[C, d] w_c = f_T(prompt_c(t)) for every class of the stream."""
    return tower.encode(prompts.with_context(params['context']), mask, end,
                        prompt_start=prompts.start)

  def init_params(key, adapter_variables):
    del adapter_variables  # CoOp trains the context only
    key = jax.random.fold_in(key, _COOP_INIT_TAG)
    return {'context': initial_context(prompts, key, s['coop_context_length'], tower.width)}

  def embed(params, image_z=None, text_z=None):
    check_class_bank(text_z, prompts, 'coop')
    class_emb = None if text_z is None else class_embeddings(params)
    return frozen_image(image_z), class_emb, scale

  return CoOpMethod(name='coop', init_params=init_params, embed=embed, tower=tower,
                    refusal=PROMPT_REFUSAL,
                    prompts=prompts, class_embeddings=class_embeddings)

