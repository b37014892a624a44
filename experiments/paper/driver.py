"""Runs experiment configs in the suite's order into a results directory: every
experiment's files, then the claims (``claims``) and ``suite.json`` (timings, machine,
commit)."""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import platform
import resource
import subprocess
import sys
import time

import jax
import ml_collections

from autoseed_jax.tools import workdir_lock
from experiments import suite as suite_lib
from experiments.paper import ablation, fwt, main_table, memory, seeds
from experiments.paper.claims import claims_markdown, write_claims
from experiments.paper.configs import (EXPERIMENTS, check_base_config, expand_config,
                                       load_experiment_config, validate_experiment_config)
from autoseed_jax.report.result_records import write_json
from experiments.suite import Suite


RUNNERS = {'main': main_table.experiment_main, 'ablation': ablation.experiment_ablation,
           'memory': memory.experiment_memory, 'seeds': seeds.experiment_seeds,
           'fwt': fwt.experiment_fwt}


def _cpu_seconds() -> float:
  """CPU time (user + system, all threads) this process has used so far."""
  usage = resource.getrusage(resource.RUSAGE_SELF)
  return usage.ru_utime + usage.ru_stime


def _git_commit() -> str | None:
  try:
    return subprocess.run(['git', 'rev-parse', 'HEAD'], capture_output=True, text=True,
                          cwd=suite_lib.REPO_ROOT, check=True).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    return None


def run_configs(configs: list[ml_collections.ConfigDict], out: pathlib.Path, *,
                cache_dir: pathlib.Path | None, log=print, command: str | None = None) -> dict:
  """Runs experiment configs (exp_*.py, or the suite config, expanded) in the suite's
  order into ``out`` (``out/<experiment>/``), then writes ``out/claims.{json,md}`` and
  ``out/suite.json``; returns what suite.json holds.

  Finished runs are kept in ``cache_dir`` (None: memory only), so rerunning after an
  interruption resumes. ``command`` is recorded in suite.json. Raises ValueError before
  any run for a config that cannot run, and WorkdirBusyError if another run writes ``out``.
  """
  configs = [sub for cfg in configs for sub in expand_config(cfg)]
  for cfg in configs:
    validate_experiment_config(cfg)
  configs.sort(key=lambda c: EXPERIMENTS.index(c.experiment))
  out = pathlib.Path(out)
  out.mkdir(parents=True, exist_ok=True)
  with workdir_lock.hold(str(out), warn=log):  # one suite at a time writes ``out``
    return _run_sorted_configs(configs, out, cache_dir=cache_dir, log=log, command=command)


def _run_sorted_configs(configs, out: pathlib.Path, *, cache_dir, log, command) -> dict:
  """``run_configs`` on validated, sorted configs, holding ``out``."""
  suite = Suite(cache_dir, out=log)
  for cfg in configs:
    check_base_config(suite, cfg)
  timings, loads = {}, {}
  start, cpu_start, load_start = time.perf_counter(), _cpu_seconds(), os.getloadavg()
  for cfg in configs:
    log(f'\n== {cfg.experiment} ==')
    t0 = time.perf_counter()
    written = RUNNERS[cfg.experiment](suite, cfg, out / cfg.experiment)
    timings[cfg.experiment] = round(time.perf_counter() - t0, 1)
    loads[cfg.experiment] = round(os.getloadavg()[1], 2)  # 5-minute average at its end
    record = json.loads((out / cfg.experiment / f'{cfg.experiment}.json').read_text())
    for table in record['tables']:
      log(f'\n{table["caption"]}\n\n{table["markdown"]}')
    log(f'\n{cfg.experiment}: {timings[cfg.experiment]:.0f} s; wrote {len(written)} files '
        f'into {out / cfg.experiment}')
  claims = write_claims(out)
  info = {
      'command': command or ' '.join(['python -m experiments.paper'] + sys.argv[1:]),
      'quick': all(bool(c.get('quick')) for c in configs),
      'experiments': [c.experiment for c in configs],
      'seconds_per_experiment': timings,
      'seconds_total': round(time.perf_counter() - start, 1),
      'cpu_seconds_total': round(_cpu_seconds() - cpu_start, 1),
      'seconds_compiling_runs': round(suite.compile_seconds, 1),
      'runs_executed': suite.runs_done, 'runs_from_cache': suite.runs_from_cache,
      'load_average_start': [round(x, 2) for x in load_start],
      'load_average_end': [round(x, 2) for x in os.getloadavg()],
      'load_average_5min_after_each_experiment': loads,
      'cpu_count': os.cpu_count(), 'platform': platform.platform(),
      'jax': jax.__version__, 'devices': [str(d) for d in jax.devices()],
      'git_commit': _git_commit(), 'library_digest': suite.digest,
      'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
  }
  write_json(out / 'suite.json', info)
  log(f'\n{claims_markdown(claims)}\n\ntotal {info["seconds_total"]:.0f} s '
      f'({suite.runs_done} runs executed, {suite.runs_from_cache} read from the cache); '
      f'wrote {out}/claims.md, {out}/suite.json')
  return info


def run(config_paths: list[str], out: pathlib.Path, *, quick: bool,
        cache_dir: pathlib.Path | None, log=print) -> dict:
  """Loads the config files (``:quick`` form when ``quick``) and runs them (``run_configs``)."""
  configs = [load_experiment_config(p, quick) for p in config_paths]
  return run_configs(configs, out, cache_dir=cache_dir, log=log)
