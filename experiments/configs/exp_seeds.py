# COMMAND: python -m experiments.paper --config experiments/configs/exp_seeds.py --workdir experiments/results
"""Seed analysis: how close the final seed memory is to the real data (METHOD §5-§6).

For the main table's Auto-Seed VL2 runs (same streams, seeds and config; reused from the
run cache): the cosine of each seed's visual prototype v to the mean real image embedding
of its class (class means from the stream's TEST embeddings, which training never sees;
the TRAIN means are reported too), compared with the paper's 0.89 ± 0.05; and the
within-class spread of seeds and of real embeddings along the task-relevant directions
(the top C - 1 principal directions of the real class means) and along the rest.

Writes ``<workdir>/seeds/`` (seeds.json/.csv/.md, seed_projection_<stream>.png) and updates
``<workdir>/claims.{json,md}``. ``:quick``: the quick main table's Auto-Seed run.

Fields (besides those of exp_common.py):
  class_mean_split    'test' or 'train': the split whose class means are primary
  paper_cosine_mean   the paper's mean seed-to-class-mean cosine (0.89)
  paper_cosine_std    and its spread (0.05)
"""

from experiments.configs.exp_common import experiment_config


def get_config(arg=None):
  c = experiment_config('seeds', arg)
  c.class_mean_split = 'test'  # 'test' or 'train': the split whose class means are primary
  c.paper_cosine_mean = 0.89
  c.paper_cosine_std = 0.05
  return c
