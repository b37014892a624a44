"""Training-free heads on the frozen features: NCM, NCM fused with zero-shot, RanPAC.

No gradient step is taken (``trains=False``, like ``zeroshot``): the adapters stay the
identity, each task's consolidation updates the head's statistics from the task's real
training embeddings, and the engine evaluates after every task with the method's
``eval_logits`` (docs/PEERS.md §2, §4).

* ``ncm``: the nearest class mean by cosine. After task t each class c of the task stores
  its prototype p_c = normalize(mean of its training embeddings); a test embedding x scores
  cos(x, p_c).
* ``ncm_text``: the SimpleCIL-with-CLIP form, the prototype score fused with the zero-shot
  score: (1 − β) cos(x, p_c) + β cos(x, e_c), e_c the class's frozen text embedding, β =
  ``ncm_text_weight``.
* ``ranpac``: a RanPAC-style closed-form head. A fixed random projection W [d, M]
  (``ranpac_dim`` = M; entries N(0, 1) drawn from the run key) and a ReLU give features
  φ(x) = ReLU(x W); after each task the running Gram matrix G += Σ φ φᵀ [M, M] and class
  sums Q += Σ φ onehot(y)ᵀ [M, C] take the task's training rows, and the head is the ridge
  solution W_o = (G + λI)⁻¹ Q, λ the value of ``ranpac_ridges`` whose head has the least
  mean squared error against the one-hot targets on the task's D_t^val (RanPAC's criterion;
  ties: the smallest λ). A test embedding scores φ(x)ᵀ W_o[:, c].

Classes no task has taught yet (future classes, and every class before the first task)
are scored zero-shot, cos(x, e_c), by all three heads: the initial model is exactly
``zeroshot``. Only R[i, j > i] and b (the forward-transfer metric) see such classes.

Memory (``memory_bytes``, every stored float and int of the statistics, as
``seeds.bytes_per_seed`` counts): ncm / ncm_text 4d + 1 bytes per learned class (the
prototype and its flag); ranpac 4M² (G) + 4M per learned class (its column of Q) + 1 per
learned class (flag), however large. Not counted: the projection W, regenerated from the
run key as Auto-Seed's sketch matrix is, and the head W_o [M, C], the classifier computed
from G and Q (the model, as the adapters are for the trained methods). ``ranpac_dim`` = 0
takes the largest M whose G and Q of every class of the stream fit the seed family's byte
budget (``autoseed_plus.family_budget_bytes``).

Only classification tasks (``REFUSAL``).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from autoseed_jax.core import class_stats, losses, parallel
from autoseed_jax.core.config_checks import check_fields
from autoseed_jax.methods.autoseed import seed_update_data
from autoseed_jax.methods.autoseed_plus import family_budget_bytes
from autoseed_jax.methods.base import Context, Method

KINDS = ('classification',)
REFUSAL = ('its head has one output per class, and this task has no classes')
# Tag folded into the run key for the random projection.
_PROJECTION_TAG = 50


def defaults() -> dict:
  """Hyperparameters of the training-free heads and their defaults (config fields of the
  same names); chosen on the development streams (experiments/tune_peers.py)."""
  return dict(
      ncm_text_weight=0.75,         # β of ncm_text: weight of the zero-shot cosine
      ranpac_dim=2000,              # M, width of the random projection; 0: fit the budget
      ranpac_ridges=(0.1, 1.0, 10.0, 100.0, 1e3, 1e4, 1e5),  # λ grid, chosen per task
  )


def settings(config) -> dict:
  """``defaults()`` overridden by the fields present in ``config``."""
  return {name: config.get(name, value) for name, value in defaults().items()}


RULES = (
    ('ncm_text_weight', 'in [0, 1]', 'β, the zero-shot share of the fused score'),
    ('ranpac_dim', '>= 0', 'M, the random projection width; 0: the largest that fits the '
     'byte budget'),
)


def validate(config) -> None:
  """Raises ValueError naming the field and a fix; needs no stream."""
  s = settings(config)
  check_fields(s, RULES)
  ridges = tuple(s['ranpac_ridges'])
  if not ridges or min(ridges) <= 0:
    raise ValueError(f'invalid config: ranpac_ridges={ridges} must be positive ridge '
                     'weights λ (at least one).')


def _fallback_logits(x, class_text, learned, head_scores):
  """[N, C] ``head_scores`` for learned classes, the zero-shot cosine for the others."""
  zero_shot = losses.l2_normalize(x) @ losses.l2_normalize(class_text).T
  return jnp.where(learned[None, :], head_scores, zero_shot), zero_shot


def nearest_class_mean(context: Context, *, text_weight: float, name: str) -> Method:
  """NCM (``text_weight`` = 0) or NCM fused with the zero-shot score (see module doc)."""
  num_classes, dim = context.num_classes, context.dim
  per_class = 4 * dim + 1

  def init_state(key):
    del key
    return {'extras': {'prototypes': jnp.zeros((num_classes, dim), jnp.float32),
                       'learned': jnp.zeros((num_classes,), bool)}}

  def consolidate(state, task, *, axis_name=None):
    """Stores the prototypes of ``task``'s classes (computed replicated)."""
    del axis_name
    data = seed_update_data(task)
    slots = jnp.where(data.class_ok, data.labels, num_classes)
    extras = {'prototypes': state.extras['prototypes'].at[slots].set(data.image_means,
                                                                      mode='drop'),
              'learned': state.extras['learned'].at[slots].set(True, mode='drop')}
    return state.replace(extras=extras), {'learned': jnp.sum(extras['learned'])}

  def eval_logits(params, extras, image_z, class_text, class_mask):
    del params  # the frozen features: the adapters never leave the identity
    prototype = losses.l2_normalize(image_z) @ extras['prototypes'].T
    scores, zero_shot = _fallback_logits(image_z, class_text, extras['learned'], prototype)
    fused = (1.0 - text_weight) * scores + text_weight * zero_shot
    return jnp.where(class_mask, fused, losses.NEG_INF)

  return Method(name=name, trains=False, init_state=init_state, consolidate=consolidate,
                consolidate_name='class prototypes', eval_logits=eval_logits, kinds=KINDS,
                refusal=REFUSAL, memory_bytes=lambda state: per_class * int(
                    np.sum(parallel.to_host(state.extras['learned']))))


