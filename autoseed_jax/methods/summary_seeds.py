"""Summary-seed baselines: seeds computed from each class's real embeddings, no generator.

``kmeans_seeds``: after online adaptation on task t, each class c of the task is summarised
by the centres of a spherical k-means of its real training embeddings
(``kmeans.class_kmeans``, k-means++ start, ``summary_kmeans_iterations`` Lloyd steps); each
centre is a seed v (score: the rows nearest it, so a class that must give up seeds keeps its
largest clusters). ``refined_seeds``: the same centres, then ``summary_refine_steps`` Adam
steps on the unit sphere (``kmeans.refine_on_sphere``) of

    λ_mmd · MMD²_RBF(class's seeds, its real rows) + CE(h_I(v), W_seen; c) under θ_t,

the distribution-matching term of autoseed_plus and the classification term of METHOD's
outer loss, on the seeds directly instead of through a generator.

Both replay and budget exactly as ``autoseed_plus`` (its ``memory_plan`` and replay fields:
byte budget, stored w or not, seeds per new class, λ_r, λ_c), so the only difference from
the variant is where the seeds come from: they measure what the hypernetwork adds.

Every task kind (docs/VL_TASKS.md §6): the groups are classes, VQA answers, or a pair
task's seed groups, and a group's centres are those of its rows in the joint space
(``autoseed_plus.summary_pairs``, ``core.pair_groups``): a centre's seed is its members'
mean query (v) and, for a pair group, their mean caption (w, stored). On a
vision-language stream the refinement's classification term is the seeds' replay loss
(``autoseed.replay_on_seeds``: answer selection for answers, InfoNCE for every seed), with
w held fixed.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from autoseed_jax.core import kmeans, losses, pair_groups, seeds
from autoseed_jax.core.config_checks import check_fields
from autoseed_jax.methods.autoseed import autoseed, replay_on_seeds, seed_update_data
from autoseed_jax.methods.autoseed_plus import (class_mmd, family_update_data, family_variant,
                                                memory_plan, pair_replay, real_rows,
                                                seed_method_config, settings as plus_settings,
                                                summary_pairs, validate_family)
from autoseed_jax.methods.base import Context, Method

# Tag folded into the run key for the k-means starts and the MMD rows.
_SUMMARY_TAG = 30


def defaults() -> dict:
  """Summary-seed hyperparameters and their defaults (config fields of the same names)."""
  return dict(
      summary_kmeans_iterations=20,      # Lloyd iterations after the k-means++ start
      summary_refine_steps=300,          # refined_seeds: Adam steps on the seeds
      summary_refine_learning_rate=0.002,  # their learning rate
      summary_mmd_weight=100.0,          # λ_mmd of the refinement
  )


def settings(config) -> dict:
  """``defaults()`` overridden by the fields present in ``config``."""
  return {name: config.get(name, value) for name, value in defaults().items()}


RULES = (
    ('summary_kmeans_iterations', '>= 0', 'Lloyd iterations after the k-means++ start'),
    ('summary_refine_steps', '>= 0', 'Adam steps of refined_seeds on the seeds'),
    ('summary_refine_learning_rate', '> 0', 'their learning rate'),
    ('summary_mmd_weight', '>= 0', 'λ_mmd of the refinement'),
)


def validate(config) -> None:
  """Raises ValueError naming the field and a fix (the family's fields, then the summary
  seeds' own); needs no stream."""
  validate_family(config)
  check_fields(settings(config), RULES)


def summary_seeds(context: Context, *, refine: bool) -> Method:
  """Builds ``kmeans_seeds`` (``refine=False``) or ``refined_seeds`` (see module doc)."""
  config, dim = context.config, context.dim
  validate(config)
  s = settings(config)
  plan = memory_plan(config, dim, context.num_classes, context.vl)
  name = 'refined_seeds' if refine else 'kmeans_seeds'
  derived = seed_method_config(config, plan)
  base = autoseed(dataclasses.replace(context, config=derived),
                  family_variant(context, plan, name=name))
  bandwidths = tuple(float(b) for b in plus_settings(config)['mmd_bandwidths'])
  mmd_points = int(plus_settings(config)['mmd_points'])
  pair_mode = plus_settings(config)['plus_pair_points']
  vl = context.vl is not None

  def init_state(key):
    del key
    text_dim = dim if plan.text_prototypes or plan.pair_text else 0
    return dict(memory=seeds.init_memory(plan.budget, dim, text_dim=text_dim))

  def summaries(task, key):
    """(data, v [S, d], w [S, d], sizes [S], slot [S]): per_new_class centres of each group."""
    if vl:
      data = family_update_data(task)
      v, w, sizes = summary_pairs(data, key, num_centres=plan.per_new_class, mode=pair_mode,
                                  iterations=int(s['summary_kmeans_iterations']))
    else:
      data = seed_update_data(task)
      v, sizes = kmeans.class_kmeans(
          data.train_x, data.train_weights, key, num_centres=plan.per_new_class,
          iterations=int(s['summary_kmeans_iterations']))
      w = None
    slot = jnp.repeat(jnp.arange(data.labels.shape[0]), plan.per_new_class)
    w = data.class_text[slot] if w is None else w.reshape(-1, dim)
    return data, v.reshape(-1, dim), w, sizes.reshape(-1), slot

  def consolidate(state, task, *, axis_name=None):
    """Summarises each group of ``task`` by its k-means centres (refined), then prunes."""
    del axis_name  # computed replicated
    key = jax.random.fold_in(jax.random.fold_in(state.key, _SUMMARY_TAG), task.index)
    k_means, k_rows = jax.random.split(key)
    data, v, w, sizes, slot = summaries(task, k_means)
    ok = data.class_ok[slot] & (sizes > 0)
    label = data.labels[slot]
    info = {}
    if refine and s['summary_refine_steps'] > 0:
      real_x, real_ok = real_rows(k_rows, data, mmd_points)
      class_emb = context.embed(state.params, text_z=state.class_bank)[1]

      def classified_loss(v):
        if vl:  # the replay loss: answer selection, InfoNCE against the fixed w
          return replay_on_seeds(
              dataclasses.replace(context, config=derived), state.params, state.class_bank,
              state.seen, v, w, label, ok, pair_replay(config))
        img, _, scale = context.embed(state.params, v)
        return losses.task_loss(img, class_emb, label, scale, class_mask=state.seen, mask=ok)

      def refine_loss(v):
        return classified_loss(v) + s['summary_mmd_weight'] * class_mmd(
            v, slot, ok, real_x, real_ok, bandwidths=bandwidths)

      info['refine_loss_first'] = refine_loss(v)
      v = kmeans.refine_on_sphere(v, refine_loss, num_steps=int(s['summary_refine_steps']),
                                   learning_rate=float(s['summary_refine_learning_rate']))
      info['refine_loss_last'] = refine_loss(v)
    memory = pair_groups.add_to_memory(
        state.memory, v, w, label, task.index, sizes, ok, data.stores_text, slot,
        text_prototypes=plan.text_prototypes, pair_text=plan.pair_text, budget=plan.budget,
        budget_bytes=plan.budget_bytes, num_bank=context.num_classes)
    info.update(seeds_added=jnp.sum(ok), memory_size=memory.num_valid())
    return state.replace(memory=memory), info

  return Method(name=name, init_state=init_state, extra_loss=base.extra_loss,
                kinds=base.kinds, refusal=base.refusal,
                consolidate=consolidate, consolidate_name='summary seeds',
                memory_bytes=base.memory_bytes)


def kmeans_seeds(context: Context) -> Method:
  """Class k-means centres as seeds (see module doc)."""
  return summary_seeds(context, refine=False)


def refined_seeds(context: Context) -> Method:
  """Class k-means centres refined on MMD + classification as seeds (see module doc)."""
  return summary_seeds(context, refine=True)
