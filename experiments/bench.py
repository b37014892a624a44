# COMMAND: python experiments/bench.py [--quick] [--out runs/bench/bench.json] [--memory-results PATH ...]
"""Benchmarks of the engine on whatever devices are present: one command, one table.

Sections (keys of the JSON file; each is also a group of rows in the Markdown table):

* ``machine``: date, devices, CPU, versions, load average before and after.
* ``matmul``: the machine's f32 matrix-multiply rate, measured in this process.
* ``online_adaptation``: steps/s and examples/s of Auto-Seed VL2's ``learner.adapt``
  (a jitted ``lax.scan`` chunk, timed after compilation with ``block_until_ready``,
  median of repeats) at several batch sizes, and the FLOP/s this reaches as a fraction
  of the matmul rate (FLOPs per step from XLA's cost analysis of the compiled step, else
  an analytic count; the JSON says which).
* ``meta_update``: seconds per meta step at several inner-loop lengths (the difference
  of two seed updates with different ``meta_steps``), and the seed-update phase's share
  of a task's time in the default config.
* ``embedding_extraction``: images/s and texts/s of the offline backbone (LiT CNN +
  MiniLM) and of CLIP ViT-B/32 with random weights.
* ``compile``: lowering and compile seconds of each step function, and the number of
  XLA compilations while learning tasks 2..T (must be 0).
* ``cost_growth``: seconds per task as the stream's class count and the seed-memory
  capacity K grow, with the fitted log-log exponent.
* ``memory``: seed-memory bytes vs exemplar-replay bytes at equal accuracy, read from
  the memory-vs-accuracy experiment's results (``--memory-results``); never invented.
* ``peers``: the ER-VLM baseline three ways (our engine, a plain PyTorch loop,
  Avalanche's ``Replay``), repeats interleaved, ratios from this one run. Needs the
  optional extra (``pip install -r requirements-bench.txt``), else it says it was skipped.
* ``seeds``: runs per second of S run seeds in one program (``config.seeds``) against S
  sequential runs, S = 1, 5, 10, 20, for ER, ``kmeans_seeds`` and Auto-Seed VL2, and the
  placements of 8 seeds on simulated CPU devices (``experiments/bench_seeds.py``).

``--quick`` runs every section at toy sizes (for the tests; its timings mean little).
The JSON and the table are rewritten after every section, so an interrupted run keeps what
it measured.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import glob
import importlib.util
import json
import math
import os
import pathlib
import platform
import sys
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from autoseed_jax import continual, meta, profiling  # noqa: E402
from autoseed_jax.reporting import write_json  # noqa: E402
from autoseed_jax.synthetic import make_synthetic_stream  # noqa: E402
from experiments import bench_seeds  # noqa: E402
from experiments.configs.common import method_config  # noqa: E402

SCHEMA_VERSION = 1
SECTIONS = ('machine', 'matmul', 'online_adaptation', 'meta_update', 'embedding_extraction',
            'compile', 'cost_growth', 'memory', 'peers', 'seeds')


# ---------------------------------------------------------------------------------------------
# Sizes


@dataclasses.dataclass(frozen=True)
class Preset:
  """Every size the benchmark uses (``FULL`` or ``QUICK``)."""

  name: str
  # The main synthetic stream and the method config (fields of experiments/configs/common.py).
  dim: int
  num_tasks: int
  classes_per_task: int
  train_per_class: int
  test_per_class: int
  method_overrides: dict
  # Online adaptation.
  batch_sizes: tuple
  adapt_steps: int
  repeats: int
  # Meta-update: inner-loop lengths and the meta steps timed (against meta_steps=0).
  inner_steps: tuple
  meta_steps: int
  # Embedding extraction.
  offline_images: int
  offline_texts: int
  clip_overrides: dict  # CLIPConfig fields changed from ViT-B/32 ({}: as named)
  clip_batch: int
  # Cost growth.
  growth_classes: tuple
  growth_capacity: tuple
  growth_overrides: dict
  growth_timed_tasks: int
  # Peers.
  peer_stream: str
  peer_repeats: int


FULL = Preset(
    name='full', dim=384, num_tasks=5, classes_per_task=2, train_per_class=200,
    test_per_class=100, method_overrides={},
    batch_sizes=(32, 128, 512), adapt_steps=100, repeats=5,
    inner_steps=(1, 5, 10), meta_steps=20,
    offline_images=2048, offline_texts=512, clip_overrides={}, clip_batch=8,
    growth_classes=(10, 100, 1000), growth_capacity=(1_000, 10_000, 100_000),
    growth_overrides=dict(steps_per_task=20, steps_per_chunk=20, meta_steps=2),
    growth_timed_tasks=3, peer_stream='animals-ci', peer_repeats=3)

QUICK = Preset(
    name='quick', dim=64, num_tasks=3, classes_per_task=2, train_per_class=50,
    test_per_class=20,
    method_overrides=dict(adapter_hidden=32, generator_hidden=32, sketch_dim=32,
                          steps_per_task=20, steps_per_chunk=10, batch_size=32,
                          meta_steps=2, inner_steps=1, memory_budget=20),
    batch_sizes=(32,), adapt_steps=10, repeats=2,
    inner_steps=(1,), meta_steps=2,
    offline_images=256, offline_texts=64, clip_batch=2,
    clip_overrides=dict(vision_layers=1, text_layers=1, vision_width=64, text_width=64,
                        vision_heads=2, text_heads=2, embed_dim=64, image_size=64),
    growth_classes=(6, 24), growth_capacity=(20, 200),
    growth_overrides=dict(steps_per_task=5, steps_per_chunk=5, meta_steps=0,
                          seed_source='random', consistency_weight=0.0),
    growth_timed_tasks=1, peer_stream='synthetic', peer_repeats=1)


def accelerator_present() -> bool:
  return jax.default_backend() != 'cpu'


# ---------------------------------------------------------------------------------------------
# Small helpers


def median_seconds(fn: Callable[[], Any], repeats: int) -> tuple[float, list[float]]:
  """Runs ``fn`` (which must block until its work is done) ``repeats`` times."""
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return float(np.median(times)), times


def log_log_exponent(x, y) -> float:
  """Slope of log(y) against log(x) (least squares): y ∝ x^slope."""
  return float(np.polyfit(np.log(np.asarray(x, float)), np.log(np.asarray(y, float)), 1)[0])


def xla_flops(compiled) -> float | None:
  """FLOPs of a compiled executable by XLA's cost analysis, or None where unavailable."""
  try:
    analysis = compiled.cost_analysis()
  except Exception:  # pylint: disable=broad-except  (backends may not implement it)
    return None
  if isinstance(analysis, (list, tuple)):
    analysis = analysis[0] if analysis else None
  flops = (analysis or {}).get('flops')
  return float(flops) if flops and flops > 0 else None


