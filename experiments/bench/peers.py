"""The ER-VLM baseline three ways: our engine, a plain PyTorch loop and Avalanche's
``Replay`` (``peer_loops``), repeats interleaved, ratios from one run."""

from __future__ import annotations

import importlib.util
import math
import time

import jax
import numpy as np

from autoseed_jax import continual
from autoseed_jax.streams.synthetic import make_synthetic_stream
from experiments.bench.common import learn_task_timed, make_config, Preset, xla_flops
from experiments.bench.machine import MatmulProbe


def peers_unavailable() -> str | None:
  """Why the peers comparison cannot run here (None when it can)."""
  missing = [m for m in ('torch', 'avalanche') if importlib.util.find_spec(m) is None]
  if missing:
    return (f'{" and ".join(missing)} not installed; the peers comparison is an optional '
            'extra: pip install -r requirements-bench.txt')
  return None


def load_peer_stream(name: str, preset: Preset):
  if name == 'synthetic':
    return make_synthetic_stream(num_tasks=preset.num_tasks, classes_per_task=2,
                                 dim=preset.dim, train_per_class=max(preset.train_per_class, 64),
                                 test_per_class=preset.test_per_class, seed=0)
  from autoseed_jax.streams import get_stream  # pylint: disable=import-outside-toplevel
  return get_stream(name)


def peer_config(preset: Preset, steps: int, memory_examples: int):
  """ER-VLM in our engine with the comparison's settings."""
  return make_config(preset, method='er', batch_size=128, steps_per_task=steps,
                     steps_per_chunk=steps, reset_optimizer=False, er_batch_size=128,
                     er_memory_examples=memory_examples, er_weight=1.0)


def run_ours(learner, stream, seed: int) -> dict:
  """The ER-VLM run in our engine, timed like the peers (training per task, buffer
  insertion included; evaluation excluded)."""
  test = learner.put_test(stream.test)
  state = learner.init(jax.random.PRNGKey(seed), test)
  epoch_seconds = []
  for task in stream.tasks:
    state, times = learn_task_timed(learner, state, learner.put_task(task), test)
    epoch_seconds.append(times['adapt_s'] + times['consolidate_s'])
  accs = np.asarray(state.acc_matrix)[-1]
  return {'epoch_seconds': epoch_seconds,
          'steps_per_epoch': [learner.steps_per_task] * stream.num_tasks,
          'final_task_acc': accs.tolist(), 'final_avg_acc': float(accs.mean())}


def engine_initial_adapter(learner, stream, seed: int) -> dict:
  """The engine's initial adapter weights for run seed ``seed``, flat names -> arrays."""
  init = learner.init(jax.random.PRNGKey(seed), learner.put_test(stream.test)).params['params']
  flat = {f'{tower}/{layer}/{name}': np.asarray(init[tower][layer][name])
          for tower in ('image_adapter', 'text_adapter') for layer in ('fc1', 'fc2')
          for name in ('kernel', 'bias')}
  flat['log_logit_scale'] = np.asarray(init['log_logit_scale'])
  return flat


def adapt_flops_per_step(learner, stream, steps: int) -> tuple[float | None, str]:
  """FLOPs of one online-adaptation step of ``learner`` by XLA's cost analysis."""
  test = learner.put_test(stream.test)
  task = learner.put_task(stream.tasks[0])
  state = learner.begin_task(learner.init(jax.random.PRNGKey(0), test), task)
  chunk = xla_flops(learner.adapt.lower(state, task, steps).compile())
  one = xla_flops(learner.adapt.lower(state, task, 1).compile())
  if chunk is None or one is None:
    return None, 'unavailable'
  if chunk < 1.5 * one:
    return chunk, 'xla_cost_analysis (loop body counted once)'
  return chunk / steps, 'xla_cost_analysis (per step)'


