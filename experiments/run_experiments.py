r"""The paper's experiments on the two embedded real streams (METHOD §5-§7).

They run through the one entry point, which hands experiment configs to ``run_configs``:

  python -m autoseed_jax.main --config experiments/configs/experiments.py --workdir experiments/results
  python -m autoseed_jax.main --config experiments/configs/experiments.py:quick --workdir runs/quick
  python -m autoseed_jax.main --config experiments/configs/exp_main.py --workdir DIR

This module's own command line does the same (``--out`` is the workdir, ``--quick`` the
``:quick`` form, ``--cache`` the configs' ``cache_dir``):

  python experiments/run_experiments.py --out experiments/results           # all five
  python experiments/run_experiments.py --out /tmp/quick --quick            # smoke form
  python experiments/run_experiments.py --config experiments/configs/exp_main.py --out ...

Experiments (one config file each, ``experiments/configs/exp_*.py``, run in this order):

  main      every method on animals-ci and animals-digits, 3 seeds: METHOD §6 metrics
  ablation  the five rows of METHOD §5, beside the paper's numbers
  memory    Auto-Seed VL2 and ER-VLM across memory budgets (bytes vs final accuracy)
  seeds     seed fidelity: cosine to real class means, spread along task-relevant dirs
  fwt       forward transfer per task, per method

Each writes ``<out>/<experiment>/``: ``<experiment>.json`` (every run, the summary, the
Markdown tables and notes), ``<experiment>.csv`` (the summary), ``<experiment>_runs.csv``
(one row per run, for main / ablation / memory), ``<experiment>.md`` and PNG figures.
``<out>/claims.json`` / ``claims.md`` set the paper's claims beside what was measured,
and ``<out>/suite.json`` records timings and the machine. ``experiments/update_readme.py``
turns these files into the README's results section.

All runs go through one ``experiments.suite.Suite``: each (method, config) is compiled
once and reused for every seed, and finished runs are cached in ``--cache`` (keyed by
config, stream and library source), so rerunning an interrupted command resumes it.
``python experiments/run_experiments.py --claims-only --out DIR`` re-evaluates the claims
from the files already in DIR.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import pathlib
import platform
import resource
import subprocess
import sys
import time

if __package__ in (None, ''):  # run as a script: make the repository importable
  sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402

from autoseed_jax import continual, plots, workdir_lock  # noqa: E402
from autoseed_jax.methods.er import (bytes_matching_seed_memory,  # noqa: E402
                                     bytes_per_example)
from experiments import suite as suite_lib  # noqa: E402
from experiments import vl_report  # noqa: E402
from experiments.configs.exp_common import METHOD_VARIANTS  # noqa: E402
from experiments.suite import (METRIC_TITLES, METRICS, RunRecord, Suite, fmt,  # noqa: E402
                               markdown_table, mean_std, run_config, write_csv, write_json)

CONFIG_DIR = pathlib.Path(__file__).resolve().parent / 'configs'
EXPERIMENTS = ('main', 'ablation', 'memory', 'seeds', 'fwt')
DEFAULT_CACHE = pathlib.Path(__file__).resolve().parents[1] / 'runs' / 'experiments_cache'


# ---------------------------------------------------------------------------------------
# Running method variants


def run_variant(suite: Suite, cfg, stream: str, label: str, seed: int, *,
                base: ml_collections.ConfigDict | None = None,
                overrides: dict | None = None) -> RunRecord:
  """Runs the method variant ``label`` (``METHOD_VARIANTS``) of experiment ``cfg``.

  ER variants with a byte multiple first run (or read back) the Auto-Seed VL2 run with
  the same base config, stream and seed, and take that multiple of its ``memory_bytes``.
  """
  if label not in METHOD_VARIANTS:
    raise ValueError(f'unknown method label {label!r}; choose from {tuple(METHOD_VARIANTS)}.')
  method, variant_overrides, seed_bytes_factor = METHOD_VARIANTS[label]
  base = cfg.base if base is None else base
  overrides = {**variant_overrides, **(overrides or {})}
  if method == 'joint':
    stream_data = suite.stream(stream, train_fraction=cfg.train_fraction)
    overrides['joint_buffer_rows'] = int(stream_data.tasks[0].train_x.shape[0])
  if seed_bytes_factor:
    seeds_run = run_variant(suite, cfg, stream, 'autoseed', seed, base=base)
    if seeds_run.error is not None or seeds_run.memory_bytes <= 0:
      record = RunRecord(key='', stream=stream, label=label, method=method, seed=seed,
                         overrides=overrides)
      record.error = ('no Auto-Seed VL2 memory to match: the autoseed run of this stream and '
                      f'seed {"crashed" if seeds_run.error else "held 0 bytes"}.')
      return record
    overrides['er_memory_bytes'] = int(seed_bytes_factor * seeds_run.memory_bytes)
  config = run_config(base, method=method, seed=seed, **overrides)
  return suite.run(stream, config, label=label, overrides=overrides,
                   train_fraction=cfg.train_fraction)


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
  return row


SUMMARY_COLUMNS = ['stream', 'method', 'n_seeds', 'crashed'] + [
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
  """Markdown table of ``(name, summary)`` rows: the metrics as mean ± std."""
  header = [first] + [METRIC_TITLES[m] for m in METRICS] + [METRIC_TITLES['memory_bytes']]
  body = []
  for name, s in rows:
    if s['final_avg_acc']['n'] == 0:
      refused = s.get('refused')
      body.append([name] + ([refused] + ['—'] * (len(header) - 2) if refused
                            else ['crashed'] * (len(header) - 1)))
      continue
    body.append([name] + [fmt(s[m]) for m in METRICS] + [fmt(s['memory_bytes'], 0)])
  return markdown_table(header, body)


def crash_notes(summaries: dict[tuple[str, str], dict]) -> list[str]:
  notes = []
  for (stream, label), s in summaries.items():
    if s.get('refused'):
      notes.append(f'{label} on {stream}: {s["refused"]}.')
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


# ---------------------------------------------------------------------------------------
# The experiments


def experiment_main(suite: Suite, cfg, out_dir: pathlib.Path) -> list[str]:
  """Every method on every stream and seed; metrics, heatmaps, accuracy curves."""
  records, summaries = [], {}
  # Auto-Seed first: the ER variants match its memory.
  order = sorted(cfg.methods, key=lambda label: label != 'autoseed')
  for stream in cfg.streams:
    for label in order:
      runs = [run_variant(suite, cfg, stream, label, seed) for seed in cfg.seeds]
      records += runs
      summaries[(stream, label)] = summarize(runs)
  figures, tables, vl_tasks = [], [], {}
  for stream in cfg.streams:
    rows = [(label, summaries[(stream, label)]) for label in cfg.methods]
    tables.append((f'{stream} (mean ± std over seeds {list(cfg.seeds)})', metrics_table(rows)))
    data = suite.stream(stream, train_fraction=cfg.train_fraction)
    if data.vl is not None:  # the per-task scores of a vision-language stream
      vl_tasks[stream] = vl_report.stream_tasks(data)
      tables.append((f'{stream}: every task after the last one (mean ± std over seeds '
                     f'{list(cfg.seeds)})', vl_report.vl_table(vl_tasks[stream], rows)))
    done = {label: s for label, s in rows if s['final_avg_acc']['n']}
    if done:
      figures.append(suite_lib.heatmap_grid(
          {label: s['acc_matrix'] for label, s in done.items()},
          out_dir / f'heatmaps_{stream}.png', title=f'{stream}: mean accuracy matrix'))
      curves = {}
      for label, s in done.items():
        seen = [[np.mean(np.asarray(r.acc_matrix)[t, :t + 1])
                 for t in range(len(r.acc_matrix))]
                for r in records if r.stream == stream and r.label == label and not r.error]
        curves[label] = (np.mean(seen, axis=0), np.std(seen, axis=0))
      figures.append(suite_lib.accuracy_curves(
          curves, out_dir / f'accuracy_after_each_task_{stream}.png',
          title=f'{stream}: accuracy after each task (mean ± std over seeds)'))
  notes = [
      'Accuracies in percent; mean ± sample std over seeds (config.seed). Every method uses '
      'the same optimisation settings (experiments/configs/real_streams.py). er_1x / er_10x: '
      'ER-VLM with 1x / 10x the bytes of the Auto-Seed VL2 memory of the same stream and seed. '
      'Memory counts the replay memory only (seeds or stored exemplars; joint stores every '
      'task; generative replay, LwF, EWC and hnet store no data).'] + crash_notes(summaries)
  rows = [summary_row(s, label, summaries[(s, label)]) for s in cfg.streams
          for label in cfg.methods]
  if vl_tasks:
    notes.append(
        'Vision-language streams: R[i, j] holds each task\'s primary score -- retrieval: '
        'mean recall (the mean of R@1/5/10 image->text and text->image over the task\'s test '
        'gallery); captioning: corpus BLEU-4 x 100 of the best caption of the task\'s fixed '
        'bank; VQA: VQA accuracy -- so "final avg acc" averages these scores. ER-VLM stores '
        'whole rows (8 d + 4 bytes for an image-caption pair). Methods that cannot run a task '
        'kind are refused, with the reason in their row (docs/VL_TASKS.md).')
  payload = {'summary': [{'stream': s, 'method': label, **summaries[(s, label)]}
                         for s in cfg.streams for label in cfg.methods], 'vl_tasks': vl_tasks}
  return write_experiment(out_dir, 'main', cfg=cfg, payload=payload, rows=rows,
                          columns=SUMMARY_COLUMNS, runs=records,
                          title='Main table: every method on the embedded real streams',
                          notes=notes, tables=tables, figures=figures)


def ablation_rows(cfg) -> list[tuple[str, dict, str]]:
  """(name, overrides, method label) of every ablation row (label 'autoseed' when the row
  leaves it out) and the name of each label's full row (its first row), by label."""
  rows = [(r[0], dict(r[1]), r[2] if len(r) > 2 else 'autoseed') for r in cfg.rows]
  return rows, {label: next(n for n, _, l in rows if l == label) for _, _, label in rows}


