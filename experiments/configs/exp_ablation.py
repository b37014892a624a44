# COMMAND: python -m experiments.paper --config experiments/configs/exp_ablation.py --workdir experiments/results
"""Ablation (METHOD §5): the five rows of the paper's table and one row of ours (no anchor
loss), and the switches of autoseed_plus (docs/autoseed_plus.md), on both streams, 5 seeds.
autoseed_plus's rows include "G_φ replaced by its own starting centres" (what task-gradient
conditioning and meta-learning add) and "no guard" (docs/autoseed_plus.md §6); the claim
"gradient-conditioned generation is crucial" is judged against both random seeds and the
centres (experiments/paper/claims.py).

Each row is a method with one switch flipped; its drop is measured against the full row
of the same method and stream (final average accuracy, mean over seeds): Auto-Seed VL2's
rows against ``full``, autoseed_plus's against ``plus_full``. The paper's numbers are
shown beside Auto-Seed VL2's; they come from its C->R vision-language sequence, not from
these streams, so only the signs and rough sizes of the drops are comparable.

Writes ``<workdir>/ablation/`` (ablation.json/.csv/.md, ablation_runs.csv,
ablation_drops.png) and updates ``<workdir>/claims.{json,md}``. ``:quick``: the full row
and one switched row on the quick stream.

Fields (besides those of exp_common.py):
  rows        (name, overrides of ``base``, method label) per table row; the first row of
              each method label is its full method (the label is 'autoseed' when left out)
  row_titles  name -> the row's title in the table
  paper       name -> the paper's average accuracy for that row (METHOD §5); a row
              without an entry is shown as "not in paper"
"""

import ml_collections

from experiments.configs.exp_common import experiment_config


def get_config(arg=None):
  c = experiment_config('ablation', arg)
  c.rows = (('full', {}, 'autoseed'),
            ('no_consistency', {'consistency_weight': 0.0}, 'autoseed'),
            ('random_seeds', {'seed_source': 'random'}, 'autoseed'),
            ('no_meta_update', {'seed_source': 'generator_no_meta'}, 'autoseed'),
            ('no_pruning', {'prune': False}, 'autoseed'),
            # Not in the paper: without the anchor term L_anchor (γ = 0) nothing ties the
            # generated seeds to the real class means.
            ('no_anchor', {'anchor_weight': 0.0}, 'autoseed'),
            # autoseed_plus with each of its switches back at METHOD's choice.
            ('plus_full', {}, 'autoseed_plus'),
            ('plus_mmd_not_centre', {'plus_centre_weight': 0.0, 'plus_mmd_weight': 10.0},
             'autoseed_plus'),
            ('plus_noise', {'plus_seed_codes': 'noise', 'plus_centre_weight': 0.0,
                            'plus_mmd_weight': 10.0}, 'autoseed_plus'),
            ('plus_text_base', {'plus_generator_base': 'text'}, 'autoseed_plus'),
            ('plus_text_prototypes', {'plus_text_prototypes': True}, 'autoseed_plus'),
            # What the generator adds: its own starting centres (same bytes, no G_φ), and
            # the meta-update without the guard that keeps it from ending below them.
            ('plus_centres', {'plus_seed_source': 'centres'}, 'autoseed_plus'),
            ('plus_no_guard', {'plus_guard': 'none'}, 'autoseed_plus'),
            ('plus_paper_weights', {'plus_replay_weight': 1.0, 'plus_consistency_weight': 10.0,
                                    'plus_anchor_weight': 5.0}, 'autoseed_plus'))
  if c.quick:  # one switched row beside each full one (each row compiles anew)
    c.rows = tuple(r for r in c.rows
                   if r[0] in ('full', 'random_seeds', 'plus_full', 'plus_centres'))
  c.row_titles = ml_collections.ConfigDict(dict(
      full='full',
      no_consistency='no consistency loss (λ_c = 0)',
      random_seeds='random seeds instead of gradient-conditioned generation',
      no_meta_update='no meta-update of G_φ',
      no_pruning='no seed pruning (full memory)',
      no_anchor='no anchor loss (γ = 0; not a row of the paper)',
      plus_full='autoseed_plus, full',
      plus_mmd_not_centre='autoseed_plus with the MMD term instead of centre targets '
                          '(λ_centre = 0, λ_mmd = 10)',
      plus_noise='autoseed_plus with METHOD\'s noise z ~ N(0, I) instead of fixed codes (and '
                 'so the MMD term instead of centre targets, which need the codes)',
      plus_text_base='autoseed_plus with G_φ starting v at the class text e_c (METHOD) '
                     'instead of the class image mean',
      plus_text_prototypes='autoseed_plus storing w (half the seeds in the same bytes)',
      plus_centres='autoseed_plus with G_φ replaced by its own starting centres (the '
                   'per-class k-means centres it is trained toward; no generator)',
      plus_no_guard='autoseed_plus without the guard on its meta-update (plus_guard=none)',
      plus_paper_weights='autoseed_plus with METHOD\'s loss weights (λ_r = 1, λ_c = 10, γ = 5)'))
  # The paper's table (METHOD §5): average accuracy on its C->R sequence (rows of ours that
  # it does not have are left out).
  c.paper = ml_collections.ConfigDict(dict(
      full=82.2, no_consistency=75.4, random_seeds=68.9, no_meta_update=74.1, no_pruning=82.0))
  return c