def copy_tree(tree):
  """A fresh on-device copy (step functions donate their state argument)."""
  return jax.block_until_ready(jax.tree.map(jnp.copy, tree))


def make_config(preset: Preset, **overrides):
  config = method_config()
  for key, value in {**preset.method_overrides, **overrides}.items():
    config[key] = value
  return config


def main_stream(preset: Preset):
  return make_synthetic_stream(num_tasks=preset.num_tasks,
                               classes_per_task=preset.classes_per_task, dim=preset.dim,
                               train_per_class=preset.train_per_class,
                               test_per_class=preset.test_per_class, seed=0)


class Learners:
  """Compiled learners keyed by (stream, config overrides): each compiles only once."""

  def __init__(self, preset: Preset):
    self.preset = preset
    self._cache = {}

  def get(self, stream, **overrides):
    key = (id(stream), tuple(sorted({**self.preset.method_overrides, **overrides}.items())))
    if key not in self._cache:
      config = make_config(self.preset, **overrides)
      self._cache[key] = (continual.build_learner(config, stream), config)
    return self._cache[key]


def learn_task_timed(learner, state, task, test):
  """``learner.learn_task`` with phase boundaries taken from its log records.

  Each record is written after its phase's outputs reach the host, so the phases are
  timed exactly. Returns (state, {'adapt_s' (begin_task included), 'consolidate_s',
  'evaluate_s', 'total_s'}).
  """
  marks = []
  start = time.perf_counter()
  state = learner.learn_task(state, task, test=test,
                             log=lambda record: marks.append((record['phase'],
                                                              time.perf_counter())))
  jax.block_until_ready(state)
  end = time.perf_counter()
  adapt_end = max([t for phase, t in marks if phase == 'adapt'], default=start)
  consolidate_end = max([t for phase, t in marks if phase == 'consolidate'], default=adapt_end)
  return state, {'adapt_s': adapt_end - start, 'consolidate_s': consolidate_end - adapt_end,
                 'evaluate_s': end - consolidate_end, 'total_s': end - start}


# ---------------------------------------------------------------------------------------------
# Sections


def machine_section() -> dict:
  cpu = platform.processor()
  try:
    with open('/proc/cpuinfo') as f:
      cpu = next((line.split(':', 1)[1].strip() for line in f if line.startswith('model name')),
                 cpu)
  except OSError:
    pass
  devices = jax.devices()
  return {
      'date_utc': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
      'backend': jax.default_backend(),
      'devices': [str(d.device_kind) for d in devices],
      'device_count': len(devices),
      'cpu': cpu,
      'cpu_count': os.cpu_count(),
      'load_average_start': list(os.getloadavg()),
      'python': platform.python_version(),
      'jax': jax.__version__,
      'xla_flags': os.environ.get('XLA_FLAGS', ''),
  }