def experiment_ablation(suite: Suite, cfg, out_dir: pathlib.Path) -> list[str]:
  """Each method's ablation switches; drops vs its full row, beside the paper's."""
  records, summaries, rows, payload_rows = [], {}, [], []
  table_rows, full_rows = ablation_rows(cfg)
  for stream in cfg.streams:
    for name, overrides, label in table_rows:
      runs = [run_variant(suite, cfg, stream, label, seed, overrides=overrides)
              for seed in cfg.seeds]
      for r in runs:
        r.label = name
      records += runs
      summaries[(stream, name)] = summarize(runs)
  tables, groups = [], {}
  paper_full = cfg.paper['full']
  for stream in cfg.streams:
    body = []
    for name, overrides, label in table_rows:
      full = summaries[(stream, full_rows[label])]['final_avg_acc']['mean']
      is_full = name == full_rows[label]
      s = summaries[(stream, name)]
      acc = s['final_avg_acc']
      drop = None if acc['mean'] is None or full is None else round(acc['mean'] - full, 4)
      paper = cfg.paper.get(name)  # None: a row of ours that the paper does not have
      paper_drop = None if paper is None else round(paper - paper_full, 4)
      body.append([cfg.row_titles[name], f'`{json.dumps(dict(overrides))}`', fmt(acc),
                   'n/a' if drop is None else ('—' if is_full else f'{drop:+.2f}'),
                   fmt(s['avg_incremental_acc']), fmt(s['forgetting']), fmt(s['memory_bytes'], 0),
                   'not in paper' if paper is None else f'{paper:.1f}',
                   '—' if is_full or paper is None else f'{paper_drop:+.1f}'])
      rows.append({**summary_row(stream, name, s), 'drop_vs_full': drop, 'paper_avg_acc': paper,
                   'paper_drop': paper_drop, 'overrides': json.dumps(dict(overrides))})
      payload_rows.append({'stream': stream, 'row': name, 'overrides': dict(overrides),
                           'drop_vs_full': drop, 'paper_avg_acc': paper,
                           'paper_drop': paper_drop, **s})
      if not is_full:
        groups.setdefault(name, {})[f'{stream} (ours)'] = (
            np.nan if drop is None else drop, s['final_avg_acc']['std'] or 0.0)
        if paper is not None:
          groups[name]['paper (C->R)'] = (paper_drop, 0.0)
    tables.append((f'{stream} (final average accuracy, mean ± std over seeds '
                   f'{list(cfg.seeds)})', markdown_table(
                       ['configuration', 'overrides', 'final avg acc', 'drop', 'avg incr acc',
                        'forgetting', 'memory (B)', 'paper avg acc', 'paper drop'], body)))
  figures = []
  if groups:
    figures.append(suite_lib.bar_plot(
        groups, out_dir / 'ablation_drops.png', ylabel='change vs full (points)',
        title='Ablation: change in final average accuracy vs the full method'))
  notes = ['Each row is a method with one switch flipped; drop = its final average accuracy '
           'minus the full row of the same method and stream (Auto-Seed VL2: "full"; '
           'autoseed_plus, docs/autoseed_plus.md: "autoseed_plus, full"). The paper\'s '
           'numbers are from its C->R vision-language sequence (a different benchmark and '
           'backbone), so only the signs and rough sizes of the drops can be compared.'
           ] + crash_notes(summaries)
  return write_experiment(out_dir, 'ablation', cfg=cfg, payload={'summary': payload_rows},
                          rows=rows, columns=SUMMARY_COLUMNS + [
                              'drop_vs_full', 'paper_avg_acc', 'paper_drop', 'overrides'],
                          runs=records, title='Ablation (METHOD §5)', notes=notes,
                          tables=tables, figures=figures)


