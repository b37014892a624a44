"""The engine: online adaptation (steps/s, share of the matmul rate), compilation (and
none after task 1), the meta-update, and cost growth with classes and memory size."""

from __future__ import annotations

import time
from typing import Any

import jax
import numpy as np

from autoseed_jax import continual
from autoseed_jax.core import meta
from autoseed_jax.streams.synthetic import make_synthetic_stream
from autoseed_jax.tools import profiling
from experiments.bench.common import (copy_tree, learn_task_timed, Learners, log_log_exponent, make_config, median_seconds, Preset, xla_flops)
from experiments.bench.machine import MatmulProbe


def analytic_adapt_flops(config, batch_size: int, num_classes: int, dim: int) -> float:
  """Matmul FLOPs of one Auto-Seed VL2 online-adaptation step (an estimate).

  An adapter is two dense layers (4 d h FLOPs per row). Trained rows: the real batch and
  the seeds' v (image adapter), the class bank and the seeds' w (text adapter); θ⁻ runs
  forward on the seeds and the bank (consistency). Logits: real batch and seeds against
  the bank, seeds against seeds (InfoNCE). Training costs 3x the forward pass.
  """
  seeds = min(config.seed_batch_size, config.memory_budget)
  mlp = 4.0 * dim * config.adapter_hidden
  trained = mlp * (batch_size + num_classes + 2 * seeds)
  trained += 2.0 * dim * (batch_size * num_classes + seeds * num_classes + seeds * seeds)
  frozen = mlp * (2 * seeds + num_classes) if config.consistency_weight > 0 else 0.0
  return 3.0 * trained + frozen


def online_adaptation_section(preset: Preset, learners: Learners, stream,
                              probe: MatmulProbe) -> dict:
  """Per batch size: compile ``adapt`` (FLOPs from XLA's cost analysis), then repeats of
  one chunk per batch size in a rotating order, each preceded by one matmul probe."""
  test = stream.test
  prepared = []
  loop_rule = None
  for batch_size in preset.batch_sizes:
    learner, config = learners.get(stream, batch_size=batch_size,
                                   steps_per_chunk=preset.adapt_steps)
    placed_test = learner.put_test(test)
    task = learner.put_task(stream.tasks[0])
    state = learner.begin_task(learner.init(jax.random.PRNGKey(0), placed_test), task)
    flops_chunk = xla_flops(learner.adapt.lower(state, task, preset.adapt_steps).compile())
    if flops_chunk is not None and loop_rule is None:
      # XLA counts a while loop's body once on some backends and trip-count times on
      # others; compare a 1-step scan to decide, once.
      flops_one = xla_flops(learner.adapt.lower(state, task, 1).compile())
      loop_rule = ('body counted once' if flops_one and flops_chunk < 1.5 * flops_one
                   else 'body counted per step')
    analytic = analytic_adapt_flops(config, batch_size, stream.num_classes, stream.dim)
    if flops_chunk is None:
      flops_step, source = analytic, 'analytic'
    elif loop_rule == 'body counted once':
      flops_step, source = flops_chunk, 'xla_cost_analysis'
    else:
      flops_step, source = flops_chunk / preset.adapt_steps, 'xla_cost_analysis'
    prepared.append(dict(batch_size=batch_size, learner=learner, config=config, task=task,
                         state=state, flops_step=flops_step, source=source, analytic=analytic,
                         times=[]))

  def run_chunk(p):
    start = time.perf_counter()
    p['state'], losses = p['learner'].adapt(p['state'], p['task'], preset.adapt_steps)
    jax.block_until_ready((p['state'], losses))
    return time.perf_counter() - start

  for p in prepared:
    run_chunk(p)  # compiled already; one untimed run warms caches
  first_probe = len(probe.rates)
  for r in range(preset.repeats):
    for p in prepared[r % len(prepared):] + prepared[:r % len(prepared)]:
      probe.measure()
      p['times'].append(run_chunk(p))
  matmul_rate = probe.median(since=first_probe)

  points = []
  for p in prepared:
    seconds = float(np.median(p['times']))
    steps_per_s = preset.adapt_steps / seconds
    points.append({
        'batch_size': p['batch_size'], 'steps_per_chunk': preset.adapt_steps,
        'seconds_per_chunk_median': seconds, 'seconds_per_chunk': p['times'],
        'steps_per_s': steps_per_s, 'examples_per_s': steps_per_s * p['batch_size'],
        'seeds_per_step': min(p['config'].seed_batch_size, p['config'].memory_budget),
        'flops_per_step': p['flops_step'], 'flops_source': p['source'],
        'flops_per_step_analytic': p['analytic'],
        'flops_per_s': p['flops_step'] * steps_per_s,
        'fraction_of_matmul': p['flops_step'] * steps_per_s / matmul_rate,
    })
  return {'method': 'autoseed', 'dim': stream.dim, 'num_classes': stream.num_classes,
          'xla_loop_rule': loop_rule, 'matmul_flops_per_s_interleaved': matmul_rate,
          'timing': 'median over repeats; batch sizes and matmul probes interleaved',
          'points': points}


