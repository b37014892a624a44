"""A continual run as a fold over tasks: ``state_t = learn_task(state_{t-1}, task_t)``.

The whole run state (``ContinualState``) is one pytree: adapter parameters θ, the
previous task's parameters θ⁻, generator parameters φ, both optimiser states, the seed
memory, the run's PRNG key, the class bank and seen-class masks, the accuracy matrix and
the initial model's accuracies. Nothing else carries information between tasks.

``build_learner(config, stream)`` compiles the per-phase step functions for one method
and returns a ``Learner``; ``learner.learn_task(state, task)`` runs the three phases of
METHOD §4 — seed replay and online adaptation (one jitted ``lax.scan`` per chunk of
steps, state donated) and the seed update (task-gradient conditions, meta-update of G_φ,
generation, scoring, selection, ``prune(add(S, new), K)``; one jitted call) — then
evaluates every task and writes row t of the accuracy matrix.

Methods (``config.method``):
  * ``autoseed``: Auto-Seed VL2 (switches in the config select the ablations);
  * ``finetune``: sequential fine-tuning, the same online adaptation with no replay;
  * ``zeroshot``: the frozen backbone (adapters at their identity initialisation).

All tasks of a stream share shapes (``autoseed_jax.tasks``), so after task 1 nothing
recompiles.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from autoseed_jax import losses, meta, seeds, selection
from autoseed_jax.adapters import VLAdapter, adapted, init_adapter
from autoseed_jax.generator import SeedGenerator, generate, init_generator, random_seeds
from autoseed_jax.metrics import all_metrics
from autoseed_jax.tasks import EvalSet, Task, TaskStream

METHODS = ('autoseed', 'finetune', 'zeroshot')
SEED_SOURCES = ('generator', 'generator_no_meta', 'random')

# Tags folded into the run key so each use of randomness has its own stream.
_INIT_TAG, _STEP_TAG, _SEED_UPDATE_TAG, _SKETCH_TAG = 0, 1, 2, 3


@flax.struct.dataclass
class ContinualState:
  """Everything a continual run carries from one task to the next.

  Attributes:
    params: θ, adapter parameters (VLAdapter variables).
    prev_params: θ⁻, parameters frozen at the end of the previous task.
    opt_state: optax state of θ's optimiser.
    gen_params: φ, seed-generator parameters.
    gen_opt_state: optax state of φ's optimiser.
    memory: the seed memory S.
    key: [2] uint32, the run's PRNG key (per-step keys are folded from it).
    class_bank: [C, d] frozen text embeddings of the classes seen so far (0 elsewhere).
    seen: [C] bool, classes seen up to and including the current task.
    prev_seen: [C] bool, classes seen before the current task (θ⁻'s classes).
    acc_matrix: [T, T] float32, R[i, j] in percent (rows filled as tasks finish).
    initial_acc: [T] float32, b_j: accuracy of the initial model, percent.
    tasks_done: [] int32, tasks learned so far.
    step: [] int32, online-adaptation steps taken so far over the whole run.
  """

  params: Any
  prev_params: Any
  opt_state: Any
  gen_params: Any
  gen_opt_state: Any
  memory: seeds.SeedMemory
  key: jax.Array
  class_bank: jax.Array
  seen: jax.Array
  prev_seen: jax.Array
  acc_matrix: jax.Array
  initial_acc: jax.Array
  tasks_done: jax.Array
  step: jax.Array


@dataclasses.dataclass(frozen=True)
class Learner:
  """The compiled functions of one method on one stream's shapes.

  Attributes:
    name: the method.
    init: ``key -> ContinualState`` (initial model evaluated: ``initial_acc`` filled).
    begin_task: ``(state, task) -> state``: adds the task's classes to the bank.
    adapt: ``(state, task, num_steps) -> (state, losses)``: online adaptation, a jitted
      scan of ``num_steps`` steps (seed replay inside each step).
    update_seeds: ``(state, task) -> (state, info)`` or None for methods without seeds.
    end_task: ``(state, test) -> state``: evaluates row t, θ⁻ ← θ.
    steps_per_task: online-adaptation steps per task.
    steps_per_chunk: steps per call of ``adapt`` (progress and checkpoint granularity).
  """

  name: str
  init: Callable
  begin_task: Callable
  adapt: Callable | None
  update_seeds: Callable | None
  end_task: Callable
  steps_per_task: int
  steps_per_chunk: int

  def chunks(self) -> list[int]:
    """Sizes of the ``adapt`` calls that make up one task's online adaptation."""
    full, rest = divmod(self.steps_per_task, self.steps_per_chunk)
    return [self.steps_per_chunk] * full + ([rest] if rest else [])

  def learn_task(self, state: ContinualState, task: Task, *, test: EvalSet,
                 log: Callable[[dict], None] | None = None) -> ContinualState:
    """The three phases of METHOD §4 for one task, then evaluation of row t."""
    state = self.begin_task(state, task)
    if self.adapt is not None:
      for n in self.chunks():
        state, step_losses = self.adapt(state, task, n)
        if log is not None:
          log({'phase': 'adapt', 'task': int(task.index), 'step': int(state.step),
               **{k: float(jnp.mean(v)) for k, v in step_losses.items()}})
    if self.update_seeds is not None:
      state, info = self.update_seeds(state, task)
      if log is not None:
        log({'phase': 'seed_update', 'task': int(task.index),
             **{k: float(jnp.mean(v)) for k, v in info.items()}})
    return self.end_task(state, test)


def validate_config(config: ml_collections.ConfigDict, stream: TaskStream) -> None:
  """Raises ValueError naming the field and a fix for values the method cannot run."""

  def need(cond, msg):
    if not cond:
      raise ValueError(f'invalid config: {msg}')

  need(config.method in METHODS, f'method={config.method!r}; choose one of {METHODS}.')
  need(config.seed_source in SEED_SOURCES,
       f'seed_source={config.seed_source!r}; choose one of {SEED_SOURCES}.')
  need(config.steps_per_task > 0, f'steps_per_task={config.steps_per_task} must be > 0.')
  need(config.steps_per_chunk > 0, f'steps_per_chunk={config.steps_per_chunk} must be > 0.')
  need(config.batch_size > 0, f'batch_size={config.batch_size} must be > 0.')
  need(config.seeds_per_class > 0,
       f'seeds_per_class={config.seeds_per_class} must be > 0 (seeds kept per class).')
  need(config.candidates_per_class >= config.seeds_per_class,
       f'candidates_per_class={config.candidates_per_class} must be >= seeds_per_class='
       f'{config.seeds_per_class}.')
  need(config.memory_budget > 0,
       f'memory_budget={config.memory_budget} must be > 0 (seeds kept in memory).')
  capacity = memory_capacity(config, stream)
  need(config.memory_budget <= capacity,
       f'memory_budget={config.memory_budget} exceeds memory_capacity={capacity}; '
       'raise memory_capacity or lower memory_budget.')
  need(config.seed_batch_size > 0, f'seed_batch_size={config.seed_batch_size} must be > 0.')
  need(config.meta_steps >= 0 and config.inner_steps > 0,
       f'meta_steps={config.meta_steps} must be >= 0 and inner_steps={config.inner_steps} > 0.')
  need(config.kd_temperature > 0, f'kd_temperature={config.kd_temperature} must be > 0.')


def memory_capacity(config, stream: TaskStream) -> int:
  """Slots of the seed memory: ``memory_capacity`` if set, else the budget K; with
  pruning off, room for every class's seeds (the "full memory" ablation)."""
  if not config.prune:
    return stream.num_classes * config.seeds_per_class
  return config.memory_capacity or config.memory_budget


def build_learner(config: ml_collections.ConfigDict, stream: TaskStream) -> Learner:
  """Compiles the step functions of ``config.method`` for ``stream``'s shapes."""
  validate_config(config, stream)
  num_classes, dim, num_tasks = stream.num_classes, stream.dim, stream.num_tasks
  adapter = VLAdapter(hidden_dim=config.adapter_hidden, alpha=config.adapter_alpha,
                      init_logit_scale=config.init_logit_scale)
  generator = SeedGenerator(hidden_dim=config.generator_hidden,
                            num_layers=config.generator_layers,
                            residual=config.generator_residual)
  optimizer = optax.adamw(config.learning_rate, weight_decay=config.weight_decay)
  gen_optimizer = optax.adam(config.meta_learning_rate)
  capacity = memory_capacity(config, stream)
  seed_batch_size = min(config.seed_batch_size, capacity)
  budget = config.memory_budget if config.prune else capacity
  max_cosine = config.redundancy_cosine if config.prune else 2.0
  uses_seeds = config.method == 'autoseed'
  replay_on = uses_seeds and config.replay_weight > 0
  consistency_on = uses_seeds and config.consistency_weight > 0

  def evaluate(params, test: EvalSet, label_masks):
    """[T] accuracies (percent) of ``params`` on every task, label space per task."""
    class_emb = adapted(adapter, params, text_z=test.class_text)[1]

    def one(x, y, count, mask):
      img, _, scale = adapted(adapter, params, image_z=x)
      pred = jnp.argmax(losses.class_logits(img, class_emb, scale, mask), axis=-1)
      valid = jnp.arange(x.shape[0]) < count
      return 100.0 * jnp.sum((pred == y) & valid) / count

    return jax.vmap(one)(test.x, test.y, test.count, label_masks)

  def init(key, test: EvalSet) -> ContinualState:
    k_adapter, k_gen = jax.random.split(jax.random.fold_in(key, _INIT_TAG))
    params = init_adapter(adapter, k_adapter, dim)
    gen_params = init_generator(generator, k_gen, sketch_dim=config.sketch_dim, dim=dim,
                                noise_dim=config.noise_dim)
    # b_j: the initial model on task j, over the classes of tasks 1..j.
    cumulative = jnp.cumsum(test.class_mask, axis=0) > 0
    return ContinualState(
        params=params, prev_params=params, opt_state=optimizer.init(params),
        gen_params=gen_params, gen_opt_state=gen_optimizer.init(gen_params),
        memory=seeds.init_memory(capacity, dim), key=key,
        class_bank=jnp.zeros((num_classes, dim), jnp.float32),
        seen=jnp.zeros((num_classes,), bool), prev_seen=jnp.zeros((num_classes,), bool),
        acc_matrix=jnp.zeros((num_tasks, num_tasks), jnp.float32),
        initial_acc=evaluate(params, test, cumulative).astype(jnp.float32),
        tasks_done=jnp.zeros((), jnp.int32), step=jnp.zeros((), jnp.int32))

  def begin_task(state: ContinualState, task: Task) -> ContinualState:
    slots = jnp.where(task.classes >= 0, task.classes, num_classes)  # padding -> dropped
    opt_state = optimizer.init(state.params) if config.reset_optimizer else state.opt_state
    return state.replace(
        class_bank=state.class_bank.at[slots].set(task.class_text, mode='drop'),
        prev_seen=state.seen,
        seen=state.seen.at[slots].set(True, mode='drop'),
        opt_state=opt_state)

  def training_loss(params, state: ContinualState, x, y, seed_batch):
    img, class_emb, scale = adapted(adapter, params, x, state.class_bank)
    task_term = losses.task_loss(img, class_emb, y, scale, class_mask=state.seen)
    terms = {'task': task_term}
    total = task_term
    if replay_on or consistency_on:
      v_img, w_txt, _ = adapted(adapter, params, seed_batch.v, seed_batch.w)
    if replay_on:
      terms['replay'] = losses.replay_loss(
          v_img, w_txt, seed_batch.label, class_emb, scale, class_mask=state.seen,
          mask=seed_batch.valid, infonce_weight=config.replay_infonce_weight)
      total = total + config.replay_weight * terms['replay']
    if consistency_on:
      prev_v, prev_w, prev_scale = adapted(adapter, state.prev_params, seed_batch.v,
                                           seed_batch.w)
      prev_class = adapted(adapter, state.prev_params, text_z=state.class_bank)[1]
      terms['consistency'] = losses.consistency_loss(
          v_img, prev_v, w_txt, prev_w, class_emb=class_emb, prev_class_emb=prev_class,
          logit_scale=scale, prev_logit_scale=prev_scale, class_mask=state.prev_seen,
          mask=seed_batch.valid, kd_temperature=config.kd_temperature)
      total = total + config.consistency_weight * terms['consistency']
    terms['total'] = total
    return total, terms

  def adapt(state: ContinualState, task: Task, num_steps: int):
    def step(state, _):
      key = jax.random.fold_in(jax.random.fold_in(state.key, _STEP_TAG), state.step)
      k_data, k_seed = jax.random.split(key)
      idx = jax.random.randint(k_data, (config.batch_size,), 0, task.train_count)
      seed_batch = seeds.sample(state.memory, k_seed, seed_batch_size)
      grads, terms = jax.grad(training_loss, has_aux=True)(
          state.params, state, task.train_x[idx], task.train_y[idx], seed_batch)
      updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
      state = state.replace(params=optax.apply_updates(state.params, updates),
                            opt_state=opt_state, step=state.step + 1)
      return state, terms

    return jax.lax.scan(step, state, None, length=num_steps)

  def weighted_task_loss(params, bank, seen, x, y, weights):
    """Task loss with per-example weights [N] (class / validity masks)."""
    img, class_emb, scale = adapted(adapter, params, x, bank)
    logits = losses.class_logits(img, class_emb, scale, seen)
    ce = -jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=-1)[:, 0]
    return jnp.sum(ce * weights) / jnp.maximum(jnp.sum(weights), 1.0)

  def seed_replay_loss(params, bank, seen, v, w, label, valid):
    v_img, w_txt, scale = adapted(adapter, params, v, w)
    class_emb = adapted(adapter, params, text_z=bank)[1]
    return losses.replay_loss(v_img, w_txt, label, class_emb, scale, class_mask=seen,
                              mask=valid, infonce_weight=config.replay_infonce_weight)

  def update_seeds(state: ContinualState, task: Task):
    """Phase 3 (METHOD §4.3): conditions, meta-update, generation, scoring, memory."""
    key = jax.random.fold_in(jax.random.fold_in(state.key, _SEED_UPDATE_TAG), task.index)
    k_meta, k_gen = jax.random.split(key)
    sketch_key = jax.random.fold_in(state.key, _SKETCH_TAG)
    n_cls = task.classes.shape[0]
    class_ok = task.classes >= 0
    class_text = losses.l2_normalize(task.class_text)
    in_train = jnp.arange(task.train_x.shape[0]) < task.train_count
    in_val = jnp.arange(task.val_x.shape[0]) < task.val_count
    train_w = ((task.train_y[None] == task.classes[:, None]) & in_train[None]).astype(jnp.float32)
    val_w = ((task.val_y[None] == task.classes[:, None]) & in_val[None]).astype(jnp.float32)
    bank, seen = state.class_bank, state.seen

    # (a) task-gradient conditions u_c under θ_t.
    condition = meta.task_gradient_condition(
        lambda p, wts: weighted_task_loss(p, bank, seen, task.train_x, task.train_y, wts),
        state.params, train_w, sketch_key=sketch_key, sketch_dim=config.sketch_dim)
    image_means = losses.l2_normalize(train_w @ task.train_x)

    def make_candidates(gen_params, key, per_class):
      """[n_cls * per_class] flat seeds (v, w, slot, label, ok)."""
      if config.seed_source == 'random':
        v, w = random_seeds(key, class_text, num_per_class=per_class,
                            sigma=config.random_seed_sigma)
      else:
        v, w = generate(generator, gen_params, key, condition=condition,
                        class_text=class_text, num_per_class=per_class,
                        noise_dim=config.noise_dim)
      slot = jnp.broadcast_to(jnp.arange(n_cls)[:, None], (n_cls, per_class)).reshape(-1)
      return (v.reshape(-1, dim), w.reshape(-1, dim), slot,
              jnp.where(class_ok, task.classes, 0)[slot], class_ok[slot])

    # (c) meta-update of φ through an unrolled inner loop from θ_{t-1}.
    gen_params, gen_opt_state = state.gen_params, state.gen_opt_state
    info = {}
    if config.seed_source == 'generator' and config.meta_steps > 0:
      def outer_loss(phi, key):
        v, w, slot, label, ok = make_candidates(phi, key, config.meta_seeds_per_class)
        inner = lambda p: seed_replay_loss(p, bank, seen, v, w, label, ok)
        adapted_params = meta.unrolled_inner_loop(
            inner, state.prev_params, learning_rate=config.inner_learning_rate,
            num_steps=config.inner_steps)
        teach = weighted_task_loss(adapted_params, bank, seen, task.val_x, task.val_y,
                                   in_val.astype(jnp.float32))
        v_img, class_emb, scale = adapted(adapter, state.params, v, bank)
        classified = losses.task_loss(v_img, class_emb, label, scale, class_mask=seen,
                                      mask=ok)
        return (teach + classified
                + config.align_weight * losses.alignment_loss(v, w, mask=ok)
                + config.anchor_weight * losses.anchor_loss(v, w, slot, image_means,
                                                            class_text, mask=ok))

      gen_params, gen_opt_state, meta_losses = meta.meta_update(
          outer_loss, gen_params, gen_opt_state, k_meta, optimizer=gen_optimizer,
          num_steps=config.meta_steps)
      info['meta_loss_first'] = meta_losses[0]
      info['meta_loss_last'] = meta_losses[-1]

    # (d) generate candidates, score by gradient alignment, keep the best k per class.
    v, w, slot, label, ok = make_candidates(gen_params, k_gen, config.candidates_per_class)
    val_grads = jax.vmap(
        lambda wts: selection.flat_grad(weighted_task_loss, state.params, bank, seen,
                                        task.val_x, task.val_y, wts))(val_w)

    def one_seed_loss(params, s):
      sv, sw, slabel = s
      return seed_replay_loss(params, bank, seen, sv[None], sw[None], slabel[None],
                              jnp.ones((1,), bool))

    score = selection.gradient_alignment_scores(
        one_seed_loss, state.params, (v, w, label), slot, val_grads)
    shape = (n_cls, config.candidates_per_class)
    keep = selection.select_diverse(
        v.reshape(shape + (dim,)), score.reshape(shape), ok.reshape(shape),
        num_keep=config.seeds_per_class, max_cosine=max_cosine).reshape(-1)
    new = seeds.make_seeds(v, w, label, task.index, score=score, valid=keep)
    memory = seeds.prune(seeds.add(state.memory, new), budget)
    info.update(seeds_added=jnp.sum(keep), memory_size=memory.num_valid(),
                mean_score=jnp.sum(jnp.where(keep, score, 0)) / jnp.maximum(jnp.sum(keep), 1),
                seed_text_cosine=jnp.sum(jnp.where(keep, jnp.sum(v * w, -1), 0))
                / jnp.maximum(jnp.sum(keep), 1))
    return state.replace(gen_params=gen_params, gen_opt_state=gen_opt_state,
                         memory=memory), info

  def end_task(state: ContinualState, test: EvalSet) -> ContinualState:
    row = evaluate(state.params, test, state.seen[None, :] | test.class_mask)
    return state.replace(acc_matrix=state.acc_matrix.at[state.tasks_done].set(row),
                         prev_params=state.params, tasks_done=state.tasks_done + 1)

  trains = config.method != 'zeroshot'
  return Learner(
      name=config.method,
      init=jax.jit(init),
      begin_task=jax.jit(begin_task, donate_argnums=0),
      adapt=jax.jit(adapt, donate_argnums=0, static_argnums=2) if trains else None,
      update_seeds=(jax.jit(update_seeds, donate_argnums=0)
                    if uses_seeds else None),
      end_task=jax.jit(end_task, donate_argnums=0),
      steps_per_task=config.steps_per_task,
      steps_per_chunk=min(config.steps_per_chunk, config.steps_per_task),
  )


