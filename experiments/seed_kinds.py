r"""Measurements of the seed family on every task kind and of autoseed_plus's
guard (issue 21), for the report: not for tuning (the settings are the library defaults,
chosen on the development streams by experiments/tune_plus.py).

  python experiments/seed_kinds.py                  # every part below, 5 run seeds
  python experiments/seed_kinds.py --part vl        # one part

Parts (rows: ``ROWS[part]``, label -> (method, config overrides), on ``real_stream_config()``
like every table of the suite):

  dev_vl   the seed family on vl-scenes-dev (a development stream): which member is the
           best seed method on vision-language tasks (chosen here, on development data)
  vl       vl-scenes: the seed family vs ER at the same bytes (er_budget), Auto-Seed VL2,
           deep generative replay and the class-Gaussian replay (its pair form), with every
           task's scores (R@1/5/10, BLEU-4, VQA accuracy)
  animals  animals-ci and animals-digits: autoseed_plus (its guard on, the default) with
           its mean, std and minimum over run seeds, against kmeans_seeds, er_budget and
           the ablations "without the guard", "G_φ without meta-update" and "the generator
           replaced by its own starting centres"

Writes ``<out>/seed_kinds.json`` (every run), ``<out>/seed_kinds.md`` and
``<out>/seed_kinds_runs.csv``; finished runs are cached in ``--cache``.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

if __package__ in (None, ''):  # run as a script: make the repository importable
  sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from autoseed_jax.core import task_kinds  # noqa: E402
from autoseed_jax.report import result_records  # noqa: E402
from experiments import suite as suite_lib  # noqa: E402
from experiments.configs.real_streams import real_stream_config  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
SEEDS = (0, 1, 2, 3, 4)
FAMILY = {
    'kmeans_seeds': ('kmeans_seeds', {}),
    'refined_seeds': ('refined_seeds', {}),
    'autoseed_plus': ('autoseed_plus', {}),
}
BASELINES = {
    'er_budget': ('er', {'er_memory_seed_multiple': 1.0}),
    'autoseed': ('autoseed', {}),
    'dgr': ('dgr', {}),
    # The class-Gaussian replay in its pair form (docs/PEERS.md §1); at the default bytes
    # on vl-scenes the low-rank form is refused (rank 1 needs 396,344 B), the mean fits.
    'gauss_lowrank': ('gauss_replay', {'gauss_covariance': 'lowrank'}),
    'gauss_mean': ('gauss_replay', {'gauss_covariance': 'mean'}),
}
ABLATIONS = {
    'autoseed_plus (no guard)': ('autoseed_plus', {'plus_guard': 'none'}),
    'autoseed_plus (no meta-update)': ('autoseed_plus', {'plus_meta_steps': 0}),
    'autoseed_plus (G_φ replaced by its centres)': ('autoseed_plus',
                                                    {'plus_seed_source': 'centres'}),
}
PARTS = {
    'dev_vl': (('vl-scenes-dev',), FAMILY),
    'vl': (('vl-scenes',), {**FAMILY, **BASELINES}),
    'animals': (('animals-ci', 'animals-digits'),
                {'autoseed_plus': FAMILY['autoseed_plus'], **ABLATIONS,
                 'kmeans_seeds': FAMILY['kmeans_seeds'], 'er_budget': BASELINES['er_budget']}),
}


def run_part(suite: suite_lib.Suite, part: str, seeds) -> list[dict]:
  """Every row of ``part`` on its streams and ``seeds`` (the seeds of a row in one program,
  ``Suite.run_seeds``); one dict per run."""
  streams, rows = PARTS[part]
  runs = []
  for stream in streams:
    for label, (method, overrides) in rows.items():
      config = suite_lib.run_config(real_stream_config(), method=method, seed=seeds[0],
                                    **overrides)
      records = suite.run_seeds(stream, config, tuple(seeds), label=label, overrides=overrides)
      for seed, record in zip(seeds, records):
        runs.append({'part': part, 'stream': stream, 'label': label, 'method': method,
                     'seed': seed, 'overrides': overrides, 'error': record.error,
                     'final_avg_acc': None if record.error else record.metrics['final_avg_acc'],
                     'forgetting': None if record.error else record.metrics['forgetting'],
                     'final_row': record.acc_matrix and record.acc_matrix[-1],
                     'task_metrics': record.task_metrics, 'memory_bytes': record.memory_bytes,
                     'seconds': round(record.seconds, 2)})
  return runs


def _stat(values) -> str:
  s = suite_lib.mean_std(values)
  if s['mean'] is None:
    return 'n/a'
  return f"{suite_lib.fmt(s)} (min {min(v for v in values if v is not None):.2f})"


def summary_tables(runs: list[dict]) -> str:
  """Markdown: per part and stream, each row's final average (mean ± std, min), its
  forgetting and bytes; on vision-language streams each task's final score and the
  retrieval, captioning and VQA metrics beside it."""
  out = []
  names = task_kinds.METRIC_NAMES
  for part in PARTS:
    for stream in PARTS[part][0]:
      mine = [r for r in runs if r['part'] == part and r['stream'] == stream]
      if not mine:
        continue
      labels = list(dict.fromkeys(r['label'] for r in mine))
      seeds = sorted({r['seed'] for r in mine})
      vl = any(r['task_metrics'] for r in mine)
      header = ['row', 'final avg (mean ± std, min)', 'forgetting', 'memory (B)']
      tasks = len(next(r['final_row'] for r in mine if r['final_row']))
      if vl:
        header += [f'task {t + 1} final' for t in range(tasks)]
        header += ['i2t R@1/5/10 (task 1)', 't2i R@1/5/10 (task 1)', 'BLEU-4 (task 2)',
                   'VQA acc (tasks 3, 4)']
      body = []
      for label in labels:
        rows = [r for r in mine if r['label'] == label]
        ok = [r for r in rows if r['error'] is None]
        if not ok:
          body.append([label, rows[0]['error'].strip().splitlines()[-1]] + [''] * (len(header) - 2))
          continue
        line = [label, _stat([r['final_avg_acc'] for r in ok]),
                suite_lib.fmt(suite_lib.mean_std([r['forgetting'] for r in ok])),
                f"{int(np.mean([r['memory_bytes'] for r in ok]))}"]
        if vl:
          line += [suite_lib.fmt(suite_lib.mean_std([r['final_row'][t] for r in ok]))
                   for t in range(tasks)]
          metric = lambda t, name: np.mean([r['task_metrics'][t][names.index(name)] for r in ok])
          line += ['/'.join(f"{metric(0, f'i2t_R@{k}'):.1f}" for k in (1, 5, 10)),
                   '/'.join(f"{metric(0, f't2i_R@{k}'):.1f}" for k in (1, 5, 10)),
                   f"{metric(1, 'BLEU-4'):.2f}",
                   f"{metric(2, 'VQA acc'):.1f}, {metric(3, 'VQA acc'):.1f}"]
        body.append(line)
      out.append(f'## {stream} ({part}), run seeds {seeds}\n\n'
                 + result_records.markdown_table(header, body) + '\n')
  return '\n'.join(out)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--part', choices=tuple(PARTS) + ('all',), default='all')
  parser.add_argument('--seeds', type=int, nargs='+', default=list(SEEDS))
  parser.add_argument('--out', default=str(REPO / 'experiments' / 'results' / 'seed_kinds'))
  parser.add_argument('--cache', default=str(REPO / 'runs' / 'experiments_cache'))
  args = parser.parse_args(argv)
  out = pathlib.Path(args.out)
  suite = suite_lib.Suite(args.cache, out=lambda line: print(line, flush=True))
  previous = out / 'seed_kinds.json'
  runs = json.loads(previous.read_text())['runs'] if previous.exists() else []
  for part in (PARTS if args.part == 'all' else (args.part,)):
    runs = [r for r in runs if r['part'] != part] + run_part(suite, part, args.seeds)
  result_records.write_json(previous, {'command': 'python experiments/seed_kinds.py',
                                       'runs': runs})
  suite_lib.write_csv(out / 'seed_kinds_runs.csv', runs,
                      ['part', 'stream', 'label', 'seed', 'final_avg_acc', 'forgetting',
                       'memory_bytes', 'seconds', 'error'])
  (out / 'seed_kinds.md').write_text(
      '# The seed family on every kind, and the guard (issue 21)\n\n'
      'Written by `python experiments/seed_kinds.py`; settings: the library defaults '
      '(experiments/tuning/). Final average of each task\'s primary score (vision-language: '
      'mean recall, BLEU-4, VQA accuracy), mean ± sample std over run seeds, and the '
      'minimum.\n\n' + summary_tables(runs))
  return 0


if __name__ == '__main__':
  sys.exit(main())