class MatmulProbe:
  """One f32 [n, n] @ [n, n] matmul at JAX's default precision, timed one call at a time so
  that it can be interleaved with the measurements it is compared with (on a shared
  machine the rate drifts with the load)."""

  def __init__(self, preset: Preset):
    self.n = 8192 if accelerator_present() else (2048 if preset.name == 'full' else 512)
    self.a, self.b = (jax.random.normal(jax.random.PRNGKey(i), (self.n, self.n), jnp.float32)
                      for i in (1, 2))
    self.matmul = jax.jit(jnp.matmul)
    self.matmul(self.a, self.b).block_until_ready()
    self.rates = []

  def measure(self) -> float:
    """FLOP/s of one call (also kept in ``rates``)."""
    start = time.perf_counter()
    self.matmul(self.a, self.b).block_until_ready()
    self.rates.append(2.0 * self.n ** 3 / (time.perf_counter() - start))
    return self.rates[-1]

  def median(self, since: int = 0) -> float:
    return float(np.median(self.rates[since:]))


def matmul_section(probe: MatmulProbe) -> dict:
  """The matmul rate alone, median of 7 calls (the sections below also interleave it)."""
  for _ in range(7):
    probe.measure()
  return {'n': probe.n, 'dtype': 'float32', 'precision': 'default',
          'flops_per_s': probe.median(), 'flops_per_s_best': max(probe.rates)}


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


def embedding_section(preset: Preset) -> dict:
  """images/s and texts/s of the offline backbone and of a random-weight CLIP ViT-B/32."""
  from autoseed_jax.models import clip, offline_backbone  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(0)
  words = ['bear', 'bird', 'cat', 'cow', 'dog', 'elephant', 'giraffe', 'horse', 'sheep',
           'zebra']

  def prompts(n):
    return [f'a black and white silhouette of a {words[i % len(words)]}.' for i in range(n)]

  def rate(encode, inputs, repeats):
    encode(inputs)  # compiles
    seconds, _ = median_seconds(lambda: encode(inputs), repeats)
    return {'rows': len(inputs), 'seconds_median': seconds, 'rows_per_s': len(inputs) / seconds}

  result = {}
  start = time.perf_counter()
  offline = offline_backbone.load_offline_backbone()
  load_s = time.perf_counter() - start
  images = rng.integers(0, 256, (preset.offline_images, 32, 32, 1), dtype=np.uint8)
  result['offline_lit_minilm'] = {
      'load_s': load_s, 'embed_dim': offline.embed_dim,
      'image_batch': offline.batch_size, 'text_batch': offline.text_encoder.batch_size,
      'images': rate(offline.encode_image, images, 3),
      'texts': rate(offline.encode_text, prompts(preset.offline_texts), 3),
  }

  config = clip.get_clip_config('ViT-B-32', **preset.clip_overrides)
  start = time.perf_counter()
  params = jax.block_until_ready(jax.jit(clip.init_clip_params, static_argnums=0)(
      config, jax.random.PRNGKey(0)))
  init_s = time.perf_counter() - start
  batch = 64 if accelerator_present() else preset.clip_batch
  backbone = clip.CLIPBackbone(params, config, batch_size=batch)
  pixels = rng.integers(0, 256, (2 * batch, config.image_size, config.image_size, 3),
                        dtype=np.uint8)
  result['clip_vit_b32_random'] = {
      'config_overrides': preset.clip_overrides,
      'layers_per_tower': config.vision_layers,
      'weights': 'random (init_clip_params), no download', 'init_s': init_s,
      'batch': batch, 'embed_dim': config.embed_dim,
      'images': rate(backbone.encode_image, pixels, 2),
      'texts': rate(backbone.encode_text, prompts(2 * batch), 2),
  }
  return result


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


# ---------------------------------------------------------------------------------------------
# Memory: seed bytes vs replay bytes at equal accuracy (from the experiment's results)


def method_family(name: str) -> str | None:
  """'seeds' for Auto-Seed VL2 runs, 'replay' for ER-VLM runs, None for anything else."""
  if name == 'autoseed' or name.startswith(('autoseed_', 'autoseed-', 'autoseed@')):
    return 'seeds'
  if name == 'er' or name.startswith(('er_', 'er-', 'er@')):
    return 'replay'
  return None


