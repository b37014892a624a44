# COMMAND: python -m experiments.paper --config experiments/configs/exp_memory.py --workdir experiments/results
"""Memory vs accuracy: the seed methods and ER-VLM across memory budgets (bytes on the x axis).

Auto-Seed VL2 keeps k seeds per class (``seeds_per_class``) with a budget of K = k x (the
stream's classes) seeds, with METHOD's settings (its redundancy filter on: the generator's
candidates of one class are so alike that about one seed per class survives whatever k
is, so what it holds barely grows with the budget — that is the finding; an earlier
version of this sweep turned the filter off and stored duplicates). The methods of
``budget_methods`` (autoseed_plus, kmeans_seeds, the class-Gaussian replays by covariance
form, FeTrIL and RanPAC sized to the bytes) get the bytes of that budget
(``plus_memory_bytes``; a form that does not fit is shown as such), and ER-VLM runs at those bytes too (the fair comparison),
at the bytes each Auto-Seed point actually held (same stream and seed) and at a few larger
budgets (in exemplars). The x value is the memory a run actually held (``memory_bytes``).

Writes ``<workdir>/memory/`` (memory.json/.csv/.md, memory_runs.csv,
memory_vs_accuracy.png) and updates ``<workdir>/claims.{json,md}``. ``:quick``: k = 1
only and one larger ER budget.

Fields (besides those of exp_common.py):
  seeds_per_class     the k values swept (memory_budget = k x the stream's classes)
  sweep_overrides     overrides of ``base`` for the Auto-Seed points of the sweep
  budget_methods      method labels (exp_common.METHOD_VARIANTS) run at each budget's bytes
  er_extra_examples   larger ER-VLM budgets, in stored exemplars
"""

import ml_collections

from experiments.configs.exp_common import experiment_config


def get_config(arg=None):
  c = experiment_config('memory', arg)
  # animals-ci: 10 classes, k = 1, 3, 10 gives K = 10, 30, 100 seeds; animals-digits: 20.
  c.seeds_per_class = (1, 3, 10)
  c.sweep_overrides = ml_collections.ConfigDict()
  c.budget_methods = ('autoseed_plus', 'kmeans_seeds', 'gauss_mean', 'gauss_diag',
                      'gauss_lowrank', 'fetril', 'ranpac_budget')
  c.er_extra_examples = (300, 1000, 3000)  # larger ER budgets, in stored exemplars
  if c.quick:  # the quick main table's Auto-Seed and ER runs, and one larger ER budget
    c.seeds_per_class = (1,)
    c.budget_methods = ('autoseed_plus',)
    c.er_extra_examples = (200,)
  return c
