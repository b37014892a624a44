"""Auto-Seed VL2 as a method of the shared engine (METHOD §4).

* Seed replay + online adaptation: every step adds ``λ_r L_replay + λ_c L_consist`` on a
  batch of seeds drawn from the memory (``extra_loss``).
* Seed update (``consolidate``), after online adaptation on task t:
  (a) per-class task-gradient conditions u_c under θ_t, sketched to m dims;
  (b, c) M meta-steps of Adam on φ, each differentiating the outer loss through an
      unrolled inner loop that teaches task t to θ_{t-1} from generated seeds alone
      (plain gradient descent; ``inner_grad_clip`` > 0 clips its gradients, ours, see
      docs/DEVICES.md);
  (d) k_gen candidates per class, scored by gradient alignment with the held-out real
      data of their class, the best k non-redundant kept; ``S_t = prune(add(S, new), K)``.

Ablations (config): ``consistency_weight=0``; ``seed_source`` = ``random`` (no generator:
v = normalize(e_c + σε), w = e_c) or ``generator_no_meta`` (G_φ at its initialisation);
``prune=False`` (no redundancy filter, memory large enough for k seeds of every class).

Vision-language streams (``autoseed_jax.core.task_kinds``, docs/VL_TASKS.md): the seed update
runs per *seed group* instead of per class -- a classification task's classes, or the
k-means clusters of another task's text embeddings (``task_kinds.seed_groups``), whose means
are e_c and μ_T. Seeds of a cluster carry its group id (>= the bank size C) as their
label: they take part in replay through the in-batch InfoNCE term only (the CE term is
for seeds labelled by a class). Every task loss above is the task kind's
(``kind_losses.batch_loss``); the task-gradient conditions use the task's first
``vl_condition_rows`` (default 512) training rows, whose order is random, so that
InfoNCE over them stays small; a candidate's gradient-alignment score uses its replay loss
within the batch of all candidates, the others' embeddings held fixed (a lone pair has no
InfoNCE gradient).

A variant of the method (``methods/autoseed_plus.py``, ``methods/summary_seeds.py``) reuses
these hooks with a ``Variant``: where the generator's noise comes from, extra terms of the
outer loss, its own candidate scores, whether the memory stores the textual prototypes w
(all, none, or only those of pair groups, ``core.pair_groups``), its own seed groups, and a
guard on the meta-update (keep its best iterate; fall back to target seeds and the
previous φ).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import optax

from autoseed_jax.core import (kind_losses, losses, meta, pair_groups, parallel, seeds,
                               selection, task_kinds)
from autoseed_jax.core.config_checks import check_fields
from autoseed_jax.core.generator import (SeedGenerator, generate_seeds, init_generator,
                                         random_seeds)
from autoseed_jax.methods.base import Context, Method

SEED_SOURCES = ('generator', 'generator_no_meta', 'random')

# Tags folded into the run key so each use of randomness has its own stream.
_GENERATOR_INIT_TAG, _SEED_UPDATE_TAG, _SKETCH_TAG, _VARIANT_TAG = 10, 11, 12, 13
# Training rows of a vision-language task that its task-gradient conditions use.
DEFAULT_VL_CONDITION_ROWS = 512


@dataclasses.dataclass(frozen=True)
class PairReplay:
  """How seeds of pair groups (label >= the bank size C: retrieval / captioning seeds of
  the summarising family, docs/VL_TASKS.md §6) are replayed.

  Attributes:
    positives: their InfoNCE positives (``pair_groups.infonce_labels``): ``'group'``, the
      seeds of their label, or ``'seed'``, themselves alone.
    infonce_weight: None: every seed is in one in-batch InfoNCE weighted by
      ``replay_infonce_weight`` (METHOD §3); a number: the pair seeds' InfoNCE among
      themselves takes this weight and the other seeds' among themselves the shared one.
    consistency_weight: None: λ_c for every seed; a number: λ_c of the consistency term
      over the pair seeds (the other seeds keep λ_c).
  """

  positives: str = 'group'
  infonce_weight: float | None = None
  consistency_weight: float | None = None


@dataclasses.dataclass(frozen=True)
class Variant:
  """What a variant of Auto-Seed VL2 changes; the defaults are METHOD's method.

  Attributes:
    name: the method's name.
    text_prototypes: False: the memory stores no w (its ``w`` has 0 columns, so
      ``seeds.nbytes`` counts none) and every seed's w is its class's frozen text
      embedding e_c (``text_prototypes``), in the meta-update, in selection and in replay.
    noise: ``(key, n_cls, per_class) -> z [n_cls, per_class, noise_dim]``, the generator's
      noise for ``per_class`` seeds of each class; None: z ~ N(0, I).
    image_mean_base: True: the residual generator starts v at the class's real image mean
      μ_I (``SeedUpdateData.image_means``) instead of its text embedding e_c.
    prepare: ``(key, seed_data) -> aux``, called once per seed update with its own key
      (``seed_data`` a ``SeedUpdateData``); ``aux`` (any pytree) is what ``outer_terms``
      and ``scores`` receive. None: they receive ``seed_data``.
    outer_terms: ``(v, w, slot, ok, aux) -> scalar`` added to the outer loss L_meta of
      every meta-step (v, w [S, d] candidates, slot [S] their class row, ok [S] valid);
      None adds nothing.
    scores: ``(v, w, slot, ok, aux) -> [S]`` candidate scores that replace gradient
      alignment (higher is kept first); None: METHOD §4.3d's scores.
    kinds: the task kinds (``task_kinds.KINDS``) the variant runs; refusal: why it does
      not run the others (``Method.refusal``).
    update_data: ``(task) -> SeedUpdateData``, the variant's seed groups; None:
      ``seed_update_data`` (METHOD's groups).
    pair_text: with ``text_prototypes`` False, the memory still has w columns, but only a
      seed of a pair group (label >= the bank size C, ``SeedUpdateData.stores_text``)
      stores and pays for its w; a seed labelled by a bank entry uses the bank text
      (``pair_groups.seed_text``, ``pair_groups.seed_nbytes``).
    budget_bytes: with ``pair_text``, the memory is pruned to these bytes
      (``pair_groups.prune_to_bytes``) instead of to ``memory_budget`` seeds.
    pair_replay: how seeds of pair groups replay (``PairReplay``); None: METHOD §3.
    keep_best_iterate: the meta-update returns the φ iterate (and its optimiser state)
      with the lowest outer loss, the final one included (``meta.meta_update``).
    fallback: ``(aux) -> (v, w)`` [n, k, d] target seeds of each slot; after the
      meta-update, when the generated seeds' held-out outer loss is higher than these
      seeds' (``held_out_terms``), the task's candidates are these and φ (with its
      optimiser state) stays as it was before the meta-update. None: no fallback.
    held_out_terms: ``(v, w, slot, ok, aux) -> scalar``, the variant's outer terms
      computed on D_t^val instead of the training rows (the guard's criterion: the outer
      loss with every data term on held-out rows). None: 0.
    candidates: ``(aux) -> (v, w)`` [n, k, d] seeds that replace the generator (no
      conditions, no meta-update); None: the generator.
  """

  name: str = 'autoseed'
  text_prototypes: bool = True
  noise: Callable | None = None
  image_mean_base: bool = False
  prepare: Callable | None = None
  outer_terms: Callable | None = None
  scores: Callable | None = None
  kinds: tuple[str, ...] = task_kinds.KINDS
  refusal: str = ''
  update_data: Callable | None = None
  pair_text: bool = False
  budget_bytes: int = 0
  pair_replay: PairReplay | None = None
  keep_best_iterate: bool = False
  fallback: Callable | None = None
  held_out_terms: Callable | None = None
  candidates: Callable | None = None


@dataclasses.dataclass(frozen=True)
class SeedUpdateData:
  """The task-t arrays of a seed update (METHOD §4.3), rows per seed slot of the task: its
  classes, or on a vision-language task its seed groups (``task_kinds.seed_groups``).

  Attributes:
    labels: [n] the label a slot's seeds carry (class id, or cluster id >= the bank size).
    class_text: [n, d] unit text embeddings e_c of the slots (a cluster's: its mean μ_T).
    class_ok: [n] bool, real slots (padding slots are False).
    train_weights: [n, N] float32, 1 where a training row belongs to the slot.
    val_weights: [n, Nv] float32, the same for D_t^val.
    image_means: [n, d] unit-norm real means μ_I of the slots' training rows.
    train_x: [N, d] the task's training embeddings.
    stores_text: [n] bool, slots whose seeds store their own w (pair groups,
      ``Variant.pair_text``); None: none.
    train_text: [N, d] the training rows' paired texts (vision-language); None: not given.
    val_x, val_text: [Nv, d] D_t^val's queries and paired texts (the guard's held-out
      terms); None: not given.
  """

  labels: jax.Array
  class_text: jax.Array
  class_ok: jax.Array
  train_weights: jax.Array
  val_weights: jax.Array
  image_means: jax.Array
  train_x: jax.Array
  stores_text: jax.Array | None = None
  train_text: jax.Array | None = None
  val_x: jax.Array | None = None
  val_text: jax.Array | None = None


def seed_update_data(task) -> SeedUpdateData:
  """The per-slot arrays of ``task`` (a ``tasks.Task``) that a seed update uses."""
  groups, group_text, train_group, val_group = task_kinds.seed_groups(task)
  in_train = jnp.arange(task.train_x.shape[0]) < task.train_count
  in_val = jnp.arange(task.val_x.shape[0]) < task.val_count
  train_w = ((train_group[None] == groups[:, None]) & in_train[None]).astype(jnp.float32)
  val_w = ((val_group[None] == groups[:, None]) & in_val[None]).astype(jnp.float32)
  class_ok = groups >= 0
  return SeedUpdateData(labels=jnp.where(class_ok, groups, 0),
                        class_text=losses.l2_normalize(group_text), class_ok=class_ok,
                        train_weights=train_w, val_weights=val_w,
                        image_means=losses.l2_normalize(train_w @ task.train_x),
                        train_x=task.train_x, train_text=task.train_text,
                        val_x=task.val_x, val_text=task.val_text)


def text_prototypes(memory: seeds.SeedMemory, class_bank: jax.Array,
                    pair_text: bool = False) -> jax.Array:
  """[K, d] the seeds' w: stored (``memory.w``), or for a memory without textual
  prototypes (0 columns) each seed's class text embedding from ``class_bank`` [C, d];
  ``pair_text``: stored only for seeds of pair groups, the bank text for the others
  (``pair_groups.seed_text``)."""
  if memory.w.shape[-1]:
    if pair_text:
      return pair_groups.seed_text(memory.w, memory.label, class_bank, class_bank.shape[0])
    return memory.w
  return jnp.take(class_bank, jnp.clip(memory.label, 0, class_bank.shape[0] - 1), axis=0)


def replay_masks(context: Context, seen, label, valid):
  """(label space of the CE term, [C] or [S, C]; the seeds [S] the CE term covers): on a
  vision-language stream a seed labelled by a bank entry (a class prompt or a VQA answer)
  takes the CE term over the seen entries of that entry's family (answer selection for an
  answer); a seed of a cluster (label >= C) takes none."""
  if context.vl is None:
    return seen, valid
  family = jnp.asarray(context.vl.bank_family)
  is_bank = (label >= 0) & (label < context.num_classes)
  seed_family = jnp.where(is_bank, family[jnp.clip(label, 0, context.num_classes - 1)], -1)
  label_space = seen[None, :] & (family[None, :] == seed_family[:, None])
  return label_space, valid & is_bank & (seed_family >= 0)


def seed_positives(context: Context, label, pair: PairReplay | None = None):
  """[S] InfoNCE positive ids of seeds with ``label`` (their labels but where ``pair``
  says otherwise on a vision-language stream)."""
  if pair is None or context.vl is None:
    return label
  return pair_groups.infonce_labels(label, context.num_classes, pair.positives)


def seed_replay_loss(context: Context, v_img, w_txt, class_emb, scale, seen, label, valid,
                     pair: PairReplay | None = None) -> jax.Array:
  """L_replay (METHOD §3) of adapted seeds h_I(v), h_T(w) [S, d] with labels [S] over the
  adapted class bank [C, d] (classes ``seen`` [C]); ``valid`` [S] masks empty slots;
  ``pair``: how seeds of pair groups replay (``PairReplay``)."""
  class_mask, ce_mask = replay_masks(context, seen, label, valid)
  positives = seed_positives(context, label, pair)
  weight = context.config.replay_infonce_weight
  if pair is None or pair.infonce_weight is None or context.vl is None:
    return losses.replay_loss(v_img, w_txt, label, class_emb, scale, class_mask=class_mask,
                              mask=valid, ce_mask=ce_mask, infonce_weight=weight,
                              positive_labels=positives)
  is_pair = valid & (label >= context.num_classes)
  others = losses.replay_loss(v_img, w_txt, label, class_emb, scale, class_mask=class_mask,
                              mask=valid & ~is_pair, ce_mask=ce_mask, infonce_weight=weight,
                              positive_labels=positives)
  return others + pair.infonce_weight * losses.info_nce(v_img, w_txt, scale, mask=is_pair,
                                                        labels=positives)


def replay_on_seeds(context: Context, params, bank, seen, v, w, label, valid,
                    pair: PairReplay | None = None) -> jax.Array:
  """L_replay (METHOD §3) of seeds v, w [S, d] with labels [S] under ``params`` over the
  class bank [C, d] (classes ``seen`` [C]); ``valid`` [S] masks empty slots; ``pair``: how
  seeds of pair groups replay (``seed_replay_loss``)."""
  v_img, w_txt, scale = context.embed(params, v, w)
  class_emb = context.embed(params, text_z=bank)[1]
  return seed_replay_loss(context, v_img, w_txt, class_emb, scale, seen, label, valid, pair)


def seed_replay_terms(context: Context, params, state, batch: seeds.SeedMemory,
                      pair: PairReplay | None = None):
  """λ_r L_replay + λ_c L_consist (METHOD §3) on a batch of seeds; (total, terms).

  Args:
    context: its config gives λ_r (``replay_weight``), λ_c (``consistency_weight``), the
      InfoNCE weight of L_replay and T_kd.
    params: θ; ``state``: the run state (θ⁻ = ``prev_params``, the class bank, the classes
      seen so far and before the current task).
    batch: the seeds, a ``SeedMemory`` of any size B with w filled (``text_prototypes``);
      its ``valid`` [B] masks empty rows. The statistics-replay methods (methods/
      class_gaussian.py) pass their pseudo-features here, so they replay exactly as seeds.
    pair: how seeds of pair groups replay on a vision-language stream (``PairReplay``):
      their InfoNCE positives and weight, and with ``pair.consistency_weight`` their own
      λ_c (term ``pair_consistency``); None: METHOD §3 for every seed.

  Returns:
    (scalar total, {'replay': L_replay, 'consistency': L_consist, ...} for the terms on).
  """
  config = context.config
  v_img, w_txt, scale = context.embed(params, batch.v, batch.w)
  class_emb = context.embed(params, text_z=state.class_bank)[1]
  terms = {}
  total = 0.0
  if config.replay_weight > 0:
    terms['replay'] = seed_replay_loss(context, v_img, w_txt, class_emb, scale, state.seen,
                                       batch.label, batch.valid, pair)
    total = total + config.replay_weight * terms['replay']
  split = context.vl is not None and pair is not None and pair.consistency_weight is not None
  if config.consistency_weight > 0 or (split and pair.consistency_weight > 0):
    prev_v, prev_w, prev_scale = context.embed(state.prev_params, batch.v, batch.w)
    prev_class = context.embed(state.prev_params, text_z=state.class_bank)[1]

    def consistency(mask):
      return losses.consistency_loss(
          v_img, prev_v, w_txt, prev_w, class_emb=class_emb, prev_class_emb=prev_class,
          logit_scale=scale, prev_logit_scale=prev_scale, class_mask=state.prev_seen,
          mask=mask, kd_temperature=config.kd_temperature)

    if split:  # pair seeds with their own λ_c
      is_pair = batch.valid & (batch.label >= context.num_classes)
      terms['consistency'] = consistency(batch.valid & ~is_pair)
      terms['pair_consistency'] = consistency(is_pair)
      total = (total + config.consistency_weight * terms['consistency']
               + pair.consistency_weight * terms['pair_consistency'])
    else:
      terms['consistency'] = consistency(batch.valid)
      total = total + config.consistency_weight * terms['consistency']
  return total, terms


def task_rows_loss(context: Context, params, bank, seen, rows, weights, normalizer=None, *,
                   kinds=None) -> jax.Array:
  """The task's loss on ``rows`` = (x [N, d], text [N, d] or None, y [N]) with example
  weights [N]: the weighted classification loss, or on a vision-language stream the loss
  of the task's kind (``kind_losses.batch_loss``; ``kinds`` the task's)."""
  x, text, y = rows
  if context.vl is None:
    return context.weighted_task_loss(params, bank, seen, x, y, weights, normalizer)
  return kind_losses.batch_loss(context.embed, params, bank=bank, seen=seen,
                              bank_family=context.vl.bank_family, kinds=kinds, x=x,
                              text=text, y=y, weights=weights, normalizer=normalizer)


def outer_loss_terms(context: Context, state, v, w, slot, label, ok, data: SeedUpdateData, *,
                     val_rows, val_mask, val_count, kinds=None,
                     pair: PairReplay | None = None) -> dict[str, jax.Array]:
  """The terms of the outer loss L_meta (METHOD §4.3c) for candidate seeds, unweighted.

  Args:
    state: the run state after online adaptation on task t (θ_t = ``params``, θ_{t-1} =
      ``prev_params``, class bank and seen classes).
    v, w: [S, d] candidates; slot: [S] their row in ``data``; label: [S] their labels;
      ok: [S] bool valid candidates.
    val_rows: (x, text, y) rows of D_t^val (a device's share under pmap); val_mask: which
      are real; val_count: the number of D_t^val rows over all devices (the teach term's
      normaliser); kinds: the task's kinds (vision-language streams); pair: how seeds of
      pair groups replay (``PairReplay``).

  Returns:
    {'teach': L_task(θ'; D_t^val) after ``inner_steps`` steps of seed replay from θ_{t-1}
    (each gradient clipped to ``inner_grad_clip`` when > 0), 'classified': L_task of the
    seeds under θ_t (on a vision-language stream their replay loss: seeds stay matched to
    their texts and classes), 'align': L_align, 'anchor': L_anchor}.
  """
  config, bank, seen = context.config, state.class_bank, state.seen
  adapted_params = meta.unrolled_inner_loop(
      lambda p: replay_on_seeds(context, p, bank, seen, v, w, label, ok, pair),
      state.prev_params,
      learning_rate=config.inner_learning_rate, num_steps=config.inner_steps,
      max_grad_norm=config.inner_grad_clip)
  teach = task_rows_loss(context, adapted_params, bank, seen, val_rows,
                         val_mask.astype(jnp.float32),
                         normalizer=val_count.astype(jnp.float32), kinds=kinds)
  if context.vl is None:
    v_img, class_emb, scale = context.embed(state.params, v, bank)
    classified = losses.task_loss(v_img, class_emb, label, scale, class_mask=seen, mask=ok)
  else:
    classified = replay_on_seeds(context, state.params, bank, seen, v, w, label, ok, pair)
  return {'teach': teach, 'classified': classified,
          'align': losses.alignment_loss(v, w, mask=ok),
          'anchor': losses.anchor_loss(v, w, slot, data.image_means, data.class_text,
                                       mask=ok)}


def memory_capacity(config, num_classes: int) -> int:
  """Slots of the seed memory: ``memory_capacity`` if set, else the budget K; with
  pruning off, room for every class's seeds (the "full memory" ablation)."""
  if not config.prune:
    return num_classes * config.seeds_per_class
  return config.memory_capacity or config.memory_budget


# The numeric fields of Auto-Seed VL2 and the values their meaning allows.
RULES = (
    ('seeds_per_class', '> 0', 'k, seeds kept per new class'),
    ('memory_budget', '> 0', 'K, seeds kept in memory'),
    ('memory_capacity', '>= 0', 'slots of the memory pytree; 0 means = K'),
    ('seed_batch_size', '> 0', 'seeds replayed per step'),
    ('replay_weight', '>= 0', 'λ_r'),
    ('replay_infonce_weight', '>= 0', 'weight of in-batch InfoNCE inside L_replay'),
    ('consistency_weight', '>= 0', 'λ_c; 0 is the "no consistency loss" ablation'),
    ('kd_temperature', '> 0', 'T_kd of the KL term'),
    ('redundancy_cosine', '>= -1', 'a candidate more similar than this to a kept seed is '
     'skipped; above 1 (or prune=False) the filter is off'),
    ('random_seed_sigma', '>= 0', 'σ of the "random seeds" ablation'),
    ('sketch_dim', '> 0', 'm, the size of the sketched task gradient u_c that conditions '
     'the generator'),
    ('noise_dim', '> 0', 'the size of the generator noise z; without noise every candidate '
     'of a class is the same seed'),
    ('generator_hidden', '> 0', 'hidden width of G_φ'),
    ('generator_layers', '>= 0', 'hidden layers of G_φ'),
    ('meta_steps', '>= 0', 'M, meta-steps on φ per task; 0: no meta-update'),
    ('meta_learning_rate', '> 0', 'step size of Adam on φ'),
    ('meta_seeds_per_class', '> 0', 'seeds per class generated inside each meta-step'),
    ('inner_steps', '> 0', 'n_inner, unrolled steps of the inner loop'),
    ('inner_learning_rate', '> 0', 'α of the inner loop'),
    ('inner_grad_clip', '>= 0', 'largest global norm of an inner-loop gradient; 0: no clip'),
    ('align_weight', '>= 0', 'β'),
    ('anchor_weight', '>= 0', 'γ'),
)


def validate(config, num_classes: int | None = None) -> None:
  """Raises ValueError naming the field and a fix for values Auto-Seed cannot run.

  ``num_classes``: the stream's; without it (a config checked before its stream is
  loaded) the memory capacity of the no-pruning ablation is not checked.
  """
  if config.seed_source not in SEED_SOURCES:
    raise ValueError(f'invalid config: seed_source={config.seed_source!r}; choose one of '
                     f'{SEED_SOURCES}.')
  check_fields(config, RULES)
  if config.candidates_per_class < config.seeds_per_class:
    raise ValueError(f'invalid config: candidates_per_class={config.candidates_per_class} '
                     f'must be >= seeds_per_class={config.seeds_per_class}.')
  if num_classes is None and not config.prune:
    return
  capacity = memory_capacity(config, num_classes)
  if config.memory_budget > capacity:
    raise ValueError(f'invalid config: memory_budget={config.memory_budget} exceeds '
                     f'memory_capacity={capacity}; raise memory_capacity or lower '
                     'memory_budget.')


def autoseed(context: Context, variant: Variant = Variant()) -> Method:
  """Builds the Auto-Seed VL2 hooks for ``context.config`` (``variant``: see ``Variant``)."""
  config, dim = context.config, context.dim
  validate(config, context.num_classes)
  generator = SeedGenerator(hidden_dim=config.generator_hidden,
                            num_layers=config.generator_layers,
                            residual=config.generator_residual)
  gen_optimizer = optax.adam(config.meta_learning_rate)
  capacity = memory_capacity(config, context.num_classes)
  seed_batch_size = min(config.seed_batch_size, capacity)
  budget = config.memory_budget if config.prune else capacity
  max_cosine = config.redundancy_cosine if config.prune else 2.0
  vl = context.vl
  num_bank = context.num_classes

  stores_w = variant.text_prototypes or variant.pair_text

  pair = variant.pair_replay

  def init_state(key):
    gen_params = init_generator(generator, jax.random.fold_in(key, _GENERATOR_INIT_TAG),
                                sketch_dim=config.sketch_dim, dim=dim,
                                noise_dim=config.noise_dim)
    memory = seeds.init_memory(capacity, dim, text_dim=dim if stores_w else 0)
    return dict(memory=memory, gen_params=gen_params,
                gen_opt_state=gen_optimizer.init(gen_params))

  def replay_under(params, bank, seen, v, w, label, valid):
    return replay_on_seeds(context, params, bank, seen, v, w, label, valid, pair)

  def seed_row_loss(params, bank, seen, v, w, label, valid, others, i):
    """Seed i's replay loss among the candidates (VL candidate scoring): CE over the class
    prompts (seeds of a class) plus its row of in-batch InfoNCE, the other candidates'
    adapted embeddings ``others`` = (h_I(v) [S, d], h_T(w) [S, d]) held fixed."""
    img, txt, scale = context.embed(params, v[i][None], w[i][None])
    class_emb = context.embed(params, text_z=bank)[1]
    class_mask, ce_mask = replay_masks(context, seen, label, valid)
    row_mask = class_mask if class_mask.ndim == 1 else class_mask[i][None]
    logits = losses.class_logits(img, class_emb, scale, row_mask)[0]
    ce = -jax.nn.log_softmax(logits)[jnp.clip(label[i], 0, num_bank - 1)]
    images, texts = others[0].at[i].set(img[0]), others[1].at[i].set(txt[0])
    nce = losses.info_nce_row(i, images, texts, scale, mask=valid,
                              labels=seed_positives(context, label, pair))
    return jnp.where(ce_mask[i], ce, 0.0) + config.replay_infonce_weight * nce

  def extra_loss(params, state, x, y, key, text=None):
    """λ_r L_replay + λ_c L_consist on a batch of seeds drawn from the memory."""
    del x, y, text
    batch = seeds.sample_seeds(state.memory, key, seed_batch_size)
    batch = batch.replace(w=text_prototypes(batch, state.class_bank, variant.pair_text))
    return seed_replay_terms(context, params, state, batch, pair)

  def memory_nbytes(memory):
    if variant.pair_text:
      return pair_groups.memory_nbytes(memory, num_bank)
    return seeds.memory_nbytes(memory)

  def sketch_matrix(key, params):
    """R [m, P] as per-leaf blocks (``meta.sketch_blocks``), drawn once per run key."""
    return meta.sketch_blocks(params, jax.random.fold_in(key, _SKETCH_TAG),
                              config.sketch_dim)

  def task_inputs(state, task):
    """The task-t arrays every step of the seed update reads: (data, aux for the variant,
    the task's loss on rows ``(params, rows, weights, normalizer=None) -> scalar``, the
    training rows, the D_t^val rows)."""
    data = (variant.update_data or seed_update_data)(task)
    key = jax.random.fold_in(jax.random.fold_in(state.key, _SEED_UPDATE_TAG), task.index)
    aux = data if variant.prepare is None else variant.prepare(
        jax.random.fold_in(key, _VARIANT_TAG), data)

    def task_loss_on(params, rows, weights, normalizer=None):
      return task_rows_loss(context, params, state.class_bank, state.seen, rows, weights,
                            normalizer, kinds=task.kind)

    train_rows = (task.train_x, task.train_text, task.train_y)
    val_rows = (task.val_x, task.val_text, task.val_y)
    return data, aux, task_loss_on, train_rows, val_rows

  def candidate_text(data, w, slot):
    """[S, d] the w of flat candidates: their own (``w``) where the memory stores it, else
    their slot's text e_c."""
    if variant.text_prototypes:
      return w
    if variant.pair_text:
      return jnp.where(data.stores_text[slot][:, None], w, data.class_text[slot])
    return data.class_text[slot]

  def make_candidates(data, gen_params, key, per_class, condition, aux=None):
    """[n_cls * per_class] flat candidates (v, w, slot, label, ok) of the task's slots."""
    n_cls = data.labels.shape[0]
    if variant.candidates is not None:
      v, w = variant.candidates(aux)
    elif config.seed_source == 'random':
      v, w = random_seeds(key, data.class_text, num_per_class=per_class,
                          sigma=config.random_seed_sigma)
    else:
      noise = None if variant.noise is None else variant.noise(key, n_cls, per_class)
      v, w = generate_seeds(generator, gen_params, key, condition=condition,
                            class_text=data.class_text, num_per_class=per_class,
                            noise_dim=config.noise_dim, noise=noise,
                            visual_base=data.image_means if variant.image_mean_base else None)
    slot = jnp.broadcast_to(jnp.arange(n_cls)[:, None], (n_cls, per_class)).reshape(-1)
    w = candidate_text(data, w.reshape(-1, dim), slot)
    return v.reshape(-1, dim), w, slot, data.labels[slot], data.class_ok[slot]

  def task_gradient_conditions(state, data, task_loss_on, train_rows, constants):
    """METHOD §4.3a: u_c [n_cls, m], the sketched gradient of each slot's task loss under
    θ_t (None for the random seed source, which needs none). On a vision-language stream
    a prefix of the (randomly ordered) training rows keeps in-batch InfoNCE small."""
    if config.seed_source == 'random':
      return None
    rows, weights = train_rows, data.train_weights
    if vl is not None:
      r = min(int(train_rows[0].shape[0]), config.get('vl_condition_rows',
                                                      DEFAULT_VL_CONDITION_ROWS))
      rows, weights = tuple(a[:r] for a in train_rows), weights[:, :r]
    return meta.task_gradient_condition(
        lambda p, wts: task_loss_on(p, rows, wts), state.params, weights,
        sketch_key=jax.random.fold_in(state.key, _SKETCH_TAG), sketch_dim=config.sketch_dim,
        blocks=constants)

  def meta_update_generator(state, task, data, aux, condition, key, axis_name):
    """METHOD §4.3c: M Adam steps on φ of the outer loss, differentiated through the
    unrolled inner loop from θ_{t-1}; returns (φ, its optimiser state, info). Under pmap
    (``axis_name``) it is data-parallel over D_t^val (each device scores its rows); in-batch
    InfoNCE needs all rows at once, so on vision-language streams every device computes
    the whole loss and contributes its 1/shards share."""
    if config.seed_source != 'generator' or config.meta_steps == 0:
      return state.gen_params, state.gen_opt_state, {}
    in_val = jnp.arange(task.val_x.shape[0]) < task.val_count
    shards = 1 if axis_name is None else context.parallelism.num_shards
    local = vl is None or axis_name is None
    val_part = ((task.val_x, task.val_text, task.val_y, in_val) if not local else
                tuple(a if a is None else parallel.shard_rows(a, context.parallelism,
                                                              axis_name)
                      for a in (task.val_x, task.val_text, task.val_y, in_val)))

    def outer_loss(phi, key):
      v, w, slot, label, ok = make_candidates(data, phi, key, config.meta_seeds_per_class,
                                              condition)
      terms = outer_loss_terms(context, state, v, w, slot, label, ok, data,
                               val_rows=val_part[:3], val_mask=val_part[3],
                               val_count=task.val_count, kinds=task.kind,
                               pair=pair)
      teach = terms['teach'] if local else terms['teach'] / shards
      seed_terms = (terms['classified'] + config.align_weight * terms['align']
                    + config.anchor_weight * terms['anchor'])
      if variant.outer_terms is not None:
        seed_terms = seed_terms + variant.outer_terms(v, w, slot, ok, aux)
      return teach + seed_terms / shards  # shares that sum to the global loss

    gen_params, gen_opt_state, meta_losses = meta.meta_update(
        outer_loss, state.gen_params, state.gen_opt_state, key, optimizer=gen_optimizer,
        num_steps=config.meta_steps, axis_name=axis_name,
        keep_best=variant.keep_best_iterate)
    info = {'meta_loss_first': meta_losses[0],
            'meta_loss_last': meta_losses[config.meta_steps - 1]}
    if variant.keep_best_iterate:  # losses of φ_0..φ_M: which one was kept
      best = jnp.argmin(jnp.where(jnp.isnan(meta_losses), jnp.inf, meta_losses))
      info.update(meta_best_step=best.astype(jnp.int32), meta_loss_best=meta_losses[best])
    return gen_params, gen_opt_state, info

  def held_out_outer_loss(state, task, data, aux, v, w, slot, label, ok):
    """The outer loss L_meta of candidates v, w [S, d] with every data term on D_t^val:
    the teach term (already held out), classified, align and anchor as in the meta-update,
    and the variant's ``held_out_terms`` (its data terms on D_t^val) -- the guard's
    criterion (docs/autoseed_plus.md §6); computed whole on every device."""
    in_val = jnp.arange(task.val_x.shape[0]) < task.val_count
    terms = outer_loss_terms(context, state, v, w, slot, label, ok, data,
                             val_rows=(task.val_x, task.val_text, task.val_y),
                             val_mask=in_val, val_count=task.val_count, kinds=task.kind,
                             pair=pair)
    total = (terms['teach'] + terms['classified'] + config.align_weight * terms['align']
             + config.anchor_weight * terms['anchor'])
    if variant.held_out_terms is not None:
      total = total + variant.held_out_terms(v, w, slot, ok, aux)
    return total

  def choose_seeds(state, task, data, aux, task_loss_on, val_rows, gen_params, condition,
                   key):
    """METHOD §4.3d: k_gen candidates per slot, scored by gradient alignment (or the
    variant's scores), the best k non-redundant kept, added to the memory and pruned to
    the budget; returns (memory, info)."""
    bank, seen = state.class_bank, state.seen
    v, w, slot, label, ok = make_candidates(data, gen_params, key,
                                            config.candidates_per_class, condition, aux)
    guard = {}
    if variant.fallback is not None:  # the generated seeds against the targets
      target_v, target_w = variant.fallback(aux)
      target_v = target_v.reshape(-1, dim)
      target_w = candidate_text(data, target_w.reshape(-1, dim), slot)
      generated_loss = held_out_outer_loss(state, task, data, aux, v, w, slot, label, ok)
      target_loss = held_out_outer_loss(state, task, data, aux, target_v, target_w, slot,
                                        label, ok)
      falls_back = ~(generated_loss <= target_loss)  # a NaN loss falls back
      v = jnp.where(falls_back, target_v, v)
      w = jnp.where(falls_back, target_w, w)
      guard = {'guard_fallback': falls_back, 'guard_loss_generated': generated_loss,
               'guard_loss_targets': target_loss}
    if variant.scores is None:
      if vl is None:
        def one_seed_loss(params, s):
          sv, sw, slabel = s
          return replay_under(params, bank, seen, sv[None], sw[None], slabel[None],
                                  jnp.ones((1,), bool))
        seed_inputs = (v, w, label)
      else:  # a seed's replay loss among all candidates (the others held fixed)
        others = jax.lax.stop_gradient(context.embed(state.params, v, w)[:2])

        def one_seed_loss(params, i):
          return seed_row_loss(params, bank, seen, v, w, label, ok, others, i)
        seed_inputs = jnp.arange(v.shape[0])
      val_grads = jax.vmap(lambda wts: selection.flat_grad(
          task_loss_on, state.params, val_rows, wts))(data.val_weights)
      score = selection.gradient_alignment_scores(
          one_seed_loss, state.params, seed_inputs, slot, val_grads)
    else:
      score = variant.scores(v, w, slot, ok, aux)
    shape = (data.labels.shape[0], config.candidates_per_class)
    keep = selection.select_diverse(
        v.reshape(shape + (dim,)), score.reshape(shape), ok.reshape(shape),
        num_keep=config.seeds_per_class, max_cosine=max_cosine).reshape(-1)
    memory = pair_groups.add_to_memory(
        state.memory, v, w, label, task.index, score, keep, data.stores_text, slot,
        text_prototypes=variant.text_prototypes, pair_text=variant.pair_text, budget=budget,
        budget_bytes=variant.budget_bytes, num_bank=num_bank)
    kept = jnp.maximum(jnp.sum(keep), 1)
    return memory, dict(**guard, seeds_added=jnp.sum(keep), memory_size=memory.num_valid(),
                        mean_score=jnp.sum(jnp.where(keep, score, 0)) / kept,
                        seed_text_cosine=jnp.sum(jnp.where(keep, jnp.sum(v * w, -1), 0)) / kept)

  def consolidate(state, task, *, constants=None, axis_name=None):
    """The seed update of METHOD §4.3 for ``task``: (a) conditions, (c) meta-update of φ,
    (d) generate, score, select and prune; returns (state, info).

    ``constants``: R from ``sketch_matrix`` when ``sketch_cache`` is on (else None: R is
    drawn inside the update). ``axis_name``: see ``meta_update_generator``; the rest is
    computed on every device.
    """
    key = jax.random.fold_in(jax.random.fold_in(state.key, _SEED_UPDATE_TAG), task.index)
    k_meta, k_gen = jax.random.split(key)
    data, aux, task_loss_on, train_rows, val_rows = task_inputs(state, task)
    if variant.candidates is None:
      condition = task_gradient_conditions(state, data, task_loss_on, train_rows, constants)
      gen_params, gen_opt_state, info = meta_update_generator(state, task, data, aux,
                                                              condition, k_meta, axis_name)
    else:  # the variant's own candidates: no condition, G_φ untouched
      condition, gen_params, gen_opt_state, info = (None, state.gen_params,
                                                    state.gen_opt_state, {})
    memory, choice = choose_seeds(state, task, data, aux, task_loss_on, val_rows, gen_params,
                                  condition, k_gen)
    if 'guard_fallback' in choice:  # the fallback keeps φ as it was before the update
      gen_params, gen_opt_state = jax.tree.map(
          lambda before, after: jnp.where(choice['guard_fallback'], before, after),
          (state.gen_params, state.gen_opt_state), (gen_params, gen_opt_state))
      choice['guard_fallback'] = choice['guard_fallback'].astype(jnp.int32)
    return state.replace(gen_params=gen_params, gen_opt_state=gen_opt_state,
                         memory=memory), {**info, **choice}

  return Method(name=variant.name, init_state=init_state, extra_loss=extra_loss,
                kinds=variant.kinds, refusal=variant.refusal,
                consolidate=consolidate, consolidate_name='seed update',
                constants=(sketch_matrix if config.sketch_cache and variant.candidates is None
                           and config.seed_source != 'random' else None),
                memory_bytes=lambda state: int(parallel.to_host(memory_nbytes(state.memory))))
