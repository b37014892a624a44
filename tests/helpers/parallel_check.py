"""Runs one short continual run on 1 device, on 8 with jit+sharding and on 8 with pmap.

Started by tests/test_parallel.py (Auto-Seed VL2 and the embedding extraction) and, with
``METHOD=FORMS`` arguments (``autoseed_plus=one,jit8,pmap8 refined_seeds=one,pmap8``), by
tests/test_autoseed_plus.py, in a subprocess with
XLA_FLAGS=--xla_force_host_platform_device_count=8; prints one JSON line of results
(``{form: ...}`` without arguments, ``{method: {form: ...}}`` with them).
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


def config(num_devices, mode, method='autoseed'):
  c = method_config()
  c.method = method
  c.steps_per_task, c.steps_per_chunk, c.meta_steps, c.plus_meta_steps = 40, 20, 4, 4
  c.summary_refine_steps = 20  # Adam on the seeds amplifies float reassociation with steps
  c.adapter_hidden, c.generator_hidden, c.memory_budget = 32, 32, 24
  c.num_devices, c.parallel = num_devices, mode
  return c


def method_runs(method, forms):
  """{form: results} of ``method`` in each of ``forms`` ('one,jit8,pmap8')."""
  stream = make_synthetic_stream(num_tasks=3, classes_per_task=2, dim=32, train_per_class=60,
                                 test_per_class=30, seed=2)
  out = {}
  all_forms = {'one': (1, 'jit'), 'jit8': (8, 'jit'), 'pmap8': (8, 'pmap')}
  for name in forms.split(','):
    n, mode = all_forms[name]
    c = config(n, mode, method)
    learner = continual.build_learner(c, stream)
    test = learner.put_test(stream.test)
    state = learner.init(jax.random.PRNGKey(0), test)
    task = learner.put_task(stream.tasks[0])
    state = learner.begin_task(state, task)
    state, _ = learner.adapt(state, task, 1)                 # one training step
    step_params = parallel.to_host(state.params)
    state, _ = learner.adapt(state, task, 39)
    state, info = learner.consolidate(state, task)           # includes the meta-update
    gen = parallel.to_host(state.gen_params) if state.gen_params is not None else {}
    result = continual.run_sequence(c, stream, learner=learner)
    out[name] = {
        'step_params': jax.tree.map(lambda x: x.ravel().tolist(), step_params),
        'gen_params': jax.tree.map(lambda x: x.ravel().tolist(), gen),
        'meta_loss_last': float(info.get('meta_loss_last', 0.0)),
        'acc_matrix': result.acc_matrix.tolist(),
        'memory_v': parallel.to_host(result.state.memory.v).tolist(),
        'train_x_sharding': str(task.train_x.sharding),
    }
  return out


def main(*method_forms):
  assert jax.device_count() == 8, jax.devices()
  if method_forms:
    print('RESULT ' + json.dumps({method: method_runs(method, forms) for method, forms in
                                  (spec.split('=') for spec in method_forms)}))
    return
  out = method_runs('autoseed', 'one,jit8,pmap8')
  # Embedding extraction: the LiT image tower over 8 devices equals one device.
  from autoseed_jax.models import backbone as backbone_lib
  from autoseed_jax.models.offline_backbone import load_offline_backbone
  tower = load_offline_backbone()
  images = np.random.default_rng(0).integers(0, 256, (100, 28, 28, 1), dtype=np.uint8)
  encode = lambda batch: tower._encode(tower.tower_params, batch)
  sharded = backbone_lib.batched(encode, images, 64)
  single = backbone_lib.batched(encode, images, 64, shard=False)
  out['embedding_max_diff'] = float(np.max(np.abs(sharded - single)))
  out['embedding_sharding'] = str(backbone_lib._row_sharding(64))
  print('RESULT ' + json.dumps(out))


if __name__ == '__main__':
  main(*sys.argv[1:])