def experiment_memory(suite: Suite, cfg, out_dir: pathlib.Path) -> list[str]:
  """Final accuracy vs replay-memory bytes for Auto-Seed VL2, the seed methods of ours
  and ER-VLM (at each seed budget's bytes and at the bytes Auto-Seed VL2 held)."""
  records, points = [], []
  for stream in cfg.streams:
    data = suite.stream(stream, train_fraction=cfg.train_fraction)
    per_example = bytes_per_example(data.dim)
    budgets = []
    for k in cfg.seeds_per_class:
      overrides = {**cfg.sweep_overrides.to_dict(), 'seeds_per_class': int(k),
                   'memory_budget': int(k) * data.num_classes}
      budget_bytes = bytes_matching_seed_memory(run_config(cfg.base, method='autoseed', seed=0,
                                                           **overrides), data.dim)
      autoseed_runs = [run_variant(suite, cfg, stream, 'autoseed', seed, overrides=overrides)
                       for seed in cfg.seeds]
      for r in autoseed_runs:
        r.label = f'autoseed_k{k}'
      records += autoseed_runs
      points.append(('autoseed', stream, f'k={k} (K={k * data.num_classes} seeds)',
                     autoseed_runs))
      for label in cfg.get('budget_methods', ()):
        runs = [run_variant(suite, cfg, stream, label, seed,
                            overrides={'plus_memory_bytes': budget_bytes})
                for seed in cfg.seeds]
        for r in runs:
          r.label = f'{label}_k{k}'
        records += runs
        points.append((label, stream, f'k={k}: {budget_bytes} B', runs))
      budgets.append((f'budget of k={k} ({budget_bytes} B)', [budget_bytes] * len(cfg.seeds)))
      budgets.append((f'held by autoseed k={k}', [r.memory_bytes for r in autoseed_runs]))
    for n in cfg.er_extra_examples:
      budgets.append((f'{n} exemplars', [int(n) * per_example] * len(cfg.seeds)))
    for name, per_seed_bytes in budgets:
      runs = []
      for seed, nbytes in zip(cfg.seeds, per_seed_bytes):
        if nbytes <= 0:
          continue
        r = _er_at_bytes(suite, cfg, stream, seed, nbytes)
        r.label = 'er_' + ''.join(ch if ch.isalnum() else '_' for ch in name)
        runs.append(r)
      records += runs
      points.append(('er', stream, name, runs))
  rows, body, series, payload = [], [], {}, []
  for method, stream, budget, runs in points:
    s = summarize(runs)
    rows.append({**summary_row(stream, method, s), 'budget': budget})
    payload.append({'stream': stream, 'method': method, 'budget': budget, **s})
    body.append([stream, method, budget, fmt(s['memory_bytes'], 0), fmt(s['final_avg_acc']),
                 fmt(s['avg_incremental_acc']), fmt(s['forgetting'])])
    if s['final_avg_acc']['n']:
      series.setdefault(f'{method} ({stream})', []).append(
          (s['memory_bytes']['mean'], s['final_avg_acc']['mean'], s['final_avg_acc']['std']))
  figures = []
  if series:
    figures.append(suite_lib.memory_plot(
        series, out_dir / 'memory_vs_accuracy.png',
        title='Final average accuracy vs replay memory (mean ± std over seeds)'))
  tables = [('Memory vs accuracy', markdown_table(
      ['stream', 'method', 'budget', 'memory (B)', 'final avg acc', 'avg incr acc',
       'forgetting'], body))]
  notes = [f'Auto-Seed VL2 with k seeds per class (memory_budget = k x classes), config '
           f'overrides {json.dumps(cfg.sweep_overrides.to_dict())}; '
           f'{", ".join(cfg.get("budget_methods", ())) or "no other seed method"} at the bytes '
           'of that budget (plus_memory_bytes); ER-VLM at the same byte budget (the fair '
           'comparison: "budget of k=..."), at the bytes each Auto-Seed point actually held '
           '(same stream and seed: "held by autoseed k=...") and at larger budgets given in '
           f'stored exemplars (4 d + 4 bytes each). Memory (B) is what a run held at the end. '
           f'Seeds {list(cfg.seeds)}; mean ± std.']
  return write_experiment(out_dir, 'memory', cfg=cfg, payload={'summary': payload},
                          rows=rows, columns=['stream', 'method', 'budget'] + SUMMARY_COLUMNS[2:],
                          runs=records, title='Memory vs accuracy', notes=notes,
                          tables=tables, figures=figures)


