"""Shared pieces of the experiments: running a method variant, mean ± std over run seeds,
the rows, tables and files every experiment writes."""

from __future__ import annotations

import json
import os
import pathlib

import ml_collections
import numpy as np

from experiments import vl_report
from experiments.configs.exp_common import METHOD_VARIANTS
from autoseed_jax.report.result_records import markdown_table, write_json
from experiments.suite import fmt, mean_std, METRIC_TITLES, METRICS, run_config, RunRecord, Suite, write_csv


def run_variant(suite: Suite, cfg, stream: str, label: str, seeds=None, *,
                base: ml_collections.ConfigDict | None = None,
                overrides: dict | None = None) -> list[RunRecord]:
  """Runs the method variant ``label`` (``METHOD_VARIANTS``) of experiment ``cfg`` for every
  run seed of ``seeds`` (default ``cfg.seeds``); one ``RunRecord`` per seed, in order.

  Seeds whose runs share every setting run together in one compiled program
  (``Suite.run_seeds``). ER variants with a byte multiple first run (or read back) the
  Auto-Seed VL2 runs with the same base config, stream and seeds, and take that multiple of
  each seed's ``memory_bytes``: seeds whose budgets differ run in programs of their own.
  """
  if label not in METHOD_VARIANTS:
    raise ValueError(f'unknown method label {label!r}; choose from {tuple(METHOD_VARIANTS)}.')
  seeds = tuple(cfg.seeds if seeds is None else seeds)
  method, variant_overrides, seed_bytes_factor = METHOD_VARIANTS[label]
  base = cfg.base if base is None else base
  overrides = {**variant_overrides, **(overrides or {})}
  if method == 'joint':
    stream_data = suite.stream(stream, train_fraction=cfg.train_fraction)
    overrides['joint_buffer_rows'] = int(stream_data.tasks[0].train_x.shape[0])
  per_seed = {seed: dict(overrides) for seed in seeds}
  records = {}
  if seed_bytes_factor:
    for seeds_run in run_variant(suite, cfg, stream, 'autoseed', seeds, base=base):
      seed = seeds_run.seed
      if seeds_run.error is not None or seeds_run.memory_bytes <= 0:
        record = RunRecord(key='', stream=stream, label=label, method=method, seed=seed,
                           overrides=per_seed.pop(seed))
        record.error = ('no Auto-Seed VL2 memory to match: the autoseed run of this stream '
                        f'and seed {"crashed" if seeds_run.error else "held 0 bytes"}.')
        records[seed] = record
      else:
        per_seed[seed]['er_memory_bytes'] = int(seed_bytes_factor * seeds_run.memory_bytes)
  groups = {}
  for seed, seed_overrides in per_seed.items():
    groups.setdefault(json.dumps(seed_overrides, sort_keys=True), []).append(seed)
  for group in groups.values():
    group_overrides = per_seed[group[0]]
    config = run_config(base, method=method, seed=group[0], **group_overrides)
    for record in suite.run_seeds(stream, config, group, label=label,
                                  overrides=group_overrides,
                                  train_fraction=cfg.train_fraction):
      records[record.seed] = record
  return [records[seed] for seed in seeds]


def summarize(records: list[RunRecord]) -> dict:
  """mean ± std over the seeds of each metric and of memory_bytes, the mean accuracy
  matrix and the crashed runs' errors."""
  ok = [r for r in records if r.error is None]
  out = {m: mean_std([r.metrics[m] for r in ok]) for m in METRICS}
  out['memory_bytes'] = mean_std([r.memory_bytes for r in ok])
  out['seconds'] = mean_std([r.seconds for r in ok])
  out['seeds'] = [r.seed for r in ok]
  out['errors'] = [{'seed': r.seed, 'error': r.error} for r in records if r.error is not None]
  out['refused'] = vl_report.refusal(records)
  out['task_metrics'] = vl_report.task_summary(records)
  if ok:
    out['acc_matrix'] = np.mean([r.acc_matrix for r in ok], axis=0).round(3).tolist()
    out['acc_matrix_std'] = np.std([r.acc_matrix for r in ok], axis=0).round(3).tolist()
    out['initial_acc'] = np.mean([r.initial_acc for r in ok], axis=0).round(3).tolist()
  return out


