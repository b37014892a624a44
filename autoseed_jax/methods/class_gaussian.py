"""Statistics replay, the rehearsal-free peers of the seed methods (docs/PEERS.md §1, §3).

``gauss_replay``: after online adaptation on task t each of its classes is stored as a
Gaussian of its real training embeddings (``class_stats.ClassMemory``), in the form of
``gauss_covariance``: ``'mean'`` (the class mean and one radius shared by all classes, the
PASS storage), ``'diag'``, ``'lowrank'`` (top principal axes + the diagonal; the rank
fills the byte budget unless ``gauss_rank`` sets it) or ``'full'`` (the Cholesky factor of
the covariance, RAPF's and SLCA's storage). Every later online-adaptation step draws
``gauss_samples_per_class`` embeddings of every stored class from its Gaussian, projects
them onto the unit sphere when ``gauss_sphere`` is set and replays them as seeds: through
``methods.autoseed.seed_replay_terms``, the seed family's λ_r L_replay + λ_c L_consist with
the family's weights (``plus_replay_weight``, ``plus_consistency_weight``,
``plus_replay_infonce_weight``), each sample's w its class's text embedding. So it differs
from ``kmeans_seeds`` only in what the memory holds and how replayed points are drawn
from it.

``fetril``: the memory holds each class's mean only (4d + 1 bytes per class); every step
makes ``fetril_samples_per_class`` pseudo-features of every stored class c by FeTrIL's
translation of a real training row x of the current task, of class n, drawn uniformly:
x − μ_n + μ_c (projected onto the sphere when ``fetril_sphere`` is set), and replays them
as seeds in the same way. The current task's rows and class means μ_n (held for the task only,
``begin_task``; every method has the current task's data) are not memory.

Bytes: the byte budget of the seed family (``plus_memory_bytes``, 0: that of
``memory_budget`` METHOD seeds, ``autoseed_plus.family_budget_bytes``); a memory is
counted by ``class_stats.nbytes``, by ``seeds.bytes_per_seed``'s rule (every stored float
and int). A form whose memory of the stream's classes exceeds the budget is refused with
one line when the method is built (``class_stats.class_memory_plan``).

Task kinds: ``fetril`` runs classification tasks only (a vision-language task with no
classes is refused, ``REFUSAL``). ``gauss_replay`` runs every kind in its pair form on a
vision-language stream (``core.group_stats``, docs/PEERS.md §1 "Pair form"): the groups
are the seed family's (``pair_groups.summary_groups``): a bank group (class or VQA answer,
label < C) is a Gaussian of its queries x in a bank memory of C slots, a pair group (text
cluster of a retrieval or captioning task, label >= C) a Gaussian of its joint points
[x ; t] / √2 (2d dims, always the 'concat' space: a 'sum' point cannot be split) in a pair
memory of ``vl.num_groups`` − C slots. Bytes: ``class_stats.nbytes`` of both memories (a
pair group pays for its text half, a bank group stores no text); the plan pays for every
slot and refuses a form over the budget (``group_stats.group_memory_plan``). A pair draw is
split into its image and text halves, each normalised (v, w); a bank draw takes the bank
text as w; replay is ``seed_replay_terms`` with the family's ``PairReplay``
(``autoseed_plus.pair_replay``).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from autoseed_jax.core import class_stats, group_stats, parallel, seeds, task_kinds
from autoseed_jax.core.config_checks import check_fields
from autoseed_jax.methods.autoseed import seed_replay_terms, seed_update_data, text_prototypes
from autoseed_jax.methods.autoseed_plus import (family_budget_bytes, family_loss_config,
                                                pair_replay, validate_family)
from autoseed_jax.methods.base import Context, Method

KINDS = ('classification',)  # fetril's; gauss_replay runs every kind (its pair form)
REFUSAL = ('its memory holds statistics of the image embeddings of each class, and this '
           'task has no classes')
# Tags folded into the run key for the replay draws.
_GAUSS_TAG, _FETRIL_TAG = 40, 41


def defaults() -> dict:
  """Statistics-replay hyperparameters and their defaults (config fields of the same names);
  chosen on the development streams (experiments/tune_peers.py)."""
  return dict(
      gauss_covariance='lowrank',   # 'mean' (PASS) | 'diag' | 'lowrank' | 'full' (RAPF)
      gauss_rank=0,                 # r of 'lowrank'; 0: the largest that fits the budget
      gauss_samples_per_class=8,    # draws of every stored class per step
      gauss_sphere=False,           # project the draws onto the unit sphere
      gauss_shrinkage=1e-4,         # ε added to the variances / covariance diagonal
      fetril_samples_per_class=16,  # pseudo-features of every stored class per step
      fetril_sphere=False,          # project the translated rows onto the unit sphere
  )


def settings(config) -> dict:
  """``defaults()`` overridden by the fields present in ``config``."""
  return {name: config.get(name, value) for name, value in defaults().items()}


RULES = (
    ('gauss_rank', '>= 0', "r of gauss_covariance='lowrank'; 0: the largest that fits"),
    ('gauss_samples_per_class', '> 0', 'draws of every stored class per step'),
    ('gauss_shrinkage', '>= 0', 'ε added to the variances'),
    ('fetril_samples_per_class', '> 0', 'pseudo-features of every stored class per step'),
)


def validate(config) -> None:
  """Raises ValueError naming the field and a fix (the seed family's fields, then the
  statistics replays' own); needs no stream."""
  validate_family(config)
  s = settings(config)
  check_fields(s, RULES)
  if s['gauss_covariance'] not in class_stats.COVARIANCES:
    raise ValueError(f"invalid config: gauss_covariance={s['gauss_covariance']!r}; choose "
                     f'one of {class_stats.COVARIANCES}.')
  if s['gauss_covariance'] == 'full' and s['gauss_shrinkage'] <= 0:
    raise ValueError("invalid config: gauss_covariance='full' needs gauss_shrinkage > 0 "
                     '(the Cholesky factor of a class with fewer rows than d dims).')


def _replay_method(context: Context, *, name: str, memory: class_stats.ClassMemory,
                   draw, consolidate, begin_task=None, extras=None, kinds=KINDS,
                   memory_bytes=None, pair=None) -> Method:
  """The hooks shared by the statistics replays: ``draw(state, key) -> (x, label, valid)``
  pseudo-features replayed as seeds (w: the class text) each step; with ``pair`` (the
  pair form on a vision-language stream, ``autoseed.PairReplay``) ``draw`` gives
  (v, w, label, valid) and the seeds of pair groups replay as ``pair`` says."""
  replay_context = dataclasses.replace(context, config=family_loss_config(context.config))

  def init_state(key):
    del key
    return {'extras': {'classes': memory, **(extras or {})}}

  def extra_loss(params, state, x, y, key, text=None):
    """λ_r L_replay + λ_c L_consist on pseudo-features of the stored classes."""
    del x, y, text
    if pair is not None:
      v, w, label, valid = draw(state, key)
      batch = seeds.make_seeds(v, w, label, -1, valid=valid)
      return seed_replay_terms(replay_context, params, state, batch, pair=pair)
    v, label, valid = draw(state, key)
    batch = seeds.make_seeds(v, v[:, :0], label, -1, valid=valid)
    batch = batch.replace(w=text_prototypes(batch, state.class_bank))
    return seed_replay_terms(replay_context, params, state, batch)

  if memory_bytes is None:
    memory_bytes = lambda extras: class_stats.nbytes(extras['classes'])
  return Method(name=name, init_state=init_state, extra_loss=extra_loss,
                begin_task=begin_task, consolidate=consolidate,
                consolidate_name='class statistics', kinds=kinds, refusal=REFUSAL,
                memory_bytes=lambda state: int(parallel.to_host(memory_bytes(state.extras))))


def _store_task(state, task, fit) -> tuple:
  """Fits the statistics of ``task``'s classes (``fit(x, weights)``) and stores them."""
  data = seed_update_data(task)
  fitted = fit(data.train_x, data.train_weights)
  memory = class_stats.store_classes(state.extras['classes'], data.labels, fitted,
                                     data.class_ok)
  extras = {**state.extras, 'classes': memory}
  return state.replace(extras=extras), {'classes_stored': memory.num_valid()}


def gauss_replay(context: Context) -> Method:
  """Class-Gaussian replay (see module doc); its pair form on a vision-language stream."""
  config, dim = context.config, context.dim
  validate(config)
  s = settings(config)
  if context.vl is not None:
    return _gauss_pair_replay(context, s)
  form = s['gauss_covariance']
  rank, _ = class_stats.class_memory_plan(form, dim, context.num_classes,
                                          family_budget_bytes(config, dim),
                                          rank=int(s['gauss_rank']))
  memory = class_stats.init_class_memory(context.num_classes, dim, covariance=form, rank=rank)
  per_class, sphere = int(s['gauss_samples_per_class']), bool(s['gauss_sphere'])
  shrinkage = float(s['gauss_shrinkage'])

  def draw(state, key):
    return class_stats.sample_class_gaussians(state.extras['classes'],
                                              jax.random.fold_in(key, _GAUSS_TAG),
                                              per_class, sphere=sphere)

  def consolidate(state, task, *, axis_name=None):
    """Stores the Gaussians of ``task``'s classes (computed replicated)."""
    del axis_name
    return _store_task(state, task, lambda x, w: class_stats.fit_class_gaussians(
        x, w, covariance=form, rank=rank, shrinkage=shrinkage))

  return _replay_method(context, name='gauss_replay', memory=memory, draw=draw,
                        consolidate=consolidate, kinds=task_kinds.KINDS)


def _gauss_pair_replay(context: Context, s: dict) -> Method:
  """The pair form of ``gauss_replay`` (module doc, ``core.group_stats``): a Gaussian per
  summary group, bank groups over x, pair groups over [x ; t] / √2."""
  config, dim = context.config, context.dim
  form = s['gauss_covariance']
  num_bank, num_pair = group_stats.group_slots(context.num_classes, context.vl)
  rank, _ = group_stats.group_memory_plan(form, dim, num_bank, num_pair,
                                          family_budget_bytes(config, dim),
                                          rank=int(s['gauss_rank']))
  bank, pairs = group_stats.init_group_memory(num_bank, num_pair, dim, covariance=form,
                                              rank=rank)
  per_group, sphere = int(s['gauss_samples_per_class']), bool(s['gauss_sphere'])
  shrinkage = float(s['gauss_shrinkage'])

  def draw(state, key):
    return group_stats.sample_groups(state.extras['classes'], state.extras['pairs'],
                                     state.class_bank, jax.random.fold_in(key, _GAUSS_TAG),
                                     per_group, sphere=sphere)

  def consolidate(state, task, *, axis_name=None):
    """Stores the Gaussians of ``task``'s groups (computed replicated)."""
    del axis_name
    groups, bank_fit, pair_fit = group_stats.fit_groups(task, covariance=form, rank=rank,
                                                        shrinkage=shrinkage)
    new_bank, new_pairs = group_stats.store_groups(state.extras['classes'],
                                                   state.extras['pairs'], groups, bank_fit,
                                                   pair_fit)
    extras = {**state.extras, 'classes': new_bank, 'pairs': new_pairs}
    return state.replace(extras=extras), {'classes_stored': new_bank.num_valid(),
                                          'pair_groups_stored': new_pairs.num_valid()}

  return _replay_method(
      context, name='gauss_replay', memory=bank, draw=draw, consolidate=consolidate,
      extras={'pairs': pairs}, kinds=task_kinds.KINDS, pair=pair_replay(config),
      memory_bytes=lambda extras: group_stats.nbytes(extras['classes'], extras['pairs']))


def fetril(context: Context) -> Method:
  """FeTrIL-style translated pseudo-features (see module doc)."""
  config, dim, num_classes = context.config, context.dim, context.num_classes
  validate(config)
  s = settings(config)
  class_stats.class_memory_plan('mean', dim, num_classes, family_budget_bytes(config, dim),
                                shared_radius=False, method='fetril')
  memory = class_stats.init_class_memory(num_classes, dim, covariance='mean',
                                         shared_radius=False)
  per_class, sphere = int(s['fetril_samples_per_class']), bool(s['fetril_sphere'])
  rows = context.train_rows
  current = dict(pool_x=jnp.zeros((rows, dim), jnp.float32),
                 pool_y=jnp.zeros((rows,), jnp.int32),
                 pool_count=jnp.zeros((), jnp.int32),
                 pool_means=jnp.zeros((num_classes, dim), jnp.float32))
  par = context.parallelism

  def begin_task(state, task):
    """Holds the task's training rows and class means μ_n for the translation."""
    data = seed_update_data(task)
    _, means = class_stats.class_means(data.train_x, data.train_weights)
    slots = jnp.where(data.class_ok, data.labels, num_classes)
    pool_x, pool_y = task.train_x, jnp.clip(task.train_y, 0, num_classes - 1)
    if par.mode == 'jit' and par.num_shards > 1:  # replicated like the rest of the state
      pool_x, pool_y = jax.lax.with_sharding_constraint((pool_x, pool_y), par.replicated)
    extras = {**state.extras, 'pool_x': pool_x, 'pool_y': pool_y.astype(jnp.int32),
              'pool_count': task.train_count.astype(jnp.int32),
              'pool_means': jnp.zeros_like(current['pool_means']).at[slots].set(
                  means, mode='drop')}
    return state.replace(extras=extras)

  def draw(state, key):
    e = state.extras
    return class_stats.translated_pseudo_features(
        jax.random.fold_in(key, _FETRIL_TAG), e['pool_x'], e['pool_y'], e['pool_count'],
        e['pool_means'], e['classes'], per_class, sphere=sphere)

  def consolidate(state, task, *, axis_name=None):
    """Stores the means of ``task``'s classes (computed replicated)."""
    del axis_name
    return _store_task(state, task, lambda x, w: {'mean': class_stats.class_means(x, w)[1]})

  return _replay_method(context, name='fetril', memory=memory, draw=draw,
                        consolidate=consolidate, begin_task=begin_task, extras=current)