def _er_at_bytes(suite: Suite, cfg, stream: str, seed: int, nbytes: int) -> RunRecord:
  config = run_config(cfg.base, method='er', seed=seed, er_memory_bytes=int(nbytes))
  return suite.run(stream, config, label='er', overrides={'er_memory_bytes': int(nbytes)},
                   train_fraction=cfg.train_fraction)


def real_embeddings(stream, split: str) -> tuple[np.ndarray, np.ndarray]:
  """(embeddings [N, d], labels [N]) of every task's ``split`` ('test' or 'train')."""
  if split == 'test':
    count = np.asarray(stream.test.count)
    x = [np.asarray(stream.test.x[t])[:count[t]] for t in range(len(count))]
    y = [np.asarray(stream.test.y[t])[:count[t]] for t in range(len(count))]
  elif split == 'train':
    x = [np.asarray(t.train_x)[:int(t.train_count)] for t in stream.tasks]
    y = [np.asarray(t.train_y)[:int(t.train_count)] for t in stream.tasks]
  else:
    raise ValueError(f"class_mean_split={split!r}: use 'test' or 'train'.")
  return np.concatenate(x), np.concatenate(y)


def _unit(x: np.ndarray) -> np.ndarray:
  return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def seed_statistics(seeds: dict, real_x: np.ndarray, real_y: np.ndarray,
                    class_text: np.ndarray) -> dict:
  """Fidelity of one run's seeds to the real embeddings of their classes.

  Args:
    seeds: {'v': [K, d], 'w': [K, d], 'label': [K]} valid seeds.
    real_x: [N, d] real image embeddings; real_y: [N] labels.
    class_text: [C, d] the classes' frozen text embeddings.

  Returns:
    'cosines' [K]: cos(v, mean real embedding of v's class); reference cosines (each real
    example to its class mean, each class's text embedding to its class mean, v to w);
    and the variance of the seed set and of the real set (each around its own mean) per
    direction, along the task-relevant subspace (the top C - 1 principal directions of
    the C real class means) and along its orthogonal complement (the rest), with the
    share of each set's variance that lies in the rest.
  """
  classes = np.unique(real_y)
  means = np.stack([real_x[real_y == c].mean(axis=0) for c in classes])
  row = {c: i for i, c in enumerate(classes)}
  v, labels = np.asarray(seeds['v']), np.asarray(seeds['label'])
  cosines = np.sum(_unit(v) * _unit(means[[row[int(c)] for c in labels]]), axis=-1)
  real_cos = np.sum(_unit(real_x) * _unit(means[[row[int(c)] for c in real_y]]), axis=-1)
  text_cos = np.sum(_unit(class_text[classes]) * _unit(means), axis=-1)
  seed_text_cos = np.sum(_unit(v) * _unit(np.asarray(seeds['w'])), axis=-1)
  rank = len(classes) - 1
  directions = np.linalg.svd(means - means.mean(axis=0), full_matrices=False)[2][:rank]
  dim = real_x.shape[1]

  def spread(x):
    """(variance per relevant direction, per other direction, share in the others)."""
    centred = x - x.mean(axis=0)
    along = np.sum((centred @ directions.T) ** 2, axis=-1).mean()
    total = np.sum(centred ** 2, axis=-1).mean()
    rest = max(total - along, 0.0)
    return float(along / rank), float(rest / (dim - rank)), float(rest / max(total, 1e-30))

  seed_rel, seed_irr, seed_share = spread(v)
  real_rel, real_irr, real_share = spread(real_x)
  return {
      'cosines': cosines.round(5).tolist(),
      'seeds_per_class': {int(c): int(np.sum(labels == c)) for c in np.unique(labels)},
      'real_example_cosine': mean_std(real_cos.tolist()),
      'text_embedding_cosine': mean_std(text_cos.tolist()),
      'seed_v_w_cosine': mean_std(seed_text_cos.tolist()),
      'relevant_dims': rank,
      'seed_var_relevant': seed_rel, 'seed_var_irrelevant': seed_irr,
      'seed_irrelevant_share': seed_share,
      'real_var_relevant': real_rel, 'real_var_irrelevant': real_irr,
      'real_irrelevant_share': real_share,
  }


