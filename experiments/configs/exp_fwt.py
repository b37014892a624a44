# COMMAND: python -m experiments.paper --config experiments/configs/exp_fwt.py --workdir experiments/results
"""Forward transfer per task (METHOD §6): accuracy on task t before training on it,
R[t-1, t], minus the initial model's b_t, for every method of the main table (its runs are
reused from the run cache). The paper reports FWT = +4.1 for Auto-Seed VL2, about 0 for
exemplar replay and negative for generative replay.

Writes ``<workdir>/fwt/`` (fwt.json/.csv/.md, fwt.png) and updates
``<workdir>/claims.{json,md}``. ``:quick``: the quick main table's methods.

Fields (besides those of exp_common.py):
  methods   method labels (exp_common.METHOD_VARIANTS); the main table's by default
"""

from experiments.configs.exp_common import experiment_config
from experiments.configs.exp_main import get_config as main_config


def get_config(arg=None):
  c = experiment_config('fwt', arg)
  c.methods = main_config(arg).methods
  return c
