"""What a continual-learning method is, to the engine in ``autoseed_jax.continual``.

Every method shares the engine's loop (begin task → online adaptation in jitted scans →
consolidation → evaluation), the frozen backbone's cached embeddings, the adapters and
the metrics. A method only says what differs:

* ``init_state(key) -> dict``: its own entries of the ``ContinualState`` (the seed
  memory and generator of Auto-Seed VL2, a replay buffer or Fisher in ``extras``...);
* ``extra_loss(params, state, x, y, key) -> (scalar, terms)``: added to the task loss at
  every online-adaptation step (replay, consistency, distillation, penalties);
* ``begin_task(state, task) -> state``: runs when a task begins, after the engine has
  added its classes to the bank and before online adaptation (statistics of the task's
  own training rows that ``extra_loss`` reads, e.g. FeTrIL's new-class means); compiled
  with the engine's begin step;
* ``consolidate(state, task, *, axis_name=None) -> (state, info)``: runs once after
  online adaptation (seed update, buffer insertion, Fisher estimation), compiled like
  the adaptation steps (``axis_name`` is ``'data'`` under pmap, else None; a method may
  ignore it and compute replicated);
* ``constants(key, θ) -> pytree``: arrays ``consolidate`` needs that depend only on the
  run key and θ's shapes (Auto-Seed's sketch matrix R). The engine computes them once
  per run key, keeps them out of the (checkpointed) state and passes them to
  ``consolidate`` as ``constants=``; a resumed run recomputes the same values;
* ``eval_logits(params, extras, image_z, class_text, class_mask) -> [N, C]``: replaces
  the engine's evaluation logits (hypernetwork CL's task inference over stored task
  models);
* ``memory_bytes(state) -> int``: bytes held in its replay memory.

Task kinds (``autoseed_jax.core.task_kinds``, docs/VL_TASKS.md): ``kinds`` lists the kinds a
method runs; on a stream with another kind the engine refuses it (``MethodRefused``, a
ValueError naming the kind and ``refusal``, the reason). On a vision-language stream the
engine calls ``extra_loss(..., text=[B, d])`` with the batch's paired text embeddings and
``y`` holds labels of the task's kind (bank ids, or image ids for retrieval/captioning).

Methods whose trained parameters θ are not the adapters set the parameter hooks:

* ``init_params(key, adapter_variables) -> θ``: θ at initialisation (the engine's
  optimiser trains this pytree); default: the adapter variables themselves;
* ``adapter_params(θ) -> adapter variables``: where the engine embeds through the
  adapters (training loss, evaluation), it uses these (a hypernetwork's output);
* ``embed(θ, image_z=None, text_z=None) -> (image emb [N, d] or None, class emb [C, d] or
  None, logit scale)``: replaces the adapter path altogether where the engine embeds
  (prompt learning: class embeddings computed by the frozen text tower from learned
  prompts; ``text_z`` is then the engine's [C, d] class bank, all C classes in id order).

``Context`` holds what every method needs to compute losses: the config, the adapter
module, the stream's sizes and class names, with the common loss helpers as methods.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections

from autoseed_jax.core import losses
from autoseed_jax.core.adapters import VLAdapter, adapted
from autoseed_jax.core.parallel import Parallelism
from autoseed_jax.core.task_kinds import KINDS


class MethodRefused(ValueError):
  """The method cannot run a task kind of the stream (the message names kind and reason).

  Attributes: kind (the task kind), reason (``Method.refusal``).
  """

  def __init__(self, message: str, *, kind: str = '', reason: str = ''):
    super().__init__(message)
    self.kind, self.reason = kind, reason


@dataclasses.dataclass(frozen=True)
class Context:
  """The static pieces shared by the engine and a method (built once per run)."""

  config: ml_collections.ConfigDict
  adapter: VLAdapter
  num_classes: int
  dim: int
  num_tasks: int
  parallelism: Parallelism
  class_names: tuple[str, ...] = ()
  train_rows: int = 0  # N, the padded training rows of every task of the stream
  vl: Any = None  # task_kinds.VLInfo of a vision-language stream, else None

  def embed(self, params, image_z=None, text_z=None):
    """(h_I(image_z) or None, h_T(text_z) or None, logit_scale) under ``params``."""
    return adapted(self.adapter, params, image_z, text_z)

  def weighted_task_loss(self, params, bank, seen, x, y, weights, normalizer=None):
    """L_task with per-example weights [N] (class or validity masks); scalar.

    Divides by ``normalizer`` when given (a device's share of a loss whose weights are
    spread over devices), else by the sum of ``weights``.
    """
    img, class_emb, scale = self.embed(params, x, bank)
    logits = losses.class_logits(img, class_emb, scale, seen)
    ce = -jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=-1)[:, 0]
    total = jnp.sum(weights) if normalizer is None else normalizer
    return jnp.sum(ce * weights) / jnp.maximum(total, 1.0)


@dataclasses.dataclass(frozen=True)
class Method:
  """A continual-learning method as hooks into the shared engine (see module doc)."""

  name: str
  trains: bool = True
  init_state: Callable[[jax.Array], dict] = lambda key: {}
  extra_loss: Callable | None = None
  begin_task: Callable | None = None
  consolidate: Callable | None = None
  consolidate_name: str = 'consolidate'
  constants: Callable | None = None
  memory_bytes: Callable[[Any], int] = lambda state: 0
  init_params: Callable | None = None
  adapter_params: Callable | None = None
  embed: Callable | None = None
  eval_logits: Callable | None = None
  kinds: tuple[str, ...] = ('classification',)
  refusal: str = 'it was written for class-incremental classification only'


def check_kinds(method: Method, vl) -> None:
  """Raises MethodRefused when the stream (``vl``: its ``VLInfo``, None for a
  classification stream) has a task kind ``method`` does not run."""
  if vl is None:
    return
  for name, kind in zip(vl.task_names, vl.kinds):
    if kind not in method.kinds:
      raise MethodRefused(f'method {method.name!r} cannot run task kind {kind!r} (task '
                          f'{name!r}): {method.refusal}.', kind=kind, reason=method.refusal)


def finetune(context: Context) -> Method:
  """Sequential fine-tuning: online adaptation on each task's data only (lower bound)."""
  del context
  return Method(name='finetune', kinds=KINDS)


def zeroshot(context: Context) -> Method:
  """The frozen backbone (Continual-CLIP): adapters stay at their identity init."""
  del context
  return Method(name='zeroshot', trains=False, kinds=KINDS)