def experiment_seeds(suite: Suite, cfg, out_dir: pathlib.Path) -> list[str]:
  """Seed fidelity of the main table's Auto-Seed VL2 runs."""
  payload, rows, body, figures = [], [], [], []
  paper = f'{cfg.paper_cosine_mean:.2f} ± {cfg.paper_cosine_std:.2f}'
  spread_keys = ('seed_var_relevant', 'seed_var_irrelevant', 'seed_irrelevant_share')
  real_keys = ('real_var_relevant', 'real_var_irrelevant', 'real_irrelevant_share')
  for stream in cfg.streams:
    data = suite.stream(stream, train_fraction=cfg.train_fraction)
    class_text = np.asarray(data.test.class_text)
    for split in dict.fromkeys((cfg.class_mean_split, 'test', 'train')):
      real_x, real_y = real_embeddings(data, split)
      per_run = []
      for seed in cfg.seeds:
        r = run_variant(suite, cfg, stream, 'autoseed', seed)
        if r.error is not None or r.seeds is None or len(r.seeds['v']) == 0:
          continue
        per_run.append({'seed': seed, **seed_statistics(r.seeds, real_x, real_y, class_text)})
        if split == cfg.class_mean_split and seed == cfg.seeds[0]:
          test_x, test_y = real_embeddings(data, 'test')
          figures.append(plots.seed_projection(
              test_x, test_y, np.asarray(r.seeds['v']), np.asarray(r.seeds['label']),
              str(out_dir / f'seed_projection_{stream}.png'), class_names=data.class_names,
              title=f'{stream}, seed {seed}: seeds (stars) vs real test embeddings (dots)'))
      if not per_run:
        continue
      pooled = mean_std([c for p in per_run for c in p['cosines']])
      agg = {k: mean_std([p[k] for p in per_run]) for k in spread_keys}
      real = {k: per_run[0][k] for k in real_keys}  # the same data in every run
      seeds_count = mean_std([len(p['cosines']) for p in per_run])
      payload.append({'stream': stream, 'class_mean_split': split,
                      'primary': split == cfg.class_mean_split, 'seed_cosine': pooled,
                      'seeds_per_run': seeds_count, 'per_run': per_run,
                      'real_example_cosine': per_run[0]['real_example_cosine'],
                      'text_embedding_cosine': per_run[0]['text_embedding_cosine'],
                      'seed_v_w_cosine': mean_std([c for p in per_run for c in
                                                   [p['seed_v_w_cosine']['mean']]]),
                      **agg, **real})
      rows.append({'stream': stream, 'class_mean_split': split,
                   'seeds_per_run': seeds_count['mean'],
                   'seed_cosine_mean': pooled['mean'], 'seed_cosine_std': pooled['std'],
                   'real_example_cosine_mean': per_run[0]['real_example_cosine']['mean'],
                   'real_example_cosine_std': per_run[0]['real_example_cosine']['std'],
                   'text_embedding_cosine_mean': per_run[0]['text_embedding_cosine']['mean'],
                   **{f'{k}_mean': v['mean'] for k, v in agg.items()},
                   **{f'{k}_mean': v for k, v in real.items()},
                   'paper_cosine_mean': cfg.paper_cosine_mean,
                   'paper_cosine_std': cfg.paper_cosine_std})
      body.append([stream, split, fmt(seeds_count, 1), fmt(pooled, 3), paper,
                   fmt(per_run[0]['real_example_cosine'], 3),
                   fmt(per_run[0]['text_embedding_cosine'], 3),
                   f'{agg["seed_var_relevant"]["mean"]:.2e} / '
                   f'{agg["seed_var_irrelevant"]["mean"]:.2e} '
                   f'({100 * agg["seed_irrelevant_share"]["mean"]:.0f}%)',
                   f'{real["real_var_relevant"]:.2e} / {real["real_var_irrelevant"]:.2e} '
                   f'({100 * real["real_irrelevant_share"]:.0f}%)'])
  tables = [('Seed fidelity', markdown_table(
      ['stream', 'class means from', 'seeds per run', 'cos(seed v, class mean)', 'paper',
       'cos(real example, class mean)', 'cos(class text emb., class mean)',
       'seeds: variance per direction, relevant / rest (rest\'s share)',
       'real: variance per direction, relevant / rest (rest\'s share)'], body))]
  notes = [
      f'Seeds: the final seed memory of the main table\'s Auto-Seed VL2 runs (seeds '
      f'{list(cfg.seeds)}). cos(seed v, class mean): every seed\'s visual prototype against '
      f'the mean real image embedding of its class, mean ± std pooled over all seeds of all '
      f'runs; class means from the {cfg.class_mean_split.upper()} embeddings are primary '
      '(the other split is shown too). References (mean ± std over examples / classes): a '
      'real example\'s cosine to its own class mean, and the class prompt\'s text embedding '
      '(where the generator starts and what the "random seeds" ablation perturbs) against '
      'the image class mean.',
      'Variance: of the seed set (all classes, around its own mean) and of the real set, per '
      'direction, in the task-relevant subspace (the top C-1 principal directions of the C '
      'real class means) and in its orthogonal complement (the rest); in brackets the share '
      'of the set\'s total variance that lies in the rest.']
  return write_experiment(out_dir, 'seeds', cfg=cfg, payload={'summary': payload}, rows=rows,
                          columns=list(rows[0]) if rows else ['stream'], runs=None,
                          title='Seed analysis', notes=notes, tables=tables, figures=figures)


