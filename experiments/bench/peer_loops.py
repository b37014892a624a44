"""The ER-VLM baseline in PyTorch, twice: a plain training loop and Avalanche's ``Replay``.

Imported by ``experiments/bench.py`` only when the optional extra is installed
(``pip install -r requirements-bench.txt``: torch, torchvision, avalanche-lib); the
project itself never imports torch.

Both implementations train exactly what ``autoseed_jax.methods.er`` trains in our engine,
on the same cached embeddings:

* model: residual MLP adapters ``h(z) = normalize(z + α · fc2(relu(fc1(z))))`` on the
  frozen image embeddings and on the frozen class text embeddings, and a learnable
  temperature; logits ``exp(log τ) · h_I(x) · h_T(e_c)`` over the classes seen so far
  (the others masked to -1e9, as ``autoseed_jax.core.losses.class_logits`` does);
* initial weights: copied from our engine's initial adapter (``init_params``), so all
  three implementations start from the same point;
* loss: cross-entropy over the seen classes on a batch of the current task plus
  cross-entropy on a batch of the replay buffer; AdamW, optimiser state kept across
  tasks;
* buffer: real embeddings of earlier tasks, filled after each task.

Differences that stay: the plain loop and our engine use a reservoir buffer (Algorithm R)
and add the two losses; Avalanche's ``Replay`` uses its own experience-balanced buffer
and averages the loss over the concatenated batch (current + memory rows), and draws
batches by shuffled epochs (our engine draws them with replacement).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# Masked logits, as autoseed_jax.core.losses.NEG_INF.
NEG_INF = -1e9


@dataclasses.dataclass(frozen=True)
class PeerData:
  """One class-incremental stream as host arrays (the stream's cached embeddings).

  Attributes:
    train: per task, (x [n_t, d] float32, y [n_t] int64) training rows (D_val excluded).
    test: per task, (x [m_t, d] float32, y [m_t] int64).
    class_text: [C, d] float32 frozen class text embeddings.
    task_classes: per task, its class ids in order of appearance.
    init_params: the engine's initial adapter weights, flat names -> arrays
      ('image_adapter/fc1/kernel' [d, h], ... 'log_logit_scale' []).
  """

  train: list
  test: list
  class_text: np.ndarray
  task_classes: list
  init_params: dict


@dataclasses.dataclass(frozen=True)
class PeerSettings:
  """Hyperparameters shared by every implementation of the comparison."""

  hidden: int
  alpha: float
  learning_rate: float
  weight_decay: float
  batch_size: int
  replay_batch_size: int
  memory_examples: int
  steps_per_task: int
  seed: int = 0


class ResidualAdapter(nn.Module):
  """z [..., d] -> normalize(z + alpha * fc2(relu(fc1(z))))."""

  def __init__(self, dim: int, hidden: int, alpha: float):
    super().__init__()
    self.fc1 = nn.Linear(dim, hidden)
    self.fc2 = nn.Linear(hidden, dim)
    self.alpha = alpha

  def forward(self, z):
    return F.normalize(z + self.alpha * self.fc2(F.relu(self.fc1(z))), dim=-1)


class AdapterClassifier(nn.Module):
  """Image/text adapters + temperature over a frozen class bank; logits over seen classes."""

  def __init__(self, class_text: np.ndarray, hidden: int, alpha: float):
    super().__init__()
    dim = class_text.shape[1]
    self.image_adapter = ResidualAdapter(dim, hidden, alpha)
    self.text_adapter = ResidualAdapter(dim, hidden, alpha)
    self.log_logit_scale = nn.Parameter(torch.zeros(()))
    self.register_buffer('class_text', torch.from_numpy(np.asarray(class_text, np.float32)))
    self.register_buffer('seen', torch.zeros(class_text.shape[0], dtype=torch.bool))

  def load_engine_params(self, flat: dict) -> None:
    """Copies the engine's initial weights (Flax kernels [in, out] -> torch [out, in])."""
    with torch.no_grad():
      for tower in ('image_adapter', 'text_adapter'):
        module = getattr(self, tower)
        for layer in ('fc1', 'fc2'):
          linear = getattr(module, layer)
          linear.weight.copy_(torch.tensor(np.asarray(flat[f'{tower}/{layer}/kernel']).T))
          linear.bias.copy_(torch.tensor(np.asarray(flat[f'{tower}/{layer}/bias'])))
      self.log_logit_scale.copy_(torch.tensor(float(flat['log_logit_scale'])))

  def add_classes(self, classes) -> None:
    self.seen[torch.as_tensor(list(classes), dtype=torch.long)] = True

  def forward(self, x):
    img = self.image_adapter(x)
    txt = self.text_adapter(self.class_text)
    logits = self.log_logit_scale.exp() * img @ txt.T
    return logits.masked_fill(~self.seen, NEG_INF)


def make_model(data: PeerData, settings: PeerSettings) -> AdapterClassifier:
  model = AdapterClassifier(data.class_text, settings.hidden, settings.alpha)
  model.load_engine_params(data.init_params)
  return model


def make_optimizer(model: nn.Module, settings: PeerSettings) -> torch.optim.Optimizer:
  return torch.optim.AdamW(model.parameters(), lr=settings.learning_rate,
                           weight_decay=settings.weight_decay)


@torch.no_grad()
def final_accuracies(model: AdapterClassifier, data: PeerData) -> list[float]:
  """Accuracy (percent) on every task's test set over the classes seen so far."""
  model.eval()
  accs = []
  for x, y in data.test:
    pred = model(torch.from_numpy(x)).argmax(dim=-1).numpy()
    accs.append(100.0 * float(np.mean(pred == y)))
  model.train()
  return accs


class ReservoirBuffer:
  """Algorithm R over the whole stream: a uniform sample of everything offered so far."""

  def __init__(self, capacity: int, dim: int, rng: np.random.Generator):
    self.x = np.zeros((capacity, dim), np.float32)
    self.y = np.zeros((capacity,), np.int64)
    self.size = 0
    self.offered = 0
    self.rng = rng

  def insert(self, x: np.ndarray, y: np.ndarray) -> None:
    capacity = self.x.shape[0]
    for row in range(x.shape[0]):
      slot = self.offered if self.offered < capacity else self.rng.integers(0, self.offered + 1)
      if slot < capacity:
        self.x[slot], self.y[slot] = x[row], y[row]
      self.offered += 1
    self.size = min(self.offered, capacity)

  def sample(self, batch_size: int):
    idx = self.rng.integers(0, self.size, batch_size)
    return torch.from_numpy(self.x[idx]), torch.from_numpy(self.y[idx])


def run_plain_torch(data: PeerData, settings: PeerSettings) -> dict:
  """A plain PyTorch loop: per task, ``steps_per_task`` shuffled minibatches plus a replay
  batch from the reservoir; then the task is offered to the reservoir.

  Returns {'epoch_seconds': [T] training seconds per task (buffer insertion included),
  'steps_per_epoch': [T], 'final_task_acc': [T] percent, 'final_avg_acc': percent}.
  """
  torch.manual_seed(settings.seed)
  rng = np.random.default_rng(settings.seed)
  model = make_model(data, settings)
  optimizer = make_optimizer(model, settings)
  buffer = ReservoirBuffer(settings.memory_examples, data.class_text.shape[1], rng)
  epoch_seconds, steps_done = [], []
  for (x, y), classes in zip(data.train, data.task_classes):
    start = time.perf_counter()
    model.add_classes(classes)
    x_t, y_t = torch.from_numpy(x), torch.from_numpy(y)
    batches = torch.randperm(x_t.shape[0]).split(settings.batch_size)
    steps = 0
    for step in range(settings.steps_per_task):
      rows = batches[step % len(batches)]
      loss = F.cross_entropy(model(x_t[rows]), y_t[rows])
      if buffer.size:
        bx, by = buffer.sample(settings.replay_batch_size)
        loss = loss + F.cross_entropy(model(bx), by)
      optimizer.zero_grad(set_to_none=True)
      loss.backward()
      optimizer.step()
      steps += 1
    buffer.insert(x, y)
    epoch_seconds.append(time.perf_counter() - start)
    steps_done.append(steps)
  accs = final_accuracies(model, data)
  return {'epoch_seconds': epoch_seconds, 'steps_per_epoch': steps_done,
          'final_task_acc': accs, 'final_avg_acc': float(np.mean(accs))}


def run_avalanche(data: PeerData, settings: PeerSettings) -> dict:
  """Avalanche's ``Replay`` strategy on ``class_incremental_benchmark`` of the same rows:
  one epoch per experience at ``train_mb_size = batch_size`` (memory batches of the same
  size), accuracy metrics on, loggers off. Same return value as ``run_plain_torch``
  (``epoch_seconds``: ``strategy.train(experience)``, buffer update included).
  """
  # Imported here: avalanche is slow to import and only this function needs it.
  from avalanche.benchmarks.scenarios.supervised import class_incremental_benchmark
  from avalanche.evaluation.metrics import accuracy_metrics
  from avalanche.training import Replay
  from avalanche.training.plugins import EvaluationPlugin, SupervisedPlugin

  class SeenClasses(SupervisedPlugin):
    """Adds an experience's classes to the model's label space before training on it."""

    def before_training_exp(self, strategy, **kwargs):
      strategy.model.add_classes(strategy.experience.classes_in_this_experience)

  class CountSteps(SupervisedPlugin):

    def __init__(self):
      super().__init__()
      self.steps = 0

    def after_training_iteration(self, strategy, **kwargs):
      self.steps += 1

  torch.manual_seed(settings.seed)
  train_x = np.concatenate([x for x, _ in data.train])
  train_y = np.concatenate([y for _, y in data.train])
  test_x = np.concatenate([x for x, _ in data.test])
  test_y = np.concatenate([y for _, y in data.test])
  benchmark = class_incremental_benchmark(
      {'train': torch.utils.data.TensorDataset(torch.from_numpy(train_x),
                                               torch.from_numpy(train_y)),
       'test': torch.utils.data.TensorDataset(torch.from_numpy(test_x),
                                              torch.from_numpy(test_y))},
      class_order=[int(c) for classes in data.task_classes for c in classes],
      num_classes_per_exp=[len(classes) for classes in data.task_classes])
  model = make_model(data, settings)
  counter = CountSteps()
  epoch_seconds, steps_done = [], []
  with warnings.catch_warnings():
    # avalanche 0.6 warns on every experience (its own deprecated buffer API, forced to
    # 'always' by its decorator, so filters do not reach it): drop the printing instead.
    warnings.showwarning = lambda *args, **kwargs: None
    strategy = Replay(
        model=model, optimizer=make_optimizer(model, settings),
        criterion=torch.nn.CrossEntropyLoss(), mem_size=settings.memory_examples,
        train_mb_size=settings.batch_size, train_epochs=1, eval_mb_size=1024, device='cpu',
        plugins=[SeenClasses(), counter],
        evaluator=EvaluationPlugin(accuracy_metrics(epoch=True), loggers=[]))
    for experience in benchmark.train_stream:
      before = counter.steps
      start = time.perf_counter()
      strategy.train(experience)
      epoch_seconds.append(time.perf_counter() - start)
      steps_done.append(counter.steps - before)
  accs = final_accuracies(model, data)
  return {'epoch_seconds': epoch_seconds, 'steps_per_epoch': steps_done,
          'final_task_acc': accs, 'final_avg_acc': float(np.mean(accs))}


def default_threads() -> int:
  """torch's intra-op thread count as configured at import (one per core by default)."""
  return torch.get_num_threads()


@contextlib.contextmanager
def torch_threads(count: int):
  """Runs the block with ``count`` intra-op threads, then restores the previous count."""
  previous = torch.get_num_threads()
  torch.set_num_threads(count)
  try:
    yield
  finally:
    torch.set_num_threads(previous)


def describe() -> dict:
  """Versions and threads of the torch side."""
  import avalanche  # pylint: disable=import-outside-toplevel
  return {'torch': torch.__version__, 'avalanche': avalanche.__version__,
          'torch_default_threads': torch.get_num_threads()}