def read_memory_points(paths) -> list[dict]:
  """(method, memory_bytes, final_avg_acc) points from result files.

  Each path (a glob, a file, or a directory holding ``results.json``) is either a
  ``results.json`` written by ``autoseed_jax.main`` (``{"methods": {name: {"memory_bytes",
  "metrics": {"final_avg_acc"}}}}``), the memory-vs-accuracy experiment's ``memory.json``
  (one point per stream, method and budget: means over seeds, with its ``stream``) or
  ``{"points": [{"method", "memory_bytes", "final_avg_acc"}, ...]}``.
  """
  files = []
  for pattern in paths:
    matches = sorted(glob.glob(os.fspath(pattern))) or [os.fspath(pattern)]
    for path in matches:
      files.append(os.path.join(path, 'results.json') if os.path.isdir(path) else path)
  points = []
  for path in files:
    if not os.path.isfile(path):
      raise FileNotFoundError(f'--memory-results: {path} does not exist; pass the results.json '
                              'files (or their workdirs) of the memory-vs-accuracy runs.')
    with open(path) as f:
      data = json.load(f)
    if isinstance(data, dict) and isinstance(data.get('methods'), dict):
      for name, record in data['methods'].items():
        points.append({'method': name, 'memory_bytes': record.get('memory_bytes'),
                       'final_avg_acc': (record.get('metrics') or {}).get('final_avg_acc'),
                       'source': path})
    elif isinstance(data, dict) and data.get('experiment') == 'memory':
      points += [{'method': f"{row['method']}@{row['budget']}", 'stream': row['stream'],
                  'memory_bytes': row['memory_bytes']['mean'],
                  'final_avg_acc': row['final_avg_acc']['mean'], 'source': path}
                 for row in data['summary'] if row['final_avg_acc']['mean'] is not None]
    elif isinstance(data, dict) and isinstance(data.get('points'), list):
      points += [{**p, 'source': path} for p in data['points']]
    else:
      raise ValueError(f'--memory-results: {path} is neither a results.json of '
                       'autoseed_jax.main (with "methods"), the memory experiment\'s '
                       'memory.json, nor a {"points": [...]} file.')
  return [p for p in points if method_family(str(p.get('method'))) is not None
          and p.get('memory_bytes') is not None and p.get('final_avg_acc') is not None]


def replay_bytes_at_accuracy(replay_points, accuracy: float) -> dict:
  """Bytes ER needs to reach ``accuracy``: interpolated linearly in log(bytes) along the
  best accuracy reached at or below each budget."""
  pts = sorted((float(p['memory_bytes']), float(p['final_avg_acc'])) for p in replay_points)
  if not pts:
    return {'bytes': None, 'reason': 'no ER runs'}
  best = np.maximum.accumulate([a for _, a in pts])
  above = np.flatnonzero(best >= accuracy)
  if above.size == 0:
    return {'bytes': None, 'reason': f'ER reached at most {best[-1]:.2f}% with up to '
                                     f'{pts[-1][0]:.0f} bytes'}
  i = int(above[0])
  if i == 0:
    return {'bytes': pts[0][0], 'bound': 'at most (the smallest ER budget already matches)'}
  (b0, _), (b1, _) = pts[i - 1], pts[i]
  frac = (accuracy - best[i - 1]) / (best[i] - best[i - 1])
  return {'bytes': float(math.exp(math.log(max(b0, 1.0)) + frac * (math.log(b1)
                                                                  - math.log(max(b0, 1.0))))),
          'bound': 'interpolated'}


def memory_section(paths) -> dict:
  if not paths:
    return {'status': 'needs results',
            'message': ("seed-memory vs exemplar-replay bytes at equal accuracy needs the "
                        "memory-vs-accuracy experiment's output: rerun with --memory-results "
                        "PATH [PATH ...] (its results.json files, autoseed and er runs at "
                        "several memory budgets). No numbers are made up here.")}
  points = read_memory_points(paths)
  seeds = [p for p in points if method_family(p['method']) == 'seeds']
  replay = [p for p in points if method_family(p['method']) == 'replay']
  if not seeds or not replay:
    return {'status': 'needs results', 'points': points,
            'message': f'found {len(seeds)} Auto-Seed and {len(replay)} ER points; both are '
                       'needed.'}
  comparisons = []
  for p in sorted(seeds, key=lambda p: (str(p.get('stream', '')), p['memory_bytes'])):
    # Equal accuracy is only compared within one stream.
    same_stream = [r for r in replay if r.get('stream') == p.get('stream')]
    match = replay_bytes_at_accuracy(same_stream, float(p['final_avg_acc']))
    comparisons.append({
        'stream': p.get('stream'),
        'seed_method': p['method'], 'seed_bytes': p['memory_bytes'],
        'final_avg_acc': p['final_avg_acc'], 'replay_bytes_at_equal_acc': match['bytes'],
        'replay_to_seed_ratio': (match['bytes'] / p['memory_bytes']
                                 if match['bytes'] and p['memory_bytes'] else None),
        'note': match.get('bound') or match.get('reason')})
  return {'status': 'ok', 'points': points, 'comparisons': comparisons}


# ---------------------------------------------------------------------------------------------
# Peers: our engine vs a plain PyTorch loop vs Avalanche, on the ER-VLM baseline


