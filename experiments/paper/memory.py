"""Memory against accuracy: seed methods and ER-VLM across byte budgets."""

from __future__ import annotations

import json
import pathlib

from autoseed_jax.methods.er import bytes_matching_seed_memory, bytes_per_example
from experiments import suite as suite_lib
from experiments.paper.common import (run_variant, summarize, SUMMARY_COLUMNS, summary_row, write_experiment)
from autoseed_jax.report.result_records import markdown_table
from experiments.suite import fmt, run_config, RunRecord, Suite


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
      autoseed_runs = run_variant(suite, cfg, stream, 'autoseed', overrides=overrides)
      for r in autoseed_runs:
        r.label = f'autoseed_k{k}'
      records += autoseed_runs
      points.append(('autoseed', stream, f'k={k} (K={k * data.num_classes} seeds)',
                     autoseed_runs))
      for label in cfg.get('budget_methods', ()):
        runs = run_variant(suite, cfg, stream, label,
                           overrides={'plus_memory_bytes': budget_bytes})
        for r in runs:
          r.label = f'{label}_k{k}'
        records += runs
        points.append((label, stream, f'k={k}: {budget_bytes} B', runs))
      budgets.append((f'budget of k={k} ({budget_bytes} B)', [budget_bytes] * len(cfg.seeds)))
      budgets.append((f'held by autoseed k={k}', [r.memory_bytes for r in autoseed_runs]))
    for n in cfg.er_extra_examples:
      budgets.append((f'{n} exemplars', [int(n) * per_example] * len(cfg.seeds)))
    for name, per_seed_bytes in budgets:
      seeds_at = {}  # seeds with the same budget run in one program
      for seed, nbytes in zip(cfg.seeds, per_seed_bytes):
        if nbytes > 0:
          seeds_at.setdefault(int(nbytes), []).append(seed)
      runs = [r for nbytes, seeds in seeds_at.items()
              for r in _er_at_bytes(suite, cfg, stream, seeds, nbytes)]
      for r in runs:
        r.label = 'er_' + ''.join(ch if ch.isalnum() else '_' for ch in name)
      records += runs
      points.append(('er', stream, name, runs))
  rows, body, series, payload = [], [], {}, []
  for method, stream, budget, runs in points:
    s = summarize(runs)
    rows.append({**summary_row(stream, method, s), 'budget': budget})
    payload.append({'stream': stream, 'method': method, 'budget': budget, **s})
    if s['final_avg_acc']['n'] == 0 and s.get('refused'):  # e.g. a form over the budget
      body.append([stream, method, budget, '—', s['refused'], '—', '—'])
    else:
      body.append([stream, method, budget, fmt(s['memory_bytes'], 0),
                   fmt(s['final_avg_acc'], with_min=True), fmt(s['avg_incremental_acc']),
                   fmt(s['forgetting'])])
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
           f'Seeds {list(cfg.seeds)}; mean ± std (and the worst seed).']
  return write_experiment(out_dir, 'memory', cfg=cfg, payload={'summary': payload},
                          rows=rows, columns=['stream', 'method', 'budget'] + SUMMARY_COLUMNS[2:],
                          runs=records, title='Memory vs accuracy', notes=notes,
                          tables=tables, figures=figures)


def _er_at_bytes(suite: Suite, cfg, stream: str, seeds, nbytes: int) -> list[RunRecord]:
  """ER-VLM at ``nbytes`` of memory for every run seed of ``seeds``."""
  config = run_config(cfg.base, method='er', seed=seeds[0], er_memory_bytes=int(nbytes))
  return suite.run_seeds(stream, config, seeds, label='er',
                         overrides={'er_memory_bytes': int(nbytes)},
                         train_fraction=cfg.train_fraction)
