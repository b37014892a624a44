r"""How the settings of the rehearsal-free peers (docs/PEERS.md) were chosen.

As experiments/tune_plus.py: only the development streams (``animals-ci-dev``,
``digits-ci-dev``, ``animals-digits-dev``, built from the datasets' stream-TRAIN images), 3
run seeds, the shared optimisation settings of the tables (``real_stream_config()``) and
the seed family's byte budget (154,250 B, ``plus_memory_bytes`` = 0); only the method's
own fields vary. The replay and consistency weights are the seed family's, chosen on
``kmeans_seeds`` (tuning/replay.json) and not tuned again: the statistics replays differ
from it only in what the memory holds.

  python experiments/tune_peers.py                    # every stage, in order
  python experiments/tune_peers.py --stage gauss      # one stage

Stages (``STAGES[name]``: the method, the grid, and the values of fields every grid point
is run with and averaged over):

  gauss       gauss_replay's draws per class per step and the sphere projection, one
              setting for every covariance form: each grid point is run with 'mean',
              'diag' and 'lowrank' (rank filling the budget) and scored by the mean over
              the three ('full' needs 5.9 MB for 10 classes of d = 384 and is refused at
              this budget)
              (the grid first stopped at 8 draws, which won; 16 was added so that the
              choice is not the edge of the grid)
  gauss_form  gauss_replay's default covariance form, at the settings chosen above (the
              same runs)
  fetril      fetril's pseudo-features per class per step and the sphere projection (16
              added as for gauss)
  ncm_text    ncm_text's weight β of the zero-shot score (0.9 added: the grid first stopped
              at 0.75, which won; β = 1 is ``zeroshot`` itself)
  ranpac      ranpac's projection width M (its ridge λ is chosen per task on D_t^val); M =
              4000 is the most the 2-core machine affords (RanPAC's own is 10,000)

Rule: the setting with the highest final average accuracy averaged over the development
streams (each the mean over ``--seeds``) wins; among settings within ``TIE_POINTS`` of it,
the one whose worst development stream is best (tune_plus.py's rule) -- except in the
``ranpac`` stage, where the smallest M within ``TIE_POINTS`` wins (its bytes grow as M² and
its time as M³; tune_plus.py's ``meta_steps`` exception).

Writes ``<out>/peers_<stage>.json`` (grid, every run, the per-setting summary, the choice),
``<out>/peers_<stage>_runs.csv`` and ``<out>/peers_<stage>.md``; finished runs are cached
in ``--cache``. ``chosen_settings`` reads back what the method defaults must be
(tests/test_peers.py checks that they are).
"""

from __future__ import annotations

import itertools
import json
import pathlib
import sys

if __package__ in (None, ''):  # run as a script: make the repository importable
  sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))


from experiments import suite as suite_lib  # noqa: E402
from experiments.configs.real_streams import real_stream_config  # noqa: E402
from experiments import tune_plus  # noqa: E402
from experiments.tune_plus import (DEV_STREAMS, SEEDS, TIE_POINTS,  # noqa: E402
                                   choose as choose_plus)

REPO = pathlib.Path(__file__).resolve().parents[1]
GAUSS_FORMS = ('mean', 'diag', 'lowrank')

# stage -> (method, {field: values} the grid is the product of, {field: values} every grid
# point is run with and averaged over).
STAGES = {
    'gauss': ('gauss_replay', {
        'gauss_samples_per_class': (2, 4, 8, 16),
        'gauss_sphere': (True, False),
    }, {'gauss_covariance': GAUSS_FORMS}),
    'gauss_form': ('gauss_replay', {'gauss_covariance': GAUSS_FORMS}, {}),
    'fetril': ('fetril', {
        'fetril_samples_per_class': (2, 4, 8, 16),
        'fetril_sphere': (True, False),
    }, {}),
    'ncm_text': ('ncm_text', {'ncm_text_weight': (0.1, 0.25, 0.5, 0.75, 0.9)}, {}),
    'ranpac': ('ranpac', {'ranpac_dim': (1000, 2000, 4000)}, {}),
}
ORDER = tuple(STAGES)
# The stages whose choices a stage starts from (the others are other methods').
EARLIER = {'gauss_form': ('gauss',)}


def product(fields: dict) -> list[dict]:
  """Every combination of the fields' values, as override dicts."""
  names = list(fields)
  return [dict(zip(names, values)) for values in itertools.product(*fields.values())]


