# COMMAND: python experiments/run_experiments.py --config experiments/configs/exp_main.py --out experiments/results
"""Main table (METHOD §6-§7): every method on both embedded real streams, 3 seeds.

Mean ± std over seeds of final average accuracy, average incremental accuracy,
forgetting, BWT, FWT and replay memory in bytes; accuracy-matrix heatmaps and accuracy
after each task per stream. ``er_1x`` / ``er_10x``: ER-VLM at 1x / 10x the bytes of the
Auto-Seed VL2 memory of the same stream and seed (see exp_common.py).
"""

from experiments.configs.exp_common import experiment_config


def get_config(arg=None):
  c = experiment_config('main', arg)
  if c.quick:
    c.methods = ('zeroshot', 'er_1x', 'er_10x', 'autoseed')
  else:
    c.methods = ('zeroshot', 'finetune', 'joint', 'er_1x', 'er_10x', 'lwf', 'ewc', 'dgr',
                 'dgr_pixel', 'hnet', 'autoseed')
  return c
