"""Hypernetwork continual learning (von Oswald et al. 2020) on the adapters (METHOD §7).

The adapter parameters are not trained directly: a task-conditioned, chunked hypernetwork
produces them,

    θ(e) = unflatten(b + H_Θ(e)),   H_Θ(e) = concat_i MLP_Θ([e ; c_i])[:P],

where e ∈ R^E is a learned task embedding, c_i ∈ R^Ec a learned embedding of output chunk
i (``hnet_chunk_size`` numbers per chunk, P = the adapters' parameter count), b ∈ R^P a
learned base (initialised to the engine's adapter initialisation) and the MLP's last layer
starts at zero, so the initial model is exactly the zero-shot backbone, as for every other
method. What the engine optimises (``state.params``) is therefore
``{'hypernet': Θ's MLP and chunk embeddings, 'base': b, 'task_embedding': e}``, e being the
current task's embedding.

Output regulariser: after task t (``consolidate``) its embedding e_t is stored and the
targets h*_t' = b + H_Θ(e_t') of every stored embedding are recomputed with the current
parameters; while learning task t+1 every step adds

    β / T_prev · Σ_{t' ≤ t} ‖b + H_Θ(e_t') − h*_t'‖²,

so the adapters of earlier tasks stay what they were (the optional look-ahead term of the
paper is not used). The stored embeddings are fixed; ``extras`` holds
``{'embeddings': [T, E], 'targets': [T, P], 'stored': [T] bool, 'classes': [T, C] bool}``
(``classes``: each task's own classes, for task inference).

Vision-language streams: the engine's task loss of each kind trains θ(e) (nothing here
depends on the kind); the evaluation uses the latest adapters ('latest'), since 'entropy'
task inference needs class predictions.

Task embeddings: a new task starts from the previous task's embedding (its adapters start
where the last task's ended, like every other method's), then e and Θ are trained on it.

Class-incremental evaluation (``hnet_task_inference``): the task id of a test input is
unknown. ``'latest'`` evaluates θ(e_t), the latest task's adapters, on every input (the
engine evaluates ``state.params``). ``'entropy'`` is the paper's HNET+ENT: each input is
classified by every stored task's adapters over that task's own classes, and the task with
the least predictive entropy gives the prediction (``eval_logits``). Classes of tasks not
yet learned are then never predicted, so R[i, j] = 0 for j > i and FWT is negative.

Engine hooks: the engine calls ``method.init_params(key, adapter_variables) -> θ`` once at
initialisation and maps θ to adapter variables with ``method.adapter_params(θ)`` wherever
it embeds (training loss and evaluation). Task inference needs one more: the evaluation
logits from ``method.eval_logits(θ, extras, image_z [B, d], class_text [C, d], label_mask
[C]) -> [B, C]``.
"""

from __future__ import annotations


import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from autoseed_jax.core import task_kinds
from autoseed_jax.core.adapters import adapted, init_adapter
from autoseed_jax.core.losses import class_logits
from autoseed_jax.core.config_checks import check_fields
from autoseed_jax.methods.base import Context, Method

# Tag folded into the run key for the hypernetwork's initialisation.
_HNET_INIT_TAG = 25

TASK_INFERENCE = ('latest', 'entropy')


def defaults() -> dict:
  """Hypernetwork-CL hyperparameters and their defaults (config fields of the same names)."""
  return dict(
      hnet_embedding_dim=32,        # E, task embedding size
      hnet_chunk_dim=32,            # Ec, chunk embedding size
      hnet_chunk_size=1024,         # adapter parameters produced per chunk
      hnet_hidden=64,               # hidden width of the hypernetwork MLP
      hnet_layers=2,                # hidden layers of the hypernetwork MLP
      hnet_reg_weight=1.0,          # β of the output regulariser
      hnet_embedding_init=0.1,      # std of the first task embedding's initialisation
      hnet_task_inference='latest',  # evaluation: 'latest' task embedding or 'entropy'
  )


