# COMMAND: python -m autoseed_jax.main --config experiments/configs/exp_ablation.py --workdir experiments/results
"""Ablation (METHOD §5): the five rows of the paper's table, on animals-digits, 3 seeds,
and one row of ours (no anchor loss).

Each row is Auto-Seed VL2 with one switch flipped; its drop is measured against the full
row of the same stream (final average accuracy, mean over seeds). The paper's numbers are
shown beside ours; they come from its C->R vision-language sequence, not from these
streams, so only the signs and rough sizes of the drops are comparable.

Writes ``<workdir>/ablation/`` (ablation.json/.csv/.md, ablation_runs.csv,
ablation_drops.png) and updates ``<workdir>/claims.{json,md}``. ``:quick``: the full row
and one switched row on the quick stream.

Fields (besides those of exp_common.py):
  rows        (name, overrides of ``base``) per table row; the first is the full method
  row_titles  name -> the row's title in the table
  paper       name -> the paper's average accuracy for that row (METHOD §5); a row
              without an entry is shown as "not in paper"
"""

import ml_collections

from experiments.configs.exp_common import experiment_config


def get_config(arg=None):
  c = experiment_config('ablation', arg)
  if not c.quick:
    # The two-domain stream, like the paper's C->R sequence (and, at 2 tasks, the cheaper
    # one: every row compiles anew, so both streams do not fit the suite's 30 minutes).
    c.streams = ('animals-digits',)
  c.rows = (('full', {}),
            ('no_consistency', {'consistency_weight': 0.0}),
            ('random_seeds', {'seed_source': 'random'}),
            ('no_meta_update', {'seed_source': 'generator_no_meta'}),
            ('no_pruning', {'prune': False}),
            # Not in the paper: without the anchor term L_anchor (γ = 0) nothing ties the
            # generated seeds to the real class means.
            ('no_anchor', {'anchor_weight': 0.0}))
  if c.quick:  # one switched row beside the full one (each row compiles anew)
    c.rows = c.rows[:1] + c.rows[2:3]
  c.row_titles = ml_collections.ConfigDict(dict(
      full='full',
      no_consistency='no consistency loss (λ_c = 0)',
      random_seeds='random seeds instead of gradient-conditioned generation',
      no_meta_update='no meta-update of G_φ',
      no_pruning='no seed pruning (full memory)',
      no_anchor='no anchor loss (γ = 0; not a row of the paper)'))
  # The paper's table (METHOD §5): average accuracy on its C->R sequence (rows of ours that
  # it does not have are left out).
  c.paper = ml_collections.ConfigDict(dict(
      full=82.2, no_consistency=75.4, random_seeds=68.9, no_meta_update=74.1, no_pruning=82.0))
  return c
