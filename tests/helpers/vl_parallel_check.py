"""A vision-language run (every task kind) on 1 device, on 8 with jit+sharding and on 8
with pmap. Started by tests/test_vl.py with XLA_FLAGS=--xla_force_host_platform_device_count=8;
prints one JSON line of results."""

import json
import os
import sys

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from autoseed_jax import continual
from autoseed_jax.core import parallel  # noqa: E402
from vl_mock import mock_vl_stream, small_vl_config  # noqa: E402


def main():
  assert jax.device_count() == 8, jax.devices()
  stream = mock_vl_stream(seed=3, kinds=('captioning', 'vqa'), images=16)
  out = {}
  for name, (n, mode) in {'one': (1, 'jit'), 'jit8': (8, 'jit'), 'pmap8': (8, 'pmap')}.items():
    result = continual.run_sequence(
        small_vl_config('autoseed', num_devices=n, parallel=mode, steps_per_task=8,
                        meta_steps=1), stream)
    out[name] = {'acc_matrix': result.acc_matrix.tolist(),
                 'task_metrics': np.nan_to_num(result.task_metrics, nan=-1.0).tolist(),
                 'memory_v': parallel.to_host(result.state.memory.v).tolist()}
  print('RESULT ' + json.dumps(out))


if __name__ == '__main__':
  main()