def compile_section(learner, stream) -> tuple[dict, Any]:
  """AOT lowering/compile time of each step function of ``learner``, then the whole
  stream learned with ``learn_task``: compilations on task 1 and on tasks 2..T.

  Returns (section, (final state, per-task phase times)).
  """
  key = jax.random.PRNGKey(0)
  test = learner.put_test(stream.test)
  task = learner.put_task(stream.tasks[0])
  functions = {}

  def aot(name, fn, *args):
    start = time.perf_counter()
    lowered = fn.lower(*args)
    mid = time.perf_counter()
    lowered.compile()
    functions[name] = {'lower_s': mid - start, 'compile_s': time.perf_counter() - mid}

  aot('init', learner.init, key, test)
  state = learner.init(key, test)
  aot('begin_task', learner.begin_task, state, task)
  state = learner.begin_task(state, task)
  for n in sorted(set(learner.chunks())):
    aot('adapt' if n == learner.steps_per_chunk else f'adapt[{n} steps]', learner.adapt, state,
        task, n)
  aot('consolidate', learner.consolidate, state, task)
  aot('end_task', learner.end_task, state, test)

  state = learner.init(key, test)
  phases = []
  with profiling.count_compilations() as first:
    state, times = learn_task_timed(learner, state, task, test)
  with profiling.count_compilations() as later:
    for t in stream.tasks[1:]:
      state, times = learn_task_timed(learner, state, learner.put_task(t), test)
      phases.append(times)
  section = {
      'functions': functions,
      'total_compile_s': sum(f['lower_s'] + f['compile_s'] for f in functions.values()),
      'first_task_compilations_after_aot': {'count': first.count, 'seconds': first.seconds},
      'recompilations_tasks_2_to_T': later.count,
      'recompilation_seconds': later.seconds,
      'num_tasks': stream.num_tasks,
  }
  return section, (state, phases)


def meta_update_section(preset: Preset, learners: Learners, stream, main_config,
                        final_state, phases) -> dict:
  """Seconds per meta step, per inner-loop length: the seed update with ``meta_steps = M``
  minus the seed update without a meta-update (``meta_steps = 0``), divided by M; the
  seed update without meta-update split into the task-gradient condition and the rest;
  the seed update's share of a task's time in the main config (tasks 2..T).

  Every variant is compiled first, then the repeats time each variant once in a rotating
  order, on a fresh copy of the state after the last task.
  """
  task = stream.tasks[stream.num_tasks - 1]
  first = preset.inner_steps[0]
  variants = {
      # Random seeds need no task-gradient condition (per-class gradients sketched by R).
      'without_condition': dict(inner_steps=first, meta_steps=0, seed_source='random'),
      # Without a meta-update the inner loop is not run: one baseline for every length.
      'without_meta': dict(inner_steps=first, meta_steps=0),
      # The same with R redrawn at every seed update (sketch_cache=False).
      'without_meta_redrawn_R': dict(inner_steps=first, meta_steps=0, sketch_cache=False),
      **{f'inner_steps={i}': dict(inner_steps=i, meta_steps=preset.meta_steps)
         for i in preset.inner_steps},
  }
  prepared = {}
  for name, overrides in variants.items():
    learner, _ = learners.get(stream, **overrides)
    placed = learner.put_task(task)
    start = time.perf_counter()
    learner.consolidate.lower(final_state, placed).compile()
    prepared[name] = dict(learner=learner, task=placed, times=[],
                          compile_s=time.perf_counter() - start)

  def update(p):
    state = copy_tree(final_state)
    start = time.perf_counter()
    jax.block_until_ready(p['learner'].consolidate(state, p['task']))
    return time.perf_counter() - start

  for p in prepared.values():
    update(p)  # warm
  names = list(prepared)
  for r in range(max(preset.repeats, 3)):
    for name in names[r % len(names):] + names[:r % len(names)]:
      prepared[name]['times'].append(update(prepared[name]))
  median = {name: float(np.median(p['times'])) for name, p in prepared.items()}

  points = [{
      'inner_steps': i, 'meta_steps': preset.meta_steps,
      'seed_update_s': median[f'inner_steps={i}'],
      'seed_update_without_meta_s': median['without_meta'],
      'seconds_per_meta_step': (median[f'inner_steps={i}'] - median['without_meta'])
                               / preset.meta_steps,
  } for i in preset.inner_steps]
  share = [p['consolidate_s'] / p['total_s'] for p in phases]

  # The sketch matrix R, drawn once per run (sketch_cache) rather than per seed update.
  draw = jax.jit(lambda key, params: meta.sketch_blocks(params, key, main_config.sketch_dim))
  blocks = jax.block_until_ready(draw(final_state.key, final_state.params))  # compiles
  draw_s, draw_times = median_seconds(
      lambda: jax.block_until_ready(draw(final_state.key, final_state.params)), 3)
  return {
      'sketch_matrix': {
          'draw_once_s': draw_s, 'times_s': draw_times,
          'bytes': int(sum(b.nbytes for b in blocks)),
          'shape': [main_config.sketch_dim, int(sum(b.shape[1] for b in blocks))],
          'kept_between_seed_updates': bool(main_config.sketch_cache),
      },
      'points': points,
      'variants': {name: {'overrides': variants[name], 'median_s': median[name],
                          'times_s': p['times'], 'compile_s': p['compile_s']}
                   for name, p in prepared.items()},
      'seed_update_breakdown_s': {
          'without_meta_update': median['without_meta'],
          'task_gradient_condition': median['without_meta'] - median['without_condition'],
          'rest (generate, score, select, prune)': median['without_condition'],
          'note': ('condition = seed update without meta-update minus the same with '
                   "seed_source='random' (which skips the per-class gradients and the "
                   'sketch R g_c)'),
          'without_meta_update_R_redrawn': median['without_meta_redrawn_R'],
      },
      'seed_update_share': {
          'config': {k: main_config[k] for k in ('steps_per_task', 'batch_size', 'meta_steps',
                                                 'inner_steps', 'candidates_per_class')},
          'tasks': f'2..{stream.num_tasks}',
          'per_task': phases,
          'median_fraction': float(np.median(share)) if share else None,
      },
  }