@dataclasses.dataclass
class RunResult:
  """What ``run_sequence`` returns: the final state and host-side summaries."""

  method: str
  state: ContinualState
  acc_matrix: np.ndarray
  initial_acc: np.ndarray
  metrics: dict[str, float]
  memory_bytes: int
  seconds: float


def run_sequence(config: ml_collections.ConfigDict, stream: TaskStream, *,
                 learner: Learner | None = None,
                 log: Callable[[dict], None] | None = None) -> RunResult:
  """Runs ``config.method`` over every task of ``stream`` from a fresh state.

  Args:
    config: the run config (see ``experiments/configs``).
    stream: the task stream.
    learner: reuse already compiled step functions (same method and stream shapes).
    log: optional callback receiving a dict per chunk of steps / seed update.
  """
  learner = learner or build_learner(config, stream)
  start = time.perf_counter()
  test = jax.device_put(stream.test)
  state = learner.init(jax.random.PRNGKey(config.seed), test)
  for task in stream.tasks:
    state = learner.learn_task(state, jax.device_put(task), test=test, log=log)
  acc = np.asarray(state.acc_matrix)
  initial = np.asarray(state.initial_acc)
  return RunResult(
      method=config.method, state=state, acc_matrix=acc, initial_acc=initial,
      metrics=all_metrics(acc, initial),
      memory_bytes=int(seeds.nbytes(state.memory)) if config.method == 'autoseed' else 0,
      seconds=time.perf_counter() - start)
