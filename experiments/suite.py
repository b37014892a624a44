"""Many continual-learning runs in one process, for the experiments (METHOD §5-§7).

``Suite`` builds each task stream once and compiles each (method, config) once, and runs
the run seeds of a (method, config) together in one compiled program (``run_seeds``: a
leading seed axis of the run state, ``autoseed_jax.seed_axis``; one seed alone runs the
plain engine). Every finished run
is kept in a cache directory under a key made of the run's config, the stream and the
library's source code (``library_digest``), so an interrupted suite resumes where it
stopped, experiments that share a run (the ablation's full row is the main table's
Auto-Seed VL2) run it once, and a change to the library reruns everything.

A run that raises is recorded with its traceback (``RunRecord.error``) and not cached,
so the other runs go on and a rerun retries it.

``dgr_pixel`` needs each task's training images on the image tower's input grid beside
its embeddings (``Task.train_pixels``): its runs get the stream built with them
(``streams.get_stream(..., pixels=True)``); every other run gets it without.

The rest are small helpers for the experiment outputs: mean ± std over seeds, CSV and
Markdown tables, and the figures.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
import pathlib
import time
import traceback
from typing import Callable, Sequence

import jax
import ml_collections
import numpy as np

from autoseed_jax import continual, methods, seed_axis
from autoseed_jax.core import parallel
from autoseed_jax.core.class_stats import BudgetTooSmall
from autoseed_jax.core.metrics import all_metrics
from autoseed_jax.core.tasks import TaskStream
from autoseed_jax.methods.base import MethodRefused
from autoseed_jax.report import plots
from autoseed_jax.report.plots import save_figure
from autoseed_jax.report.result_records import finite_or_none, write_json

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
LIBRARY_DIR = REPO_ROOT / 'autoseed_jax'
METRICS = ('final_avg_acc', 'avg_incremental_acc', 'forgetting', 'bwt', 'fwt')
METRIC_TITLES = {
    'final_avg_acc': 'final avg acc',
    'avg_incremental_acc': 'avg incr acc',
    'forgetting': 'forgetting',
    'bwt': 'BWT',
    'fwt': 'FWT',
    'memory_bytes': 'memory (B)',
}
ENTRY_POINTS = ('main.py', 'report/__main__.py')


def library_digest() -> str:
  """sha256 of every ``autoseed_jax/**/*.py`` (path and bytes) but the command-line
  front ends (``ENTRY_POINTS``, which do not change a run's numbers): a cached run is
  reused only with the library source that produced it."""
  digest = hashlib.sha256()
  for path in sorted(LIBRARY_DIR.rglob('*.py')):
    if path.relative_to(LIBRARY_DIR).as_posix() in ENTRY_POINTS:
      continue
    digest.update(str(path.relative_to(LIBRARY_DIR)).encode())
    digest.update(path.read_bytes())
  return digest.hexdigest()


def run_config(base: ml_collections.ConfigDict, *, method: str, seed: int,
               **overrides) -> ml_collections.ConfigDict:
  """A copy of ``base`` with ``method``, ``seed`` and ``overrides`` set (new fields allowed:
  the baselines read theirs with ``config.get``)."""
  config = ml_collections.ConfigDict(base.to_dict())
  config.method = method
  config.seed = int(seed)
  for name, value in overrides.items():
    config[name] = value
  return config


def needs_pixels(config: ml_collections.ConfigDict) -> bool:
  """Whether ``config``'s method reads the tasks' training images (``dgr_pixel``)."""
  return methods.needs_pixels((config.method,))


def config_json(config: ml_collections.ConfigDict, *, drop: Sequence[str] = ()) -> str:
  """The config as canonical JSON (sorted keys), without the fields in ``drop``."""
  values = {k: v for k, v in config.to_dict().items() if k not in drop}
  return json.dumps(values, sort_keys=True, default=str)


@dataclasses.dataclass
class RunRecord:
  """One finished (or crashed) run of one method, one config and one seed on one stream.

  Attributes:
    key: the cache key (config, stream, library source).
    stream: stream name; label: the experiment's name for the method variant.
    method: ``config.method``; seed: ``config.seed``.
    overrides: the config fields the variant sets on top of the experiment's base config.
    acc_matrix: [T][T] percent; initial_acc: [T] percent; metrics: METHOD §6 (None: NaN).
    memory_bytes: bytes of the method's replay memory at the end.
    seconds: wall time of the run (including compilation when ``compiled``).
    compiled: whether this run built the learner (compiled the step functions).
    error: the traceback when the run raised, else None.
    seeds: the final seed memory's valid seeds {'v', 'w', 'label', 'task'} (Auto-Seed).
    task_metrics: vision-language streams: every task's secondary metrics after the last
      task, [T][K] (``task_kinds.METRIC_NAMES``, None where a kind has none).
    refused: the method cannot run a task kind of the stream, or its memory does not fit
      the byte budget (``error`` says why).
  """

  key: str
  stream: str
  label: str
  method: str
  seed: int
  overrides: dict
  acc_matrix: list | None = None
  initial_acc: list | None = None
  metrics: dict | None = None
  memory_bytes: int = 0
  seconds: float = 0.0
  compiled: bool = False
  error: str | None = None
  seeds: dict | None = dataclasses.field(default=None, repr=False)
  task_metrics: list | None = None
  refused: bool = False

  def to_json(self) -> dict:
    out = dataclasses.asdict(self)
    out.pop('seeds')
    return out


class Suite:
  """Streams, compiled learners and finished runs, shared by every experiment.

  Args:
    cache_dir: where finished runs are kept (``<key>.json`` and, for Auto-Seed,
      ``<key>.seeds.npz``); None keeps them in memory only.
    out: receives one progress line per run.
  """

  def __init__(self, cache_dir: str | os.PathLike | None = None, *,
               out: Callable[[str], None] = print):
    self.cache_dir = None if cache_dir is None else pathlib.Path(cache_dir)
    if self.cache_dir is not None:
      self.cache_dir.mkdir(parents=True, exist_ok=True)
    self.out = out
    self.digest = library_digest()
    self._streams: dict[tuple, TaskStream] = {}
    self._learners: dict[str, continual.Learner] = {}
    self._runs: dict[str, RunRecord] = {}
    self.compile_seconds = 0.0
    self.run_seconds = 0.0
    self.runs_done = 0
    self.runs_from_cache = 0

  def stream(self, name: str, *, train_fraction: float = 1.0,
             pixels: bool = False) -> TaskStream:
    """The named stream (``streams.get_stream``, validation split seed 0), with each
    task's training images (``Task.train_pixels``) when ``pixels``."""
    key = (name, float(train_fraction), bool(pixels))
    if key not in self._streams:
      from autoseed_jax.streams import get_stream  # pylint: disable=import-outside-toplevel
      self._streams[key] = get_stream(name, train_fraction=train_fraction, pixels=pixels)
    return self._streams[key]

  def run(self, stream_name: str, config: ml_collections.ConfigDict, *, label: str,
          overrides: dict | None = None, train_fraction: float = 1.0) -> RunRecord:
    """Runs ``config`` (its ``seed``) on the stream, or returns the cached run."""
    return self.run_seeds(stream_name, config, (int(config.seed),), label=label,
                          overrides=overrides, train_fraction=train_fraction)[0]

  def _key(self, stream_id: dict, config: ml_collections.ConfigDict) -> str:
    return hashlib.sha256(
        (json.dumps(stream_id, sort_keys=True) + config_json(config) + self.digest).encode()
    ).hexdigest()[:24]

  def run_seeds(self, stream_name: str, config: ml_collections.ConfigDict, seeds, *,
                label: str, overrides: dict | None = None,
                train_fraction: float = 1.0) -> list[RunRecord]:
    """Runs ``config`` on the stream for every run seed of ``seeds``, in one compiled
    program when there are several (``config.seeds``, ``autoseed_jax.seed_axis``), or
    returns the cached runs. One ``RunRecord`` per seed, in the order of ``seeds``.

    A run of several seeds in one program is cached under keys that name the program's
    seeds (its numbers equal S separate runs only to float rounding, docs/SEEDS_AXIS.md),
    each seed's record with its share of the program's wall time.
    """
    seeds = tuple(int(s) for s in seeds)
    overrides = dict(overrides or {})
    pixels = needs_pixels(config)
    stream_id = {'stream': stream_name, 'train_fraction': float(train_fraction),
                 'val_fraction': 0.05, 'stream_seed': 0}
    program = run_config(config, method=config.method, seed=seeds[0],
                         seeds=seeds if len(seeds) > 1 else ())
    keys = [self._key(stream_id, run_config(program, method=config.method, seed=s))
            for s in seeds]
    found = [self._runs.get(k) or self._read_cached(k) for k in keys]
    if all(r is not None for r in found):
      for k, r in zip(keys, found):
        if k not in self._runs:
          self._runs[k] = r
          self.runs_from_cache += 1
      return [dataclasses.replace(r, label=label, overrides=overrides) for r in found]
    records = [RunRecord(key=k, stream=stream_name, label=label, method=config.method,
                         seed=s, overrides=overrides) for k, s in zip(keys, seeds)]
    what = f'{stream_name} {label} seed{"s" if len(seeds) > 1 else ""} {",".join(map(str, seeds))}'
    start = time.perf_counter()
    try:
      stream = self.stream(stream_name, train_fraction=train_fraction, pixels=pixels)
      learner_key = (json.dumps(stream_id, sort_keys=True)
                     + config_json(program, drop=('seed',)))
      compiled = learner_key not in self._learners
      if compiled:
        # One learner at a time (runs come grouped by config): every compiled program
        # holds memory maps, and a suite that kept them all ran out of them (LLVM
        # "Cannot allocate memory" at vm.max_map_count). Programs compiled again later
        # come from the persistent compilation cache.
        self._learners.clear()
        jax.clear_caches()
        self._learners[learner_key] = (seed_axis.build_seeds_learner(program, stream)
                                       if len(seeds) > 1 else
                                       continual.build_learner(program, stream))
      learner = self._learners[learner_key]
      results = (seed_axis.run_sequences(program, stream, learner=learner, out=self.out)
                 if len(seeds) > 1 else
                 [continual.run_sequence(program, stream, learner=learner)])
    except Exception as e:  # pylint: disable=broad-except
      seconds = time.perf_counter() - start
      refused = isinstance(e, (MethodRefused, BudgetTooSmall))
      if isinstance(e, MethodRefused):
        error = f'refused on {e.kind}: {e.reason}'
      elif refused:  # a memory form that cannot take part at this byte budget
        error = 'does not fit the byte budget: ' + str(e).removeprefix('invalid config: ')
      else:
        error = traceback.format_exc()
      for r in records:
        r.error, r.refused, r.seconds = error, refused, seconds / len(seeds)
        self._runs[r.key] = r  # not cached on disk: a rerun retries it
      if refused:  # not a crash: the method does not run this stream's kinds
        self.out(f'  REFUSED {what}: {e}')
      else:
        self.out(f'  CRASHED {what}: {error.strip().splitlines()[-1]}')
      return [dataclasses.replace(r) for r in records]
    seconds = time.perf_counter() - start
    if compiled:
      self.compile_seconds += seconds
    else:
      self.run_seconds += seconds
    for record, result in zip(records, results):
      record.compiled, record.seconds = compiled, seconds / len(seeds)
      self._fill(record, result)
      self._write_cached(record)
      self._runs[record.key] = dataclasses.replace(record)
      self.runs_done += 1
    accs = ', '.join(f'{r.metrics["final_avg_acc"]:.2f}' for r in records)
    self.out(f'  {what}: final avg acc {accs}, memory {records[0].memory_bytes} B, '
             f'{seconds:.1f} s{" (with compilation)" if compiled else ""}')
    return records

  @staticmethod
  def _fill(record: RunRecord, result) -> None:
    """``record``'s numbers from a finished ``continual.RunResult``."""
    acc, initial = np.asarray(result.acc_matrix), np.asarray(result.initial_acc)
    record.acc_matrix = np.round(acc, 4).tolist()
    record.initial_acc = np.round(initial, 4).tolist()
    record.metrics = {k: finite_or_none(v) for k, v in all_metrics(acc, initial).items()}
    record.memory_bytes = int(result.memory_bytes)
    if result.task_metrics is not None:
      record.task_metrics = [[finite_or_none(v) for v in row] for row in result.task_metrics[-1]]
    if result.state.memory is not None:
      memory = parallel.to_host(result.state.memory)
      valid = np.asarray(memory.valid)
      record.seeds = {'v': np.asarray(memory.v)[valid], 'w': np.asarray(memory.w)[valid],
                      'label': np.asarray(memory.label)[valid],
                      'task': np.asarray(memory.task)[valid]}

  def _read_cached(self, key: str) -> RunRecord | None:
    if self.cache_dir is None or not (self.cache_dir / f'{key}.json').exists():
      return None
    try:
      values = json.loads((self.cache_dir / f'{key}.json').read_text())
      record = RunRecord(**values)
      seeds_path = self.cache_dir / f'{key}.seeds.npz'
      if seeds_path.exists():
        with np.load(seeds_path) as stored:
          record.seeds = {k: stored[k] for k in stored.files}
      return record
    except (OSError, ValueError, TypeError) as e:
      self.out(f'  cached run {key} unreadable ({type(e).__name__}: {e}); rerunning it')
      return None

  def _write_cached(self, record: RunRecord) -> None:
    if self.cache_dir is None:
      return
    if record.seeds is not None:
      np.savez(self.cache_dir / f'{record.key}.seeds.npz', **record.seeds)
    write_json(self.cache_dir / f'{record.key}.json', record.to_json())


# ---------------------------------------------------------------------------------------
# Statistics and tables


def mean_std(values: Sequence[float | None]) -> dict:
  """{'mean', 'std', 'min', 'n'} of the non-None values; std is the sample std (ddof=1, 0
  for one value), min the worst run seed's value; all None when there is no value."""
  vals = np.asarray([v for v in values if v is not None], np.float64)
  if vals.size == 0:
    return {'mean': None, 'std': None, 'min': None, 'n': 0}
  std = float(vals.std(ddof=1)) if vals.size > 1 else 0.0
  return {'mean': _significant(vals.mean()), 'std': _significant(std),
          'min': _significant(vals.min()), 'n': int(vals.size)}


def _significant(x: float, digits: int = 6) -> float:
  """``x`` rounded to ``digits`` significant digits (small spreads keep their digits)."""
  return float(f'{float(x):.{digits}g}')


def fmt(stat: dict | None, digits: int = 2, *, with_min: bool = False) -> str:
  """'mean ± std' of a ``mean_std`` dict ('n/a' when empty); ``with_min`` adds the worst
  run seed's value, 'mean ± std (min m)', where a collapse of one seed shows."""
  if not stat or stat.get('mean') is None:
    return 'n/a'
  if stat.get('n', 1) <= 1:
    return f'{stat["mean"]:.{digits}f}'
  text = f'{stat["mean"]:.{digits}f} ± {stat["std"]:.{digits}f}'
  if with_min and stat.get('min') is not None:
    text += f' (min {stat["min"]:.{digits}f})'
  return text


def write_csv(path: str | os.PathLike, rows: Sequence[dict], columns: Sequence[str]) -> None:
  """One row per dict, the given columns in order (missing values empty)."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  with open(path, 'w', newline='') as f:
    writer = csv.DictWriter(f, fieldnames=list(columns), extrasaction='ignore')
    writer.writeheader()
    for row in rows:
      writer.writerow({c: ('' if row.get(c) is None else row.get(c)) for c in columns})


# ---------------------------------------------------------------------------------------
# Figures


def heatmap_grid(matrices: dict[str, np.ndarray], path: str | os.PathLike, *,
                 title: str = '', columns: int = 4) -> str:
  """Mean accuracy matrices R[i, j] (percent), one panel per method, ``columns`` per row."""
  plt = plots.plt
  names = list(matrices)
  rows = -(-len(names) // columns)
  cols = min(columns, len(names))
  fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols + 0.6, 2.5 * rows + 0.5),
                           squeeze=False)
  image = None
  for k, ax in enumerate(axes.flat):
    if k >= len(names):
      ax.axis('off')
      continue
    image = plots.draw_accuracy_matrix(ax, matrices[names[k]], names[k], fontsize=7)
  fig.colorbar(image, ax=axes.ravel().tolist(), label='accuracy (%)', shrink=0.7)
  fig.suptitle(title + '\nrows: after learning task i; columns: evaluated on task j',
               fontsize=10)
  return save_figure(fig, path)


def accuracy_curves(curves: dict[str, tuple[np.ndarray, np.ndarray]],
                    path: str | os.PathLike, *, title: str = '') -> str:
  """Accuracy on the tasks seen so far after each task: method -> (mean [T], std [T])."""
  plt = plots.plt
  fig, ax = plt.subplots(figsize=(6.4, 4.2))
  for method, (mean, std) in curves.items():
    x = np.arange(1, len(mean) + 1)
    ax.errorbar(x, mean, yerr=std, marker='o', capsize=3, label=method)
  ax.set_xlabel('tasks learned')
  ax.set_ylabel('accuracy on tasks seen so far (%)')
  ax.set_ylim(0, 100)
  plots.set_task_ticks(ax, max(len(mean) for mean, _ in curves.values()))
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7, ncol=2)
  ax.set_title(title)
  return save_figure(fig, path)


def memory_plot(series: dict[str, list[tuple[float, float, float]]], path: str | os.PathLike,
                *, title: str = '') -> str:
  """Final average accuracy vs memory bytes: series -> [(bytes, mean, std)], log x axis."""
  plt = plots.plt
  fig, ax = plt.subplots(figsize=(6.0, 4.0))
  for name, points in series.items():
    points = sorted(points)
    x = [p[0] for p in points]
    ax.errorbar(x, [p[1] for p in points], yerr=[p[2] for p in points], marker='o',
                capsize=3, label=name)
  ax.set_xscale('log')
  ax.set_xlabel('replay memory (bytes, log scale)')
  ax.set_ylabel('final average accuracy (%)')
  ax.grid(alpha=0.3, which='both')
  ax.legend(fontsize=8)
  ax.set_title(title)
  return save_figure(fig, path)


def bar_plot(groups: dict[str, dict[str, tuple[float, float]]], path: str | os.PathLike, *,
             ylabel: str, title: str = '') -> str:
  """Grouped bars: group (x tick) -> {series: (mean, std)}."""
  plt = plots.plt
  names = list(groups)
  series = list(dict.fromkeys(s for g in groups.values() for s in g))
  width = 0.8 / max(len(series), 1)
  fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(names) + 2), 3.8))
  for k, s in enumerate(series):
    x = np.arange(len(names)) + (k - (len(series) - 1) / 2) * width
    mean = [groups[g].get(s, (np.nan, 0))[0] for g in names]
    std = [groups[g].get(s, (np.nan, 0))[1] for g in names]
    ax.bar(x, mean, width, yerr=std, capsize=2, label=s)
  ax.set_xticks(np.arange(len(names)), names, rotation=30, ha='right', fontsize=8)
  ax.set_ylabel(ylabel)
  ax.axhline(0, color='black', linewidth=0.6)
  ax.grid(alpha=0.3, axis='y')
  ax.legend(fontsize=8)
  ax.set_title(title)
  return save_figure(fig, path)
