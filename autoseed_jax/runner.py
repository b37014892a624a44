"""Runs methods inside a workdir that survives interruptions (big_vision ``--workdir``).

Rerunning the same command on the same workdir resumes where the last run stopped: a
finished method is not rerun, a half-done one resumes from its newest intact checkpoint
and ends with bit-identical numbers (every random draw is a function of the run key and
the state's step counter). Workdir layout:

  run.lock                            held by the run writing here (``workdir_lock``)
  metrics.jsonl                       appended, one JSON object per line (``read_metrics``)
  results.json                        every method of the config (rewritten at the end)
  methods/<method>/signature.json     the config and stream the checkpoints belong to
  methods/<method>/checkpoints/<id>/  orbax checkpoints of the ``ContinualState``
  methods/<method>/checkpoints.corrupt/  checkpoints found unreadable, set aside
  methods/<method>/result.json        the finished method's record

With ``config.seeds`` (``autoseed_jax.seed_axis``, docs/SEEDS_AXIS.md) a method's
directory holds one run of all its seeds in one program: the checkpoints hold the stacked
state (leading seed axis), ``result.json`` holds ``{"seeds": [...], "entries": {...}}``,
``seeds.npz`` the first seed's memory and ``seeds@seed<s>.npz`` each seed's; results.json
has one entry per seed, ``<method>@seed<s>`` (with ``method`` and ``seed`` fields). A
method that cannot map its seeds runs them one at a time in ``methods/<method>@seed<s>/``.

Checkpoints are written after every task and at the end of every chunk of steps that
crosses a multiple of ``checkpoint_every_steps`` (``checkpoint_settings``). A run that
starts with a different config or stream than the workdir's checkpoints is refused
(``ConfigMismatchError``). SIGINT/SIGTERM stop the run at the end of the current chunk
with a checkpoint (``stop_on_signals``); a non-finite loss stops it before anything of
the bad chunk is saved (``NonFiniteLossError``). One run at a time writes a workdir: a
second one is refused naming the first (``hold_workdir``, ``WorkdirBusyError``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import sys
import tempfile
import threading
import time
from typing import Callable, Iterator

import jax
import ml_collections
import numpy as np

from autoseed_jax import seed_axis
from autoseed_jax.report import result_records
from autoseed_jax.tools import disk_errors, workdir_lock
from autoseed_jax.tools.checkpoint import (CheckpointStore, host_int, run_signature,
                                     signature_differences)
from autoseed_jax.continual import (Learner, RunResult, build_learner, make_result,
                                    validate_config)
from autoseed_jax.core.parallel import make_parallelism, to_host
from autoseed_jax.core.tasks import TaskStream

# Defaults of the checkpoint config fields (read with ``config.get``).
DEFAULT_CHECKPOINTS_TO_KEEP = 3
# Leaves of the run state that legitimately hold non-finite values: the seed memory's scores
# of empty slots (-inf) and the secondary metrics a task kind has none of (NaN). Every
# other float leaf, every method's own state included, must stay finite.
_MAY_BE_NON_FINITE = ('memory.score', 'task_metrics', 'initial_task_metrics')


class WorkdirError(RuntimeError):
  """The workdir cannot be used or written (not a directory, read-only, disk full)."""


class ConfigMismatchError(ValueError):
  """The workdir holds checkpoints of a run with another config or stream."""


class NonFiniteLossError(RuntimeError):
  """Training produced a NaN/Inf; nothing from that point on was saved."""


class RunInterrupted(Exception):
  """The run stopped on a signal after saving a checkpoint.

  Attributes:
    signum: the signal that stopped it (``signal.SIGINT`` or ``signal.SIGTERM``).
  """

  def __init__(self, message: str, signum: int):
    super().__init__(message)
    self.signum = signum


@dataclasses.dataclass(frozen=True)
class CheckpointSettings:
  """When checkpoints are taken and how many are kept.

  Attributes:
    every_steps: save at the end of a chunk that crosses a multiple of this many steps
      of the current task (0: only after each task). Multiples of ``steps_per_chunk``
      save exactly there.
    keep: checkpoints kept per method (the newest ones).
  """

  every_steps: int
  keep: int


def checkpoint_settings(config: ml_collections.ConfigDict) -> CheckpointSettings:
  """``checkpoint_every_steps`` (-1 or unset: every chunk) and ``checkpoints_to_keep``
  (default 3) from ``config``; raises ValueError naming a bad value."""
  every = config.get('checkpoint_every_steps', -1)
  if every == -1:
    every = min(config.steps_per_chunk, config.steps_per_task)
  keep = config.get('checkpoints_to_keep', DEFAULT_CHECKPOINTS_TO_KEEP)
  if every < 0:
    raise ValueError(f'invalid config: checkpoint_every_steps={every} must be >= -1 '
                     '(-1: every chunk; 0: only after each task).')
  if keep < 1:
    raise ValueError(f'invalid config: checkpoints_to_keep={keep} must be >= 1.')
  return CheckpointSettings(every_steps=every, keep=keep)


class StopRequest:
  """Set by a signal handler (``stop_on_signals``); read by the run between chunks."""

  def __init__(self):
    self.signum: int | None = None

  @property
  def requested(self) -> bool:
    return self.signum is not None


@contextlib.contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
  """While active, the first SIGINT (Ctrl-C) or SIGTERM asks the run to save a
  checkpoint and stop at the end of the current chunk; a second one stops at once
  (``KeyboardInterrupt``; saved checkpoints stay intact). Previous handlers come back
  on exit. Outside the main thread nothing is installed."""
  stop = StopRequest()

  def handler(signum, frame):
    del frame
    if stop.requested:
      raise KeyboardInterrupt
    stop.signum = signum
    sys.stderr.write(f'\n{signal.Signals(signum).name} received: saving a checkpoint at '
                     'the end of the current chunk, then stopping (send it again to '
                     'stop at once).\n')
    sys.stderr.flush()

  previous = {}
  if threading.current_thread() is threading.main_thread():
    for signum in (signal.SIGINT, signal.SIGTERM):
      previous[signum] = signal.signal(signum, handler)
  try:
    yield stop
  finally:
    for signum, old in previous.items():
      signal.signal(signum, old)


def describe_position(state, learner: Learner, num_tasks: int) -> str:
  """E.g. ``task 2 of 3, 20/40 steps`` or ``all 3 tasks done``."""
  task, done = learner.position(state)
  if task >= num_tasks:
    return f'all {num_tasks} tasks done'
  if learner.adapt is None:
    return f'task {task + 1} of {num_tasks}, not started'
  return f'task {task + 1} of {num_tasks}, {done}/{learner.steps_per_task} steps'


def _first_non_finite(terms: dict) -> tuple[int, list[str]] | None:
  """(index of the first step with a non-finite loss term, names of those terms)."""
  per_step = {k: v.reshape(v.shape[0], -1) for k, v in to_host(terms).items()}
  bad = {k: ~np.isfinite(v).all(axis=1) for k, v in per_step.items()}
  any_bad = np.any(np.stack(list(bad.values())), axis=0)
  if not any_bad.any():
    return None
  i = int(np.argmax(any_bad))
  return i, sorted(k for k, b in bad.items() if b[i])


def _non_finite_fields(state) -> list[str]:
  """The fields of ``state`` (top-level names) with a NaN/Inf in a float leaf, but the
  leaves in ``_MAY_BE_NON_FINITE``."""
  bad = []
  for path, leaf in jax.tree_util.tree_leaves_with_path(to_host(state)):
    name = jax.tree_util.keystr(path, simple=True, separator='.')
    if name.startswith(_MAY_BE_NON_FINITE) or not np.issubdtype(leaf.dtype, np.inexact):
      continue
    if not np.isfinite(leaf).all() and name.split('.')[0] not in bad:
      bad.append(name.split('.')[0])
  return bad


def run_method(config: ml_collections.ConfigDict, stream: TaskStream, learner: Learner,
               store: CheckpointStore, *, log: Callable[[dict], None] | None = None,
               stop: StopRequest | None = None,
               out: Callable[[str], None] = print) -> RunResult | list[RunResult]:
  """``continual.run_sequence`` with checkpoints: resumes from ``store``'s newest intact
  checkpoint (a finished run is only read back) and saves into it as it goes. With a
  ``seed_axis.SeedsLearner`` the checkpoints hold the stacked state of every seed and the
  result is a list, one ``RunResult`` per seed.

  Args:
    config: the run config of one method (``config.method`` set).
    stream: the task stream.
    learner: ``build_learner(config, stream)`` (or ``seed_axis.build_seeds_learner``).
    store: the method's checkpoints.
    log: receives a dict per chunk / consolidation (and a ``resume`` record).
    stop: checked after every chunk and task; when set, saves and raises RunInterrupted.
    out: receives progress and warning lines.

  Raises:
    NonFiniteLossError: a loss term or a trained parameter became NaN/Inf.
    RunInterrupted: ``stop`` was requested; a checkpoint of the current state was saved.
    CheckpointError: a checkpoint could not be written.
  """
  log = log or (lambda record: None)
  settings = checkpoint_settings(config)
  num_tasks, steps_per_task = stream.num_tasks, learner.steps_per_task
  test = learner.put_test(stream.test)
  state = learner.init(learner.run_key(config), test)
  seconds_before = 0.0
  restored = store.restore_latest(state, warn=out)
  if restored is not None:
    state, seconds_before = restored.state, float(restored.meta.get('seconds', 0.0))
    out(f'resuming from checkpoint {restored.checkpoint_id} '
        f'({describe_position(state, learner, num_tasks)}) in {store.directory}')
    log({'phase': 'resume', 'task': host_int(state.tasks_done),
         'step': host_int(state.step), 'checkpoint': restored.checkpoint_id})
  start = time.perf_counter()

  def save(state) -> int:
    bad = _non_finite_fields(state)
    if bad:
      raise NonFiniteLossError(
          f'method {learner.name!r}: {", ".join(bad)} became non-finite by '
          f'{describe_position(state, learner, num_tasks)} (run step '
          f'{host_int(state.step)}); not saved. {_last_good(store)} Lower learning_rate / '
          'meta_learning_rate, and start the changed run in another --workdir.')
    return store.save(state, seconds=round(seconds_before + time.perf_counter() - start, 3))

  def stop_here(state):
    ckpt_id = save(state)
    raise RunInterrupted(
        f'interrupted by {signal.Signals(stop.signum).name}: method {learner.name!r} '
        f'saved checkpoint {ckpt_id} ({describe_position(state, learner, num_tasks)}) in '
        f'{store.directory}. Rerun the same command to resume.', stop.signum)

  def check_chunk(state, terms, done, n):
    """NaN check, periodic save and Ctrl-C after each chunk of ``n`` steps."""
    t = host_int(state.tasks_done)
    bad = _first_non_finite(terms)
    if bad is not None:
      i, names = bad
      raise NonFiniteLossError(
          f'method {learner.name!r}: non-finite loss ({", ".join(names)}) at step '
          f'{done + i + 1}/{steps_per_task} of task {t + 1} (run step '
          f'{host_int(state.step) - n + i + 1}); nothing after the last checkpoint was '
          f'saved. {_last_good(store)} Lower learning_rate or check the data, and '
          'start the changed run in another --workdir.')
    every = settings.every_steps
    if every and (done + n) // every > done // every:  # crossed a multiple of every
      save(state)
    if stop is not None and stop.requested:
      stop_here(state)

  def check_consolidation(state, info):
    bad = sorted(k for k, v in info.items() if not np.isfinite(v))
    if bad:
      seed = f' (seed {info["seed"]})' if 'seed' in info else ''
      raise NonFiniteLossError(
          f'method {learner.name!r}: the consolidation of task '
          f'{host_int(state.tasks_done) + 1}{seed} gave non-finite {", ".join(bad)}; not '
          f'saved. {_last_good(store)} Lower meta_learning_rate and start the changed run '
          'in another --workdir.')

  while host_int(state.tasks_done) < num_tasks:
    task = learner.put_task(stream.tasks[host_int(state.tasks_done)])
    state = learner.learn_task(state, task, test=test, log=log, on_chunk=check_chunk,
                               on_consolidate=check_consolidation)
    save(state)
    if stop is not None and stop.requested:
      stop_here(state)
  seconds = seconds_before + time.perf_counter() - start
  if isinstance(learner, seed_axis.SeedsLearner):
    return learner.results(state, seconds)
  return make_result(learner, state, seconds)


def _last_good(store: CheckpointStore) -> str:
  ids = store.ids()
  if not ids:
    return 'No checkpoint was saved before it.'
  return f'The last good checkpoint is {ids[-1]} in {store.directory}.'


@dataclasses.dataclass(frozen=True)
class WorkdirPaths:
  """Where things live in a workdir (see the module doc)."""

  root: str

  @property
  def metrics(self) -> str:
    return os.path.join(self.root, 'metrics.jsonl')

  @property
  def results(self) -> str:
    return os.path.join(self.root, 'results.json')

  def method_dir(self, method: str) -> str:
    return os.path.join(self.root, 'methods', method)

  def signature(self, method: str) -> str:
    return os.path.join(self.method_dir(method), 'signature.json')

  def checkpoints(self, method: str) -> str:
    return os.path.join(self.method_dir(method), 'checkpoints')

  @property
  def test_embeddings(self) -> str:
    """The stream's real test embeddings (x, y, class_names), drawn beside the seeds."""
    return os.path.join(self.root, 'test_embeddings.npz')

  def seeds(self, method: str, seed: int | None = None) -> str:
    """The final seed memory's valid seeds (v, w, label, task), for plots and analysis
    (``seed``: of that run seed of a run of several seeds in one program)."""
    name = 'seeds.npz' if seed is None else f'seeds@seed{seed}.npz'
    return os.path.join(self.method_dir(method), name)

  def result(self, method: str) -> str:
    return os.path.join(self.method_dir(method), 'result.json')