def peers_unavailable() -> str | None:
  """Why the peers comparison cannot run here (None when it can)."""
  missing = [m for m in ('torch', 'avalanche') if importlib.util.find_spec(m) is None]
  if missing:
    return (f'{" and ".join(missing)} not installed; the peers comparison is an optional '
            'extra: pip install -r requirements-bench.txt')
  return None


def load_peer_stream(name: str, preset: Preset):
  if name == 'synthetic':
    return make_synthetic_stream(num_tasks=preset.num_tasks, classes_per_task=2,
                                 dim=preset.dim, train_per_class=max(preset.train_per_class, 64),
                                 test_per_class=preset.test_per_class, seed=0)
  from autoseed_jax.streams import get_stream  # pylint: disable=import-outside-toplevel
  return get_stream(name)


def peer_config(preset: Preset, steps: int, memory_examples: int):
  """ER-VLM in our engine with the comparison's settings."""
  return make_config(preset, method='er', batch_size=128, steps_per_task=steps,
                     steps_per_chunk=steps, reset_optimizer=False, er_batch_size=128,
                     er_memory_examples=memory_examples, er_weight=1.0)


def run_ours(learner, stream, seed: int) -> dict:
  """The ER-VLM run in our engine, timed like the peers (training per task, buffer
  insertion included; evaluation excluded)."""
  test = learner.put_test(stream.test)
  state = learner.init(jax.random.PRNGKey(seed), test)
  epoch_seconds = []
  for task in stream.tasks:
    state, times = learn_task_timed(learner, state, learner.put_task(task), test)
    epoch_seconds.append(times['adapt_s'] + times['consolidate_s'])
  accs = np.asarray(state.acc_matrix)[-1]
  return {'epoch_seconds': epoch_seconds,
          'steps_per_epoch': [learner.steps_per_task] * stream.num_tasks,
          'final_task_acc': accs.tolist(), 'final_avg_acc': float(accs.mean())}


def engine_initial_adapter(learner, stream, seed: int) -> dict:
  """The engine's initial adapter weights for run seed ``seed``, flat names -> arrays."""
  init = learner.init(jax.random.PRNGKey(seed), learner.put_test(stream.test)).params['params']
  flat = {f'{tower}/{layer}/{name}': np.asarray(init[tower][layer][name])
          for tower in ('image_adapter', 'text_adapter') for layer in ('fc1', 'fc2')
          for name in ('kernel', 'bias')}
  flat['log_logit_scale'] = np.asarray(init['log_logit_scale'])
  return flat


def adapt_flops_per_step(learner, stream, steps: int) -> tuple[float | None, str]:
  """FLOPs of one online-adaptation step of ``learner`` by XLA's cost analysis."""
  test = learner.put_test(stream.test)
  task = learner.put_task(stream.tasks[0])
  state = learner.begin_task(learner.init(jax.random.PRNGKey(0), test), task)
  chunk = xla_flops(learner.adapt.lower(state, task, steps).compile())
  one = xla_flops(learner.adapt.lower(state, task, 1).compile())
  if chunk is None or one is None:
    return None, 'unavailable'
  if chunk < 1.5 * one:
    return chunk, 'xla_cost_analysis (loop body counted once)'
  return chunk / steps, 'xla_cost_analysis (per step)'


