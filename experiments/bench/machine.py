"""The machine the bench ran on, and its f32 matrix-multiply rate."""

from __future__ import annotations

import datetime
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from experiments.bench.common import accelerator_present, Preset


def machine_section() -> dict:
  cpu = platform.processor()
  try:
    with open('/proc/cpuinfo') as f:
      cpu = next((line.split(':', 1)[1].strip() for line in f if line.startswith('model name')),
                 cpu)
  except OSError:
    pass
  devices = jax.devices()
  return {
      'date_utc': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
      'backend': jax.default_backend(),
      'devices': [str(d.device_kind) for d in devices],
      'device_count': len(devices),
      'cpu': cpu,
      'cpu_count': os.cpu_count(),
      'load_average_start': list(os.getloadavg()),
      'python': platform.python_version(),
      'jax': jax.__version__,
      'xla_flags': os.environ.get('XLA_FLAGS', ''),
  }


class MatmulProbe:
  """One f32 [n, n] @ [n, n] matmul at JAX's default precision, timed one call at a time so
  that it can be interleaved with the measurements it is compared with (on a shared
  machine the rate drifts with the load)."""

  def __init__(self, preset: Preset):
    self.n = 8192 if accelerator_present() else (2048 if preset.name == 'full' else 512)
    self.a, self.b = (jax.random.normal(jax.random.PRNGKey(i), (self.n, self.n), jnp.float32)
                      for i in (1, 2))
    self.matmul = jax.jit(jnp.matmul)
    self.matmul(self.a, self.b).block_until_ready()
    self.rates = []

  def measure(self) -> float:
    """FLOP/s of one call (also kept in ``rates``)."""
    start = time.perf_counter()
    self.matmul(self.a, self.b).block_until_ready()
    self.rates.append(2.0 * self.n ** 3 / (time.perf_counter() - start))
    return self.rates[-1]

  def median(self, since: int = 0) -> float:
    return float(np.median(self.rates[since:]))


def matmul_section(probe: MatmulProbe) -> dict:
  """The matmul rate alone, median of 7 calls (the sections below also interleave it)."""
  for _ in range(7):
    probe.measure()
  return {'n': probe.n, 'dtype': 'float32', 'precision': 'default',
          'flops_per_s': probe.median(), 'flops_per_s_best': max(probe.rates)}
