"""One process of a multi-process (multi-host) run on loopback, or a single-process run.

  python multihost_run.py OUT.json                 # single process, one device
  JAX_COORDINATOR_ADDRESS=localhost:PORT JAX_NUM_PROCESSES=2 JAX_PROCESS_ID=i \
      python multihost_run.py OUT.json --distributed

Only process 0 writes OUT.json (the accuracy matrix and the final seed memory).
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import jax  # noqa: E402

from autoseed_jax import continual
from autoseed_jax.core import parallel  # noqa: E402
from autoseed_jax.streams.synthetic import make_synthetic_stream  # noqa: E402
from experiments.configs.common import method_config  # noqa: E402


def main():
  out_path = sys.argv[1]
  config = method_config()
  config.steps_per_task, config.steps_per_chunk, config.meta_steps = 30, 15, 3
  config.adapter_hidden, config.generator_hidden, config.memory_budget = 32, 32, 24
  config.distributed = '--distributed' in sys.argv
  parallel.maybe_initialize_distributed(config)
  stream = make_synthetic_stream(num_tasks=3, classes_per_task=2, dim=32, train_per_class=60,
                                 test_per_class=30, seed=3)
  result = continual.run_sequence(config, stream)
  if jax.process_index() == 0:
    with open(out_path, 'w') as f:
      json.dump({'processes': jax.process_count(), 'devices': jax.device_count(),
                 'acc_matrix': result.acc_matrix.tolist(),
                 'memory_v': parallel.to_host(result.state.memory.v).tolist()}, f)


if __name__ == '__main__':
  main()
