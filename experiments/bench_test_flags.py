"""How much the test suite's XLA flags cut compile-dominated work: small continual runs
(Auto-Seed VL2, autoseed_plus, ER on a 3-task synthetic stream, the run of
tests/test_vmap_seeds.py: ``helpers.small_runs``) compiled from scratch under XLA's defaults, under
``--xla_backend_optimization_level=0`` and under the tests' flags
(``tests/helpers.TEST_XLA_FLAGS``).

Each measurement is a fresh process (XLA reads its flags once, and nothing is loaded from a
persistent compilation cache); the flag sets are interleaved over ``--repeats`` rounds, so
a machine that gets busier part-way slows every set alike. Prints one row per flag set:
median seconds, the ratio to XLA's defaults, and the final accuracies (which must agree:
the flags change floats in their last bits, not what is learnt)::

  python experiments/bench_test_flags.py [--repeats 3] [--out bench_test_flags.json]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, 'tests')]

from helpers import TEST_XLA_FLAGS  # noqa: E402  pylint: disable=wrong-import-position
from helpers.small_runs import SMALL, STREAM  # noqa: E402  pylint: disable=wrong-import-position

FLAG_SETS = {
    'defaults': '',
    'backend_opt_0': '--xla_backend_optimization_level=0',
    'tests': TEST_XLA_FLAGS,
}
METHODS = ('autoseed', 'autoseed_plus', 'er')


def one_measurement() -> dict:
  """Runs ``METHODS`` once in this process; returns seconds and final accuracies."""
  from autoseed_jax import continual  # pylint: disable=import-outside-toplevel
  from autoseed_jax.streams.synthetic import make_synthetic_stream  # pylint: disable=import-outside-toplevel
  from experiments.configs.common import method_config  # pylint: disable=import-outside-toplevel
  stream = make_synthetic_stream(**STREAM)
  start, accuracies = time.perf_counter(), {}
  for method in METHODS:
    config = method_config()
    config.method = method
    for key, value in SMALL.items():
      config[key] = value
    result = continual.run_sequence(config, stream)
    accuracies[method] = round(float(result.metrics['final_avg_acc']), 2)
  return {'seconds': time.perf_counter() - start, 'final_avg_acc': accuracies}


def measure(flags: str) -> dict:
  env = dict(os.environ, XLA_FLAGS=flags, JAX_PLATFORMS='cpu')
  env.pop('JAX_COMPILATION_CACHE_DIR', None)  # compile from scratch
  proc = subprocess.run([sys.executable, os.path.abspath(__file__), '--child'], cwd=ROOT,
                        env=env, capture_output=True, text=True, check=True)
  return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
  parser.add_argument('--repeats', type=int, default=3)
  parser.add_argument('--out', default=None, help='also write the table as JSON here')
  parser.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.child:
    print(json.dumps(one_measurement()))
    return
  runs = {name: [] for name in FLAG_SETS}
  for _ in range(args.repeats):
    for name, flags in FLAG_SETS.items():
      runs[name].append(measure(flags))
  base = statistics.median(r['seconds'] for r in runs['defaults'])
  rows = []
  for name, flags in FLAG_SETS.items():
    seconds = statistics.median(r['seconds'] for r in runs[name])
    rows.append({'flags': name, 'xla_flags': flags, 'median_s': round(seconds, 2),
                 'ratio_to_defaults': round(seconds / base, 3),
                 'final_avg_acc': runs[name][0]['final_avg_acc']})
  print(f'{"flags":<14} {"median s":>9} {"ratio":>6}  final accuracy ({", ".join(METHODS)})')
  for row in rows:
    print(f'{row["flags"]:<14} {row["median_s"]:>9.2f} {row["ratio_to_defaults"]:>6.2f}  '
          f'{list(row["final_avg_acc"].values())}')
  if args.out:
    with open(args.out, 'w', encoding='utf-8') as f:
      json.dump({'repeats': args.repeats, 'rows': rows}, f, indent=1)


if __name__ == '__main__':
  main()
