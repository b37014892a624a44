"""The main table (METHOD §6-§7): every method on every stream, over run seeds."""

from __future__ import annotations

import pathlib

import numpy as np

from experiments import suite as suite_lib, vl_report
from experiments.paper.common import (crash_notes, metrics_table, run_variant, summarize, SUMMARY_COLUMNS, summary_row, write_experiment)
from experiments.suite import Suite


def experiment_main(suite: Suite, cfg, out_dir: pathlib.Path) -> list[str]:
  """Every method on every stream and seed; metrics, heatmaps, accuracy curves."""
  records, summaries = [], {}
  # Auto-Seed first: the ER variants match its memory.
  order = sorted(cfg.methods, key=lambda label: label != 'autoseed')
  for stream in cfg.streams:
    for label in order:
      runs = run_variant(suite, cfg, stream, label)
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