def prepare_workdir(workdir: str) -> None:
  """Creates ``workdir`` and checks that a file can be written in it.

  Raises:
    WorkdirError: naming the directory and the OS error (read-only file system, a path
      through a regular file, no space left, permission denied).
  """
  try:
    os.makedirs(workdir, exist_ok=True)
    with tempfile.TemporaryFile(dir=workdir) as probe:
      probe.write(b'autoseed_jax workdir write check')
      probe.flush()
      os.fsync(probe.fileno())
  except OSError as e:
    raise WorkdirError(f'cannot write to --workdir {workdir}: {e}. Choose a writable '
                       'directory with free space.') from e


def hold_workdir(workdir: str, *, out: Callable[[str], None] | None = None):
  """A context that holds ``workdir``'s lock (``workdir_lock.hold``; re-entrant) in the
  process that writes it: process 0 of a multi-process run, the others take nothing.

  Raises:
    WorkdirBusyError: another live run holds the workdir (the message names it).
  """
  if not _is_writer():
    return contextlib.nullcontext()
  return workdir_lock.hold(workdir, warn=out)


def config_for_method(config: ml_collections.ConfigDict, method: str):
  """The run config of one entry of ``config.methods``."""
  run_config = config.copy_and_resolve_references()
  with run_config.unlocked():
    run_config.method = method
  return run_config