def experiment_fwt(suite: Suite, cfg, out_dir: pathlib.Path) -> list[str]:
  """Per task: R[t-1, t] - b_t (accuracy before training on t vs the initial model)."""
  rows, payload, tables, groups = [], [], [], {}
  for stream in cfg.streams:
    num_tasks, body = None, []
    for label in cfg.methods:
      runs = [r for r in (run_variant(suite, cfg, stream, label, seed) for seed in cfg.seeds)
              if r.error is None]
      if not runs:
        continue
      acc = np.asarray([r.acc_matrix for r in runs])
      initial = np.asarray([r.initial_acc for r in runs])
      num_tasks = acc.shape[1]
      per_task = [mean_std((acc[:, t - 1, t] - initial[:, t]).tolist())
                  for t in range(1, num_tasks)]
      before = [mean_std(acc[:, t - 1, t].tolist()) for t in range(1, num_tasks)]
      total = mean_std([r.metrics['fwt'] for r in runs])
      payload.append({'stream': stream, 'method': label, 'fwt': total,
                      'per_task': per_task, 'accuracy_before': before,
                      'initial': initial.mean(axis=0).round(3).tolist()})
      row = {'stream': stream, 'method': label, 'fwt_mean': total['mean'],
             'fwt_std': total['std']}
      for t, s in enumerate(per_task, start=2):
        row[f'fwt_task{t}_mean'], row[f'fwt_task{t}_std'] = s['mean'], s['std']
      rows.append(row)
      body.append([label, fmt(total)] + [f'{fmt(s)} ({b["mean"]:.1f})'
                                          for s, b in zip(per_task, before)])
      groups.setdefault(label, {})[stream] = (total['mean'], total['std'])
    if num_tasks:
      tables.append((f'{stream}: FWT, mean ± std over seeds (in brackets: R[t-1, t], the '
                     'accuracy on task t before learning it)', markdown_table(
                         ['method', 'FWT (mean over tasks)'] + [f'task {t}' for t in
                                                                range(2, num_tasks + 1)],
                         body)))
  figures = []
  if groups:
    figures.append(suite_lib.bar_plot(groups, out_dir / 'fwt.png', ylabel='FWT (points)',
                                      title='Forward transfer (mean ± std over seeds)'))
  notes = ['FWT for task t = R[t-1, t] - b_t: accuracy on task t (over the classes seen up to '
           't) after learning tasks 1..t-1, minus the initial model\'s accuracy on it (GEM). '
           'The methods\' runs are the main table\'s. With two tasks (animals-digits) FWT is '
           'the single term R[1, 2] - b_2, measured right after task 1, when no method has '
           'anything to replay or protect yet; methods whose training on task 1 is the same '
           '(fine-tuning, ER, joint, LwF, EWC, generative replay, Auto-Seed VL2: the same '
           'adapters, data order and steps, with extra terms that are 0 on the first task) '
           'therefore give the same number there.']
  columns = list(dict.fromkeys(k for r in rows for k in r)) or ['stream']
  return write_experiment(out_dir, 'fwt', cfg=cfg, payload={'summary': payload}, rows=rows,
                          columns=columns, runs=None, title='Forward transfer', notes=notes,
                          tables=tables, figures=figures)