class GrowthPoint:
  """One point of the cost-growth sweeps: a synthetic stream of ``num_classes`` classes
  (two per task) and a seed memory of ``capacity`` slots, its learner compiled and task 1
  learned; ``learn_next`` times the next task."""

  def __init__(self, preset: Preset, num_classes: int, capacity: int):
    tasks = max(num_classes // 2, 1 + preset.growth_timed_tasks)
    self.stream = make_synthetic_stream(num_tasks=tasks, classes_per_task=2, dim=preset.dim,
                                        train_per_class=20, test_per_class=10, seed=0)
    config = make_config(preset, **{**preset.growth_overrides, 'memory_budget': capacity,
                                    'memory_capacity': capacity})
    self.learner = continual.build_learner(config, self.stream)
    self.test = self.learner.put_test(self.stream.test)
    start = time.perf_counter()
    self.state = self.learner.init(jax.random.PRNGKey(0), self.test)
    self.next_task = 0
    self.learn_next()
    self.first_task_s = time.perf_counter() - start  # compilation included
    self.phases = []

  def learn_next(self) -> dict:
    task = self.learner.put_task(self.stream.tasks[self.next_task])
    self.state, times = learn_task_timed(self.learner, self.state, task, self.test)
    self.next_task += 1
    return times

  def summary(self) -> dict:
    median = {k: float(np.median([p[k] for p in self.phases])) for k in self.phases[0]}
    return {'num_classes': self.stream.num_classes, 'num_tasks': self.stream.num_tasks,
            'memory_capacity': int(self.state.memory.capacity),
            'first_task_s': self.first_task_s, 'seconds_per_task': median['total_s'],
            'phases_median_s': median, 'per_task': self.phases}


def cost_growth_section(preset: Preset) -> dict:
  """Two sweeps through one shared base point (the smallest C and K): seconds per task
  against the class count C (at K = the smallest capacity) and against the capacity K
  (at C = the smallest class count). Every point is compiled first (task 1); then each
  round learns one more task of every point, in a rotating order; medians over rounds."""
  base_classes, base_capacity = preset.growth_classes[0], preset.growth_capacity[0]
  class_keys = [(c, base_capacity) for c in preset.growth_classes]
  capacity_keys = [(base_classes, k) for k in preset.growth_capacity]
  keys = list(dict.fromkeys(class_keys + capacity_keys))
  points = {key: GrowthPoint(preset, *key) for key in keys}
  for r in range(preset.growth_timed_tasks):
    for key in keys[r % len(keys):] + keys[:r % len(keys)]:
      points[key].phases.append(points[key].learn_next())

  def fit(sweep_keys, x_key):
    sweep = [points[key].summary() for key in sweep_keys]
    x = [p[x_key] for p in sweep]
    return {'points': sweep,
            'exponent': log_log_exponent(x, [p['seconds_per_task'] for p in sweep]),
            'phase_exponents': {
                phase: log_log_exponent(x, [max(p['phases_median_s'][phase], 1e-9)
                                            for p in sweep])
                for phase in ('adapt_s', 'consolidate_s', 'evaluate_s')}}

  return {
      'settings': {**preset.growth_overrides, 'classes_per_task': 2, 'train_per_class': 20,
                   'test_per_class': 10, 'timed_tasks': preset.growth_timed_tasks,
                   'capacity_for_class_sweep': base_capacity,
                   'classes_for_capacity_sweep': base_classes,
                   'note': ('shapes are fixed by the stream: the class bank has all C rows '
                            'and the memory all K slots from task 1 on')},
      'classes': fit(class_keys, 'num_classes'),
      'memory_capacity': fit(capacity_keys, 'memory_capacity'),
  }
