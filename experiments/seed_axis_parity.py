# COMMAND: python experiments/seed_axis_parity.py [--size test|bench] [--seeds 3] [METHOD ...]
"""How far S seeds run in one program (``config.seeds``) are from the same seeds run one
after the other: per method, the largest |difference| of the accuracy matrices (percent
points), of the initial accuracies and of the trained parameters θ, over the seeds.

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
from autoseed_jax.synthetic import make_synthetic_stream  # noqa: E402
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


def parity(method: str, stream, overrides: dict, seeds) -> dict:
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
  return {
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
  args = parser.parse_args(argv)
  stream_args, overrides = SIZES[args.size]
  stream = make_synthetic_stream(**stream_args)
  out = {}
  for method in args.methods:
    out[method] = parity(method, stream, overrides, tuple(range(args.seeds)))
    r = out[method]
    print(f"{method:14s} |Δ R| {r['acc_matrix']:.3g}  |Δ b| {r['initial_acc']:.3g}  "
          f"|Δ final avg acc| {r['final_avg_acc']:.3g}  |Δ θ| {r['params']:.3g}  "
          f"({r['seconds']:.0f} s)", flush=True)
  print('RESULT ' + json.dumps({'size': args.size, 'seeds': args.seeds, 'methods': out}))
  return 0


if __name__ == '__main__':
  sys.exit(main())
