"""Auto-Seed VL2+ (``autoseed_plus``): the generator made to produce summaries of its classes.

METHOD's Auto-Seed VL2 with separately switchable changes (docs/autoseed_plus.md gives
each one precisely, with what it is for and the figure that shows it). The generator G_φ,
conditioned on task gradients and meta-learned through the unrolled inner loop, stays the
source of the seeds; it is built with ``methods.autoseed.autoseed`` and a ``Variant``, so
the seed update, the meta-update (``meta.meta_update``) and the replay are the paper
method's code.

Switches (config fields, defaults in ``defaults()``):

* ``plus_mmd_weight`` λ_mmd: a distribution-matching term in the outer loss, the RBF
  MMD² between a class's generated seeds and its real training embeddings
  (``losses.mmd_rbf``). Every term of METHOD's outer loss is smallest at the class mean;
  this one is smallest when the seeds spread like the data. 0: off.
* ``plus_seed_codes``: ``'slots'``: the j-th seed of every class gets a fixed noise code
  z_j (the same codes in every meta-step and at generation), so the k seeds of a class
  are one jointly trained set (a quantisation of the class) rather than k independent
  draws; candidates are ranked by their code's index, so what the budget keeps of a class
  is always a prefix z_1..z_q; no redundancy filter. ``'noise'``: METHOD's z ~ N(0, I),
  gradient-alignment scores and redundancy filter.
* ``plus_generator_base``: ``'image_mean'``: the residual generator starts v at the
  class's real image mean μ_I (known during the seed update; METHOD's anchor pulls seeds
  there) instead of its text embedding e_c, so G_φ learns offsets within the class rather
  than the jump from the text to the image region; ``'text'``: METHOD's e_c.
* ``plus_text_prototypes``: False: the memory stores no w (a seed's w is its class's text
  embedding e_c, which the model keeps for evaluation anyway), so a seed costs
  4·d + 13 bytes instead of 8·d + 13 and the same bytes hold twice the seeds.
* ``plus_fill_budget``: True: each new class keeps k_gen seeds and the memory is pruned
  to its budget K (balanced over classes), so the budget is used from the first task on;
  False: each class keeps K // C seeds (C: the stream's classes), the memory is full only
  after the last task.
* The variant's own loss weights (``plus_replay_weight`` λ_r, ``plus_consistency_weight``
  λ_c, ``plus_anchor_weight`` γ, ``plus_replay_infonce_weight``) and meta-steps
  (``plus_meta_steps``), chosen on the development streams (experiments/tune_plus.py).
* ``plus_guard``: what keeps the meta-update from ending worse than where it started
  (docs/autoseed_plus.md §6): ``'best_iterate'`` keeps the φ iterate with the lowest outer
  loss (``meta.meta_update(keep_best=True)``); ``'centres'`` falls back to the centre
  targets as the task's seeds, and to φ as it was before the update, when the generated
  seeds teach the task's held-out rows worse than the centres do
  (``autoseed.Variant.fallback``: by the outer loss with its data terms on D_t^val);
  ``'best_iterate+centres'`` both; ``'none'`` neither.
* ``plus_seed_source``: ``'generator'``; ``'centres'`` (ablation "generator vs its own
  starting centres"): the seeds are the k-means centres the generator is trained toward,
  no condition, no meta-update, everything else the same.

Every task kind (docs/VL_TASKS.md §6): a class or a VQA answer is summarised by centres of
its queries (w: the bank text, not stored); a retrieval or captioning task's seed groups
by centres of their (image, caption) pairs in a joint space (``plus_pair_points``), each
seed storing its caption-side w (``core.pair_groups``), and the memory is pruned to the
byte budget with each seed's own bytes. ``plus_pair_positives``: whether a pair seed's
InfoNCE positives are the seeds of its group or itself alone.

Memory: a byte budget, ``plus_memory_bytes`` (0: the bytes of ``memory_budget`` seeds of
METHOD's layout, i.e. the same bytes Auto-Seed VL2 is given); K = that // the bytes of one
seed of the variant's layout (``seeds.bytes_per_seed``), and ``memory_bytes`` counts what
the memory really holds (``seeds.nbytes``).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import ml_collections

from autoseed_jax.core import kmeans, losses, pair_groups, seeds, task_kinds
from autoseed_jax.core.config_checks import check_fields
from autoseed_jax.methods.autoseed import (RULES as AUTOSEED_RULES, PairReplay,
                                           SeedUpdateData, Variant, autoseed)
from autoseed_jax.methods.base import Context, Method

SEED_CODES = ('slots', 'noise')
GENERATOR_BASES = ('text', 'image_mean')
GUARDS = ('none', 'best_iterate', 'centres', 'best_iterate+centres')
PLUS_SEED_SOURCES = ('generator', 'centres')
# Seed of the fixed noise codes z_1..z_k of ``plus_seed_codes='slots'`` (the same in every run).
_CODES_SEED = 20260101


def defaults() -> dict:
  """autoseed_plus hyperparameters and their defaults (config fields of the same names).

  The summary-seed baselines (methods/summary_seeds.py) replay and budget exactly as this
  variant does, with the same fields.
  """
  return dict(
      plus_mmd_weight=0.0,         # λ_mmd, distribution matching in the outer loss (0: off)
      plus_centre_weight=100.0,    # λ_centre, slot j pulled to the class's j-th k-means
                                   # centre (largest cluster first; slots only; 0: off)
      plus_seed_codes='slots',     # 'slots' (fixed code per seed index) | 'noise' (METHOD)
      plus_generator_base='image_mean',  # G_φ starts v at: 'text' e_c (METHOD) |
                                         # 'image_mean' the class's real image mean μ_I
      plus_text_prototypes=False,  # store w (METHOD) or stand it by the class text e_c
      plus_fill_budget=True,       # k_gen seeds per new class, pruned to K | K // C per class
      plus_memory_bytes=0,         # byte budget; 0: that of memory_budget METHOD seeds
      plus_replay_weight=1.0,      # λ_r of the variant
      plus_consistency_weight=0.3,  # λ_c of the variant
      plus_anchor_weight=0.0,      # γ of the variant (the anchor pulls seeds to the mean)
      plus_replay_infonce_weight=1.0,  # weight of InfoNCE inside the variant's L_replay
      plus_meta_steps=100,         # M of the variant: Adam steps on φ per task
      plus_guard='best_iterate+centres',  # 'none' | 'best_iterate' (keep the best φ iterate) |
                                   # 'centres' (fall back to the centre targets and the
                                   # previous φ when they teach D_t^val better) |
                                   # 'best_iterate+centres'
      plus_seed_source='generator',  # 'generator' | 'centres' (ablation: the centre
                                     # targets as seeds, no generator)
      plus_pair_points='sum',      # joint space of a pair group's rows: 'concat' | 'sum'
      plus_pair_positives='group',  # InfoNCE positives of a pair seed: 'group' | 'seed'
      plus_pair_infonce_weight=0.0,  # InfoNCE weight of pair seeds (among themselves)
      plus_pair_consistency_weight=10.0,  # λ_c of pair seeds
      mmd_bandwidths=(0.25, 0.5, 1.0),  # RBF widths σ of every MMD term (mean of kernels)
      mmd_points=256,              # real rows per class an MMD term compares seeds with
  )


def settings(config) -> dict:
  """``defaults()`` overridden by the fields present in ``config``."""
  return {name: config.get(name, value) for name, value in defaults().items()}


@dataclasses.dataclass(frozen=True)
class MemoryPlan:
  """How a seed method of this family spends its bytes (see module doc).

  Attributes:
    budget_bytes: the byte budget.
    budget: K, seeds the memory keeps (budget_bytes // bytes per seed); with
      ``pair_text``, the most seeds the budget can hold (all of the smaller layout).
    text_prototypes: whether every seed stores w.
    per_new_class: seeds each class (group) keeps when its task ends.
    candidates: k_gen, candidates made per class (>= per_new_class).
    pair_text: a vision-language stream with retrieval or captioning tasks: seeds of their
      pair groups store w, the others do not, and the memory is pruned by bytes
      (``Variant.pair_text``).
  """

  budget_bytes: int
  budget: int
  text_prototypes: bool
  per_new_class: int
  candidates: int
  pair_text: bool = False


# Fields shared by the family (autoseed_plus and the summary seeds) and their allowed values.
FAMILY_RULES = (
    ('plus_memory_bytes', '>= 0', 'the byte budget; 0: that of memory_budget METHOD seeds'),
    ('plus_replay_weight', '>= 0', 'λ_r of the family'),
    ('plus_consistency_weight', '>= 0', 'λ_c of the family'),
    ('plus_anchor_weight', '>= 0', 'γ of the family'),
    ('plus_replay_infonce_weight', '>= 0', 'weight of in-batch InfoNCE inside L_replay'),
    ('plus_meta_steps', '>= 0', 'M of the family'),
    ('plus_pair_infonce_weight', '>= 0', 'InfoNCE weight of the seeds of pair groups'),
    ('plus_pair_consistency_weight', '>= 0', 'λ_c of the seeds of pair groups'),
    ('mmd_points', '> 0', 'real rows per class the MMD term compares with'),
)
PLUS_RULES = (
    ('plus_mmd_weight', '>= 0', 'λ_mmd; 0: off'),
    ('plus_centre_weight', '>= 0', 'λ_centre; 0: off'),
)
# Task kinds the family runs: every one (a class, an answer or a pair group is summarised;
# core.pair_groups, docs/VL_TASKS.md §6).
KINDS = task_kinds.KINDS
# Choice fields of the family and their values.
FAMILY_CHOICES = (('plus_pair_points', pair_groups.JOINT_MODES),
                  ('plus_pair_positives', pair_groups.POSITIVES))


def validate_family(config) -> None:
  """Raises ValueError naming the field and a fix for values the family cannot run (METHOD's
  numeric fields included; k and k_gen follow from the byte budget, ``memory_plan``);
  needs no stream."""
  check_fields(config, AUTOSEED_RULES)
  s = settings(config)
  check_fields(s, FAMILY_RULES)
  for name, choices in FAMILY_CHOICES:
    if s[name] not in choices:
      raise ValueError(f'invalid config: {name}={s[name]!r}; choose one of {choices}.')
  if not s['mmd_bandwidths'] or min(s['mmd_bandwidths']) <= 0:
    raise ValueError(f"invalid config: mmd_bandwidths={tuple(s['mmd_bandwidths'])} must be "
                     'positive kernel widths.')


def validate(config) -> None:
  """``validate_family`` and autoseed_plus's own switches."""
  validate_family(config)
  s = settings(config)
  check_fields(s, PLUS_RULES)
  for name, choices in (('plus_seed_codes', SEED_CODES),
                        ('plus_generator_base', GENERATOR_BASES), ('plus_guard', GUARDS),
                        ('plus_seed_source', PLUS_SEED_SOURCES)):
    if s[name] not in choices:
      raise ValueError(f'invalid config: {name}={s[name]!r}; choose one of {choices}.')
  if s['plus_centre_weight'] > 0 and s['plus_seed_codes'] != 'slots':
    raise ValueError("invalid config: plus_centre_weight > 0 needs plus_seed_codes='slots' "
                     '(a centre target per seed index); set one of them.')


def family_budget_bytes(config, dim: int) -> int:
  """The family's byte budget B: ``plus_memory_bytes``, or when 0 the bytes of
  ``memory_budget`` seeds of METHOD's layout (``seeds.bytes_per_seed``)."""
  paper_seed = seeds.bytes_per_seed(seeds.init_memory(1, dim))
  return int(settings(config)['plus_memory_bytes']) or int(config.memory_budget) * paper_seed


def memory_plan(config, dim: int, num_classes: int, vl=None) -> MemoryPlan:
  """The ``MemoryPlan`` of ``config`` for ``num_classes`` classes of ``dim``-dim embeddings
  (``vl``: a vision-language stream's ``VLInfo``; its seed groups then stand for classes,
  ``vl.num_groups``, an upper bound of the summary groups)."""
  s = settings(config)
  budget_bytes = family_budget_bytes(config, dim)
  text_dim = dim if s['plus_text_prototypes'] else 0
  per_seed = seeds.bytes_per_seed(seeds.init_memory(1, dim, text_dim=text_dim))
  pair_text = False
  if vl is not None:
    num_classes = max(int(vl.num_groups), 1)
    pair_kinds = {task_kinds.KINDS[k] for k in task_kinds.PAIR_KINDS}
    pair_text = not s['plus_text_prototypes'] and bool(pair_kinds & set(vl.kinds))
    if pair_text and not set(vl.kinds) - pair_kinds:  # only pair seeds: all store w
      per_seed = seeds.bytes_per_seed(seeds.init_memory(1, dim))
  budget = budget_bytes // per_seed
  if budget <= 0:
    raise ValueError(f'invalid config: a byte budget of {budget_bytes} holds no seed of '
                     f'{per_seed} bytes; raise plus_memory_bytes or memory_budget.')
  final_per_class = max(1, math.ceil(budget / num_classes))
  candidates = max(int(config.candidates_per_class), final_per_class)
  per_new_class = candidates if s['plus_fill_budget'] else max(1, budget // num_classes)
  return MemoryPlan(budget_bytes=budget_bytes, budget=budget,
                    text_prototypes=bool(s['plus_text_prototypes']),
                    per_new_class=per_new_class, candidates=candidates, pair_text=pair_text)


def family_loss_config(config) -> ml_collections.ConfigDict:
  """``config`` with METHOD's loss fields set to the family's: λ_r, λ_c, γ, the InfoNCE
  weight of L_replay and M (a copy; ``config`` is not changed)."""
  s = settings(config)
  derived = ml_collections.ConfigDict(config.to_dict())
  derived.replay_weight = float(s['plus_replay_weight'])
  derived.consistency_weight = float(s['plus_consistency_weight'])
  derived.anchor_weight = float(s['plus_anchor_weight'])
  derived.replay_infonce_weight = float(s['plus_replay_infonce_weight'])
  derived.meta_steps = int(s['plus_meta_steps'])
  return derived


def seed_method_config(config, plan: MemoryPlan) -> ml_collections.ConfigDict:
  """``config`` with the fields METHOD's hooks read set to this family's values: its loss
  weights, K and the seeds kept per class (a copy; ``config`` is not changed).

  """
  derived = family_loss_config(config)
  derived.memory_budget = plan.budget
  derived.memory_capacity = 0
  derived.seeds_per_class = plan.per_new_class
  derived.candidates_per_class = plan.candidates
  return derived


def family_update_data(task) -> SeedUpdateData:
  """The family's seed groups of ``task`` on a vision-language stream: classes, VQA
  answers, or a pair task's seed groups (``pair_groups.summary_groups``)."""
  groups = pair_groups.summary_groups(task)
  return SeedUpdateData(labels=groups.labels, class_text=groups.text, class_ok=groups.ok,
                        train_weights=groups.train_weights, val_weights=groups.val_weights,
                        image_means=groups.image_means, train_x=task.train_x,
                        stores_text=groups.stores_text, train_text=task.train_text,
                        val_x=task.val_x, val_text=task.val_text)


def summary_pairs(data: SeedUpdateData, key, *, num_centres: int, mode: str,
                  iterations: int = 20) -> tuple[jax.Array, jax.Array, jax.Array]:
  """(v [n, k, d], w [n, k, d], sizes [n, k]) of ``pair_groups.group_summaries`` for a
  vision-language task's groups (``family_update_data``: a task of a pair kind is the one
  whose groups store w); a bank group's w is its bank text."""
  pair = jnp.any(data.stores_text)
  points = pair_groups.joint_points(data.train_x, data.train_text, pair, mode)
  v, w, sizes = pair_groups.group_summaries(points, data.train_x, data.train_text,
                                            data.train_weights, key, num_centres=num_centres,
                                            iterations=iterations)
  w = jnp.where(data.stores_text[:, None, None], w, data.class_text[:, None, :])
  return v, w, sizes


def pair_replay(config) -> PairReplay:
  """How the family replays seeds of pair groups (``autoseed.PairReplay``)."""
  s = settings(config)
  return PairReplay(positives=s['plus_pair_positives'],
                    infonce_weight=float(s['plus_pair_infonce_weight']),
                    consistency_weight=float(s['plus_pair_consistency_weight']))


def family_variant(context: Context, plan: MemoryPlan, **fields) -> Variant:
  """A ``Variant`` of the family for ``context``'s stream: its groups, byte rule and
  InfoNCE positives on a vision-language stream; ``fields`` the method's own."""
  vl_fields = {}
  if context.vl is not None:
    vl_fields = dict(update_data=family_update_data, pair_text=plan.pair_text,
                     budget_bytes=plan.budget_bytes, pair_replay=pair_replay(context.config))
  return Variant(text_prototypes=plan.text_prototypes, kinds=KINDS, **vl_fields, **fields)


def class_mmd(v, slot, ok, real_x, real_ok, *, bandwidths) -> jax.Array:
  """Mean over classes of ``losses.mmd_rbf`` between a class's seeds and its real rows.

  Args:
    v: [S, d] seeds; slot: [S] class row of each; ok: [S] bool valid seeds.
    real_x: [n, P, d] real rows of each class; real_ok: [n, P] bool.

  Returns:
    Scalar: the mean over classes with seeds and real rows (0 when there is none).
  """
  n = real_x.shape[0]
  own = (slot[None, :] == jnp.arange(n)[:, None]) & ok[None, :]          # [n, S]
  per_class = jax.vmap(lambda mask, x, x_ok: losses.mmd_rbf(
      v, x, bandwidths=bandwidths, x_mask=mask, y_mask=x_ok))(own, real_x, real_ok)
  present = jnp.any(own, axis=1) & jnp.any(real_ok, axis=1)
  return jnp.sum(jnp.where(present, per_class, 0.0)) / jnp.maximum(jnp.sum(present), 1)


def held_out_distortion(v, w, slot, ok, data: SeedUpdateData, *, with_text: bool) -> jax.Array:
  """The mean over D_t^val rows of the squared distance to the nearest seed of the row's
  group: ‖x − v‖² (+ ‖t − w‖² with ``with_text``, the pair form); the held-out form of the
  centre-target term (k-means' objective on held-out rows). v, w: [S, d] seeds; slot: [S]
  their group row of ``data``; ok: [S] valid. Rows of groups without seeds do not count."""
  dist = jnp.sum((data.val_x[:, None] - v[None]) ** 2, axis=-1)                  # [Nv, S]
  if with_text:
    dist = dist + jnp.sum((data.val_text[:, None] - w[None]) ** 2, axis=-1)
  same_group = (data.val_weights[slot].T > 0) & ok[None]                          # [Nv, S]
  nearest = jnp.min(jnp.where(same_group, dist, jnp.inf), axis=1)
  counted = jnp.any(same_group, axis=1)
  return jnp.sum(jnp.where(counted, nearest, 0.0)) / jnp.maximum(jnp.sum(counted), 1)


def real_rows(key, data, num: int):
  """(real_x [n, P, d], real_ok [n, P]): up to ``num`` random training rows of each class
  of a ``SeedUpdateData``."""
  rows, ok = kmeans.sample_class_rows(data.train_weights, key, num)
  return data.train_x[rows], ok & data.class_ok[:, None]


def slot_codes(num: int, noise_dim: int) -> jax.Array:
  """[num, noise_dim] the fixed noise codes z_1..z_num of ``plus_seed_codes='slots'``."""
  return jax.random.normal(jax.random.PRNGKey(_CODES_SEED), (num, noise_dim))


def autoseed_plus(context: Context) -> Method:
  """Builds the autoseed_plus hooks for ``context.config`` (see module doc)."""
  config = context.config
  validate(config)
  s = settings(config)
  plan = memory_plan(config, context.dim, context.num_classes, context.vl)
  derived = seed_method_config(config, plan)
  slots = s['plus_seed_codes'] == 'slots'
  if slots:
    derived.meta_seeds_per_class = plan.candidates
    derived.redundancy_cosine = 2.0  # the codes are distinct seeds by construction
  from_centres = s['plus_seed_source'] == 'centres'
  falls_back = 'centres' in s['plus_guard']
  needs_centres = s['plus_centre_weight'] > 0 or falls_back or from_centres
  uses_data = s['plus_mmd_weight'] > 0 or needs_centres
  bandwidths = tuple(float(b) for b in s['mmd_bandwidths'])
  codes = slot_codes(plan.candidates, config.noise_dim)
  vl = context.vl is not None

  def noise(key, n_cls, per_class):
    del key
    return jnp.broadcast_to(codes[None, :per_class], (n_cls, per_class, config.noise_dim))

  def prepare(key, data):
    """(real rows of each class for MMD, their validity, centre targets v [n, k, d] and
    w [n, k, d] or None) of the seed update's task."""
    k_rows, k_means = jax.random.split(key)
    real_x, real_ok = real_rows(k_rows, data, int(s['mmd_points']))
    held_out = None
    if falls_back:  # D_t^val rows of each class for the guard's MMD term
      held_out = real_rows(k_rows, dataclasses.replace(
          data, train_x=data.val_x, train_weights=data.val_weights), int(s['mmd_points']))
    centres = None
    if needs_centres and vl:  # centres of every kind's groups, w too
      centres = summary_pairs(data, k_means, num_centres=plan.candidates,
                              mode=s['plus_pair_points'])[:2]
    elif needs_centres:
      v = kmeans.class_kmeans(data.train_x, data.train_weights, k_means,
                              num_centres=plan.candidates)[0]
      centres = (v, jnp.broadcast_to(data.class_text[:, None], v.shape))
    return real_x, real_ok, centres, held_out, data

  def outer_terms(v, w, slot, ok, aux):
    real_x, real_ok, centres = aux[:3]
    total = 0.0
    if s['plus_mmd_weight'] > 0:
      total = total + s['plus_mmd_weight'] * class_mmd(v, slot, ok, real_x, real_ok,
                                                       bandwidths=bandwidths)
    if s['plus_centre_weight'] > 0:
      target = centres[0].reshape(-1, v.shape[-1])  # [n * k_gen, d], the order of v
      dist = jnp.sum((v - target) ** 2, axis=-1)
      if vl:  # a pair seed's w is pulled to its centre's caption mean too
        dist = dist + jnp.sum((w - centres[1].reshape(-1, w.shape[-1])) ** 2, axis=-1)
      total = total + s['plus_centre_weight'] * jnp.sum(jnp.where(ok, dist, 0.0)) / jnp.maximum(
          jnp.sum(ok), 1)
    return total

  def scores(v, w, slot, ok, aux):
    del v, w, ok, aux
    index = jnp.arange(slot.shape[0]) % plan.candidates  # candidates are [n, k_gen] flat
    return -index.astype(jnp.float32)

  def held_out_terms(v, w, slot, ok, aux):
    """The outer terms above on D_t^val: the centre term as held-out distortion, the MMD
    against held-out rows (the guard's criterion)."""
    data, (val_x, val_ok) = aux[4], aux[3]
    total = 0.0
    if s['plus_mmd_weight'] > 0:
      total = total + s['plus_mmd_weight'] * class_mmd(v, slot, ok, val_x, val_ok,
                                                       bandwidths=bandwidths)
    if s['plus_centre_weight'] > 0:
      total = total + s['plus_centre_weight'] * held_out_distortion(v, w, slot, ok, data,
                                                                    with_text=vl)
    return total

  def centre_seeds(aux):
    return aux[2]

  variant = family_variant(
      context, plan, name='autoseed_plus',
      noise=noise if slots else None,
      image_mean_base=s['plus_generator_base'] == 'image_mean',
      prepare=prepare if uses_data else None,
      outer_terms=outer_terms if s['plus_mmd_weight'] > 0 or s['plus_centre_weight'] > 0
      else None,
      scores=scores if slots else None,
      keep_best_iterate='best_iterate' in s['plus_guard'],
      fallback=centre_seeds if falls_back and not from_centres else None,
      held_out_terms=held_out_terms if falls_back and not from_centres else None,
      candidates=centre_seeds if from_centres else None)
  return autoseed(dataclasses.replace(context, config=derived), variant)
