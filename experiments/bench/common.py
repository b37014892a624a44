"""What every section shares: the sizes (``FULL``, ``QUICK``), timing and FLOP helpers,
the main synthetic stream and its compiled learners."""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from autoseed_jax import continual
from autoseed_jax.streams.synthetic import make_synthetic_stream
from experiments.configs.common import method_config


SCHEMA_VERSION = 1
SECTIONS = ('machine', 'matmul', 'online_adaptation', 'meta_update', 'embedding_extraction',
            'compile', 'cost_growth', 'memory', 'peers', 'seeds')


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
