"""MaPLe-style multimodal prompts (Khattak et al. 2023) on cached image embeddings (METHOD §7).

Text branch (as in MaPLe). Learned prompts P_0 ∈ R^{M×W} take the place of the first M
word pieces of ``[start] <context phrase> {class}. [end]`` (as CoOp's context,
``autoseed_jax.methods.coop``), and deep prompts P_1..P_{J−1} ∈ R^{M×W} replace the hidden
states of those M positions at the input of the text tower's layers 1..J−1 (J =
``maple_prompt_depth``; J = 1 is shallow prompting). The frozen tower then gives the class
embeddings w_c ∈ R^d.

Vision branch, coupled. MaPLe's vision prompts are not free parameters: each is a learned
linear map of the text prompts of the same depth (the coupling functions F_j). Here

    Ṽ_j = γ · (rms(P_j) K_j + b_j),   K_j ∈ R^{W×d}, b_j ∈ R^d,

M vision prompts of width d per depth, where rms(p) = p / RMS(p) (a parameter-free
LayerNorm scale, as the pre-LN towers apply before attention reads a token) and γ =
``maple_coupling_scale`` (default 1/W). Both are ours: the deep prompts start at hidden
states of norm ≈ 11 (MiniLM) against input prompts of norm ≈ 1, and Adam moves every entry
of a zero-initialised K by about the learning rate per step, so without them Ṽ reached
norm ≈ 7 after one task on animals-ci and the residual below swamped the unit-norm image
embedding (cos(h_I(z), z) ≈ 0.2; every image was predicted as the current task's classes).
With them Ṽ stays ≈ 0.1–0.2 per task (cos ≈ 0.95). How the image side uses the prompts
differs from MaPLe, because the image tower is not in the loop (the stream holds cached
image embeddings z = f_I(x)):

  * MaPLe appends Ṽ_j as extra tokens to the ViT's input (j = 0) or swaps them in at the
    input of layer j (j ≥ 1), so they act through every later layer's attention and MLP,
    and the image embedding is the tower's output.
  * Here each depth is one parameter-free attention step on the embedding itself: the
    running image embedding u (unit norm, starting at z) attends to that depth's vision
    prompts, which act as both keys and values, and the result is a residual:

        a = softmax_m(⟨u, Ṽ_{j,m}⟩),   u ← normalize(u + Σ_m a_m Ṽ_{j,m}),   j = 0..J−1,

    and h_I(z) = u. This is the class token of one attention layer reading J sets of
    prompt tokens with identity query/key/value maps (the frozen ViT's projections and
    the rest of its layers are absent). The image side has no parameters of its own:
    it changes only through the coupling (K, b) and the text prompts it maps.

The coupling starts at zero (MaPLe's is a default-initialised linear layer), so Ṽ = 0 and
h_I(z) = z: the initial image side is the frozen backbone's, and the initial class
embeddings are those of the prompt text (exactly for J = 1 or a causal tower such as CLIP;
see the deep-prompt initialisation below). The gradient still reaches K and b at zero
(the residual is then γ (mean_m rms(P_{j,m}) K_j + b_j)).

Deep-prompt initialisation: with ``maple_context_init`` set, P_j (j ≥ 1) starts at the
mean over classes of the frozen tower's hidden states at the prompt positions at the
input of layer j (the phrase "a photo of a"'s own states); for CLIP's causal tower those do
not depend on the class, so the initial model is exactly the prompt text's. MaPLe draws
them from N(0, 0.02²), which is what an empty ``maple_context_init`` does.

Trained: P_0..P_{J−1}, K, b. Frozen: the text tower, the cached image embeddings and the
logit scale (``init_logit_scale``). ``state.params`` is ``{'context': [M, W],
'deep_context': [J−1, M, W], 'coupling': {'kernel': [J, W, d], 'bias': [J, d]}}``.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp

from autoseed_jax.core.losses import l2_normalize
from autoseed_jax.core.config_checks import check_fields
from autoseed_jax.methods.base import Context, Method
from autoseed_jax.methods.coop import (CONTEXT_INIT_STD, PROMPT_REFUSAL, ClassPrompts,
                                       PromptTower, build_class_prompts, check_class_bank,
                                       check_tower_fits, initial_context, load_tower,
                                       tower_spec)

# Tag folded into the run key for MaPLe's initialisation.
_MAPLE_INIT_TAG = 32


def defaults() -> dict:
  """MaPLe hyperparameters and their defaults (config fields of the same names).

  The text tower is ``prompt_text_tower`` (shared with coop; ``coop.defaults()``).
  """
  return dict(
      maple_context_length=2,             # M prompt vectors per depth (MaPLe: 2)
      maple_context_init='a photo of a',  # phrase whose first M word pieces initialise P_0
                                          # ('' = random N(0, 0.02²), deep prompts too)
      maple_prompt_depth=3,               # J: layers with prompts, 1 = shallow (MaPLe: 9
                                          # of CLIP's 12; MiniLM has 6)
      maple_coupling_scale=0.0,           # γ of the coupling output; 0 = 1/W (W: the text
                                          # tower's width)
  )


def settings(config) -> dict:
  """``defaults()`` overridden by the fields present in ``config``."""
  return {name: config.get(name, value) for name, value in defaults().items()}


def validate(config) -> None:
  """Raises ValueError naming a MaPLe field that cannot run (the prompt depth is checked
  against the text tower's layers when the tower is loaded)."""
  check_fields(settings(config), (
      ('maple_context_length', '> 0', 'M, prompt vectors per depth'),
      ('maple_prompt_depth', '> 0', 'J, layers with prompts; 1 = shallow'),
      ('maple_coupling_scale', '>= 0', 'γ of the coupling output; 0 = 1/W')))


def rms_normalize(x: jax.Array, eps: float = 1e-6) -> jax.Array:
  """x [..., W] divided by its root mean square over W (a parameter-free LayerNorm scale)."""
  return x * jax.lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + eps)


