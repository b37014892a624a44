"""Final accuracy of Auto-Seed VL2 over many run seeds on 1 device, 8 (jit) and 8 (pmap).

Started by tests/test_device_invariance.py in a subprocess with
XLA_FLAGS=--xla_force_host_platform_device_count=8; prints one JSON line:
``RESULT {"one": [acc per seed], "jit8": [...], "pmap8": [...], "seconds": {...}}``.
Each form compiles its learner once and reuses it for every run seed.

``python tests/helpers/device_invariance_check.py SEEDS`` runs seeds 0..SEEDS-1 (default
``NUM_SEEDS``).
"""

import json
import os
import sys
import time

import jax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from autoseed_jax import continual  # noqa: E402
from autoseed_jax.streams.synthetic import make_synthetic_stream  # noqa: E402
from experiments.configs.common import method_config  # noqa: E402

NUM_SEEDS = 24
FORMS = {'one': (1, 'jit'), 'jit8': (8, 'jit'), 'pmap8': (8, 'pmap')}


def stream():
  """3 tasks x 2 classes in d = 64: two seed updates feed the later tasks."""
  return make_synthetic_stream(num_tasks=3, classes_per_task=2, dim=64, train_per_class=100,
                               test_per_class=50, seed=3)


def config(num_devices: int, mode: str):
  """The default method (20 meta-steps, 5 inner steps, ...) with small widths."""
  c = method_config()
  c.method = 'autoseed'
  c.steps_per_task, c.steps_per_chunk = 100, 100
  c.adapter_hidden, c.generator_hidden, c.sketch_dim = 32, 32, 32
  c.memory_budget = 40
  c.num_devices, c.parallel = num_devices, mode
  return c


def final_accuracies(num_devices: int, mode: str, seeds) -> list[float]:
  """Final average accuracy (percent) of every run seed, one compiled learner."""
  data = stream()
  c = config(num_devices, mode)
  learner = continual.build_learner(c, data)
  out = []
  for seed in seeds:
    c.seed = seed
    out.append(float(continual.run_sequence(c, data, learner=learner)
                     .metrics['final_avg_acc']))
  return out


def main():
  assert jax.device_count() == 8, jax.devices()
  seeds = range(int(sys.argv[1]) if len(sys.argv) > 1 else NUM_SEEDS)
  out, seconds = {}, {}
  for name, (n, mode) in FORMS.items():
    start = time.perf_counter()
    out[name] = final_accuracies(n, mode, seeds)
    seconds[name] = round(time.perf_counter() - start, 1)
  print('RESULT ' + json.dumps({**out, 'seconds': seconds}))


if __name__ == '__main__':
  main()
