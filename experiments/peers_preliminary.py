# COMMAND: python experiments/peers_preliminary.py
r"""A first measurement of the rehearsal-free peers (docs/PEERS.md) on the reported streams.

Preliminary: the experiment suite will carry these rows (main table and memory curve)
once it is rebuilt; until then this script measures them once, at the settings chosen on
the development streams (experiments/tune_peers.py, the method defaults), beside
``kmeans_seeds`` and ER at the seed family's full byte budget (154,250 B: the
``kmeans_seeds`` and ``er_budget`` rows of experiments/configs/exp_main.py). Nothing here
feeds back into a setting.

Every run uses ``real_stream_config()`` (the tables' shared optimisation settings), run
seeds 0, 1, 2, on animals-ci and animals-digits. A row whose memory does not fit the budget
is refused by the method in one line; the table shows that line.

Writes ``<out>/peers_preliminary.json`` (every run) and ``<out>/peers_preliminary.md``
(final average accuracy mean ± std and min over seeds, bytes held, per stream).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

if __package__ in (None, ''):  # run as a script: make the repository importable
  sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from experiments import suite as suite_lib  # noqa: E402
from experiments.configs.real_streams import real_stream_config  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
STREAMS = ('animals-ci', 'animals-digits')
SEEDS = (0, 1, 2)
# label -> (method, overrides): the rows the suite will get (see the report of issue 19).
ROWS = {
    'zeroshot': ('zeroshot', {}),
    'er_budget': ('er', {'er_memory_seed_multiple': 1.0}),
    'kmeans_seeds': ('kmeans_seeds', {}),
    'gauss_mean': ('gauss_replay', {'gauss_covariance': 'mean'}),
    'gauss_diag': ('gauss_replay', {'gauss_covariance': 'diag'}),
    'gauss_lowrank': ('gauss_replay', {'gauss_covariance': 'lowrank'}),
    'gauss_full': ('gauss_replay', {'gauss_covariance': 'full'}),
    'fetril': ('fetril', {}),
    'ncm': ('ncm', {}),
    'ncm_text': ('ncm_text', {}),
    'ranpac_budget': ('ranpac', {'ranpac_dim': 0}),
    'ranpac': ('ranpac', {}),
}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--out', default=str(REPO / 'experiments' / 'peers_preliminary'))
  parser.add_argument('--cache', default=str(REPO / 'runs' / 'peers_cache'))
  parser.add_argument('--rows', nargs='+', default=list(ROWS))
  args = parser.parse_args(argv)
  out = pathlib.Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  suite = suite_lib.Suite(args.cache, out=lambda line: print(line, flush=True))
  runs, table = [], []
  for label in args.rows:
    method, overrides = ROWS[label]
    row = [label]
    for stream in STREAMS:
      accs, nbytes, error = [], set(), ''
      for seed in SEEDS:
        config = suite_lib.run_config(real_stream_config(), method=method, seed=seed,
                                      **overrides)
        record = suite.run(stream, config, label=label, overrides=overrides)
        error = record.error.strip().splitlines()[-1] if record.error else error
        runs.append({'stream': stream, 'label': label, 'method': method, 'seed': seed,
                     **{f'override.{k}': v for k, v in overrides.items()},
                     'final_avg_acc': None if record.error else record.metrics['final_avg_acc'],
                     'avg_incremental_acc': None if record.error else
                     record.metrics['avg_incremental_acc'],
                     'forgetting': None if record.error else record.metrics['forgetting'],
                     'memory_bytes': record.memory_bytes, 'seconds': round(record.seconds, 2),
                     'error': error})
        if not record.error:
          accs.append(record.metrics['final_avg_acc'])
          nbytes.add(record.memory_bytes)
      if accs:
        row += [f'{np.mean(accs):.2f} ± {np.std(accs, ddof=1):.2f}', f'{np.min(accs):.2f}',
                '/'.join(f'{b:,}' for b in sorted(nbytes))]
      else:
        row += [f'refused: {error}', '', '']
    table.append(row)
  suite_lib.write_json(out / 'peers_preliminary.json', {
      'streams': list(STREAMS), 'seeds': list(SEEDS), 'rows': {k: ROWS[k] for k in args.rows},
      'runs': runs})
  header = ['row'] + [f'{s} {c}' for s in STREAMS
                      for c in ('final avg acc (mean ± std)', 'min', 'bytes')]
  (out / 'peers_preliminary.md').write_text(
      '# The rehearsal-free peers on the reported streams (preliminary, seeds '
      f'{list(SEEDS)})\n\nCommand: `python experiments/peers_preliminary.py`; settings: the '
      'method defaults (chosen on the development streams, experiments/tuning/peers_*.md). '
      'Byte budget of the seed family: 154,250 B.\n\n'
      + suite_lib.markdown_table(header, table) + '\n')
  print((out / 'peers_preliminary.md').read_text())
  print(json.dumps({'runs': len(runs)}))
  return 0


if __name__ == '__main__':
  sys.exit(main())
