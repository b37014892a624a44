"""Forward transfer (METHOD §6) per task and per method."""

from __future__ import annotations

import pathlib

import numpy as np

from experiments import suite as suite_lib
from experiments.paper.common import run_variant, write_experiment
from autoseed_jax.report.result_records import markdown_table
from experiments.suite import fmt, mean_std, Suite


def experiment_fwt(suite: Suite, cfg, out_dir: pathlib.Path) -> list[str]:
  """Per task: R[t-1, t] - b_t (accuracy before training on t vs the initial model)."""
  rows, payload, tables, groups = [], [], [], {}
  for stream in cfg.streams:
    num_tasks, body = None, []
    for label in cfg.methods:
      runs = [r for r in run_variant(suite, cfg, stream, label) if r.error is None]
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
