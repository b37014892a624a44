# COMMAND: python -m experiments.paper --config experiments/configs/exp_all.py --workdir experiments/results
"""The whole suite of the paper's experiments (METHOD §5-§7), in order: main, ablation,
memory, seeds, fwt.

  python -m experiments.paper --config experiments/configs/exp_all.py --workdir experiments/results
  python -m experiments.paper --config experiments/configs/exp_all.py:quick --workdir runs/quick

Writes ``<workdir>/<experiment>/`` for each experiment (see its exp_*.py), then
``<workdir>/claims.json`` / ``claims.md`` (the paper's claims beside what was measured)
and ``<workdir>/suite.json`` (timings, machine, commit). ``experiments/update_readme.py``
turns these into the README's results section. The full suite (730 runs: 5 run seeds
per row in one program, the vision-language stream in the main table, autoseed_plus's
ablation rows and the peers on both streams) took 57 minutes of wall time on 2 shared CPU
cores (load average 2-5): main 30 min, ablation 13.5, memory 13.5; ``:quick`` (the smoke
form: tiny steps, one seed, 10% of animals-ci) a few.

Fields:
  experiment        'all': run the configs in ``experiments``
  quick             True for the ``:quick`` form (set by the argument; informational)
  experiment_names  which of ``experiments`` run (always in the order above), e.g.
                    ``--config.experiment_names="('main', 'fwt')"``
  experiments       one config per experiment, the exp_<name>.py config with the same
                    argument; override inside, e.g. ``--config.experiments.main.seeds="(0,)"``
  cache_dir         the run cache shared by every experiment (see exp_common.py):
                    rerunning an interrupted command resumes it; 'none': memory only
"""

import importlib

import ml_collections

from experiments.configs.exp_common import DEFAULT_CACHE_DIR

EXPERIMENT_NAMES = ('main', 'ablation', 'memory', 'seeds', 'fwt')


def get_config(arg=None):
  c = ml_collections.ConfigDict()
  c.experiment = 'all'
  c.quick = arg == 'quick'
  c.experiment_names = EXPERIMENT_NAMES
  c.experiments = ml_collections.ConfigDict()
  for name in EXPERIMENT_NAMES:
    module = importlib.import_module(f'experiments.configs.exp_{name}')
    sub = module.get_config(arg)  # validates ``arg``
    del sub['cache_dir']  # one cache for the whole suite: ``cache_dir`` below
    c.experiments[name] = sub
  c.cache_dir = DEFAULT_CACHE_DIR
  return c
