"""Experiment configs (experiments/configs/exp_*.py, exp_all.py): loading, expanding the
suite config, and the checks that run before any run starts."""

from __future__ import annotations

import importlib
import os
import pathlib

import ml_collections

from autoseed_jax import continual
from autoseed_jax.streams import STREAMS
from experiments.configs.exp_common import METHOD_VARIANTS
from experiments.suite import Suite


CONFIG_DIR = pathlib.Path(__file__).resolve().parents[1] / 'configs'
EXPERIMENTS = ('main', 'ablation', 'memory', 'seeds', 'fwt')
# The streams built from the embedded data (the offline default), which experiments run on.
# The streams a reported table may use: the registered streams with embedded data, but the
# development streams the settings were chosen on (tuning only; they end in '-dev').
EMBEDDED_STREAMS = tuple(name for name, spec in STREAMS.items()
                         if spec.datasets and not name.endswith('-dev'))
DEFAULT_CACHE = pathlib.Path(__file__).resolve().parents[2] / 'runs' / 'experiments_cache'


def load_experiment_config(path: str | os.PathLike, quick: bool) -> ml_collections.ConfigDict:
  """``get_config('quick' or None)`` of an ``exp_*.py`` (or the suite's ``experiments.py``)
  config file, validated."""
  path = pathlib.Path(path)
  if not path.exists():
    raise FileNotFoundError(f'no config file {path}; the experiment configs are '
                            f'{sorted(p.name for p in CONFIG_DIR.glob("exp_*.py"))}.')
  spec = importlib.util.spec_from_file_location(f'experiment_config_{path.stem}', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  cfg = module.get_config('quick' if quick else None)
  for sub in expand_config(cfg):
    validate_experiment_config(sub)
  return cfg


def expand_config(config: ml_collections.ConfigDict) -> list[ml_collections.ConfigDict]:
  """The experiment configs that ``config`` runs, in the suite's order: itself, or for the
  suite config (``experiment='all'``, experiments/configs/exp_all.py) the configs of
  its ``experiment_names``."""
  if config.get('experiment') != 'all':
    return [config]
  names = tuple(config.experiment_names)
  unknown = [n for n in names if n not in config.experiments]
  if not names or unknown:
    raise ValueError(f'invalid suite config: experiment_names={names} must be a non-empty '
                     f'subset of {tuple(config.experiments)}; unknown: {unknown}.')
  return [config.experiments[n] for n in EXPERIMENTS if n in names]


def validate_experiment_config(cfg: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the field and a fix for an experiment config that cannot run
  (checked before any run starts; the method settings in ``base`` are checked against
  each stream by ``check_base_config``)."""
  name = cfg.get('experiment')
  if name not in EXPERIMENTS:
    raise ValueError(f'config.experiment={name!r}: use one of {EXPERIMENTS} '
                     "(or 'all', in experiments/configs/exp_all.py).")

  def need(cond, message):
    if not cond:
      raise ValueError(f'invalid {name} experiment config: {message}')

  known = EMBEDDED_STREAMS
  streams = tuple(cfg.streams)
  need(streams and all(s in known for s in streams),
       f'streams={streams}: give one or more of {known} (the development streams are '
       'for tuning only, experiments/tune_plus.py).')
  need(len(tuple(cfg.seeds)) > 0, f'seeds={tuple(cfg.seeds)}: give at least one run seed.')
  need(0.0 < cfg.train_fraction <= 1.0,
       f'train_fraction={cfg.train_fraction} must be in (0, 1].')
  labels = tuple(cfg.get('methods', ()))
  unknown = [label for label in labels if label not in METHOD_VARIANTS]
  need(not unknown, f'methods has unknown labels {unknown}; choose from '
       f'{tuple(METHOD_VARIANTS)} (experiments/configs/exp_common.py).')
  if name in ('main', 'fwt'):
    need(labels, 'methods is empty; name at least one method label.')
  if name == 'memory':
    need(cfg.seeds_per_class and all(int(k) > 0 for k in cfg.seeds_per_class),
         f'seeds_per_class={tuple(cfg.seeds_per_class)} must be one or more values > 0.')
    unknown = [m for m in cfg.get('budget_methods', ()) if m not in METHOD_VARIANTS]
    need(not unknown, f'budget_methods has unknown labels {unknown}; choose from '
         f'{tuple(METHOD_VARIANTS)} (experiments/configs/exp_common.py).')
  if name == 'ablation':
    rows = [r[0] for r in cfg.rows]
    need(rows and rows[0] == 'full', f'rows={rows}: the first row must be "full".')
    labels = [r[2] for r in cfg.rows if len(r) > 2]
    unknown = [label for label in labels if label not in METHOD_VARIANTS]
    need(not unknown, f'rows name unknown method labels {unknown}; choose from '
         f'{tuple(METHOD_VARIANTS)} (experiments/configs/exp_common.py).')
    missing = [r for r in rows if r not in cfg.row_titles]
    need(not missing, f'rows {missing} need an entry in row_titles.')
    need('full' in cfg.paper, 'paper needs the paper\'s "full" row (the drops are from it).')
  need(isinstance(cfg.get('cache_dir', ''), str),
       f"cache_dir={cfg.get('cache_dir')!r} must be a directory path or 'none'.")


def check_base_config(suite: Suite, cfg) -> None:
  """Raises ValueError if ``cfg.base`` cannot run on one of its streams (the engine's and
  Auto-Seed VL2's checks: every experiment runs Auto-Seed VL2)."""
  for stream in cfg.streams:
    data = suite.stream(stream, train_fraction=cfg.train_fraction)
    try:
      continual.validate_config(cfg.base)
      importlib.import_module('autoseed_jax.methods.autoseed').validate(cfg.base,
                                                                        data.num_classes)
    except ValueError as e:
      raise ValueError(f'{e} (in the {cfg.experiment} experiment\'s config.base, on '
                       f'{stream}; set it with --config.base.<field>=...)') from e


def resolve_cache_dir(value: str | None) -> pathlib.Path | None:
  """``cache_dir`` of a config: None for 'none' (or unset), else the path."""
  if value is None or str(value).lower() == 'none' or value == '':
    return None
  return pathlib.Path(value)