def peers_section(preset: Preset, stream_name: str | None, repeats: int | None,
                  probe: MatmulProbe) -> dict:
  """Our engine vs a plain PyTorch loop vs Avalanche's Replay on ER-VLM (module doc of
  ``experiments/bench_peers.py``). The torch-based ones run at torch's default thread
  count and at one thread (on a shared machine the default can be much slower); each
  repeat runs every implementation once, in a rotated order, with the repeat's seed."""
  reason = peers_unavailable()
  if reason is not None:
    return {'skipped': reason}
  from experiments import bench_peers  # pylint: disable=import-outside-toplevel

  stream = load_peer_stream(stream_name or preset.peer_stream, preset)
  repeats = repeats or preset.peer_repeats
  counts = [int(t.train_count) for t in stream.tasks]
  batch_size, memory_examples = 128, 500
  steps = math.ceil(max(counts) / batch_size)  # one epoch of the largest task
  config = peer_config(preset, steps, memory_examples)
  learner = continual.build_learner(config, stream)

  def peer_data(seed):
    return bench_peers.PeerData(
        train=[(np.asarray(t.train_x)[:n], np.asarray(t.train_y)[:n].astype(np.int64))
               for t, n in zip(stream.tasks, counts)],
        test=[(np.asarray(stream.test.x[j])[:int(stream.test.count[j])],
               np.asarray(stream.test.y[j])[:int(stream.test.count[j])].astype(np.int64))
              for j in range(stream.num_tasks)],
        class_text=np.asarray(stream.test.class_text, np.float32),
        task_classes=[stream.task_classes(t) for t in range(stream.num_tasks)],
        init_params=engine_initial_adapter(learner, stream, seed))

  def peer_settings(seed):
    return bench_peers.PeerSettings(
        hidden=config.adapter_hidden, alpha=config.adapter_alpha,
        learning_rate=config.learning_rate, weight_decay=config.weight_decay,
        batch_size=batch_size, replay_batch_size=config.er_batch_size,
        memory_examples=memory_examples, steps_per_task=steps, seed=seed)

  default_threads = bench_peers.default_threads()
  thread_counts = sorted({default_threads, 1}, reverse=True)
  runners = {'ours': lambda seed: run_ours(learner, stream, seed)}
  for impl, fn in (('torch', bench_peers.run_plain_torch),
                   ('avalanche', bench_peers.run_avalanche)):
    for threads in thread_counts:

      def runner(seed, fn=fn, threads=threads):
        with bench_peers.torch_threads(threads):
          return fn(peer_data(seed), peer_settings(seed))

      runners[f'{impl}@{threads}t'] = runner

  start = time.perf_counter()
  run_ours(learner, stream, 0)  # compiles our step functions (not timed)
  compile_s = time.perf_counter() - start
  flops_step, flops_source = adapt_flops_per_step(learner, stream, steps)
  names = list(runners)
  runs = {name: [] for name in names}
  first_probe = len(probe.rates)
  order_log = []
  for r in range(repeats):
    order = names[r % len(names):] + names[:r % len(names)]  # interleaved, rotated
    order_log.append(order)
    for name in order:
      probe.measure()
      runs[name].append(runners[name](r))
  matmul_rate = probe.median(since=first_probe)

  summary = {}
  for name, results in runs.items():
    # Tasks 2..T: replay is active in every implementation.
    epochs = [s for res in results for s in res['epoch_seconds'][1:]]
    accs = [res['final_avg_acc'] for res in results]
    epoch_s = float(np.median(epochs))
    summary[name] = {
        'epoch_s_median': epoch_s, 'epoch_s_all': [res['epoch_seconds'] for res in results],
        'steps_per_epoch': results[0]['steps_per_epoch'],
        'flops_per_s': flops_step * steps / epoch_s if flops_step else None,
        'fraction_of_matmul': flops_step * steps / epoch_s / matmul_rate if flops_step else None,
        'final_avg_acc_mean': float(np.mean(accs)), 'final_avg_acc_std': float(np.std(accs)),
        'final_avg_acc_runs': accs}
  ours = summary['ours']['epoch_s_median']

  def speedups(impl):
    times = {t: summary[f'{impl}@{t}t']['epoch_s_median'] / ours for t in thread_counts}
    return {'best_threads': min(times, key=times.get), 'vs_best': min(times.values()),
            'vs_default_threads': times[default_threads],
            'per_threads': {str(t): v for t, v in times.items()}}

  return {
      'stream': stream.name, 'num_tasks': stream.num_tasks, 'dim': stream.dim,
      'train_rows_per_task': counts, 'batch_size': batch_size,
      'replay_batch_size': int(config.er_batch_size), 'memory_examples': memory_examples,
      'steps_per_epoch': steps, 'repeats': repeats, 'order': order_log,
      'our_compile_s': compile_s, 'versions': bench_peers.describe(),
      'flops_per_step': flops_step, 'flops_source': flops_source,
      'matmul_flops_per_s_interleaved': matmul_rate,
      'implementations': summary,
      'speedup_vs_torch': speedups('torch'), 'speedup_vs_avalanche': speedups('avalanche'),
      'targets': {'vs_torch': 3.0, 'vs_avalanche': 10.0},
      'timing': 'median seconds per epoch (= per task, one epoch each) over tasks 2..T and '
                'all repeats; training and buffer insertion, evaluation excluded',
  }


# ---------------------------------------------------------------------------------------------
# The table


