"""Many run seeds of one method in one compiled program: a leading seed axis.

``config.seeds = (0, 1, 2, 3, 4)`` runs every listed run seed of ``config.method`` at once
(docs/SEEDS_AXIS.md). The engine's phase functions (``continual.engine_phases``) are
mapped with ``jax.vmap`` over a leading axis of S seeds and compiled as usual, so S small
matmuls become one larger one:

* gains the axis: the whole ``ContinualState`` (θ, θ⁻, optimiser states, seed memory,
  generator, a method's ``extras``, the run key, class bank, seen masks, accuracy matrix,
  counters) and the method's run constants (``Method.constants``, e.g. Auto-Seed's sketch
  matrix R), everything a phase draws from the run key, the loss terms (``[steps, S]``)
  and consolidation infos (``[S]``);
* shared (``in_axes=None``, one copy on the device): the task and the test sets, the
  frozen embeddings, the config, the method's static pieces;
* keys: seed s's state starts from ``init(PRNGKey(s), test)``, the key a run with
  ``config.seed = s`` uses, and every later draw folds in from it exactly as there, so
  seed s computes the function of its own run (to float rounding: ``jax.vmap`` batches
  a matmul over seeds, and XLA may sum its terms in another order).

Host-side decisions (the position in the run, chunk sizes, when to checkpoint) are one
for all seeds: ``position`` asserts that every seed is at the same task and step.

Devices compose with the axis (``config.seed_sharding``): ``'data'`` (default) keeps the
engine's data parallelism (jit: the state with its seed axis replicated over the ``data``
mesh, task rows sharded; pmap: the seed axis inside every device's step); ``'seeds'``
(jit only) shards the seed axis over the devices instead, each device running its seeds
on the whole batch (S must divide over the devices).

A method whose phases cannot be traced under ``jax.vmap`` (a host callback without a
batching rule, Python control flow on traced values, ...) raises ``CannotMapSeeds`` in
``build_seeds_learner``; ``run_sequences`` and the runner then run its seeds one at a time
and say why.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from autoseed_jax.core import parallel
from autoseed_jax.tools.checkpoint import host_int
from autoseed_jax.continual import (ContinualState, Learner, Phases, RunResult, build_learner,
                                    compile_phases, engine_phases, make_result, run_sequence)
from autoseed_jax.core.tasks import EvalSet, Task, TaskStream

SEED_SHARDINGS = ('data', 'seeds')


class CannotMapSeeds(ValueError):
  """A method's phases cannot run under ``jax.vmap``; ``reason`` says where it failed."""

  def __init__(self, method: str, reason: str):
    super().__init__(f'method {method!r} cannot run its seeds in one program: {reason}')
    self.method, self.reason = method, reason


def run_seeds(config: ml_collections.ConfigDict) -> tuple[int, ...]:
  """``config.seeds`` as a tuple of ints; () for a run of ``config.seed`` alone."""
  return tuple(int(s) for s in (config.get('seeds', ()) or ()))


def entry_name(method: str, seed: int) -> str:
  """The results entry (and fallback directory) of one seed of a method: ``er@seed3``."""
  return f'{method}@seed{seed}'


def seed_config(config: ml_collections.ConfigDict, seed: int) -> ml_collections.ConfigDict:
  """``config`` as the single run of ``seed`` (``seed = seed``, ``seeds = ()``)."""
  single = config.copy_and_resolve_references()
  with single.unlocked():
    single.seed = int(seed)
    single.seeds = ()
  return single


