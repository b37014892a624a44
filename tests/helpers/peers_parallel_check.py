"""Runs each statistics-replay peer and training-free head (docs/PEERS.md) once on 1 device,
on 8 with jit+sharding and on 8 with pmap; prints one JSON line of results.

Started by tests/test_peers.py with XLA_FLAGS=--xla_force_host_platform_device_count=8
(the pattern of tests/helpers/parallel_check.py).
"""

import json
import os
import sys

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from autoseed_jax import continual
from autoseed_jax.core import parallel  # noqa: E402
from autoseed_jax.streams.synthetic import make_synthetic_stream  # noqa: E402
from experiments.configs.common import method_config  # noqa: E402

# label -> (method, overrides), small enough for a test.
RUNS = {
    'gauss_lowrank': ('gauss_replay', {'gauss_covariance': 'lowrank'}),
    'fetril': ('fetril', {}),
    'ranpac': ('ranpac', {'ranpac_dim': 64}),
}


def config(num_devices, mode, method, overrides):
  c = method_config()
  c.method = method
  c.steps_per_task, c.steps_per_chunk = 20, 10
  c.adapter_hidden, c.plus_memory_bytes = 32, 3000
  c.num_devices, c.parallel = num_devices, mode
  for name, value in overrides.items():
    c[name] = value
  return c


def main():
  assert jax.device_count() == 8, jax.devices()
  stream = make_synthetic_stream(num_tasks=3, classes_per_task=2, dim=16, train_per_class=40,
                                 test_per_class=20, seed=3)
  out = {}
  for label, (method, overrides) in RUNS.items():
    out[label] = {}
    for name, (n, mode) in {'one': (1, 'jit'), 'jit8': (8, 'jit'), 'pmap8': (8, 'pmap')}.items():
      c = config(n, mode, method, overrides)
      result = continual.run_sequence(c, stream)
      extras = jax.tree_util.tree_flatten_with_path(parallel.to_host(result.state.extras))[0]
      out[label][name] = {
          'acc_matrix': result.acc_matrix.tolist(),
          'memory_bytes': result.memory_bytes,
          'params': [np.ravel(a).tolist()
                     for a in jax.tree.leaves(parallel.to_host(result.state.params))],
          # The method's statistics (not the current task's rows FeTrIL holds).
          'extras': {jax.tree_util.keystr(path): np.ravel(leaf).astype(float).tolist()
                     for path, leaf in extras if 'pool' not in jax.tree_util.keystr(path)},
      }
  print('RESULT ' + json.dumps(out))


if __name__ == '__main__':
  main()