RUNNERS = {'main': experiment_main, 'ablation': experiment_ablation,
           'memory': experiment_memory, 'seeds': experiment_seeds, 'fwt': experiment_fwt}


# ---------------------------------------------------------------------------------------
# Claims


def _load(out: pathlib.Path, name: str) -> dict | None:
  path = out / name / f'{name}.json'
  return json.loads(path.read_text()) if path.exists() else None


def _stat(summary: list[dict], stream: str, method: str, metric: str):
  for s in summary:
    if s['stream'] == stream and s['method'] == method:
      return s[metric]
  return None


def evaluate_claims(out: pathlib.Path) -> list[dict]:
  """The paper's claims (METHOD §5) beside the numbers in ``out``'s experiment files.

  Each: {'claim', 'paper', 'measured', 'verdict'}; verdict is 'holds', 'does not hold',
  'partly' (on some streams) or 'not measured'.
  """
  main, ablation, seeds, fwt = (_load(out, n) for n in ('main', 'ablation', 'seeds', 'fwt'))
  claims = []

  def add(claim, paper, measured, verdict):
    claims.append({'claim': claim, 'paper': paper, 'measured': measured, 'verdict': verdict})

  def verdict(flags):
    flags = [f for f in flags if f is not None]
    if not flags:
      return 'not measured'
    return 'holds' if all(flags) else ('does not hold' if not any(flags) else 'partly')

  streams = main['config']['streams'] if main else []
  summary = main['summary'] if main else []

  def acc(stream, method, metric='final_avg_acc'):
    s = _stat(summary, stream, method, metric)
    return None if s is None else s['mean'], s

  # 1. Beats exemplar replay with 10x its memory.
  parts, flags = [], []
  for stream in streams:
    a, sa = acc(stream, 'autoseed')
    e, se = acc(stream, 'er_10x')
    if a is None or e is None:
      continue
    m = _stat(summary, stream, 'er_10x', 'memory_bytes')
    parts.append(f'{stream}: Auto-Seed {fmt(sa)} vs ER-VLM at 10x bytes '
                 f'({fmt(m, 0)} B) {fmt(se)}')
    flags.append(a > e)
  add('beats exemplar replay (ER-VLM) that has 10x more memory', 'yes',
      '; '.join(parts) or 'n/a', verdict(flags))
  # 2. Beats deep generative replay by > 13 points on average.
  for method in ('dgr', 'dgr_pixel'):
    gaps = []
    for stream in streams:
      a, _ = acc(stream, 'autoseed')
      g, _ = acc(stream, method)
      if a is not None and g is not None:
        gaps.append((stream, a - g))
    if gaps or method == 'dgr':
      mean_gap = np.mean([g for _, g in gaps]) if gaps else None
      measured = ', '.join(f'{s}: {g:+.2f}' for s, g in gaps)
      if mean_gap is not None:
        measured += f'; average {mean_gap:+.2f} points'
      add(f'beats deep generative replay ({method}) by > 13 points on average '
          '(final avg acc)', '> +13', measured or 'n/a',
          verdict([mean_gap > 13] if mean_gap is not None else []))
  # 3. FWT positive (+4.1), ER about 0, generative replay negative.
  parts, flags = [], []
  for stream in streams:
    f, sf = acc(stream, 'autoseed', 'fwt')
    if f is None:
      continue
    others = ', '.join(f'{m} {fmt(_stat(summary, stream, m, "fwt"))}'
                       for m in ('er_1x', 'dgr', 'finetune') if _stat(summary, stream, m, 'fwt'))
    parts.append(f'{stream}: Auto-Seed {fmt(sf)} ({others})')
    flags.append(f > 0)
  add('positive forward transfer, FWT = +4.1 (ER ~ 0, generative replay negative)', '+4.1',
      '; '.join(parts) or 'n/a', verdict(flags))
  # 4. Seed cosine 0.89 ± 0.05; 5. lower variance along task-irrelevant directions.
  primary = [s for s in (seeds or {}).get('summary', []) if s['primary']]
  paper_mean = seeds['config']['paper_cosine_mean'] if seeds else 0.89
  paper_std = seeds['config']['paper_cosine_std'] if seeds else 0.05
  parts, flags, parts5, flags5 = [], [], [], []
  for s in primary:
    c = s['seed_cosine']
    above = ' (above the paper\'s range)' if c['mean'] > paper_mean + paper_std else ''
    parts.append(f'{s["stream"]}: {fmt(c, 3)}{above} (class means from '
                 f'{s["class_mean_split"]}; a real example: '
                 f'{fmt(s["real_example_cosine"], 3)})')
    flags.append(c['mean'] >= paper_mean - paper_std)
    si, ri = s['seed_var_irrelevant']['mean'], s['real_var_irrelevant']
    parts5.append(f'{s["stream"]}: seeds {si:.2e} vs real {ri:.2e} per direction outside '
                  f'the task-relevant subspace ({100 * s["seed_irrelevant_share"]["mean"]:.0f}% '
                  f'vs {100 * s["real_irrelevant_share"]:.0f}% of the variance)')
    flags5.append(si < ri)
  add(f'seeds lie close to their real class means: cosine {paper_mean:.2f} ± {paper_std:.2f} '
      f'(holds here if the mean is >= {paper_mean - paper_std:.2f})',
      f'{paper_mean:.2f} ± {paper_std:.2f}', '; '.join(parts) or 'n/a', verdict(flags))
  add('seeds vary less than real data along task-irrelevant directions', 'lower',
      '; '.join(parts5) or 'n/a', verdict(flags5))
  # Vision-language: BLEU-4 on C->F, relational VQA vs exemplar replay (a stand-in stream).
  if main and main.get('vl_tasks'):
    claims += vl_report.vl_claims(summary, main['vl_tasks'], verdict)
  # 6. Ablation drops.
  if ablation:
    rows = ablation['summary']
    paper = ablation['config']['paper']
    for name in [r[0] for r in ablation['config']['rows']][1:]:
      if name not in paper:  # a row of ours: no claim of the paper to check
        continue
      found = [r for r in rows if r['row'] == name and r['drop_vs_full'] is not None]
      paper_drop = paper[name] - paper['full']
      measured = ', '.join(f'{r["stream"]}: {r["drop_vs_full"]:+.2f}' for r in found)
      if name == 'no_pruning':  # the paper's claim: about no change
        flags = [abs(r['drop_vs_full']) <= 2.0 for r in found]
        claim = 'no seed pruning (full memory) changes accuracy little (by 2 points or less)'
      else:
        flags = [r['drop_vs_full'] < 0 for r in found]
        claim = f'ablation "{ablation["config"]["row_titles"][name]}" lowers accuracy'
      add(claim, f'{paper_drop:+.1f}', measured or 'n/a', verdict(flags))
  return claims


