"""The seed family (autoseed_plus with its guard, whose centres are kmeans_seeds') and gauss_replay's pair form
on a stream of every seed kind -- pair groups of a captioning task, answers of a VQA task --
on 1 device, on 8 with jit+sharding and on 8 with pmap. Started by tests/test_seed_kinds.py with
XLA_FLAGS=--xla_force_host_platform_device_count=8; prints one JSON line of results."""

import json
import os
import sys

import jax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from autoseed_jax import continual  # noqa: E402
from autoseed_jax.core import parallel  # noqa: E402
from vl_mock import mock_vl_stream, small_vl_config  # noqa: E402

# kmeans_seeds' summaries are autoseed_plus's centre targets (and its guard's fallback), so
# autoseed_plus stands for the family here.
METHODS = {'autoseed_plus': {'plus_meta_steps': 2, 'plus_guard': 'best_iterate+centres'},
           'gauss_replay': {'plus_memory_bytes': 20000}}  # its pair form


def main():
  assert jax.device_count() == 8, jax.devices()
  stream = mock_vl_stream(seed=3, kinds=('captioning', 'vqa'), images=16)
  out = {}
  for method, overrides in METHODS.items():
    out[method] = {}
    for name, (n, mode) in {'one': (1, 'jit'), 'jit8': (8, 'jit'), 'pmap8': (8, 'pmap')}.items():
      result = continual.run_sequence(
          small_vl_config(method, num_devices=n, parallel=mode, steps_per_task=8, **overrides),
          stream)
      if method == 'gauss_replay':  # the group means: bank (v), pairs (joint, 'w')
        extras = parallel.to_host(result.state.extras)
        memory_v, memory_w = extras['classes'].mean, extras['pairs'].mean
      else:
        memory = parallel.to_host(result.state.memory)
        memory_v, memory_w = memory.v, memory.w
      out[method][name] = {'acc_matrix': result.acc_matrix.tolist(),
                           'memory_v': memory_v.tolist(), 'memory_w': memory_w.tolist(),
                           'memory_bytes': int(result.memory_bytes)}
  print('RESULT ' + json.dumps(out))


if __name__ == '__main__':
  main()
