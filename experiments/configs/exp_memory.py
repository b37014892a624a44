# COMMAND: python -m autoseed_jax.main --config experiments/configs/exp_memory.py --workdir experiments/results
"""Memory vs accuracy: Auto-Seed VL2 and ER-VLM across memory budgets (bytes on the x axis).

Auto-Seed VL2 keeps k seeds per class (``seeds_per_class``) with a budget of K = k x (the
stream's classes) seeds. With the default redundancy filter (a candidate whose cosine to a
kept seed of its class exceeds 0.98 is skipped) the generator's candidates of one class are
so alike that about one seed per class survives whatever k is, so the memory would not
grow with the budget; this sweep therefore turns the filter off (``redundancy_cosine`` =
1.0: no cosine exceeds 1, so no candidate is skipped) to fill the budget. The x value is
the memory the run actually held (``memory_bytes``). ER-VLM runs at the bytes of
each Auto-Seed point (same stream and seed) and at a few larger budgets (in exemplars).

Writes ``<workdir>/memory/`` (memory.json/.csv/.md, memory_runs.csv,
memory_vs_accuracy.png) and updates ``<workdir>/claims.{json,md}``. ``:quick``: k = 1
only and one larger ER budget.

Fields (besides those of exp_common.py):
  seeds_per_class     the k values swept (memory_budget = k x the stream's classes)
  sweep_overrides     overrides of ``base`` for the Auto-Seed points of the sweep
  er_extra_examples   larger ER-VLM budgets, in stored exemplars
"""

import ml_collections

from experiments.configs.exp_common import experiment_config


def get_config(arg=None):
  c = experiment_config('memory', arg)
  c.streams = ('animals-ci',)  # 10 classes: k = 1, 3, 10 gives K = 10, 30, 100 seeds
  c.seeds_per_class = (1, 3, 10)  # three budgets (four did not fit the suite's 30 minutes)
  c.sweep_overrides = ml_collections.ConfigDict(dict(redundancy_cosine=1.0))
  c.er_extra_examples = (300, 1000, 3000)  # larger ER budgets, in stored exemplars
  if c.quick:  # the quick main table's Auto-Seed and ER runs, and one larger ER budget
    c.seeds_per_class = (1,)
    c.sweep_overrides = ml_collections.ConfigDict()
    c.er_extra_examples = (200,)
  return c