def settings(config) -> dict:
  """``defaults()`` overridden by the fields present in ``config``."""
  return {name: config.get(name, value) for name, value in defaults().items()}


def validate(config) -> None:
  """Raises ValueError naming a hypernetwork-CL field that cannot run."""
  s = settings(config)
  check_fields(s, (
      ('hnet_embedding_dim', '> 0', 'E, task embedding size'),
      ('hnet_chunk_dim', '> 0', 'Ec, chunk embedding size'),
      ('hnet_chunk_size', '> 0', 'adapter parameters produced per chunk'),
      ('hnet_hidden', '> 0', 'hidden width of the hypernetwork MLP'),
      ('hnet_layers', '> 0', 'hidden layers of the hypernetwork MLP'),
      ('hnet_reg_weight', '>= 0', 'β of the output regulariser'),
      ('hnet_embedding_init', '>= 0', 'std of the first task embedding')))
  if s['hnet_task_inference'] not in TASK_INFERENCE:
    raise ValueError(f"invalid config: hnet_task_inference={s['hnet_task_inference']!r}; "
                     f'choose one of {TASK_INFERENCE}.')


class ChunkedHypernetwork(nn.Module):
  """e [E] -> [num_outputs]: one shared MLP maps [e ; c_i] to chunk i of the output."""

  num_outputs: int
  chunk_size: int
  chunk_dim: int
  hidden_dim: int
  num_layers: int

  @nn.compact
  def __call__(self, task_embedding: jax.Array) -> jax.Array:
    num_chunks = -(-self.num_outputs // self.chunk_size)
    chunks = self.param('chunk_embeddings', nn.initializers.normal(1.0),
                        (num_chunks, self.chunk_dim))
    e = jnp.broadcast_to(task_embedding, (num_chunks, task_embedding.shape[-1]))
    h = jnp.concatenate([e, chunks], axis=-1)
    for i in range(self.num_layers):
      h = nn.relu(nn.Dense(self.hidden_dim, name=f'hidden_{i}')(h))
    out = nn.Dense(self.chunk_size, kernel_init=nn.initializers.zeros, name='out')(h)
    return out.reshape(-1)[:self.num_outputs]


def output_regulariser(outputs_fn, params, embeddings, targets, stored) -> jax.Array:
  """Σ over stored t' of ‖outputs(e_t') − h*_t'‖², divided by the number stored (0 if none).

  Args:
    outputs_fn: ``(params, e [E]) -> [P]`` the full hypernetwork output b + H_Θ(e).
    embeddings: [T, E]; targets: [T, P]; stored: [T] bool.
  """
  outputs = jax.vmap(outputs_fn, in_axes=(None, 0))(params, embeddings)
  sq = jnp.sum((outputs - targets) ** 2, axis=-1)
  return jnp.sum(jnp.where(stored, sq, 0.0)) / jnp.maximum(jnp.sum(stored), 1)


def hnet(context: Context) -> Method:
  """Builds the hypernetwork-CL hooks for ``context.config`` (see module doc)."""
  validate(context.config)
  s = settings(context.config)
  template = init_adapter(context.adapter, jax.random.PRNGKey(0), context.dim)
  flat_template, unflatten = ravel_pytree(template)
  num_outputs = flat_template.shape[0]
  network = ChunkedHypernetwork(num_outputs=num_outputs, chunk_size=s['hnet_chunk_size'],
                                chunk_dim=s['hnet_chunk_dim'], hidden_dim=s['hnet_hidden'],
                                num_layers=s['hnet_layers'])
  emb_dim, num_tasks = s['hnet_embedding_dim'], context.num_tasks

  def outputs(params, task_embedding):
    """b + H_Θ(e): [P] flat adapter parameters for one task embedding."""
    return params['base'] + network.apply(params['hypernet'], task_embedding)

  def adapter_params(params):
    """θ(e) for the current task embedding, as the engine's adapter variables."""
    return unflatten(outputs(params, params['task_embedding']))

  def init_params(key, adapter_variables):
    k_net, k_emb = jax.random.split(jax.random.fold_in(key, _HNET_INIT_TAG))
    return {'hypernet': network.init(k_net, jnp.zeros((emb_dim,), jnp.float32)),
            'base': ravel_pytree(adapter_variables)[0],
            'task_embedding': s['hnet_embedding_init'] * jax.random.normal(k_emb, (emb_dim,))}

  def init_state(key):
    del key
    return {'extras': {'embeddings': jnp.zeros((num_tasks, emb_dim), jnp.float32),
                       'targets': jnp.zeros((num_tasks, num_outputs), jnp.float32),
                       'stored': jnp.zeros((num_tasks,), bool),
                       'classes': jnp.zeros((num_tasks, context.num_classes), bool)}}

  def task_logits(params, task_embedding, image_z, class_text, class_mask):
    """[B, C] logits of the adapters θ(e) generated for ``task_embedding``."""
    variables = unflatten(outputs(params, task_embedding))
    img, class_emb, scale = adapted(context.adapter, variables, image_z, class_text)
    return class_logits(img, class_emb, scale, class_mask)

  def entropy_task_inference(params, extras, image_z, class_text, label_mask):
    """[B, C] logits of HNET+ENT: per input, the stored task whose adapters give the least
    entropy over that task's own classes, and its logits over those classes. Before any
    task is stored: the current embedding's logits over ``label_mask``.

    image_z: [B, d] frozen image embeddings; class_text: [C, d]; label_mask: [C] bool.
    """

    def one_task(task_embedding, classes):
      logits = task_logits(params, task_embedding, image_z, class_text, label_mask & classes)
      log_p = jax.nn.log_softmax(logits, axis=-1)
      return logits, -jnp.sum(jnp.exp(log_p) * log_p, axis=-1)

    logits, entropy = jax.vmap(one_task)(extras['embeddings'], extras['classes'])
    entropy = jnp.where(extras['stored'][:, None], entropy, jnp.inf)  # [T, B]
    best = jnp.argmin(entropy, axis=0)
    chosen = jnp.take_along_axis(logits, best[None, :, None], axis=0)[0]
    latest = task_logits(params, params['task_embedding'], image_z, class_text, label_mask)
    return jnp.where(jnp.any(extras['stored']), chosen, latest)

  def extra_loss(params, state, x, y, key, text=None):
    del x, y, key, text
    ex = state.extras
    reg = output_regulariser(outputs, params, ex['embeddings'], ex['targets'], ex['stored'])
    return s['hnet_reg_weight'] * reg, {'output_reg': reg}

  def consolidate(state, task, *, axis_name=None):
    """Stores e_t and recomputes every stored embedding's target with the current Θ."""
    del axis_name  # computed replicated (under pmap every device holds the whole task)
    ex = state.extras
    embeddings = ex['embeddings'].at[task.index].set(state.params['task_embedding'])
    stored = ex['stored'].at[task.index].set(True)
    classes = ex['classes'].at[task.index].set(state.seen & ~state.prev_seen)
    targets = jax.vmap(outputs, in_axes=(None, 0))(state.params, embeddings)
    targets = jnp.where(stored[:, None], targets, 0.0)
    return state.replace(extras={'embeddings': embeddings, 'targets': targets,
                                 'stored': stored, 'classes': classes}), {
                                     'tasks_stored': jnp.sum(stored)}

  return Method(
      name='hnet', init_state=init_state, extra_loss=extra_loss, consolidate=consolidate,
      init_params=init_params, adapter_params=adapter_params,
      eval_logits=(entropy_task_inference if s['hnet_task_inference'] == 'entropy'
                   else None),
      kinds=task_kinds.KINDS if s['hnet_task_inference'] == 'latest' else ('classification',),
      refusal='its entropy task inference needs class predictions; use '
              'hnet_task_inference=\'latest\'')
