"""A continual run as a fold over tasks: ``state_t = learn_task(state_{t-1}, task_t)``.

The whole run state (``ContinualState``) is one pytree: adapter parameters θ, the
previous task's parameters θ⁻, the optimiser state, the seed memory and generator
parameters φ with their optimiser state (Auto-Seed VL2), any other method's own state
(``extras``), the run's PRNG key, the class bank and seen-class masks, the accuracy
matrix and the initial model's accuracies. Nothing else carries information between
tasks.

``build_learner(config, stream)`` compiles the engine's per-phase functions for one
method (``autoseed_jax.methods``) and returns a ``Learner``; ``learner.learn_task(state,
task)`` runs METHOD §4's phases — online adaptation with the method's extra loss (seed
replay for Auto-Seed VL2) in jitted ``lax.scan`` chunks with the state donated, then the
method's consolidation (the seed update), then evaluates every task and writes row t of
the accuracy matrix.

All tasks of a stream share shapes (``autoseed_jax.core.tasks``), so after task 1 nothing
recompiles. On a vision-language stream (``TaskStream.vl``: retrieval, captioning, VQA and
classification tasks in any order, ``autoseed_jax.core.task_kinds``) the task loss and the
evaluation are those of ``autoseed_jax.core.kind_losses``: R[i, j] holds each task's primary
score and ``task_metrics`` the per-kind secondary metrics beside it.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import tqdm

from autoseed_jax.core import kind_eval, kind_losses, parallel, seeds
from autoseed_jax.core.adapters import VLAdapter, init_adapter
from autoseed_jax.core.losses import class_logits, task_loss
from autoseed_jax.core.config_checks import check_fields
from autoseed_jax.methods import Context, Method, get_method, validate_config as validate_method
from autoseed_jax.methods.base import check_kinds
from autoseed_jax.core.metrics import all_metrics
from autoseed_jax.core.tasks import EvalSet, Task, TaskStream

# Tags folded into the run key so each use of randomness has its own stream.
_INIT_TAG, _STEP_TAG = 0, 1


@flax.struct.dataclass
class ContinualState:
  """Everything a continual run carries from one task to the next.

  Attributes:
    params: θ, adapter parameters (VLAdapter variables).
    prev_params: θ⁻, parameters frozen at the end of the previous task.
    opt_state: optax state of θ's optimiser.
    memory: the seed memory S (Auto-Seed VL2; None for other methods).
    gen_params: φ, seed-generator parameters (None for other methods).
    gen_opt_state: optax state of φ's optimiser (None for other methods).
    extras: any other method's own state (replay buffer, Fisher, ...), a pytree.
    key: [2] uint32, the run's PRNG key (per-step keys are folded from it).
    class_bank: [C, d] frozen text embeddings of the classes seen so far (0 elsewhere).
    seen: [C] bool, classes seen up to and including the current task.
    prev_seen: [C] bool, classes seen before the current task (θ⁻'s classes).
    acc_matrix: [T, T] float32, R[i, j] in percent (rows filled as tasks finish).
    initial_acc: [T] float32, b_j: accuracy of the initial model, percent.
    tasks_done: [] int32, tasks learned so far.
    step: [] int32, online-adaptation steps taken so far over the whole run.
    task_metrics: [T, T, K] float32 secondary metrics (``task_kinds.METRIC_NAMES``) after
      task i on task j, NaN where a kind has none (vision-language streams; else None).
    initial_task_metrics: [T, K] the initial model's (vision-language streams; else None).
  """

  params: Any
  prev_params: Any
  opt_state: Any
  memory: seeds.SeedMemory | None
  gen_params: Any
  gen_opt_state: Any
  extras: Any
  key: jax.Array
  class_bank: jax.Array
  seen: jax.Array
  prev_seen: jax.Array
  acc_matrix: jax.Array
  initial_acc: jax.Array
  tasks_done: jax.Array
  step: jax.Array
  task_metrics: jax.Array | None = None
  initial_task_metrics: jax.Array | None = None


@dataclasses.dataclass(frozen=True)
class Learner:
  """The compiled functions of one method on one stream's shapes.

  Attributes:
    method: the method's hooks (``autoseed_jax.methods.base.Method``).
    init: ``(key, test) -> ContinualState``, the initial model evaluated
      (``initial_acc`` filled).
    begin_task: ``(state, task) -> state``: adds the task's classes to the bank.
    adapt: ``(state, task, num_steps) -> (state, loss terms [num_steps])``: online
      adaptation, a jitted scan of ``num_steps`` steps; None for methods that do not train.
    consolidate: ``(state, task) -> (state, info)``, the method's post-adaptation phase
      (the seed update of Auto-Seed VL2), or None.
    end_task: ``(state, test) -> state``: evaluates row t, θ⁻ ← θ.
    steps_per_task: online-adaptation steps per task.
    steps_per_chunk: steps per call of ``adapt`` (progress and checkpoint granularity).
    parallelism: the mesh and compile mode (``autoseed_jax.core.parallel``).
  """

  method: Method
  init: Callable
  begin_task: Callable
  adapt: Callable | None
  consolidate: Callable | None
  end_task: Callable
  steps_per_task: int
  steps_per_chunk: int
  parallelism: parallel.Parallelism

  @property
  def name(self) -> str:
    return self.method.name

  def run_key(self, config: ml_collections.ConfigDict) -> jax.Array:
    """The key ``init`` takes for ``config``'s run: ``PRNGKey(config.seed)``."""
    return jax.random.PRNGKey(config.seed)

  def records(self, arrays: dict, *, step=None) -> list[dict]:
    """The log records of one chunk's loss terms (after ``step``, the run's step counter)
    or of one consolidation's info: one record of host numbers (``_scalars``)."""
    head = {} if step is None else _scalars(step=step)
    return [{**head, **_scalars(**arrays)}]

  def put_task(self, task: Task) -> Task:
    """Places a task on the mesh: example rows (and ``train_pixels``, when the stream has
    images) sharded over ``data`` (jit mode)."""
    return parallel.place_rows_sharded(
        task, self.parallelism,
        row_fields=('train_x', 'train_y', 'val_x', 'val_y', 'train_pixels', 'train_text',
                    'val_text', 'train_group', 'val_group'))

  def put_test(self, test: EvalSet) -> EvalSet:
    """Places the test sets on the mesh (replicated: they are evaluated per task)."""
    return parallel.replicate(test, self.parallelism)

  def chunks(self) -> list[int]:
    """Sizes of the ``adapt`` calls that make up one task's online adaptation."""
    full, rest = divmod(self.steps_per_task, self.steps_per_chunk)
    return [self.steps_per_chunk] * full + ([rest] if rest else [])

  def position(self, state: ContinualState) -> tuple[int, int]:
    """(index of the current task, online-adaptation steps done in it) of ``state``.

    ``tasks_done`` tasks are finished; ``step`` counts adaptation steps over the whole
    run, so ``step - tasks_done * steps_per_task`` of the current task are done (0: not
    begun; ``steps_per_task``: adaptation complete, consolidation and evaluation
    pending). Methods that do not train are always at a task's start.
    """
    tasks_done = int(parallel.to_host(state.tasks_done))
    if self.adapt is None:
      return tasks_done, 0
    return tasks_done, int(parallel.to_host(state.step)) - tasks_done * self.steps_per_task

  def remaining_chunks(self, done: int) -> list[int]:
    """The chunk sizes left in a task after ``done`` steps (a chunk boundary)."""
    chunks, boundary = self.chunks(), 0
    for i, n in enumerate(chunks + [0]):
      if boundary == done:
        return chunks[i:]
      boundary += n
    raise ValueError(f'a state at step {done} of a task is not at a chunk boundary of '
                     f'{chunks}; it was saved with another steps_per_chunk.')

  def learn_task(self, state: ContinualState, task: Task, *, test: EvalSet,
                 log: Callable[[dict], None] | None = None,
                 on_chunk: Callable | None = None,
                 on_consolidate: Callable | None = None) -> ContinualState:
    """The phases of METHOD §4 for one task, then evaluation of row t.

    A state saved part-way through the task resumes where it stopped (``position``):
    the task is begun (class bank, optimiser reset) only when none of its steps are done,
    and only the remaining chunks of online adaptation run.

    Args:
      state: the run state (its current task must be ``task``).
      task: the task, placed with ``put_task``.
      test: every task's test set, placed with ``put_test``.
      log: receives one record per chunk of steps and one per consolidation.
      on_chunk: ``(state, loss terms [n], steps done before, n)`` after each chunk is
        logged (the runner checks for NaN, saves and honours Ctrl-C here).
      on_consolidate: ``(state, info as host numbers)`` after the consolidation.
    """
    t, done = self.position(state)
    if done == 0:
      state = self.begin_task(state, task)
    bar = tqdm.tqdm(total=self.steps_per_task if self.adapt is not None else 0,
                    initial=done, desc=f'{self.name} task {t + 1}', unit='step',
                    leave=False, disable=not sys.stderr.isatty())
    with bar:
      if self.adapt is not None:
        for n in self.remaining_chunks(done):
          state, terms = self.adapt(state, task, n)
          records = self.records(terms, step=state.step)
          bar.update(n)
          bar.set_postfix(loss=f"{records[0]['total']:.3f}")
          if log is not None:
            for record in records:
              log({'phase': 'adapt', 'task': t, **record})
          if on_chunk is not None:
            on_chunk(state, terms, done, n)
          done += n
      if self.consolidate is not None:
        bar.set_description(f'{self.name} task {t + 1}: {self.method.consolidate_name}')
        state, info = self.consolidate(state, task)
        for info in self.records(info):
          if log is not None:
            log({'phase': 'consolidate', 'task': t, **info})
          if on_consolidate is not None:
            on_consolidate(state, info)
    return self.end_task(state, test)


def _scalars(**arrays) -> dict:
  """Host Python numbers for a log record: integer scalars as int, else the mean."""
  out = {}
  for k, v in parallel.to_host(arrays).items():
    out[k] = int(v) if np.issubdtype(v.dtype, np.integer) and v.ndim == 0 else float(v.mean())
  return out


def _adapter_embed(context: Context, adapter_params: Callable | None) -> Callable:
  """The engine's default embedding: θ (or ``adapter_params(θ)``) through the adapters."""
  if adapter_params is None:
    return context.embed
  return lambda params, image_z=None, text_z=None: context.embed(
      adapter_params(params), image_z, text_z)


class _ConsolidateWithConstants:
  """``(state, task) -> (state, info)``: the compiled ``consolidate(state, task, constants)``
  called with the method's run constants for ``state.key`` (``Method.constants``),
  computed on first use and kept for the latest key only (a learner reused across seeds
  recomputes them once per seed)."""

  def __init__(self, compiled: Callable, make_constants: Callable | None):
    self._compiled, self._make = compiled, make_constants
    self._cache = {}

  def constants_for(self, state: ContinualState):
    """The run constants of ``state.key`` (None for a method without any)."""
    if self._make is None:
      return None
    key_id = parallel.to_host(jax.random.key_data(state.key)).tobytes()
    if key_id not in self._cache:
      self._cache.clear()  # free the previous key's constants before making new ones
      self._cache[key_id] = self._make(state.key, state.params)
    return self._cache[key_id]

  def __call__(self, state: ContinualState, task: Task):
    return self._compiled(state, task, self.constants_for(state))

  def lower(self, state: ContinualState, task: Task):
    """The jit-mode step lowered for these arguments (ahead-of-time compilation)."""
    return self._compiled.lower(state, task, self.constants_for(state))


# The engine's numeric fields (experiments/configs/common.py) and the values they take.
RULES = (
    ('steps_per_task', '> 0', 'online-adaptation steps on each task'),
    ('steps_per_chunk', '> 0', 'steps per compiled scan call'),
    ('batch_size', '> 0', 'real examples per step'),
    ('adapter_hidden', '> 0', 'hidden width of each adapter MLP'),
    ('adapter_alpha', '>= 0', 'residual ratio α of the adapters'),
    ('init_logit_scale', '> 0', 'exp(log τ) at initialisation'),
    ('learning_rate', '> 0', 'step size of AdamW on θ'),
    ('weight_decay', '>= 0', 'weight decay of AdamW on θ'),
)


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the field and a fix for a config that cannot run: the
  engine's fields (``RULES``), then ``config.method`` and its own fields. Needs no
  stream, so it runs before any data is loaded; ``build_learner`` adds the checks that
  need the stream's shapes."""
  check_fields(config, RULES)
  validate_method(config)


def make_context(config: ml_collections.ConfigDict, stream: TaskStream) -> Context:
  """The static pieces a method is built from (adapters, mesh, the stream's sizes)."""
  validate_config(config)
  adapter = VLAdapter(hidden_dim=config.adapter_hidden, alpha=config.adapter_alpha,
                      init_logit_scale=config.init_logit_scale)
  par = parallel.make_parallelism(config)
  task = stream.tasks[0]
  for name, rows in (('train', task.train_x.shape[0]), ('validation', task.val_x.shape[0])):
    if rows % par.num_shards:
      raise ValueError(
          f'stream {stream.name!r}: {rows} padded {name} rows per task do not split over '
          f'{par.num_shards} devices; build the stream with pad_multiple={par.num_shards} '
          '(autoseed_jax.core.tasks.build_stream) or use fewer devices (num_devices).')
  return Context(config=config, adapter=adapter, num_classes=stream.num_classes,
                 dim=stream.dim, num_tasks=stream.num_tasks, parallelism=par,
                 class_names=tuple(stream.class_names), train_rows=int(task.train_x.shape[0]),
                 vl=stream.vl)


@dataclasses.dataclass(frozen=True)
class Phases:
  """The engine's phase functions for one method on one stream's shapes, not yet compiled
  (``build_learner`` compiles them; ``autoseed_jax.seed_axis`` maps them over run seeds).

  Attributes:
    method: the method's hooks.
    context: what the method was built from (its ``parallelism`` is the mesh the phases'
      collectives and sharding constraints refer to).
    init: ``(key, test) -> ContinualState``.
    begin_task: ``(state, task) -> state``.
    adapt: ``(state, task, num_steps, *, axis_name=None) -> (state, loss terms [num_steps])``.
    consolidate: ``(state, task, constants, *, axis_name=None) -> (state, info)``.
    end_task: ``(state, test) -> state``.
    constants: ``(key, θ) -> pytree``, the method's run constants, or None.
  """

  method: Method
  context: Context
  init: Callable
  begin_task: Callable
  adapt: Callable
  consolidate: Callable
  end_task: Callable
  constants: Callable | None


def build_learner(config: ml_collections.ConfigDict, stream: TaskStream) -> Learner:
  """Compiles the engine's step functions for ``config.method`` on ``stream``'s shapes."""
  return compile_phases(engine_phases(config, stream), config)


def engine_phases(config: ml_collections.ConfigDict, stream: TaskStream) -> Phases:
  """The engine's phase functions for ``config.method`` on ``stream`` (uncompiled)."""
  context = make_context(config, stream)
  num_classes, dim, num_tasks = stream.num_classes, stream.dim, stream.num_tasks
  adapter, par = context.adapter, context.parallelism
  vl = context.vl
  method = get_method(config.method, context)
  check_kinds(method, vl)
  embed = method.embed or _adapter_embed(context, method.adapter_params)
  optimizer = optax.adamw(config.learning_rate, weight_decay=config.weight_decay)
  bank_family = None if vl is None else np.asarray(vl.bank_family, np.int32)

  def evaluate(params, extras, test: EvalSet, label_masks):
    """[T] scores (percent) of ``params`` on every task, label space per task; with
    [T, K] secondary metrics on a vision-language stream (else None)."""
    if vl is not None:
      return kind_eval.evaluate(embed, params, test, label_masks, vl)
    if method.eval_logits is not None:  # e.g. task inference over stored task models
      def logits_of(x, mask):
        return method.eval_logits(params, extras, x, test.class_text, mask)
    else:
      class_emb = embed(params, text_z=test.class_text)[1]

      def logits_of(x, mask):
        img, _, scale = embed(params, image_z=x)
        return class_logits(img, class_emb, scale, mask)

    def one(x, y, count, mask):
      pred = jnp.argmax(logits_of(x, mask), axis=-1)
      valid = jnp.arange(x.shape[0]) < count
      return 100.0 * jnp.sum((pred == y) & valid) / count

    return jax.vmap(one)(test.x, test.y, test.count, label_masks), None

  def init(key, test: EvalSet) -> ContinualState:
    init_key = jax.random.fold_in(key, _INIT_TAG)
    params = init_adapter(adapter, init_key, dim)
    if method.init_params is not None:
      params = method.init_params(init_key, params)
    # b_j: the initial model on task j, over the classes of tasks 1..j.
    cumulative = jnp.cumsum(test.class_mask, axis=0) > 0
    fields = dict(memory=None, gen_params=None, gen_opt_state=None, extras={})
    fields.update(method.init_state(key))
    initial, metrics = evaluate(params, fields['extras'], test, cumulative)
    if metrics is not None:
      fields.update(initial_task_metrics=metrics, task_metrics=jnp.full(
          (num_tasks,) + metrics.shape, jnp.nan, jnp.float32))
    return ContinualState(
        params=params, prev_params=params, opt_state=optimizer.init(params), key=key,
        class_bank=jnp.zeros((num_classes, dim), jnp.float32),
        seen=jnp.zeros((num_classes,), bool), prev_seen=jnp.zeros((num_classes,), bool),
        acc_matrix=jnp.zeros((num_tasks, num_tasks), jnp.float32),
        initial_acc=initial.astype(jnp.float32),
        tasks_done=jnp.zeros((), jnp.int32), step=jnp.zeros((), jnp.int32), **fields)

  def begin_task(state: ContinualState, task: Task) -> ContinualState:
    slots = jnp.where(task.classes >= 0, task.classes, num_classes)  # padding -> dropped
    opt_state = optimizer.init(state.params) if config.reset_optimizer else state.opt_state
    state = state.replace(
        class_bank=state.class_bank.at[slots].set(task.class_text, mode='drop'),
        prev_seen=state.seen,
        seen=state.seen.at[slots].set(True, mode='drop'),
        opt_state=opt_state)
    return state if method.begin_task is None else method.begin_task(state, task)

  def training_loss(params, state: ContinualState, x, y, key, text=None, kind=None):
    """L_task on the real batch plus the method's extra terms; (total, terms). On a
    vision-language stream ``text`` [B, d] are the rows' paired texts and ``kind`` the
    task's kind (``kind_losses.batch_loss``)."""
    if vl is None:
      img, class_emb, scale = embed(params, x, state.class_bank)
      total = task_loss(img, class_emb, y, scale, class_mask=state.seen)
    else:
      total = kind_losses.batch_loss(embed, params, bank=state.class_bank, seen=state.seen,
                                   bank_family=bank_family, kinds=kind, x=x, text=text, y=y,
                                   weights=jnp.ones(y.shape, jnp.float32))
    terms = {'task_loss': total}
    if method.extra_loss is not None:
      extra, extra_terms = (method.extra_loss(params, state, x, y, key) if vl is None else
                            method.extra_loss(params, state, x, y, key, text=text))
      total = total + extra
      terms.update(extra_terms)
    terms['total'] = total
    return total, terms

  def adapt(state: ContinualState, task: Task, num_steps: int, *, axis_name=None):
    """``num_steps`` online-adaptation steps (one step function for jit and pmap)."""

    def step(state, _):
      key = jax.random.fold_in(jax.random.fold_in(state.key, _STEP_TAG), state.step)
      k_data, k_method = jax.random.split(key)
      # Every device draws the same global batch; each keeps its rows.
      idx = jax.random.randint(k_data, (config.batch_size,), 0, task.train_count)
      if vl is None or axis_name is None:  # pmap: in-batch InfoNCE needs the whole batch
        idx = parallel.shard_rows(idx, par, axis_name)
      vl_batch = {} if vl is None else dict(text=task.train_text[idx], kind=task.kind)
      grads, terms = jax.grad(training_loss, has_aux=True)(
          state.params, state, task.train_x[idx], task.train_y[idx], k_method, **vl_batch)
      grads, terms = parallel.mean_over_devices((grads, terms), axis_name)
      updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
      state = state.replace(params=optax.apply_updates(state.params, updates),
                            opt_state=opt_state, step=state.step + 1)
      return state, terms

    return jax.lax.scan(step, state, None, length=num_steps)

  def end_task(state: ContinualState, test: EvalSet) -> ContinualState:
    row, metrics = evaluate(state.params, state.extras, test,
                            state.seen[None, :] | test.class_mask)
    if metrics is not None:
      state = state.replace(task_metrics=state.task_metrics.at[state.tasks_done].set(metrics))
    return state.replace(acc_matrix=state.acc_matrix.at[state.tasks_done].set(row),
                         prev_params=state.params, tasks_done=state.tasks_done + 1)

  def consolidate(state: ContinualState, task: Task, constants, *, axis_name=None):
    if method.constants is None:
      return method.consolidate(state, task, axis_name=axis_name)
    return method.consolidate(state, task, constants=constants, axis_name=axis_name)

  return Phases(method=method, context=context, init=init, begin_task=begin_task,
                adapt=adapt, consolidate=consolidate, end_task=end_task,
                constants=method.constants)


def compile_phases(phases: Phases, config: ml_collections.ConfigDict, *,
                   learner_class: type | None = None, state_sharding=None, **fields) -> Learner:
  """A ``Learner`` of ``phases`` compiled on ``phases.context.parallelism``.

  ``learner_class`` (default ``Learner``) and its extra ``fields`` let
  ``autoseed_jax.seed_axis`` compile seed-mapped phases; ``state_sharding`` (default: the
  mesh's ``replicated``) is where ``init`` and the run constants put their outputs.
  """
  method, par = phases.method, phases.context.parallelism
  state_sharding = state_sharding or par.replicated
  make_constants = None
  if phases.constants is not None:
    draw_constants = jax.jit(phases.constants, out_shardings=state_sharding)
    make_constants = (draw_constants if par.mode == 'jit' else
                      lambda key, params: parallel.stack_for_pmap(draw_constants(key, params),
                                                                  par))

  return (learner_class or Learner)(
      method=method,
      init=jax.jit(phases.init, out_shardings=state_sharding),
      begin_task=jax.jit(phases.begin_task, donate_argnums=0),
      adapt=(parallel.compile_step(phases.adapt, par, static_argnums=2, donate_argnums=0,
                                   pmap_argnums=(0, 1))
             if method.trains else None),
      # The run constants are placed once per run key (stacked per device under pmap),
      # not at every call, so compile_step does not stack them (argument 2).
      consolidate=(_ConsolidateWithConstants(
          parallel.compile_step(phases.consolidate, par, donate_argnums=0,
                                pmap_argnums=(0, 1)),
          make_constants)
                   if method.consolidate is not None else None),
      end_task=jax.jit(phases.end_task, donate_argnums=0),
      steps_per_task=config.steps_per_task,
      steps_per_chunk=min(config.steps_per_chunk, config.steps_per_task),
      parallelism=par,
      **fields,
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
  task_metrics: np.ndarray | None = None  # [T, T, K] (vision-language streams)
  initial_task_metrics: np.ndarray | None = None  # [T, K]
  seed: int | None = None  # the run seed, set by runs of several seeds (``seed_axis``)


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
  test = learner.put_test(stream.test)
  state = learner.init(learner.run_key(config), test)
  for task in stream.tasks:
    state = learner.learn_task(state, learner.put_task(task), test=test, log=log)
  return make_result(learner, state, time.perf_counter() - start)


def make_result(learner: Learner, state: ContinualState, seconds: float) -> RunResult:
  """The host-side ``RunResult`` of a finished run's state."""
  acc, initial, task_metrics, initial_task_metrics = parallel.to_host(
      (state.acc_matrix, state.initial_acc, state.task_metrics, state.initial_task_metrics))
  return RunResult(
      method=learner.name, state=state, acc_matrix=acc, initial_acc=initial,
      metrics=all_metrics(acc, initial), memory_bytes=learner.method.memory_bytes(state),
      seconds=seconds, task_metrics=task_metrics, initial_task_metrics=initial_task_metrics)