def table_rows(report: dict) -> list[tuple[str, str, str]]:
  """(section, measurement, value) rows of the Markdown table."""
  rows = []
  m = report.get('machine')
  if m:
    rows.append(('machine', 'date (UTC), backend',
                 f"{m['date_utc']}, {m['backend']} x{m['device_count']}"))
    rows.append(('machine', 'CPU, cores, load avg at start',
                 f"{m['cpu']}, {m['cpu_count']}, "
                 f"{' / '.join(f'{x:.1f}' for x in m['load_average_start'])}"))
  mm = report.get('matmul')
  if mm:
    rows.append(('matmul', f"f32 {mm['n']}x{mm['n']} @ {mm['n']}x{mm['n']}",
                 f"{mm['flops_per_s'] / 1e9:,.1f} GFLOP/s"))
  oa = report.get('online_adaptation')
  if oa:
    for p in oa['points']:
      rows.append(('online adaptation', f"Auto-Seed adapt, batch {p['batch_size']}",
                   f"{p['steps_per_s']:,.1f} steps/s, {p['examples_per_s']:,.0f} examples/s, "
                   f"{p['flops_per_step'] / 1e6:,.1f} MFLOP/step ({p['flops_source']}), "
                   f"{100 * p['fraction_of_matmul']:.1f}% of matmul rate"))
  mu = report.get('meta_update')
  if mu:
    for p in mu['points']:
      rows.append(('meta-update', f"inner_steps={p['inner_steps']}",
                   f"{1e3 * p['seconds_per_meta_step']:,.2f} ms per meta step"))
    parts = mu['seed_update_breakdown_s']
    rows.append(('meta-update', 'seed update without meta-update: task-gradient condition + rest',
                 f"{1e3 * parts['without_meta_update']:,.0f} ms = "
                 f"{1e3 * parts['task_gradient_condition']:,.0f} ms + "
                 f"{1e3 * parts['rest (generate, score, select, prune)']:,.0f} ms"))
    redrawn = parts.get('without_meta_update_R_redrawn')
    if redrawn:
      rows.append(('meta-update', 'seed update without meta-update, R kept vs redrawn each time',
                   f"{1e3 * parts['without_meta_update']:,.0f} ms vs {1e3 * redrawn:,.0f} ms "
                   f"({redrawn / parts['without_meta_update']:.1f}x)"))
    r = mu['sketch_matrix']
    rows.append(('meta-update', 'sketch matrix R, drawn once per run' if
                 r['kept_between_seed_updates'] else 'sketch matrix R, drawn every seed update',
                 f"{1e3 * r['draw_once_s']:,.0f} ms, {r['shape'][0]} x {r['shape'][1]:,}, "
                 f"{r['bytes'] / 2**20:,.0f} MiB"))
    share = mu['seed_update_share']
    if share['median_fraction'] is not None:
      rows.append(('meta-update', 'seed update / task time (default config)',
                   f"{100 * share['median_fraction']:.1f}% (tasks {share['tasks']})"))
  emb = report.get('embedding_extraction')
  if emb:
    off = emb['offline_lit_minilm']
    rows.append(('embedding', 'offline LiT CNN images / MiniLM texts',
                 f"{off['images']['rows_per_s']:,.0f} images/s, "
                 f"{off['texts']['rows_per_s']:,.0f} texts/s"))
    c = emb['clip_vit_b32_random']
    shrunk = ', shrunk for --quick' if c['config_overrides'] else ''
    rows.append(('embedding', f"CLIP ViT-B/32 random weights (batch {c['batch']}{shrunk})",
                 f"{c['images']['rows_per_s']:,.1f} images/s, "
                 f"{c['texts']['rows_per_s']:,.1f} texts/s"))
  comp = report.get('compile')
  if comp:
    for name, f in comp['functions'].items():
      rows.append(('compile', name, f"{f['lower_s'] + f['compile_s']:.2f} s "
                                    f"(lower {f['lower_s']:.2f} + compile {f['compile_s']:.2f})"))
    rows.append(('compile', f"recompilations learning tasks 2..{comp['num_tasks']}",
                 str(comp['recompilations_tasks_2_to_T'])))
  cg = report.get('cost_growth')
  if cg:
    for key, label, x in (('classes', 'classes C', 'num_classes'),
                          ('memory_capacity', 'memory capacity K', 'memory_capacity')):
      pts = cg[key]['points']
      series = ', '.join(f"{p[x]:,}: {p['seconds_per_task']:.3g}" for p in pts)
      rows.append(('cost growth', f's/task vs {label}',
                   f"{series}; exponent {cg[key]['exponent']:.2f}"))
  mem = report.get('memory')
  if mem:
    if mem['status'] != 'ok':
      rows.append(('memory', 'seed vs replay bytes at equal accuracy', mem['message']))
    else:
      for c in mem['comparisons']:
        value = (f"seeds {c['seed_bytes']:,.0f} B vs ER "
                 + (f"{c['replay_bytes_at_equal_acc']:,.0f} B "
                    f"({c['replay_to_seed_ratio']:.1f}x)" if c['replay_bytes_at_equal_acc']
                    else f"n/a ({c['note']})"))
        where = f"{c['stream']}: " if c.get('stream') else ''
        rows.append(('memory', f"{where}at {c['final_avg_acc']:.1f}% final avg acc", value))
  peers = report.get('peers')
  if peers:
    if 'skipped' in peers:
      rows.append(('peers', 'ER-VLM: ours vs PyTorch vs Avalanche', f"skipped: {peers['skipped']}"))
    else:
      for name, impl in peers['implementations'].items():
        rate = ('' if impl['fraction_of_matmul'] is None
                else f", {100 * impl['fraction_of_matmul']:.0f}% of matmul rate")
        rows.append(('peers', f"ER-VLM {name}, batch {peers['batch_size']} ({peers['stream']})",
                     f"{1e3 * impl['epoch_s_median']:,.1f} ms/epoch{rate}, final avg acc "
                     f"{impl['final_avg_acc_mean']:.1f} ± {impl['final_avg_acc_std']:.1f}%"))
      for impl, target in (('torch', 'vs_torch'), ('avalanche', 'vs_avalanche')):
        sp = peers[f'speedup_vs_{impl}']
        rows.append(('peers', f'speed-up per epoch vs {impl} (one run, interleaved)',
                     f"{sp['vs_best']:.2f}x vs its fastest thread count "
                     f"({sp['best_threads']}), {sp['vs_default_threads']:.2f}x vs its default; "
                     f"target {peers['targets'][target]:.0f}x"))
  if report.get('seeds'):
    rows += bench_seeds.table_rows(report['seeds'])
  return rows


