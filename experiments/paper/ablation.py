"""The ablation (METHOD §5): the paper's rows and ours, as drops from the full method."""

from __future__ import annotations

import json
import pathlib

import numpy as np

from experiments import suite as suite_lib
from experiments.paper.common import (crash_notes, run_variant, summarize, SUMMARY_COLUMNS, summary_row, write_experiment)
from autoseed_jax.report.result_records import markdown_table
from experiments.suite import fmt, Suite


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
      runs = run_variant(suite, cfg, stream, label, overrides=overrides)
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