def summary_row(stream: str, label: str, summary: dict, **extra) -> dict:
  """A flat CSV row: stream, method, n, <metric>_mean/_std, memory_bytes_mean/_std."""
  row = {'stream': stream, 'method': label, **extra,
         'n_seeds': summary['final_avg_acc']['n'], 'crashed': len(summary['errors'])}
  for m in METRICS + ('memory_bytes', 'seconds'):
    row[f'{m}_mean'] = summary[m]['mean']
    row[f'{m}_std'] = summary[m]['std']
  row['final_avg_acc_min'] = summary['final_avg_acc'].get('min')
  return row


SUMMARY_COLUMNS = ['stream', 'method', 'n_seeds', 'crashed', 'final_avg_acc_min'] + [
    f'{m}_{s}' for m in METRICS + ('memory_bytes', 'seconds') for s in ('mean', 'std')]
RUN_COLUMNS = ['stream', 'method', 'seed', *METRICS, 'memory_bytes', 'seconds', 'compiled',
               'overrides', 'error']


def run_rows(records: list[RunRecord]) -> list[dict]:
  rows = []
  for r in records:
    row = {'stream': r.stream, 'method': r.label, 'seed': r.seed,
           'memory_bytes': r.memory_bytes, 'seconds': round(r.seconds, 2),
           'compiled': r.compiled, 'overrides': json.dumps(r.overrides, sort_keys=True),
           'error': None if r.error is None else r.error.strip().splitlines()[-1]}
    row.update({m: (r.metrics or {}).get(m) for m in METRICS})
    rows.append(row)
  return rows


def metrics_table(rows: list[tuple[str, dict]], *, first: str = 'method') -> str:
  """Markdown table of ``(name, summary)`` rows: the metrics as mean ± std, the final
  average accuracy with its worst run seed beside it."""
  header = [first] + [METRIC_TITLES[m] for m in METRICS] + [METRIC_TITLES['memory_bytes']]
  body = []
  for name, s in rows:
    if s['final_avg_acc']['n'] == 0:
      refused = s.get('refused')
      body.append([name] + ([refused] + ['—'] * (len(header) - 2) if refused
                            else ['crashed'] * (len(header) - 1)))
      continue
    body.append([name] + [fmt(s[m], with_min=m == 'final_avg_acc') for m in METRICS]
                + [fmt(s['memory_bytes'], 0)])
  return markdown_table(header, body)


def crash_notes(summaries: dict[tuple[str, str], dict]) -> list[str]:
  notes = []
  for (stream, label), s in summaries.items():
    if s.get('refused'):
      notes.append(f'{label} on {stream}: {s["refused"].rstrip(".")}.')
      continue
    for e in s['errors']:
      lines = e['error'].strip().splitlines()
      notes.append(f'CRASHED: {label} on {stream}, seed {e["seed"]}: `{lines[-1]}`')
  return notes


def write_experiment(out_dir: pathlib.Path, name: str, *, cfg, payload: dict, rows: list[dict],
                     columns: list[str], runs: list[RunRecord] | None, title: str,
                     notes: list[str], tables: list[tuple[str, str]],
                     figures: list[str]) -> list[str]:
  """Writes ``<name>.json``, ``<name>.csv``, ``<name>_runs.csv`` (when ``runs``) and
  ``<name>.md`` into ``out_dir``; returns the paths written."""
  out_dir.mkdir(parents=True, exist_ok=True)
  record = {'experiment': name, 'title': title, 'config': cfg.to_dict(), 'notes': notes,
            'tables': [{'caption': c, 'markdown': t} for c, t in tables],
            'figures': [os.path.basename(f) for f in figures], **payload}
  if runs is not None:
    record['runs'] = [r.to_json() for r in runs]
  paths = [str(out_dir / f'{name}.json'), str(out_dir / f'{name}.csv')]
  write_json(paths[0], record)
  write_csv(paths[1], rows, columns)
  if runs is not None:
    paths.append(str(out_dir / f'{name}_runs.csv'))
    write_csv(paths[-1], run_rows(runs), RUN_COLUMNS)
  md = [f'# {title}', ''] + [f'{n}\n' for n in notes]
  for caption, table in tables:
    md += [f'## {caption}', '', table, '']
  md += [f'![{os.path.basename(f)}]({os.path.basename(f)})' for f in figures]
  paths.append(str(out_dir / f'{name}.md'))
  pathlib.Path(paths[-1]).write_text('\n'.join(md) + '\n')
  return paths + list(figures)