def ncm(context: Context) -> Method:
  """Nearest class mean on the frozen features (see module doc)."""
  validate(context.config)
  return nearest_class_mean(context, text_weight=0.0, name='ncm')


def ncm_text(context: Context) -> Method:
  """Nearest class mean fused with the zero-shot score (see module doc)."""
  validate(context.config)
  weight = float(settings(context.config)['ncm_text_weight'])
  return nearest_class_mean(context, text_weight=weight, name='ncm_text')


def ranpac_bytes(width: int, num_classes: int) -> int:
  """Bytes of RanPAC's statistics with every class learned: G (4M²), Q (4MC), flags (C)."""
  return 4 * width * width + 4 * width * num_classes + num_classes


def ranpac_width_for_bytes(budget_bytes: int, num_classes: int) -> int:
  """The largest M with ``ranpac_bytes(M, C)`` <= ``budget_bytes`` (0 if none)."""
  c = num_classes
  width = int((-4 * c + math.sqrt(16 * c * c + 16 * max(budget_bytes - c, 0))) / 8)
  while width > 0 and ranpac_bytes(width, c) > budget_bytes:
    width -= 1
  while ranpac_bytes(width + 1, c) <= budget_bytes:
    width += 1
  return width


def ranpac(context: Context) -> Method:
  """The RanPAC-style closed-form head (see module doc)."""
  config, num_classes, dim = context.config, context.num_classes, context.dim
  validate(config)
  s = settings(config)
  width = int(s['ranpac_dim'])
  if width == 0:
    budget = family_budget_bytes(config, dim)
    width = ranpac_width_for_bytes(budget, num_classes)
    if width == 0:
      raise class_stats.BudgetTooSmall(
          f'invalid config: ranpac_dim=0 fits no projection width in the byte budget of '
          f'{budget} for {num_classes} classes; raise plus_memory_bytes or set ranpac_dim.')
  ridges = jnp.asarray(tuple(float(r) for r in s['ranpac_ridges']), jnp.float32)

  def init_state(key):
    projection = jax.random.normal(jax.random.fold_in(key, _PROJECTION_TAG), (dim, width))
    zeros = lambda *shape: jnp.zeros(shape, jnp.float32)
    return {'extras': {'projection': projection, 'gram': zeros(width, width),
                       'class_sums': zeros(width, num_classes),
                       'head': zeros(width, num_classes),
                       'learned': jnp.zeros((num_classes,), bool), 'ridge': zeros()}}

  def consolidate(state, task, *, axis_name=None):
    """Adds ``task``'s rows to G and Q, chooses λ on its D_t^val, solves the head."""
    del axis_name  # computed replicated
    e = state.extras
    features = class_stats.random_features(task.train_x, e['projection'])
    in_train = (jnp.arange(task.train_x.shape[0]) < task.train_count).astype(jnp.float32)
    gram, class_sums = class_stats.accumulate_statistics(
        e['gram'], e['class_sums'], features, jnp.clip(task.train_y, 0, num_classes - 1),
        in_train)
    slots = jnp.where(task.classes >= 0, task.classes, num_classes)
    learned = e['learned'].at[slots].set(True, mode='drop')
    in_val = (jnp.arange(task.val_x.shape[0]) < task.val_count).astype(jnp.float32)
    errors = class_stats.ridge_errors(
        gram, class_sums, class_stats.random_features(task.val_x, e['projection']),
        jnp.clip(task.val_y, 0, num_classes - 1), in_val, learned, ridges)
    ridge = ridges[jnp.argmin(errors)]
    head = class_stats.ridge_solve(gram, class_sums, ridge)
    extras = dict(e, gram=gram, class_sums=class_sums, head=head, learned=learned,
                  ridge=ridge)
    return state.replace(extras=extras), {'ridge': ridge, 'val_mse': jnp.min(errors)}

  def eval_logits(params, extras, image_z, class_text, class_mask):
    del params
    scores = class_stats.random_features(image_z, extras['projection']) @ extras['head']
    logits, _ = _fallback_logits(image_z, class_text, extras['learned'], scores)
    return jnp.where(class_mask, logits, losses.NEG_INF)

  def memory_bytes(state):
    learned = int(np.sum(parallel.to_host(state.extras['learned'])))
    return 4 * width * width + (4 * width + 1) * learned if learned else 0

  return Method(name='ranpac', trains=False, init_state=init_state, consolidate=consolidate,
                consolidate_name='closed-form head', eval_logits=eval_logits, kinds=KINDS,
                refusal=REFUSAL, memory_bytes=memory_bytes)