def validate_run_config(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the field and a fix for a run config that cannot run,
  before any stream is loaded: every method of ``config.methods`` with its own fields
  (``continual.validate_config``), the devices and the checkpoint settings. The
  ``stream`` block is checked by ``streams.load_stream`` before it loads anything."""
  for method in config.methods:
    validate_config(config_for_method(config, method))
  seed_axis.validate(config)
  make_parallelism(config)
  checkpoint_settings(config)


def _read_json(path: str, out: Callable[[str], None], *, then: str):
  """The JSON object in ``path``; None if missing, or (after a warning ending with
  ``then``) if unreadable."""
  if not os.path.exists(path):
    return None
  try:
    with open(path) as f:
      value = json.load(f)
    if not isinstance(value, dict):
      raise ValueError(f'expected a JSON object, found {type(value).__name__}')
    return value
  except (OSError, ValueError) as e:
    out(f'warning: {path} is unreadable ({type(e).__name__}: {e}); {then}.')
    return None


def _is_writer() -> bool:
  """Only process 0 of a multi-process run writes logs, results and seed files."""
  return jax.process_index() == 0


def _write_json(path: str, value) -> None:
  if not _is_writer():
    return
  with disk_errors.writing(path, 'writing', error_type=WorkdirError):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    result_records.write_json(path, value)


def _has_progress(paths: WorkdirPaths, method: str) -> bool:
  """Whether ``method`` saved anything in the workdir (a checkpoint or its result)."""
  checkpoints = paths.checkpoints(method)
  saved = os.path.isdir(checkpoints) and any(n.isdigit() for n in os.listdir(checkpoints))
  return saved or os.path.exists(paths.result(method))


def check_signatures(config: ml_collections.ConfigDict, stream: TaskStream,
                     paths: WorkdirPaths, units: list[RunUnit] | None = None) -> dict[str, dict]:
  """Each method's signature (each ``RunUnit``'s, keyed by its directory name, when
  ``units`` are given); raises ConfigMismatchError if it differs from the one in the
  workdir of a method that saved something (a checkpoint or its result).

  The message names every differing field and the fix (another --workdir, or delete the
  method's directory to start it over).
  """
  signatures, mismatches = {}, {}
  named = ([(m, config_for_method(config, m)) for m in config.methods] if units is None
           else [(unit.name, unit.config) for unit in units])
  for method, run_config in named:
    signature = run_signature(run_config, stream)
    path = paths.signature(method)
    if _has_progress(paths, method):
      try:
        with open(path) as f:  # written before the method's first checkpoint
          saved = json.load(f)
        differences = signature_differences(saved, signature)
      except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise ConfigMismatchError(
            f'{path} is missing or unreadable ({type(e).__name__}: {e}), so the '
            f'checkpoints of method {method!r} cannot be matched to this config. Delete '
            f'{paths.method_dir(method)} to start that method over, or use another '
            '--workdir.') from e
      if differences:
        mismatches.setdefault(tuple(differences), []).append(method)
    signatures[method] = signature
  if mismatches:
    listed = []
    for differences, methods in mismatches.items():
      listed.append(f'methods {", ".join(methods)}:\n    ' + '\n    '.join(differences))
    raise ConfigMismatchError(
        f'--workdir {paths.root} holds checkpoints of a run with a different config or '
        'stream; a checkpoint only resumes the run it came from. Differences:\n  '
        + '\n  '.join(listed)
        + f'\nUse another --workdir, rerun with the workdir\'s values, or delete '
        f'{os.path.join(paths.root, "methods", "<method>")} to start a method over.')
  return signatures


def metrics_logger(log_file, method: str, seed: int | None = None) -> Callable[[dict], None]:
  """A ``log`` callback appending ``{'method': method, **record}`` lines to ``log_file``
  (``{'method', 'seed', ...}`` for one seed of a method run seed by seed); a failed write
  (disk full) raises WorkdirError."""
  head = {'method': method} if seed is None else {'method': method, 'seed': seed}

  def log(record: dict) -> None:
    with disk_errors.writing(log_file.name, 'appending to', error_type=WorkdirError,
                             note='Checkpoints saved so far are intact.'):
      log_file.write(json.dumps({**head, **record}) + '\n')
      log_file.flush()

  return log


def _open_log(path: str):
  """Opens ``metrics.jsonl`` for appending, ending a line cut short by a crash first
  (other processes of a multi-process run log nowhere)."""
  if not _is_writer():
    return open(os.devnull, 'a')
  with disk_errors.writing(path, 'opening for appending', error_type=WorkdirError):
    log_file = open(path, 'a+')
    if log_file.tell() > 0:
      log_file.seek(log_file.tell() - 1)
      if log_file.read(1) != '\n':
        log_file.write('\n')
    return log_file


def run_workdir(config: ml_collections.ConfigDict, stream: TaskStream, workdir: str, *,
                stop: StopRequest | None = None,
                out: Callable[[str], None] = print) -> dict[str, dict]:
  """Runs every method of ``config.methods`` on ``stream`` in ``workdir``, resuming.

  Finished methods are read back from their ``result.json`` (or, if that is unreadable,
  rebuilt from their final checkpoint); the others resume from their newest intact
  checkpoint. Writes ``results.json`` and returns the per-method records
  (``result_records.result_record``).

  Raises:
    WorkdirError, WorkdirBusyError, ConfigMismatchError, NonFiniteLossError,
    RunInterrupted, checkpoint.CheckpointError (see their docs).
  """
  prepare_workdir(workdir)
  with hold_workdir(workdir, out=out):
    return _run_workdir(config, stream, WorkdirPaths(workdir), stop=stop, out=out)


@dataclasses.dataclass(frozen=True)
class RunUnit:
  """One directory of ``methods/``: a method's run of ``config.seed`` (``name`` = the
  method), the run of all its ``config.seeds`` in one program (``name`` = the method,
  ``learner`` a ``seed_axis.SeedsLearner``), or one seed of a method that cannot map its
  seeds (``name`` = ``seed_axis.entry_name(method, seed)``, ``seed`` set)."""

  name: str
  method: str
  config: ml_collections.ConfigDict
  learner: Learner
  seed: int | None = None


def run_units(config: ml_collections.ConfigDict, stream: TaskStream, *,
              out: Callable[[str], None] = print) -> list[RunUnit]:
  """The ``RunUnit``s of ``config.methods`` in order, their learners built (compilation is
  lazy); a method that cannot map its seeds gets one unit per seed and a line to ``out``
  saying why."""
  units = []
  for method in config.methods:
    run_config = config_for_method(config, method)
    seeds = seed_axis.run_seeds(run_config)
    if not seeds:
      units.append(RunUnit(method, method, run_config, build_learner(run_config, stream)))
      continue
    try:
      learner = seed_axis.build_seeds_learner(run_config, stream)
      units.append(RunUnit(method, method, run_config, learner))
    except seed_axis.CannotMapSeeds as e:
      out(seed_axis.fallback_message(method, seeds, e))
      single = None
      for seed in seeds:
        one = seed_axis.seed_config(run_config, seed)
        single = single or build_learner(one, stream)
        units.append(RunUnit(seed_axis.entry_name(method, seed), method, one, single, seed))
  return units


def _seed_record(record: dict, method: str, seed: int, **more) -> dict:
  """A results entry of one seed: its record with the method and the seed named."""
  return {**record, 'method': method, 'seed': seed, **more}


def _save_seed_memory(path: str, memory) -> None:
  """The valid seeds (v, w, label, task) of a final seed memory, as ``path`` (npz)."""
  memory = to_host(memory)
  with disk_errors.writing(path, 'writing', error_type=WorkdirError):
    np.savez(path, v=memory.v[memory.valid], w=memory.w[memory.valid],
             label=memory.label[memory.valid], task=memory.task[memory.valid])


def _unit_entries(unit: RunUnit, result) -> tuple[dict[str, dict], dict]:
  """(results entries of a finished unit, the JSON its ``result.json`` holds)."""
  if isinstance(result, list):  # every seed in one program
    entries = {seed_axis.entry_name(unit.method, r.seed): _seed_record(
        result_records.result_record(r), unit.method, r.seed, seeds_in_program=len(result))
               for r in result}
    return entries, {'seeds': [r.seed for r in result], 'entries': entries}
  record = result_records.result_record(result)
  if unit.seed is not None:
    record = _seed_record(record, unit.method, unit.seed)
  return {unit.name: record}, record


def _run_workdir(config, stream, paths: WorkdirPaths, *, stop, out) -> dict[str, dict]:
  """``run_workdir`` while holding the workdir."""
  _read_json(paths.results, out, then='it will be rewritten at the end')
  # Every method's config is validated before any method runs (compilation is lazy).
  units = run_units(config, stream, out=out)
  signatures = check_signatures(config, stream, paths, units)
  settings = checkpoint_settings(config)
  records = {}
  log_file = _open_log(paths.metrics)
  try:
    for unit in units:
      if stop is not None and stop.requested:
        raise RunInterrupted(f'interrupted by {signal.Signals(stop.signum).name} before '
                             f'method {unit.name!r} started. Rerun the same command to '
                             'resume.', stop.signum)
      out(f'\n== {unit.name} ==')
      saved = _read_json(paths.result(unit.name), out,
                         then='rebuilding it from the checkpoints (or by rerunning)')
      if saved is not None:
        out(f'finished in an earlier run ({paths.result(unit.name)})')
        entries = saved['entries'] if 'entries' in saved else {unit.name: saved}
      else:
        _write_json(paths.signature(unit.name), signatures[unit.name])
        store = CheckpointStore(paths.checkpoints(unit.name), keep=settings.keep)
        try:
          result = run_method(unit.config, stream, unit.learner, store,
                              log=metrics_logger(log_file, unit.method, unit.seed),
                              stop=stop, out=out)
        finally:
          store.close()
        entries, saved = _unit_entries(unit, result)
        if _is_writer():
          for i, r in enumerate(result if isinstance(result, list) else [result]):
            if r.state.memory is None:
              continue
            if i == 0:  # the first seed's memory is the one the report draws
              _save_seed_memory(paths.seeds(unit.name), r.state.memory)
            if isinstance(result, list):
              _save_seed_memory(paths.seeds(unit.name, r.seed), r.state.memory)
          if stream.vl is None and not os.path.exists(paths.test_embeddings) and any(
              r.state.memory is not None for r in (result if isinstance(result, list)
                                                   else [result])):
            with disk_errors.writing(paths.test_embeddings, 'writing', error_type=WorkdirError):
              _save_test_embeddings(paths.test_embeddings, stream)
        _write_json(paths.result(unit.name), saved)
      for entry, record in entries.items():
        if len(entries) > 1:
          out(f'-- {entry} --')
        out(result_records.format_matrix(record['acc_matrix'], record['initial_acc']))
        if 'task_metrics' in record:
          out('after the last task:\n' + result_records.format_task_metrics(
              record['task_metrics'], result_records.stream_tasks(stream)))
      records.update(entries)
  finally:
    try:
      log_file.close()
    except OSError:
      pass  # a failed flush was already reported by ``log``
  results = {'stream': stream.name, 'description': stream.description,
             'config': config.to_dict(), 'methods': records}
  if stream.vl is not None:
    results['tasks'] = result_records.stream_tasks(stream)
  _write_json(paths.results, results)
  return records


def _save_test_embeddings(path: str, stream: TaskStream) -> None:
  """Every task's real test embeddings and labels, with the class names: what the report's
  seed projection draws the seeds beside, so that it never rebuilds the stream."""
  count = np.asarray(stream.test.count)
  x = np.concatenate([np.asarray(stream.test.x[t])[:n] for t, n in enumerate(count)])
  y = np.concatenate([np.asarray(stream.test.y[t])[:n] for t, n in enumerate(count)])
  np.savez(path, x=x, y=y, class_names=np.asarray(stream.class_names, dtype=str))


def read_metrics(path: str) -> list[dict]:
  """The records of ``metrics.jsonl`` as one uninterrupted run would have written them.

  A resumed run appends a ``{"phase": "resume", ...}`` record and then logs again the
  chunks done after its checkpoint; a record that comes again for the same (method,
  phase, task, step) replaces the earlier one in its place (the numbers are the same,
  runs being deterministic; records of a run of several seeds are told apart by their
  ``seed``). Resume records and lines cut short by a crash are left out.
  """
  records = {}
  with open(path) as f:
    for line in f:
      try:
        record = json.loads(line)
      except ValueError:
        continue
      if not isinstance(record, dict) or record.get('phase') == 'resume':
        continue
      key = (record.get('method'), record.get('seed'), record.get('phase'), record.get('task'),
             record.get('step'))
      records[key] = record  # a repeat keeps the first one's place in the order
  return list(records.values())

