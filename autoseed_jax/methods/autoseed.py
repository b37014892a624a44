"""Auto-Seed VL2 as a method of the shared engine (METHOD §4).

* Seed replay + online adaptation: every step adds ``λ_r L_replay + λ_c L_consist`` on a
  batch of seeds drawn from the memory (``extra_loss``).
* Seed update (``consolidate``), after online adaptation on task t:
  (a) per-class task-gradient conditions u_c under θ_t, sketched to m dims;
  (b, c) M meta-steps of Adam on φ, each differentiating the outer loss through an
      unrolled inner loop that teaches task t to θ_{t-1} from generated seeds alone
      (its gradients clipped to ``inner_grad_clip``, see docs/DEVICES.md);
  (d) k_gen candidates per class, scored by gradient alignment with the held-out real
      data of their class, the best k non-redundant kept; ``S_t = prune(add(S, new), K)``.

Ablations (config): ``consistency_weight=0``; ``seed_source`` = ``random`` (no generator:
v = normalize(e_c + σε), w = e_c) or ``generator_no_meta`` (G_φ at its initialisation);
``prune=False`` (no redundancy filter, memory large enough for k seeds of every class).

Vision-language streams (``autoseed_jax.vl_tasks``, docs/VL_TASKS.md): the seed update
runs per *seed group* instead of per class -- a classification task's classes, or the
k-means clusters of another task's text embeddings (``vl_tasks.seed_groups``), whose means
are e_c and μ_T. Seeds of a cluster carry its group id (>= the bank size C) as their
label: they take part in replay through the in-batch InfoNCE term only (the CE term is
for seeds labelled by a class). Every task loss above is the task kind's
(``vl_engine.batch_loss``); the task-gradient conditions use the task's first
``vl_condition_rows`` (default 512) training rows, whose order is random, so that
InfoNCE over them stays small; a candidate's gradient-alignment score uses its replay loss
within the batch of all candidates, the others' embeddings held fixed (a lone pair has no
InfoNCE gradient).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

import numpy as np

from autoseed_jax import losses, meta, parallel, seeds, selection, vl_engine, vl_tasks
from autoseed_jax.config_checks import check_fields
from autoseed_jax.generator import SeedGenerator, generate, init_generator, random_seeds
from autoseed_jax.methods.base import Context, Method

SEED_SOURCES = ('generator', 'generator_no_meta', 'random')

# Tags folded into the run key so each use of randomness has its own stream.
_GENERATOR_INIT_TAG, _SEED_UPDATE_TAG, _SKETCH_TAG = 10, 11, 12
# Training rows of a vision-language task that its task-gradient conditions use.
DEFAULT_VL_CONDITION_ROWS = 512


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
    ('redundancy_cosine', 'in [-1, 1]', 'a candidate this similar to a kept seed is '
     'skipped; prune=False turns the filter off'),
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


def autoseed(context: Context) -> Method:
  """Builds the Auto-Seed VL2 hooks for ``context.config``."""
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
  # Seeds labelled by a bank entry (a class) are replayed with CE over the class prompts.
  class_family = None if vl is None else np.asarray(vl.bank_family) == 0

  def replay_masks(seen, label, valid):
    """(label space of the CE term, the seeds the CE term covers)."""
    if vl is None:
      return seen, valid
    return seen & class_family, valid & (label < num_bank)

  def init_state(key):
    gen_params = init_generator(generator, jax.random.fold_in(key, _GENERATOR_INIT_TAG),
                                sketch_dim=config.sketch_dim, dim=dim,
                                noise_dim=config.noise_dim)
    return dict(memory=seeds.init_memory(capacity, dim), gen_params=gen_params,
                gen_opt_state=gen_optimizer.init(gen_params))

  def seed_replay_loss(params, bank, seen, v, w, label, valid):
    v_img, w_txt, scale = context.embed(params, v, w)
    class_emb = context.embed(params, text_z=bank)[1]
    class_mask, ce_mask = replay_masks(seen, label, valid)
    return losses.replay_loss(v_img, w_txt, label, class_emb, scale, class_mask=class_mask,
                              mask=valid, ce_mask=ce_mask,
                              infonce_weight=config.replay_infonce_weight)

  def seed_row_loss(params, bank, seen, v, w, label, valid, others, i):
    """Seed i's replay loss among the candidates (VL candidate scoring): CE over the class
    prompts (seeds of a class) plus its row of in-batch InfoNCE, the other candidates'
    adapted embeddings ``others`` = (h_I(v) [S, d], h_T(w) [S, d]) held fixed."""
    img, txt, scale = context.embed(params, v[i][None], w[i][None])
    class_emb = context.embed(params, text_z=bank)[1]
    class_mask, ce_mask = replay_masks(seen, label, valid)
    logits = losses.class_logits(img, class_emb, scale, class_mask)[0]
    ce = -jax.nn.log_softmax(logits)[jnp.clip(label[i], 0, num_bank - 1)]
    images, texts = others[0].at[i].set(img[0]), others[1].at[i].set(txt[0])
    positive = (label == label[i]) & valid
    nce = 0.0
    for scores in (scale * texts @ img[0], scale * images @ txt[0]):  # i -> t, t -> i
      log_p = jax.nn.log_softmax(jnp.where(valid, scores, losses.NEG_INF))
      nce += -jnp.sum(jnp.where(positive, log_p, 0.0)) / jnp.maximum(jnp.sum(positive), 1) / 2
    return jnp.where(ce_mask[i], ce, 0.0) + config.replay_infonce_weight * nce

  def extra_loss(params, state, x, y, key, text=None):
    """λ_r L_replay + λ_c L_consist on a batch of seeds drawn from the memory."""
    del x, y, text
    batch = seeds.sample(state.memory, key, seed_batch_size)
    v_img, w_txt, scale = context.embed(params, batch.v, batch.w)
    class_emb = context.embed(params, text_z=state.class_bank)[1]
    terms = {}
    total = 0.0
    if config.replay_weight > 0:
      class_mask, ce_mask = replay_masks(state.seen, batch.label, batch.valid)
      terms['replay'] = losses.replay_loss(
          v_img, w_txt, batch.label, class_emb, scale, class_mask=class_mask,
          mask=batch.valid, ce_mask=ce_mask, infonce_weight=config.replay_infonce_weight)
      total = total + config.replay_weight * terms['replay']
    if config.consistency_weight > 0:
      prev_v, prev_w, prev_scale = context.embed(state.prev_params, batch.v, batch.w)
      prev_class = context.embed(state.prev_params, text_z=state.class_bank)[1]
      terms['consistency'] = losses.consistency_loss(
          v_img, prev_v, w_txt, prev_w, class_emb=class_emb, prev_class_emb=prev_class,
          logit_scale=scale, prev_logit_scale=prev_scale, class_mask=state.prev_seen,
          mask=batch.valid, kd_temperature=config.kd_temperature)
      total = total + config.consistency_weight * terms['consistency']
    return total, terms

  def sketch_matrix(key, params):
    """R [m, P] as per-leaf blocks (``meta.sketch_blocks``), drawn once per run key."""
    return meta.sketch_blocks(params, jax.random.fold_in(key, _SKETCH_TAG),
                              config.sketch_dim)

  def consolidate(state, task, *, constants=None, axis_name=None):
    """The seed update of METHOD §4.3 for ``task``; returns (state, info).

    ``constants``: R from ``sketch_matrix`` when ``sketch_cache`` is on (else None: R is
    drawn inside the update). Under pmap (``axis_name``) the meta-update is data-parallel over the held-out set
    (each device scores its rows of D_t^val); the rest is computed on every device.
    """
    key = jax.random.fold_in(jax.random.fold_in(state.key, _SEED_UPDATE_TAG), task.index)
    k_meta, k_gen = jax.random.split(key)
    sketch_key = jax.random.fold_in(state.key, _SKETCH_TAG)
    groups, group_text, train_group, val_group = vl_tasks.seed_groups(task)
    n_cls = groups.shape[0]
    class_ok = groups >= 0
    class_text = losses.l2_normalize(group_text)
    in_train = jnp.arange(task.train_x.shape[0]) < task.train_count
    in_val = jnp.arange(task.val_x.shape[0]) < task.val_count
    train_w = ((train_group[None] == groups[:, None]) & in_train[None]).astype(jnp.float32)
    val_w = ((val_group[None] == groups[:, None]) & in_val[None]).astype(jnp.float32)
    bank, seen = state.class_bank, state.seen

    def task_loss_on(params, rows, weights, normalizer=None):
      """The task's loss on rows (x, text, y) with example weights (the kind's on VL)."""
      x, text, y = rows
      if vl is None:
        return context.weighted_task_loss(params, bank, seen, x, y, weights, normalizer)
      return vl_engine.batch_loss(context.embed, params, bank=bank, seen=seen,
                                  bank_family=vl.bank_family, kinds=task.kind, x=x, text=text,
                                  y=y, weights=weights, normalizer=normalizer)

    train_rows = (task.train_x, task.train_text, task.train_y)
    val_rows = (task.val_x, task.val_text, task.val_y)
    condition_rows, condition_w = train_rows, train_w
    if vl is not None:  # a random subset of rows keeps in-batch InfoNCE small
      r = min(int(task.train_x.shape[0]), config.get('vl_condition_rows',
                                                     DEFAULT_VL_CONDITION_ROWS))
      condition_rows = tuple(a[:r] for a in train_rows)
      condition_w = train_w[:, :r]

    def make_candidates(gen_params, key, per_class, condition):
      """[n_cls * per_class] flat candidates (v, w, slot, label, ok)."""
      if config.seed_source == 'random':
        v, w = random_seeds(key, class_text, num_per_class=per_class,
                            sigma=config.random_seed_sigma)
      else:
        v, w = generate(generator, gen_params, key, condition=condition,
                        class_text=class_text, num_per_class=per_class,
                        noise_dim=config.noise_dim)
      slot = jnp.broadcast_to(jnp.arange(n_cls)[:, None], (n_cls, per_class)).reshape(-1)
      return (v.reshape(-1, dim), w.reshape(-1, dim), slot,
              jnp.where(class_ok, groups, 0)[slot], class_ok[slot])

    # (a) task-gradient conditions u_c under θ_t (the random source needs none).
    condition = None
    if config.seed_source != 'random':
      condition = meta.task_gradient_condition(
          lambda p, wts: task_loss_on(p, condition_rows, wts),
          state.params, condition_w, sketch_key=sketch_key, sketch_dim=config.sketch_dim,
          blocks=constants)

    # (c) meta-update of φ through an unrolled inner loop from θ_{t-1}.
    gen_params, gen_opt_state = state.gen_params, state.gen_opt_state
    info = {}
    if config.seed_source == 'generator' and config.meta_steps > 0:
      image_means = losses.l2_normalize(train_w @ task.train_x)

      # This device's rows of D_t^val (all of them under jit, where XLA splits the work).
      # In-batch InfoNCE needs all rows at once: on VL streams under pmap every device
      # computes the whole loss and contributes its 1/shards share.
      shards = 1 if axis_name is None else context.parallelism.num_shards
      local = vl is None or axis_name is None
      val_part = ((task.val_x, task.val_text, task.val_y, in_val) if not local else
                  tuple(a if a is None else parallel.shard_rows(a, context.parallelism,
                                                                axis_name)
                        for a in (task.val_x, task.val_text, task.val_y, in_val)))
      val_in = val_part[3]

      def outer_loss(phi, key):
        v, w, slot, label, ok = make_candidates(phi, key, config.meta_seeds_per_class,
                                                condition)
        adapted_params = meta.unrolled_inner_loop(
            lambda p: seed_replay_loss(p, bank, seen, v, w, label, ok), state.prev_params,
            learning_rate=config.inner_learning_rate, num_steps=config.inner_steps,
            max_grad_norm=config.inner_grad_clip)
        teach = task_loss_on(adapted_params, val_part[:3], val_in.astype(jnp.float32),
                             normalizer=task.val_count.astype(jnp.float32))
        if not local:
          teach = teach / shards
        if vl is None:
          v_img, class_emb, scale = context.embed(state.params, v, bank)
          classified = losses.task_loss(v_img, class_emb, label, scale, class_mask=seen,
                                        mask=ok)
        else:  # seeds stay matched to their texts (and classes) by θ_t
          classified = seed_replay_loss(state.params, bank, seen, v, w, label, ok)
        seed_terms = (classified
                      + config.align_weight * losses.alignment_loss(v, w, mask=ok)
                      + config.anchor_weight * losses.anchor_loss(v, w, slot, image_means,
                                                                  class_text, mask=ok))
        return teach + seed_terms / shards  # shares that sum to the global loss

      gen_params, gen_opt_state, meta_losses = meta.meta_update(
          outer_loss, gen_params, gen_opt_state, k_meta, optimizer=gen_optimizer,
          num_steps=config.meta_steps, axis_name=axis_name)
      info['meta_loss_first'] = meta_losses[0]
      info['meta_loss_last'] = meta_losses[-1]

    # (d) generate candidates, score by gradient alignment, keep the best k per class.
    v, w, slot, label, ok = make_candidates(gen_params, k_gen, config.candidates_per_class,
                                            condition)
    val_grads = jax.vmap(lambda wts: selection.flat_grad(
        task_loss_on, state.params, val_rows, wts))(val_w)

    if vl is None:
      def one_seed_loss(params, s):
        sv, sw, slabel = s
        return seed_replay_loss(params, bank, seen, sv[None], sw[None], slabel[None],
                                jnp.ones((1,), bool))
      seed_inputs = (v, w, label)
    else:  # a seed's replay loss among all candidates (the others held fixed)
      others = jax.lax.stop_gradient(context.embed(state.params, v, w)[:2])

      def one_seed_loss(params, i):
        return seed_row_loss(params, bank, seen, v, w, label, ok, others, i)
      seed_inputs = jnp.arange(v.shape[0])

    score = selection.gradient_alignment_scores(
        one_seed_loss, state.params, seed_inputs, slot, val_grads)
    shape = (n_cls, config.candidates_per_class)
    keep = selection.select_diverse(
        v.reshape(shape + (dim,)), score.reshape(shape), ok.reshape(shape),
        num_keep=config.seeds_per_class, max_cosine=max_cosine).reshape(-1)
    new = seeds.make_seeds(v, w, label, task.index, score=score, valid=keep)
    memory = seeds.prune(seeds.add(state.memory, new), budget)
    kept = jnp.maximum(jnp.sum(keep), 1)
    info.update(seeds_added=jnp.sum(keep), memory_size=memory.num_valid(),
                mean_score=jnp.sum(jnp.where(keep, score, 0)) / kept,
                seed_text_cosine=jnp.sum(jnp.where(keep, jnp.sum(v * w, -1), 0)) / kept)
    return state.replace(gen_params=gen_params, gen_opt_state=gen_opt_state,
                         memory=memory), info

  return Method(name='autoseed', init_state=init_state, extra_loss=extra_loss,
                kinds=vl_tasks.KINDS,
                consolidate=consolidate, consolidate_name='seed update',
                constants=(sketch_matrix if config.sketch_cache
                           and config.seed_source != 'random' else None),
                memory_bytes=lambda state: int(parallel.to_host(seeds.nbytes(state.memory))))