def run_keys(seeds) -> jax.Array:
  """[S, 2] the run keys of ``seeds``: row i is ``PRNGKey(seeds[i])``, the key of a single
  run with that seed."""
  return jnp.stack([jax.random.PRNGKey(s) for s in seeds])


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the field and a fix for ``seeds`` / ``seed_sharding``."""
  seeds = config.get('seeds', ()) or ()
  if not isinstance(seeds, (tuple, list)) or not all(
      isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 0 for s in seeds):
    raise ValueError(f'invalid config: seeds={seeds!r} must be a tuple of run seeds >= 0, '
                     "e.g. --config.seeds='(0, 1, 2)' (empty: run config.seed alone).")
  if len(set(seeds)) != len(seeds):
    raise ValueError(f'invalid config: seeds={tuple(seeds)} lists a seed twice; list each '
                     'run seed once.')
  mode = config.get('seed_sharding', 'data')
  if mode not in SEED_SHARDINGS:
    raise ValueError(f'invalid config: seed_sharding={mode!r}; choose one of '
                     f'{SEED_SHARDINGS}.')
  if mode == 'seeds' and seeds:
    if config.get('parallel', 'jit') != 'jit':
      raise ValueError("invalid config: seed_sharding='seeds' shards the seed axis with jit; "
                       "use parallel='jit' (or seed_sharding='data' with pmap).")
    devices = config.get('num_devices', 0) or jax.device_count()
    if len(seeds) % devices:
      raise ValueError(f"invalid config: seed_sharding='seeds' puts {len(seeds)} seeds on "
                       f'{devices} devices; list a multiple of {devices} seeds or set '
                       'num_devices to a divisor of their number.')


def over_seeds(phases: Phases, *, place: Callable | None = None) -> Phases:
  """``phases`` mapped over a leading seed axis of the state, the keys and the run
  constants (``in_axes=0``); tasks and test sets are shared (``in_axes=None``).

  Loss terms come back as [num_steps, S] (step axis first, as the runner's NaN check
  reads them) and consolidation infos as [S]: in every logged array the seed axis is the
  last one. ``place`` (default: nothing) is applied to every state a phase returns (the
  ``'seeds'`` sharding constrains it there).
  """
  place = place or (lambda tree: tree)
  seed_last = functools.partial(jax.tree.map, lambda x: jnp.moveaxis(x, 0, -1))

  def init(keys, test: EvalSet) -> ContinualState:
    return place(jax.vmap(phases.init, in_axes=(0, None))(keys, test))

  def begin_task(state: ContinualState, task: Task) -> ContinualState:
    return place(jax.vmap(phases.begin_task, in_axes=(0, None))(state, task))

  def adapt(state: ContinualState, task: Task, num_steps: int, *, axis_name=None):
    def one(state, task):
      return phases.adapt(state, task, num_steps, axis_name=axis_name)
    state, terms = jax.vmap(one, in_axes=(0, None))(state, task)
    return place(state), seed_last(terms)

  def consolidate(state: ContinualState, task: Task, constants, *, axis_name=None):
    def one(state, task, constants):
      return phases.consolidate(state, task, constants, axis_name=axis_name)
    state, info = jax.vmap(one, in_axes=(0, None, 0))(state, task, constants)
    return place(state), seed_last(info)

  def end_task(state: ContinualState, test: EvalSet) -> ContinualState:
    return place(jax.vmap(phases.end_task, in_axes=(0, None))(state, test))

  constants = None if phases.constants is None else jax.vmap(phases.constants)
  return dataclasses.replace(phases, init=init, begin_task=begin_task, adapt=adapt,
                             consolidate=consolidate, end_task=end_task, constants=constants)


@dataclasses.dataclass(frozen=True)
class SeedsLearner(Learner):
  """A ``Learner`` whose state has a leading axis of ``seeds`` (see the module doc).

  Its functions take and return stacked states; ``init`` takes the [S, 2] keys of
  ``run_key``. ``learn_task`` logs one record per seed (with a ``seed`` field).

  Attributes:
    seeds: the run seeds, in the order of the seed axis.
    seed_sharding: ``'data'`` or ``'seeds'`` (module doc).
  """

  seeds: tuple[int, ...] = ()
  seed_sharding: str = 'data'

  def run_key(self, config: ml_collections.ConfigDict) -> jax.Array:
    del config
    return run_keys(self.seeds)

  def records(self, arrays: dict, *, step=None) -> list[dict]:
    """One record per seed (``{'seed': s, ...}``); the seed axis of every array is its
    last one (``over_seeds``)."""
    arrays, step = parallel.to_host((arrays, step))
    return [{'seed': seed, **super(SeedsLearner, self).records(
        {name: value[..., i] for name, value in arrays.items()},
        step=None if step is None else step[i])[0]} for i, seed in enumerate(self.seeds)]

  def position(self, state: ContinualState) -> tuple[int, int]:
    """As ``Learner.position``; raises ``checkpoint.SeedsOutOfStep`` unless every seed is
    at the same task and step (the host decides chunks and checkpoints for all)."""
    tasks_done = host_int(state.tasks_done)
    if self.adapt is None:
      return tasks_done, 0
    return tasks_done, host_int(state.step) - tasks_done * self.steps_per_task

  def put_task(self, task: Task) -> Task:
    if self.seed_sharding == 'seeds':  # every device runs its seeds on the whole task
      return parallel.replicate(task, self.parallelism)
    return super().put_task(task)

  def seed_state(self, state: ContinualState, i: int) -> ContinualState:
    """The state of the i-th seed (``seeds[i]``) of a stacked state."""
    return _take_seed(state, i)

  def results(self, state: ContinualState, seconds: float) -> list[RunResult]:
    """One ``RunResult`` per seed of a finished run; each one's ``seconds`` is its share,
    ``seconds / S``, of the program's wall time."""
    return [dataclasses.replace(
        make_result(self, self.seed_state(state, i), seconds / len(self.seeds)), seed=seed)
            for i, seed in enumerate(self.seeds)]


@jax.jit
def _take_seed(state, i):
  """Row ``i`` of every leaf (one compiled program per state structure, not per leaf)."""
  return jax.tree.map(lambda x: x[i], state)


