# COMMAND: python experiments/seed_axis_parity.py [--size test|bench] [--seeds 3] [METHOD ...]
"""How far S seeds run in one program (``config.seeds``) are from the same seeds run one
after the other: per method, the largest |difference| of the accuracy matrices (percent
points), of the initial accuracies and of the trained parameters θ, over the seeds.

The yardstick beside them: the same sequential runs against themselves after adding
``1e-7 · N(0, 1)`` to every entry of the initial θ (``--no-yardstick`` leaves it out). A
method whose training amplifies float rounding shows the growth there too.

Sizes: ``test`` is tests/test_vmap_seeds.py's stream and config (3 tasks, d = 16, 12 steps
per task); ``bench`` the seed-axis benchmark's (experiments/bench_seeds.py FULL: 5 tasks,
d = 64, 100 steps per task). Methods default to every method of
``autoseed_jax.methods.METHODS`` that runs on a synthetic stream (the prompt learners need
a 384-d stream embedded by their text tower, ``dgr_pixel`` images: run those on their own
streams). Prints one line per method and a JSON line ``RESULT {...}``; docs/SEEDS_AXIS.md
quotes it.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import jax
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from autoseed_jax import continual, seed_axis  # noqa: E402
from autoseed_jax.methods import METHODS  # noqa: E402
from autoseed_jax.streams.synthetic import make_synthetic_stream  # noqa: E402
from experiments import bench_seeds  # noqa: E402
from experiments.configs.common import method_config  # noqa: E402

NEEDS_OWN_STREAM = ('coop', 'maple', 'dgr_pixel')

SIZES = {
    'test': (dict(num_tasks=3, classes_per_task=2, dim=16, train_per_class=30,
                  test_per_class=20, seed=0),
             dict(steps_per_task=12, steps_per_chunk=6, adapter_hidden=16, generator_hidden=16,
                  sketch_dim=16, noise_dim=4, meta_steps=2, plus_meta_steps=2, inner_steps=1,
                  memory_budget=12, candidates_per_class=8)),
    'bench': (dict(num_tasks=bench_seeds.FULL.num_tasks, classes_per_task=2,
                   dim=bench_seeds.FULL.dim, train_per_class=bench_seeds.FULL.train_per_class,
                   test_per_class=bench_seeds.FULL.test_per_class, seed=0),
              dict(bench_seeds.FULL.overrides)),
}


def max_abs(a, b) -> float:
  return max((float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
              for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))), default=0.0)


def perturbed_runs(learner, stream, seeds, scale: float = 1e-7):
  """(accuracy matrices, final θ) of ``seeds`` run by ``learner`` (single-seed) from their
  initial state with ``scale · N(0, 1)`` added to every entry of θ."""
  test = learner.put_test(stream.test)
  out = []
  for seed in seeds:
    state = learner.init(jax.random.PRNGKey(seed), test)
    leaves, tree = jax.tree.flatten(state.params)
    keys = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(seed), 99), len(leaves))
    state = state.replace(params=jax.tree.unflatten(
        tree, [x + scale * jax.random.normal(k, x.shape, x.dtype) for x, k in zip(leaves, keys)]))
    for task in stream.tasks:
      state = learner.learn_task(state, learner.put_task(task), test=test)
    out.append((np.asarray(state.acc_matrix), jax.tree.map(np.asarray, state.params)))
  return out


def parity(method: str, stream, overrides: dict, seeds, *, yardstick: bool = True) -> dict:
  config = method_config()
  config.method = method
  for key, value in overrides.items():
    config[key] = value
  config.seeds = tuple(seeds)
  start = time.perf_counter()
  learner = seed_axis.build_seeds_learner(config, stream)
  vmapped = seed_axis.run_sequences(config, stream, learner=learner)
  single = continual.build_learner(seed_axis.seed_config(config, seeds[0]), stream)
  sequential = seed_axis.run_sequences(config, stream, learner=single)
  extra = {}
  if yardstick:
    moved = perturbed_runs(single, stream, seeds)
    extra = {'yardstick_acc_matrix': max(max_abs(m[0], s.acc_matrix)
                                         for m, s in zip(moved, sequential)),
             'yardstick_params': max(max_abs(m[1], s.state.params)
                                     for m, s in zip(moved, sequential))}
  return {**extra,
      'acc_matrix': max(max_abs(v.acc_matrix, s.acc_matrix) for v, s in zip(vmapped, sequential)),
      'initial_acc': max(max_abs(v.initial_acc, s.initial_acc)
                         for v, s in zip(vmapped, sequential)),
      'final_avg_acc': max(abs(v.metrics['final_avg_acc'] - s.metrics['final_avg_acc'])
                           for v, s in zip(vmapped, sequential)),
      'params': max(max_abs(v.state.params, s.state.params) for v, s in zip(vmapped, sequential)),
      'seconds': time.perf_counter() - start,
  }


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('methods', nargs='*', default=[m for m in METHODS
                                                     if m not in NEEDS_OWN_STREAM])
  parser.add_argument('--size', choices=tuple(SIZES), default='test')
  parser.add_argument('--seeds', type=int, default=3)
  parser.add_argument('--no-yardstick', dest='yardstick', action='store_false',
                      help='leave out the runs from a perturbed initial θ')
  args = parser.parse_args(argv)
  stream_args, overrides = SIZES[args.size]
  stream = make_synthetic_stream(**stream_args)
  out = {}
  for method in args.methods:
    out[method] = parity(method, stream, overrides, tuple(range(args.seeds)),
                         yardstick=args.yardstick)
    r = out[method]
    moved = (f"  | θ0 + 1e-7 noise: |Δ R| {r['yardstick_acc_matrix']:.3g} "
             f"|Δ θ| {r['yardstick_params']:.3g}" if args.yardstick else '')
    print(f"{method:14s} |Δ R| {r['acc_matrix']:.3g}  |Δ b| {r['initial_acc']:.3g}  "
          f"|Δ final avg acc| {r['final_avg_acc']:.3g}  |Δ θ| {r['params']:.3g}{moved}  "
          f"({r['seconds']:.0f} s)", flush=True)
  print('RESULT ' + json.dumps({'size': args.size, 'seeds': args.seeds, 'methods': out}))
  return 0


if __name__ == '__main__':
  sys.exit(main())