def write_claims(out: pathlib.Path) -> list[dict]:
  """Evaluates the claims from ``out``'s experiment files; writes claims.json and .md."""
  claims = evaluate_claims(out)
  write_json(out / 'claims.json', claims)
  (out / 'claims.md').write_text('# Paper claim vs measured here\n\n'
                                 + claims_markdown(claims) + '\n')
  return claims


def claims_markdown(claims: list[dict]) -> str:
  return markdown_table(['paper claim', 'paper', 'measured here', 'verdict'],
                        [[c['claim'], c['paper'], c['measured'], f'**{c["verdict"]}**']
                         for c in claims])


# ---------------------------------------------------------------------------------------
# Configs


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
  suite config (``experiment='all'``, experiments/configs/experiments.py) the configs of
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
  if name not in RUNNERS:
    raise ValueError(f'config.experiment={name!r}: use one of {tuple(RUNNERS)} '
                     "(or 'all', in experiments/configs/experiments.py).")

  def need(cond, message):
    if not cond:
      raise ValueError(f'invalid {name} experiment config: {message}')

  known = tuple(suite_lib.STREAM_DATASETS)
  streams = tuple(cfg.streams)
  need(streams and all(s in known for s in streams),
       f'streams={streams}: give one or more of {known}.')
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


# ---------------------------------------------------------------------------------------
# Running


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
      'command': command or ' '.join(['python', 'experiments/run_experiments.py']
                                     + sys.argv[1:]),
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


# ---------------------------------------------------------------------------------------
# Command line (``python -m autoseed_jax.main --config <exp_*.py> --workdir DIR`` is the same)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--out', required=True, help='results directory')
  parser.add_argument('--config', action='append', default=None,
                      help='an experiments/configs/exp_*.py file (repeatable; default: all)')
  parser.add_argument('--quick', action='store_true',
                      help='the smoke form: tiny steps, 1 seed, 10%% of the data, few methods')
  parser.add_argument('--claims-only', action='store_true',
                      help='only re-evaluate claims.json / claims.md from the experiment '
                      'files already in --out (runs nothing)')
  parser.add_argument('--cache', default=str(DEFAULT_CACHE),
                      help='run cache directory (default runs/experiments_cache); "none" '
                      'keeps runs in memory only')
  args = parser.parse_args(argv)
  paths = args.config or [str(CONFIG_DIR / f'exp_{name}.py') for name in EXPERIMENTS]
  if args.claims_only:
    claims = write_claims(pathlib.Path(args.out))
    print(claims_markdown(claims))
    return 0
  try:
    run(paths, pathlib.Path(args.out), quick=args.quick, cache_dir=resolve_cache_dir(args.cache),
        log=lambda line: print(line, flush=True))
  except (ValueError, FileNotFoundError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  except workdir_lock.WorkdirBusyError as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  return 0


if __name__ == '__main__':
  sys.exit(main())