def vision_prompts(params, coupling_scale: float) -> jax.Array:
  """[J, M, d]: Ṽ_j = γ (rms(P_j) K_j + b_j), the coupled vision prompts of every depth."""
  text = jnp.concatenate([params['context'][None], params['deep_context']], axis=0)
  coupling = params['coupling']
  mapped = jnp.einsum('jmw,jwd->jmd', rms_normalize(text), coupling['kernel'])
  return coupling_scale * (mapped + coupling['bias'][:, None])


def prompted_image(image_z: jax.Array, prompts: jax.Array) -> jax.Array:
  """h_I(z): image_z [N, d] through one attention residual per depth of prompts [J, M, d].

  u ← normalize(u + softmax(u Ṽ_jᵀ) Ṽ_j), starting from u = normalize(image_z).
  """
  u = l2_normalize(image_z)
  for j in range(prompts.shape[0]):
    weights = jax.nn.softmax(u @ prompts[j].T, axis=-1)  # [N, M]
    u = l2_normalize(u + weights @ prompts[j])
  return u


@dataclasses.dataclass(frozen=True)
class MapleMethod(Method):
  """``Method`` plus what tests and tools read: the tower, the prompts, the two branches."""

  tower: PromptTower | None = None
  prompts: ClassPrompts | None = None
  class_embeddings: Callable | None = None
  image_embeddings: Callable | None = None


def maple(context: Context, *, tower: PromptTower | None = None) -> Method:
  """Builds the MaPLe hooks for ``context`` (see module doc); ``tower`` overrides the config's."""
  validate(context.config)
  s = settings(context.config)
  tower = tower or load_tower(tower_spec(context.config))
  check_tower_fits(tower, context, 'maple')
  depth, length = s['maple_prompt_depth'], s['maple_context_length']
  if not 1 <= depth <= tower.num_layers:
    raise ValueError(f'invalid config: maple_prompt_depth={depth} must be in 1..'
                     f'{tower.num_layers} (the text tower\'s layers).')
  prompts = build_class_prompts(tower, context.class_names, context_length=length,
                                context_init=s['maple_context_init'], field='maple')
  scale = jnp.float32(context.config.init_logit_scale)
  mask, end = jnp.asarray(prompts.mask), jnp.asarray(prompts.end)
  start = prompts.start
  coupling_scale = s['maple_coupling_scale'] or 1.0 / tower.width

  def class_embeddings(params):
    """[C, d] class embeddings from the text prompts P_0 (input) and P_1.. (deep)."""
    return tower.encode(prompts.with_context(params['context']), mask, end,
                        deep_prompts=params['deep_context'], prompt_start=start)

  def image_embeddings(params, image_z):
    """[N, d] h_I(z) through the coupled vision prompts."""
    return prompted_image(image_z, vision_prompts(params, coupling_scale))

  def init_params(key, adapter_variables):
    del adapter_variables  # MaPLe trains prompts and coupling only
    k_ctx, k_deep = jax.random.split(jax.random.fold_in(key, _MAPLE_INIT_TAG))
    first = initial_context(prompts, k_ctx, length, tower.width)
    if prompts.context_init is None:
      deep = CONTEXT_INIT_STD * jax.random.normal(k_deep, (depth - 1, length, tower.width))
    else:  # the phrase's own hidden states at the prompt positions, mean over classes
      _, hidden = tower.encode(prompts.with_context(first), mask, end, prompt_start=start,
                               return_hidden=True)
      deep = jnp.mean(hidden[1:depth, :, start:start + length], axis=1)
    return {'context': first, 'deep_context': deep,
            'coupling': {'kernel': jnp.zeros((depth, tower.width, context.dim), jnp.float32),
                         'bias': jnp.zeros((depth, context.dim), jnp.float32)}}

  def embed(params, image_z=None, text_z=None):
    check_class_bank(text_z, prompts, 'maple')
    img = None if image_z is None else image_embeddings(params, image_z)
    class_emb = None if text_z is None else class_embeddings(params)
    return img, class_emb, scale

  return MapleMethod(name='maple', init_params=init_params, embed=embed, tower=tower,
                     refusal=PROMPT_REFUSAL,
                     prompts=prompts, class_embeddings=class_embeddings,
                     image_embeddings=image_embeddings)