def markdown_table(report: dict) -> str:
  lines = ['| section | measurement | value |', '|---|---|---|']
  lines += [f'| {a} | {b} | {c} |' for a, b, c in table_rows(report)]
  return '\n'.join(lines) + '\n'


# ---------------------------------------------------------------------------------------------
# Main


def parse_args(argv=None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--quick', action='store_true',
                      help='toy sizes for the tests (every section, timings not meaningful)')
  parser.add_argument('--out', type=pathlib.Path, default=pathlib.Path('runs/bench/bench.json'),
                      help='JSON output path; the Markdown table goes next to it (.md)')
  parser.add_argument('--memory-results', nargs='*', default=[],
                      help="results.json files (or workdirs, or globs) of the "
                           "memory-vs-accuracy experiment's autoseed and er runs")
  parser.add_argument('--peers', choices=('auto', 'off'), default='auto',
                      help='auto: run the PyTorch/Avalanche comparison when installed')
  parser.add_argument('--peer-stream', choices=('animals-ci', 'synthetic'), default=None,
                      help='stream of the peers comparison (default: animals-ci; '
                           'synthetic with --quick)')
  parser.add_argument('--peer-repeats', type=int, default=None,
                      help='interleaved repeats of each implementation (default 3)')
  parser.add_argument('--sections', nargs='*', choices=SECTIONS, default=list(SECTIONS),
                      help='run only these sections')
  return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
  preset = QUICK if args.quick else FULL
  out = args.out
  out.parent.mkdir(parents=True, exist_ok=True)
  report: dict = {'schema': SCHEMA_VERSION, 'mode': preset.name, 'seconds': {}}
  started = time.perf_counter()

  def record(name: str, build: Callable[[], Any]):
    if name not in args.sections:
      return None
    print(f'[bench] {name} ...', flush=True)
    start = time.perf_counter()
    value = build()
    report[name] = value
    report['seconds'][name] = time.perf_counter() - start
    write_json(os.fspath(out), report)
    out.with_suffix('.md').write_text(markdown_table(report))
    return value

  record('machine', machine_section)
  probe = MatmulProbe(preset)
  record('matmul', lambda: matmul_section(probe))
  learners = Learners(preset)
  stream = main_stream(preset)
  main_learner, main_config = learners.get(stream)
  compiled = {}

  def compile_and_learn():
    section, compiled['run'] = compile_section(main_learner, stream)
    return section

  record('compile', compile_and_learn)
  if 'run' in compiled:
    final_state, phases = compiled['run']
    record('meta_update', lambda: meta_update_section(preset, learners, stream, main_config,
                                                      final_state, phases))
  record('online_adaptation',
         lambda: online_adaptation_section(preset, learners, stream, probe))
  record('embedding_extraction', lambda: embedding_section(preset))
  record('cost_growth', lambda: cost_growth_section(preset))
  record('memory', lambda: memory_section(args.memory_results))
  record('peers', lambda: ({'skipped': 'turned off (--peers off)'} if args.peers == 'off'
                           else peers_section(preset, args.peer_stream, args.peer_repeats,
                                              probe)))
  record('seeds', lambda: bench_seeds.seeds_section(
      bench_seeds.preset_for(preset.name, accelerator_present()), probe,
      accelerator=accelerator_present()))
  if 'machine' in report:
    report['machine']['load_average_end'] = list(os.getloadavg())
  report['seconds']['total'] = time.perf_counter() - started
  write_json(os.fspath(out), report)
  table = markdown_table(report)
  out.with_suffix('.md').write_text(table)
  print(table)
  print(f'[bench] wrote {out} and {out.with_suffix(".md")} in '
        f'{report["seconds"]["total"]:.0f} s')
  return report


def main(argv=None) -> int:
  run(parse_args(argv))
  return 0


if __name__ == '__main__':
  sys.exit(main())