def peers_section(preset: Preset, stream_name: str | None, repeats: int | None,
                  probe: MatmulProbe) -> dict:
  """Our engine vs a plain PyTorch loop vs Avalanche's Replay on ER-VLM (module doc of
  ``experiments/peer_loops.py``). The torch-based ones run at torch's default thread
  count and at one thread (on a shared machine the default can be much slower); each
  repeat runs every implementation once, in a rotated order, with the repeat's seed."""
  reason = peers_unavailable()
  if reason is not None:
    return {'skipped': reason}
  from experiments.bench import peer_loops  # pylint: disable=import-outside-toplevel

  stream = load_peer_stream(stream_name or preset.peer_stream, preset)
  repeats = repeats or preset.peer_repeats
  counts = [int(t.train_count) for t in stream.tasks]
  batch_size, memory_examples = 128, 500
  steps = math.ceil(max(counts) / batch_size)  # one epoch of the largest task
  config = peer_config(preset, steps, memory_examples)
  learner = continual.build_learner(config, stream)

  def peer_data(seed):
    return peer_loops.PeerData(
        train=[(np.asarray(t.train_x)[:n], np.asarray(t.train_y)[:n].astype(np.int64))
               for t, n in zip(stream.tasks, counts)],
        test=[(np.asarray(stream.test.x[j])[:int(stream.test.count[j])],
               np.asarray(stream.test.y[j])[:int(stream.test.count[j])].astype(np.int64))
              for j in range(stream.num_tasks)],
        class_text=np.asarray(stream.test.class_text, np.float32),
        task_classes=[stream.task_classes(t) for t in range(stream.num_tasks)],
        init_params=engine_initial_adapter(learner, stream, seed))

  def peer_settings(seed):
    return peer_loops.PeerSettings(
        hidden=config.adapter_hidden, alpha=config.adapter_alpha,
        learning_rate=config.learning_rate, weight_decay=config.weight_decay,
        batch_size=batch_size, replay_batch_size=config.er_batch_size,
        memory_examples=memory_examples, steps_per_task=steps, seed=seed)

  default_threads = peer_loops.default_threads()
  thread_counts = sorted({default_threads, 1}, reverse=True)
  runners = {'ours': lambda seed: run_ours(learner, stream, seed)}
  for impl, fn in (('torch', peer_loops.run_plain_torch),
                   ('avalanche', peer_loops.run_avalanche)):
    for threads in thread_counts:

      def runner(seed, fn=fn, threads=threads):
        with peer_loops.torch_threads(threads):
          return fn(peer_data(seed), peer_settings(seed))

      runners[f'{impl}@{threads}t'] = runner

  start = time.perf_counter()
  run_ours(learner, stream, 0)  # compiles our step functions (not timed)
  compile_s = time.perf_counter() - start
  flops_step, flops_source = adapt_flops_per_step(learner, stream, steps)
  names = list(runners)
  runs = {name: [] for name in names}
  first_probe = len(probe.rates)
  order_log = []
  for r in range(repeats):
    order = names[r % len(names):] + names[:r % len(names)]  # interleaved, rotated
    order_log.append(order)
    for name in order:
      probe.measure()
      runs[name].append(runners[name](r))
  matmul_rate = probe.median(since=first_probe)

  summary = {}
  for name, results in runs.items():
    # Tasks 2..T: replay is active in every implementation.
    epochs = [s for res in results for s in res['epoch_seconds'][1:]]
    accs = [res['final_avg_acc'] for res in results]
    epoch_s = float(np.median(epochs))
    summary[name] = {
        'epoch_s_median': epoch_s, 'epoch_s_all': [res['epoch_seconds'] for res in results],
        'steps_per_epoch': results[0]['steps_per_epoch'],
        'flops_per_s': flops_step * steps / epoch_s if flops_step else None,
        'fraction_of_matmul': flops_step * steps / epoch_s / matmul_rate if flops_step else None,
        'final_avg_acc_mean': float(np.mean(accs)), 'final_avg_acc_std': float(np.std(accs)),
        'final_avg_acc_runs': accs}
  ours = summary['ours']['epoch_s_median']

  def speedups(impl):
    times = {t: summary[f'{impl}@{t}t']['epoch_s_median'] / ours for t in thread_counts}
    return {'best_threads': min(times, key=times.get), 'vs_best': min(times.values()),
            'vs_default_threads': times[default_threads],
            'per_threads': {str(t): v for t, v in times.items()}}

  return {
      'stream': stream.name, 'num_tasks': stream.num_tasks, 'dim': stream.dim,
      'train_rows_per_task': counts, 'batch_size': batch_size,
      'replay_batch_size': int(config.er_batch_size), 'memory_examples': memory_examples,
      'steps_per_epoch': steps, 'repeats': repeats, 'order': order_log,
      'our_compile_s': compile_s, 'versions': peer_loops.describe(),
      'flops_per_step': flops_step, 'flops_source': flops_source,
      'matmul_flops_per_s_interleaved': matmul_rate,
      'implementations': summary,
      'speedup_vs_torch': speedups('torch'), 'speedup_vs_avalanche': speedups('avalanche'),
      'targets': {'vs_torch': 3.0, 'vs_avalanche': 10.0},
      'timing': 'median seconds per epoch (= per task, one epoch each) over tasks 2..T and '
                'all repeats; training and buffer insertion, evaluation excluded',
  }