def choose(summary: list[dict], stage: str = '') -> dict:
  """The winning row of ``summary`` (see the module doc's rule)."""
  if stage == 'ranpac':
    best = max(r['mean'] for r in summary)
    close = [r for r in summary if r['mean'] >= best - TIE_POINTS]
    return min(close, key=lambda r: r['overrides']['ranpac_dim'])
  return choose_plus(summary)


def run_stage(suite: suite_lib.Suite, stage: str, fixed: dict, seeds, streams,
              out: pathlib.Path, log=print) -> dict:
  """Runs one stage's grid on top of ``fixed`` (earlier choices); writes its files."""
  method, fields, across = STAGES[stage]
  runs, summary = [], []
  for overrides in product(fields):
    per_stream = {}
    for stream in streams:
      accs = []  # one per (seed, value of the averaged-over fields)
      for extra in product(across):
        for seed in seeds:
          settings = {**fixed, **overrides, **extra}
          config = suite_lib.run_config(real_stream_config(), method=method, seed=seed,
                                        **settings)
          record = suite.run(stream, config, label=method, overrides=settings)
          acc = None if record.error else record.metrics['final_avg_acc']
          runs.append({'stream': stream, 'seed': seed, 'method': method, **overrides,
                       **extra, 'final_avg_acc': acc, 'memory_bytes': record.memory_bytes,
                       'seconds': round(record.seconds, 2),
                       'error': record.error.strip().splitlines()[-1] if record.error else ''})
          if acc is not None:
            accs.append(acc)
      per_stream[stream] = suite_lib.mean_std(accs)
    summary.append(tune_plus.setting_summary(overrides, per_stream, every_stream=True))
    log(tune_plus.summary_line(stage, summary[-1]))
  chosen = choose(summary, stage)
  record = {'stage': stage, 'method': method, 'grid': fields, 'averaged_over': across,
            'fixed': fixed, 'streams': list(streams), 'seeds': list(seeds),
            'rule': __doc__.split('Rule: ')[1].split('\n\n')[0].replace('\n', ' '),
            'summary': summary, 'chosen': chosen['overrides'], 'runs': runs}
  suite_lib.write_json(out / f'peers_{stage}.json', record)
  suite_lib.write_csv(out / f'peers_{stage}_runs.csv', runs, list(runs[0]))
  header = list(fields) + [f'{s} (mean ± std)' for s in streams] + ['mean', 'worst', '']
  body = [[r['overrides'][f] for f in fields] + [suite_lib.fmt(r['per_stream'][s])
                                                   for s in streams]
          + [f'{r["mean"]:.2f}', f'{r["worst"]:.2f}', '**chosen**' if r is chosen else '']
          for r in summary]
  averaged = (f'Each setting is the mean over `{json.dumps(across)}`.\n\n' if across else '')
  (out / f'peers_{stage}.md').write_text(
      f'# Tuning stage `{stage}` ({method}), dev streams, seeds {list(seeds)}\n\n'
      f'Fixed from earlier stages: `{json.dumps(fixed)}`\n\n' + averaged
      + suite_lib.markdown_table(header, body) + '\n')
  return chosen['overrides']


def chosen_settings(out: pathlib.Path = REPO / 'experiments' / 'tuning') -> dict:
  """The settings every finished stage in ``out`` chose (what the method defaults must be)."""
  return tune_plus.chosen_settings(out, ORDER, prefix='peers_')


def main(argv=None) -> int:
  parser = tune_plus.tuning_parser(__doc__.split('\n\n')[0], ORDER)
  parser.add_argument('--seeds', type=int, nargs='+', default=list(SEEDS))
  parser.add_argument('--streams', nargs='+', default=list(DEV_STREAMS))
  args = parser.parse_args(argv)
  out = pathlib.Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  suite = suite_lib.Suite(args.cache, out=lambda line: print(line, flush=True))
  for stage in ORDER if args.stage == 'all' else (args.stage,):
    fixed = tune_plus.earlier_choices(out, stage, EARLIER.get(stage, ()), prefix='peers_')
    if fixed is None:
      return 2
    chosen = run_stage(suite, stage, fixed, tuple(args.seeds), tuple(args.streams), out,
                       log=lambda line: print(line, flush=True))
    print(f'{stage}: chose {json.dumps(chosen)}', flush=True)
  return 0


if __name__ == '__main__':
  sys.exit(main())
