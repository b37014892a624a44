# COMMAND: python -m experiments.paper --config experiments/configs/exp_main.py --workdir experiments/results
"""Main table (METHOD §6-§7): every method on both embedded real streams and the offline
vision-language stream (vl-scenes: retrieval, captioning, VQA; autoseed_jax/streams/vision_language.py),
5 seeds; on vl-scenes also each task's final primary score and R@1/5/10.

Mean ± std over seeds of final average accuracy, average incremental accuracy,
forgetting, BWT, FWT and replay memory in bytes; accuracy-matrix heatmaps and accuracy
after each task per stream. ``er_1x`` / ``er_10x``: ER-VLM at 1x / 10x the bytes the
Auto-Seed VL2 memory of the same stream and seed actually held; ``er_budget``: ER-VLM at the
seed memory's full byte budget (see exp_common.py). Methods of ours beyond the paper
(docs/autoseed_plus.md): the summary-seed baselines ``kmeans_seeds`` and ``refined_seeds``
and the variant ``autoseed_plus``; the statistics replays and frozen heads of docs/PEERS.md
at the same bytes.

Writes ``<workdir>/main/``: main.json, main.csv (one row per stream and method),
main_runs.csv (one row per run), main.md, heatmaps_<stream>.png and
accuracy_after_each_task_<stream>.png; and ``<workdir>/claims.{json,md}``,
``<workdir>/suite.json``. ``exp_main.py:quick``: the smoke form (4 methods, 1 seed, 10% of
animals-ci, tiny steps; a few minutes on 2 cores).

Fields (besides those of exp_common.py):
  methods   method labels of exp_common.METHOD_VARIANTS, one table row each
"""

from experiments.configs.exp_common import VL_STREAM, experiment_config


def get_config(arg=None):
  c = experiment_config('main', arg)
  if not c.quick:  # the offline vision-language stream joins the main table
    c.streams = tuple(c.streams) + (VL_STREAM,)
  if c.quick:
    c.methods = ('zeroshot', 'er_1x', 'er_10x', 'autoseed', 'autoseed_plus')
  else:
    c.methods = ('zeroshot', 'finetune', 'joint', 'er_1x', 'er_10x', 'lwf', 'ewc', 'dgr',
                 'dgr_pixel', 'hnet', 'coop', 'maple', 'autoseed', 'er_budget',
                 'kmeans_seeds', 'refined_seeds', 'autoseed_plus', 'gauss_mean', 'gauss_diag',
                 'gauss_lowrank', 'gauss_full', 'fetril', 'ncm', 'ncm_text', 'ranpac_budget',
                 'ranpac')
  return c
