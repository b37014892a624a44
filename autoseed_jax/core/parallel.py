"""Data parallelism over a device mesh: one step function, two ways to compile it.

* ``jit`` (default, big_vision style): ``jax.jit`` over a 1-D mesh with axis ``data``.
  Parameters, generator, optimiser states and the seed memory are replicated
  (``NamedSharding(mesh, P())``); the per-task embedding arrays and every batch drawn
  from them are sharded along their example axis (``P('data')``); XLA inserts the
  gradient all-reduce. Works unchanged across hosts (``jax.distributed``): each process
  contributes only its rows (``jax.make_array_from_process_local_data``).
* ``pmap``: the same step functions under ``jax.pmap(axis_name='data')``. Every device
  draws the same global batch indices and keeps its own slice
  (``shard_rows``); gradients and loss terms are averaged with ``lax.pmean``.

What is equal to one device (docs/DEVICES.md). Each step computes the same function as
on one device; only the order in which a data-parallel sum adds its terms differs, so
steps agree up to float reassociation: one online-adaptation step to 6e-8 per parameter,
a 4-step meta-update to 1e-5, a short run's accuracy matrix to 1e-4
(``tests/test_parallel.py``, ``tests/test_multihost.py``). Whole runs of methods whose
training does not amplify such differences (zero-shot, fine-tuning) give the same
accuracy matrices. Whole runs of Auto-Seed VL2 are equal in distribution only: its
meta-update and seed replay amplify a 1e-7 difference a thousandfold per task, so one
run seed ends at a different accuracy on N devices than on one (as it does on one device
after a 1e-7 change of its initialisation), while the mean over run seeds is the same
(``tests/test_device_invariance.py``).

The step functions learn which form they run under from the ``axis_name`` argument:
None for ``jit``, ``'data'`` for ``pmap``.
"""

from __future__ import annotations

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

DATA_AXIS = 'data'
MODES = ('jit', 'pmap')


@dataclasses.dataclass(frozen=True)
class Parallelism:
  """How the engine's steps are compiled and where arrays live.

  Attributes:
    mode: 'jit' (sharding over a mesh) or 'pmap'.
    mesh: the 1-D ``data`` mesh (both modes; pmap uses its devices).
  """

  mode: str
  mesh: jax.sharding.Mesh

  @property
  def num_shards(self) -> int:
    return self.mesh.devices.size

  @property
  def replicated(self) -> jax.sharding.Sharding:
    """Where whole-state computations run: replicated over the mesh under jit, the
    first device under pmap (each pmapped step copies its inputs to every device)."""
    if self.mode == 'pmap':
      return jax.sharding.SingleDeviceSharding(self.mesh.devices.flat[0])
    return NamedSharding(self.mesh, P())

  @property
  def rows(self) -> NamedSharding:
    return NamedSharding(self.mesh, P(DATA_AXIS))


def maybe_initialize_distributed(config) -> None:
  """Calls ``jax.distributed.initialize`` when ``config.distributed`` is set.

  Coordinator, process count and id come from the environment (``JAX_COORDINATOR_ADDRESS``,
  ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``) or from cluster auto-detection (TPU pods,
  SLURM). Call it before any other JAX call. On CPU, collectives go through gloo.
  """
  if not config.get('distributed', False) or jax.distributed.is_initialized():
    return
  # CPU collectives across processes (only affects CPU devices; must precede any
  # backend initialisation, so no device query here).
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  kwargs = {}
  if 'JAX_COORDINATOR_ADDRESS' in os.environ:
    kwargs = dict(coordinator_address=os.environ['JAX_COORDINATOR_ADDRESS'],
                  num_processes=int(os.environ['JAX_NUM_PROCESSES']),
                  process_id=int(os.environ['JAX_PROCESS_ID']))
  jax.distributed.initialize(**kwargs)


def make_parallelism(config) -> Parallelism:
  """The mesh chosen by ``config.num_devices`` (0: every device of every process) and
  the compile mode ``config.parallel``."""
  mode = config.get('parallel', 'jit')
  if mode not in MODES:
    raise ValueError(f'invalid config: parallel={mode!r}; choose one of {MODES}.')
  available = jax.device_count()
  n = config.get('num_devices', 0) or available
  if not 0 < n <= available:
    raise ValueError(f'invalid config: num_devices={n}, but {available} device(s) exist. '
                     'Use 0 for all of them.')
  if mode == 'pmap' and jax.process_count() > 1:
    raise ValueError('invalid config: parallel=pmap is single-process here; use '
                     'parallel=jit (sharding) for multi-host runs.')
  if config.batch_size % n:
    raise ValueError(f'invalid config: batch_size={config.batch_size} must be divisible by '
                     f'the {n} data-parallel devices.')
  devices = np.array(jax.devices()[:n])
  return Parallelism(mode=mode, mesh=jax.sharding.Mesh(devices, (DATA_AXIS,)))


def shard_rows(x: jax.Array, parallelism: Parallelism, axis_name: str | None):
  """This device's rows of a global batch ``x`` [B, ...].

  Under pmap (``axis_name`` set) each device slices out its B / n rows; under jit the
  batch is constrained to be sharded along its rows and XLA splits the work.
  """
  if axis_name is not None:
    per = x.shape[0] // parallelism.num_shards
    start = jax.lax.axis_index(axis_name) * per
    return jax.lax.dynamic_slice_in_dim(x, start, per, axis=0)
  if parallelism.num_shards > 1:
    return jax.lax.with_sharding_constraint(x, parallelism.rows)
  return x