def check_mappable(mapped: Phases, stream: TaskStream, seeds) -> None:
  """Traces every phase of ``mapped`` (``jax.eval_shape``: no compilation, no data);
  raises ``CannotMapSeeds`` naming the phase and the error if one cannot be traced."""
  keys = run_keys(seeds)
  task = stream.tasks[0]
  phase = 'init'
  try:
    state = jax.eval_shape(mapped.init, keys, stream.test)
    phase = 'begin_task'
    state = jax.eval_shape(mapped.begin_task, state, task)
    if mapped.method.trains:
      phase = 'adapt'
      state, _ = jax.eval_shape(functools.partial(mapped.adapt, num_steps=1), state, task)
    if mapped.method.consolidate is not None:
      phase = 'constants'
      constants = (None if mapped.constants is None else
                   jax.eval_shape(mapped.constants, keys, state.params))
      phase = 'consolidate'
      state, _ = jax.eval_shape(mapped.consolidate, state, task, constants)
    phase = 'end_task'
    jax.eval_shape(mapped.end_task, state, stream.test)
  except Exception as e:  # pylint: disable=broad-except  (any failure: run seeds one by one)
    first_line = (str(e).strip().splitlines() or [''])[0][:300]
    raise CannotMapSeeds(mapped.method.name,
                         f'its {phase} phase fails under jax.vmap ({type(e).__name__}: '
                         f'{first_line})') from e


def build_seeds_learner(config: ml_collections.ConfigDict, stream: TaskStream) -> SeedsLearner:
  """Compiles ``config.method``'s phases over the seed axis of ``config.seeds``.

  Raises:
    ValueError: a bad ``seeds`` / ``seed_sharding`` (or any field ``build_learner``
      refuses).
    CannotMapSeeds: a phase of the method cannot be traced under ``jax.vmap``.
  """
  validate(config)
  seeds = run_seeds(config)
  if not seeds:
    raise ValueError('invalid config: seeds is empty; list the run seeds to run in one '
                     "program, e.g. --config.seeds='(0, 1, 2)'.")
  mode = config.get('seed_sharding', 'data')
  if mode == 'data':
    mapped = over_seeds(engine_phases(config, stream))
    check_mappable(mapped, stream, seeds)
    return compile_phases(mapped, config, learner_class=SeedsLearner, seeds=seeds,
                          seed_sharding=mode)
  # 'seeds': the phases see one device (no row sharding); the seed axis is sharded over
  # the mesh of the configured devices.
  devices = np.array(jax.devices()[:config.get('num_devices', 0) or jax.device_count()])
  mesh_par = parallel.Parallelism(mode='jit',
                                  mesh=jax.sharding.Mesh(devices, (parallel.DATA_AXIS,)))
  by_seed = NamedSharding(mesh_par.mesh, P(parallel.DATA_AXIS))
  one_device = config.copy_and_resolve_references()
  with one_device.unlocked():
    one_device.num_devices = 1
  phases = engine_phases(one_device, stream)
  mapped = over_seeds(phases, place=lambda tree: jax.lax.with_sharding_constraint(
      tree, by_seed))
  check_mappable(mapped, stream, seeds)
  mapped = dataclasses.replace(mapped, context=dataclasses.replace(phases.context,
                                                                   parallelism=mesh_par))
  return compile_phases(mapped, config, learner_class=SeedsLearner, state_sharding=by_seed,
                        seeds=seeds, seed_sharding=mode)


def fallback_message(method: str, seeds, error: CannotMapSeeds) -> str:
  """The log line of a method whose seeds run one at a time."""
  return (f'{method}: running seeds {", ".join(map(str, seeds))} one at a time, not in one '
          f'program: {error.reason}')


def run_sequences(config: ml_collections.ConfigDict, stream: TaskStream, *,
                  learner: Learner | None = None, log: Callable[[dict], None] | None = None,
                  out: Callable[[str], None] = print) -> list[RunResult]:
  """Every seed of ``config.seeds`` over every task of ``stream``: one ``RunResult`` per
  seed (``seed`` set), in the order of ``config.seeds``.

  Runs them in one program (``build_seeds_learner``, or ``learner`` when it is a
  ``SeedsLearner``); given a plain ``Learner``, or for a method that cannot map its seeds
  (``out`` says why), one seed after the other with ``continual.run_sequence``.
  """
  seeds = run_seeds(config)
  if learner is None:
    try:
      learner = build_seeds_learner(config, stream)
    except CannotMapSeeds as e:
      out(fallback_message(config.method, seeds, e))
  if isinstance(learner, SeedsLearner):
    start = time.perf_counter()
    test = learner.put_test(stream.test)
    state = learner.init(learner.run_key(config), test)
    for task in stream.tasks:
      state = learner.learn_task(state, learner.put_task(task), test=test, log=log)
    return learner.results(state, time.perf_counter() - start)
  results = []
  for seed in seeds:
    single = seed_config(config, seed)
    learner = learner or build_learner(single, stream)
    seed_log = None if log is None else (lambda record, seed=seed: log({'seed': seed, **record}))
    results.append(dataclasses.replace(
        run_sequence(single, stream, learner=learner, log=seed_log), seed=seed))
  return results
