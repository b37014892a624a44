"""Runs 4 seeds of ER in one program on 1 device, on 8 with jit+sharding (seeds × data),
on 8 with pmap, and with the seed axis sharded over 4 devices (``seed_sharding='seeds'``).

Started by tests/test_vmap_seeds.py in a subprocess with
XLA_FLAGS=--xla_force_host_platform_device_count=8; prints one JSON line of results.
"""

import json
import os
import sys

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from autoseed_jax.core import parallel
from autoseed_jax import seed_axis  # noqa: E402
from autoseed_jax.streams.synthetic import make_synthetic_stream  # noqa: E402
from experiments.configs.common import method_config  # noqa: E402

FORMS = {'one': (1, 'jit', 'data'), 'jit8': (8, 'jit', 'data'), 'pmap8': (8, 'pmap', 'data'),
         'seeds4': (4, 'jit', 'seeds')}


def config(num_devices, mode, seed_sharding):
  c = method_config()
  c.method = 'er'
  c.seeds = (0, 1, 2, 3)
  c.steps_per_task, c.steps_per_chunk, c.batch_size = 16, 8, 32
  c.adapter_hidden, c.er_memory_examples = 32, 40
  c.num_devices, c.parallel, c.seed_sharding = num_devices, mode, seed_sharding
  return c


def main():
  assert jax.device_count() == 8, jax.devices()
  stream = make_synthetic_stream(num_tasks=3, classes_per_task=2, dim=16, train_per_class=44,
                                 test_per_class=20, seed=2)
  out, params = {}, {}
  for name, form in FORMS.items():
    c = config(*form)
    learner = seed_axis.build_seeds_learner(c, stream)
    results = seed_axis.run_sequences(c, stream, learner=learner)
    state = learner.init(learner.run_key(c), learner.put_test(stream.test))
    task = learner.put_task(stream.tasks[0])
    state, _ = learner.adapt(learner.begin_task(state, task), task, c.steps_per_chunk)
    params[name] = [parallel.to_host(r.state.params) for r in results]
    out[name] = {
        'acc_matrix': [r.acc_matrix.tolist() for r in results],
        'state_sharding': str(jax.tree.leaves(state.params)[0].sharding),  # after a chunk
        'train_x_sharding': str(task.train_x.sharding),
    }
  for name in FORMS:
    out[name]['params_max_diff'] = max(
        float(np.max(np.abs(a - b))) for p, q in zip(params[name], params['one'])
        for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(q)))
  print('RESULT ' + json.dumps(out))


if __name__ == '__main__':
  main()