def mean_over_devices(tree, axis_name: str | None):
  """``lax.pmean`` under pmap; identity under jit (XLA already reduces)."""
  if axis_name is None:
    return tree
  return jax.lax.pmean(tree, axis_name)


def _global_array(x, sharding: NamedSharding):
  """Puts a host array onto the mesh; in a multi-process run each process hands over only
  the rows its devices hold (``make_array_from_process_local_data``)."""
  x = np.asarray(x)
  if jax.process_count() == 1:
    return jax.device_put(x, sharding)
  if sharding.spec == P():  # replicated: every process holds all of it
    return jax.make_array_from_process_local_data(sharding, x, x.shape)
  rows = sharding.addressable_devices_indices_map(x.shape)
  lo = min(idx[0].start or 0 for idx in rows.values())
  hi = max(idx[0].stop or x.shape[0] for idx in rows.values())
  return jax.make_array_from_process_local_data(sharding, x[lo:hi], x.shape)


def place_rows_sharded(tree, parallelism: Parallelism, *, row_fields: tuple[str, ...]):
  """Puts a dataclass pytree (Task / EvalSet) on the mesh: ``row_fields`` sharded along
  their first axis when it divides evenly, everything else replicated. A field that is
  None (e.g. a Task without ``train_pixels``) stays None."""
  fields = {}
  for f in dataclasses.fields(tree):
    value = getattr(tree, f.name)
    if value is None:
      continue
    shardable = (f.name in row_fields and parallelism.mode == 'jit'
                 and np.shape(value)[0] % parallelism.num_shards == 0)
    fields[f.name] = _global_array(value, parallelism.rows if shardable
                                   else parallelism.replicated)
  return tree.replace(**fields)


def replicate(tree, parallelism: Parallelism):
  """Every leaf replicated over the mesh."""
  return jax.tree.map(lambda x: _global_array(x, parallelism.replicated), tree)


def to_host(tree):
  """Fetches a (replicated or sharded) pytree to host NumPy, also in multi-process runs
  (where a replicated array is read from a local copy and a sharded one is gathered)."""

  def fetch(x):
    if not isinstance(x, jax.Array) or x.is_fully_addressable:
      return np.asarray(jax.device_get(x))
    if x.sharding.is_fully_replicated:
      return np.asarray(x.addressable_data(0))
    from jax.experimental import multihost_utils
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))

  return jax.tree.map(fetch, tree)


def stack_for_pmap(tree, parallelism: Parallelism):
  """A copy of every leaf for each device: leading axis = devices (pmap input)."""
  n = parallelism.num_shards
  return jax.tree.map(lambda x: jax.device_put(jnp.broadcast_to(x, (n,) + jnp.shape(x)),
                                               parallelism.rows), tree)


def unstack_from_pmap(tree, parallelism: Parallelism):
  """The first local device's copy of a pmap output (all copies are equal), replicated.

  Read from that device's buffer (``addressable_data``) and copied to the others, never
  as ``x[0]``: indexing an array sharded over the devices is a program on all of them
  with a collective, and one such program per leaf, launched in a different order on
  each simulated CPU device, deadlocked on 2 cores (docs/DEVICES.md)."""

  def first(x):
    local = x.addressable_data(0)  # [1, ...] on one device: no computation
    return jax.device_put(local.reshape(local.shape[1:]), parallelism.replicated)

  return jax.tree.map(first, tree)


def compile_step(fn, parallelism: Parallelism, *, static_argnums=(), donate_argnums=(),
                 pmap_argnums=()):
  """Compiles ``fn(*args, axis_name=...)`` in the configured form.

  The returned callable has the same signature and takes and returns unstacked pytrees
  in both modes. Under pmap the arguments in ``pmap_argnums`` are replicated onto the
  devices (others are broadcast as static), the step runs with ``axis_name='data'``, and
  the first device's outputs are returned.
  """
  if parallelism.mode == 'jit':
    return jax.jit(lambda *a: fn(*a, axis_name=None), static_argnums=static_argnums,
                   donate_argnums=donate_argnums)
  mapped = jax.pmap(lambda *a: fn(*a, axis_name=DATA_AXIS), axis_name=DATA_AXIS,
                    static_broadcasted_argnums=static_argnums,
                    devices=list(parallelism.mesh.devices.flat))

  def call(*args):
    args = [stack_for_pmap(a, parallelism) if i in pmap_argnums else a
            for i, a in enumerate(args)]
    # Wait for every device's copy before anything reads it: XLA's CPU client admits a
    # bounded number of computations per device (a semaphore taken when the launch runs
    # on its thread pool, not in dispatch order), so the per-leaf reads below could fill
    # a device's slots before that device's share of the pmap launched, all waiting on a
    # result that never comes (docs/DEVICES.md, "A deadlock of pmap on simulated CPU
    # devices"). One wait per step; the step itself stays one program.
    return unstack_from_pmap(jax.block_until_ready(mapped(*args)), parallelism)

  return call

