"""The baselines of METHOD §7 on the shared engine (synthetic stream, small configs).

Each baseline learns its current task; ER without memory is fine-tuning bit for bit; the
reservoir keeps a uniform sample; joint training is at least fine-tuning; EWC's Fisher and
penalty, LwF's distillation, the DGR VAE and the hypernetwork's output regulariser behave
as their definitions say; the replay and regularisation baselines forget less than
fine-tuning where that is expected.
"""

import dataclasses
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from autoseed_jax import continual
from autoseed_jax.core import parallel, tasks
from autoseed_jax.core.adapters import VLAdapter, adapted
from autoseed_jax.core.losses import class_logits
from autoseed_jax.methods import base
from autoseed_jax.methods.joint import rows_per_task
from autoseed_jax.methods.er import (bytes_matching_seed_memory, init_buffer, memory_examples,
                                     reservoir_insert, sample_buffer)
from autoseed_jax.methods.ewc import ewc, fisher_diagonal
from autoseed_jax.methods.hnet import hnet
from autoseed_jax.methods.lwf import lwf
from autoseed_jax.core.metrics import all_metrics
from autoseed_jax.models import image_encoder, lit
from autoseed_jax.tools.profiling import count_compilations
from autoseed_jax.streams.synthetic import make_synthetic_stream
from experiments.configs.common import method_config

STEPS = 100


@pytest.fixture(scope='module')
def stream():
  return make_synthetic_stream(num_tasks=4, classes_per_task=2, dim=64, train_per_class=120,
                               test_per_class=60, seed=1)


def small_config(method, stream, **overrides):
  c = method_config()
  c.method = method
  c.steps_per_task = STEPS
  c.steps_per_chunk = STEPS
  c.adapter_hidden = 64
  c.dgr_vae_steps = 200
  c.dgr_hidden = 128
  c.ewc_weight = 1e6  # softer than the default, so the last task is learned with margin
  for k, v in overrides.items():
    c[k] = v
  return c


def run(method, stream, log=None, **overrides):
  """Runs ``method`` task by task. The result also records ``later_compilations``, the
  XLA compilations while learning tasks 2..T (all shapes are fixed after task 1), and
  ``params_after[t]`` / ``extras_after[t]``, θ and the method's extras after task t."""
  config = small_config(method, stream, **overrides)
  learner = continual.build_learner(config, stream)
  test = learner.put_test(stream.test)
  state = learner.init(jax.random.PRNGKey(config.seed), test)
  state = learner.learn_task(state, learner.put_task(stream.tasks[0]), test=test, log=log)
  after = [parallel.to_host((state.params, state.extras))]
  with count_compilations() as later:
    for task in stream.tasks[1:]:
      state = learner.learn_task(state, learner.put_task(task), test=test, log=log)
      after.append(parallel.to_host((state.params, state.extras)))
  acc, initial = np.asarray(state.acc_matrix), np.asarray(state.initial_acc)
  return SimpleNamespace(state=state, acc_matrix=acc, initial_acc=initial,
                         metrics=all_metrics(acc, initial),
                         memory_bytes=learner.method.memory_bytes(state), learner=learner,
                         later_compilations=later.count,
                         params_after=[p for p, _ in after], extras_after=[e for _, e in after])


@pytest.fixture(scope='module')
def results(stream):
  """One run of every embedding-space baseline (and fine-tuning), with its logs."""
  out = {}
  for method in ('finetune', 'er', 'joint', 'lwf', 'ewc', 'dgr', 'hnet'):
    records = []
    out[method] = run(method, stream, log=records.append)
    out[method].records = records
  return out


def test_every_baseline_learns_its_current_task(results):
  for method, result in results.items():
    np.testing.assert_array_less(80.0, np.diag(result.acc_matrix), err_msg=method)


def test_replay_and_regularisation_forget_less_than_finetuning(results):
  ft = results['finetune'].metrics
  assert ft['forgetting'] > 80, ft  # fine-tuning really forgets on this stream
  for method in ('er', 'joint', 'dgr', 'ewc'):
    m = results[method].metrics
    assert m['forgetting'] < ft['forgetting'] - 30, (method, m, ft)
    assert m['final_avg_acc'] > ft['final_avg_acc'] + 25, (method, m, ft)


def test_joint_training_is_at_least_finetuning(results, stream):
  assert (results['joint'].metrics['final_avg_acc']
          >= results['finetune'].metrics['final_avg_acc'])
  counts = sum(int(t.train_count) for t in stream.tasks)
  extras = results['joint'].state.extras
  assert int(extras['count']) == counts
  # The buffer holds every task's real rows, in order.
  first = stream.tasks[0]
  np.testing.assert_array_equal(np.asarray(extras['x'][:int(first.train_count)]),
                                np.asarray(first.train_x[:int(first.train_count)]))
  assert results['joint'].memory_bytes == counts * (4 * stream.dim + 4)


def test_er_without_memory_is_finetuning_bit_for_bit(results, stream):
  ft = results['finetune']
  config = small_config('er', stream, er_memory_examples=0)
  assert memory_examples(config, stream.dim) == 0
  # A byte budget below one example (4 d + 4 bytes) is no memory either.
  r = run('er', stream, er_memory_bytes=4 * stream.dim + 3)
  np.testing.assert_array_equal(r.acc_matrix, ft.acc_matrix)
  jax.tree.map(np.testing.assert_array_equal, r.state.params, ft.state.params)
  assert r.memory_bytes == 0


def test_er_budget_in_bytes_and_memory_count(results, stream):
  config = small_config('er', stream, er_memory_bytes=10 * (4 * stream.dim + 4) + 5)
  assert memory_examples(config, stream.dim) == 10
  per_seed = 2 * 4 * stream.dim + 4 + 4 + 4 + 1  # v, w, label, task, score, valid
  config.memory_budget = 40
  assert bytes_matching_seed_memory(config, stream.dim, 10) == 400 * per_seed
  config.er_memory_bytes, config.er_memory_seed_multiple = 0, 10.0
  assert memory_examples(config, stream.dim) == 400 * per_seed // (4 * stream.dim + 4)
  config.er_memory_bytes = 1000
  with pytest.raises(ValueError, match='both set the ER budget'):
    memory_examples(config, stream.dim)
  r = results['er']
  buffer = r.state.extras
  assert int(np.sum(buffer['valid'])) == 100  # the default er_memory_examples
  assert r.memory_bytes == 100 * (4 * stream.dim + 4)
  labels = np.asarray(buffer['y'])[np.asarray(buffer['valid'])]
  assert set(labels.tolist()) == set(range(stream.num_classes))  # every class kept


def test_reservoir_keeps_a_uniform_sample_within_capacity():
  capacity, sizes, pad = 10, (7, 25, 18), 32  # three offers of a 50-example stream
  total = sum(sizes)

  def fill(key):
    buffer = init_buffer(capacity, 1)
    start = 0
    for i, n in enumerate(sizes):
      ids = jnp.arange(start, start + pad, dtype=jnp.float32)[:, None]
      buffer = reservoir_insert(buffer, ids, jnp.zeros((pad,), jnp.int32), jnp.int32(n),
                                   jax.random.fold_in(key, i))
      start += n
    return buffer

  trials = 4000
  buffers = jax.jit(jax.vmap(fill))(jax.random.split(jax.random.PRNGKey(0), trials))
  assert buffers['x'].shape == (trials, capacity, 1)
  np.testing.assert_array_equal(np.asarray(buffers['seen']), total)
  assert np.asarray(buffers['valid']).all()
  held = np.asarray(buffers['x'][..., 0]).astype(int)
  assert held.max() < total  # padding rows are never stored
  assert all(len(set(row)) == capacity for row in held)  # no example stored twice
  freq = np.bincount(held.ravel(), minlength=total) / trials
  expected = capacity / total
  sigma = np.sqrt(expected * (1 - expected) / trials)
  assert np.abs(freq - expected).max() < 5 * sigma, freq
  # Pearson chi-square of the inclusion counts against uniform (49 d.o.f.; p ~ 1e-4 at 90).
  counts = freq * trials
  assert np.sum((counts - expected * trials) ** 2 / (expected * trials)) < 90


def test_reservoir_stores_everything_until_full():
  buffer = init_buffer(8, 2)
  x = jnp.arange(12, dtype=jnp.float32).reshape(6, 2)
  buffer = jax.jit(reservoir_insert)(buffer, x, jnp.arange(6), jnp.int32(5),
                                     jax.random.PRNGKey(0))
  np.testing.assert_array_equal(np.asarray(buffer['valid']), [True] * 5 + [False] * 3)
  np.testing.assert_array_equal(np.asarray(buffer['x'][:5]), np.asarray(x[:5]))
  np.testing.assert_array_equal(np.asarray(buffer['y'][:5]), np.arange(5))
  bx, by, valid = sample_buffer(buffer, jax.random.PRNGKey(1), 64)
  assert np.asarray(valid).all() and set(np.asarray(by).tolist()) <= set(range(5))
  _, _, valid = sample_buffer(init_buffer(8, 2), jax.random.PRNGKey(1), 4)
  assert not np.asarray(valid).any()


def test_ewc_fisher_is_nonnegative_and_penalty_vanishes_at_the_anchor(results, stream):
  state = results['ewc'].state
  fisher = jax.tree.leaves(state.extras['fisher'])
  assert all(np.all(np.asarray(f) >= 0) for f in fisher)
  assert sum(float(np.sum(f)) for f in fisher) > 0
  method = ewc(engine_context(small_config('ewc', stream), stream))
  x = stream.tasks[0].train_x[:8]
  y = stream.tasks[0].train_y[:8]
  at_anchor, _ = method.extra_loss(state.extras['anchor'], state, x, y, jax.random.PRNGKey(0))
  assert float(at_anchor) == 0.0
  moved = jax.tree.map(lambda p: p + 0.01, state.extras['anchor'])
  away, _ = method.extra_loss(moved, state, x, y, jax.random.PRNGKey(0))
  assert float(away) > 0.0


def test_fisher_diagonal_matches_per_example_gradients():
  def loss(params, x, y):
    return jnp.sum((params['w'] @ x - y) ** 2) + params['b'] * y

  params = {'w': jnp.arange(6.0).reshape(2, 3) / 10, 'b': jnp.float32(0.3)}
  x = jax.random.normal(jax.random.PRNGKey(0), (7, 3))
  y = jnp.arange(7, dtype=jnp.float32)
  fisher = fisher_diagonal(loss, params, x, y, jnp.int32(5), chunk=2)
  grads = [jax.grad(loss)(params, x[i], y[i]) for i in range(5)]
  for name in params:
    expected = np.mean([np.asarray(g[name]) ** 2 for g in grads], axis=0)
    np.testing.assert_allclose(np.asarray(fisher[name]), expected, rtol=1e-5)


def engine_context(config, stream):
  """The Context ``continual.build_learner`` gives a method for ``config`` on ``stream``."""
  adapter = VLAdapter(hidden_dim=config.adapter_hidden, alpha=config.adapter_alpha,
                      init_logit_scale=config.init_logit_scale)
  return base.Context(config=config, adapter=adapter, num_classes=stream.num_classes,
                      dim=stream.dim, num_tasks=stream.num_tasks,
                      parallelism=parallel.make_parallelism(config))


def test_lwf_term_is_zero_when_params_equal_previous(results, stream):
  state = results['lwf'].state  # after the last task: prev_seen holds 6 classes
  assert int(np.sum(state.prev_seen)) == 6
  method = lwf(engine_context(small_config('lwf', stream), stream))
  x, y = stream.tasks[-1].train_x[:16], stream.tasks[-1].train_y[:16]
  same, terms = method.extra_loss(state.prev_params, state, x, y, jax.random.PRNGKey(0))
  assert float(same) == 0.0 and float(terms['distillation']) == 0.0
  initial = results['finetune'].state.params  # any other parameters
  other, _ = method.extra_loss(jax.tree.map(lambda p: p * 0.5, initial), state, x, y,
                               jax.random.PRNGKey(0))
  assert float(other) > 1e-3
  # The first task has no earlier classes: nothing to distil.
  first = state.replace(prev_seen=jnp.zeros_like(state.prev_seen))
  nothing, _ = method.extra_loss(initial, first, x, y, jax.random.PRNGKey(0))
  assert float(nothing) == 0.0


def test_dgr_vae_loss_decreases_and_replays_old_classes(results):
  consolidations = [r for r in results['dgr'].records if r['phase'] == 'consolidate']
  assert len(consolidations) == 4
  for record in consolidations:
    assert record['vae_loss_last'] < record['vae_loss_first'], record
  replays = [r['replay'] for r in results['dgr'].records if r['phase'] == 'adapt']
  assert replays[0] == 0.0 and all(r > 0 for r in replays[1:])


def test_hnet_starts_at_zero_shot_and_regulariser_is_zero_after_a_task(results):
  # b + H(e) starts at the engine's adapter initialisation: the same initial model.
  np.testing.assert_array_equal(results['hnet'].initial_acc, results['finetune'].initial_acc)
  state = results['hnet'].state
  method = results['hnet'].learner.method
  reg, terms = method.extra_loss(state.params, state, None, None, None)
  # Right after a task the targets are the current outputs: the regulariser is 0.
  assert float(reg) == 0.0 and float(terms['output_reg']) == 0.0
  assert np.asarray(state.extras['stored']).all()


def test_hnet_keeps_the_adapters_of_old_tasks(results):
  # h(e_1): task 1's adapters, right after task 1 and after tasks 2 and 3.
  targets = [extras['targets'] for extras in results['hnet'].extras_after]
  drift = np.linalg.norm(targets[2][0] - targets[0][0])
  moved = np.linalg.norm(targets[2][2] - targets[0][0])  # the latest task's adapters
  assert drift < 0.1 * moved, (drift, moved)
  # Fine-tuning moves the adapters themselves over the same two tasks.
  ft = [ravel_pytree(p)[0] for p in results['finetune'].params_after]
  assert drift < 0.1 * np.linalg.norm(ft[2] - ft[0]), (drift, np.linalg.norm(ft[2] - ft[0]))


def test_hnet_task_inference_by_entropy_recovers_old_tasks(results, stream):
  config = small_config('hnet', stream, hnet_task_inference='entropy')
  method = hnet(engine_context(config, stream))
  state, test = results['hnet'].state, stream.test
  mask = np.asarray(state.seen)

  def accuracy(logits_fn):
    acc = []
    for j in range(stream.num_tasks):
      pred = np.argmax(np.asarray(logits_fn(test.x[j])), axis=-1)
      n = int(test.count[j])
      acc.append(100.0 * np.mean(pred[:n] == np.asarray(test.y[j])[:n]))
    return np.array(acc)

  eval_logits = jax.jit(method.eval_logits)
  entropy = accuracy(lambda x: eval_logits(state.params, state.extras, x, test.class_text,
                                           mask))
  latest = results['hnet'].acc_matrix[-1]
  # Choosing each input's task model brings back the old tasks the latest model forgot.
  assert entropy[:-1].mean() > latest[:-1].mean() + 20, (entropy, latest)
  assert entropy.mean() > latest.mean() + 10, (entropy, latest)
  # Before any task is stored, the logits are the current embedding's (as 'latest').
  empty = jax.tree.map(jnp.zeros_like, state.extras)
  x = test.x[0][:8]
  variables = method.adapter_params(state.params)
  img, class_emb, scale = adapted(engine_context(config, stream).adapter, variables, x,
                                  test.class_text)
  np.testing.assert_allclose(
      np.asarray(eval_logits(state.params, empty, x, test.class_text, mask)),
      np.asarray(class_logits(img, class_emb, scale, mask)), rtol=1e-5)


def test_later_tasks_compile_nothing(results):
  for method, result in results.items():
    assert result.later_compilations == 0, (method, result.later_compilations)


def test_joint_takes_rows_per_task_from_the_engine_or_the_config(stream):
  rows = int(stream.tasks[0].train_x.shape[0])
  hand_made = base.Context(config=small_config('joint', stream), adapter=VLAdapter(),
                      num_classes=stream.num_classes, dim=stream.dim,
                      num_tasks=stream.num_tasks, parallelism=None)
  with pytest.raises(ValueError, match='joint_buffer_rows'):
    rows_per_task(hand_made)
  assert rows_per_task(dataclasses.replace(hand_made, train_rows=rows)) == rows
  hand_made.config.joint_buffer_rows = 7
  assert rows_per_task(hand_made) == 7


def test_bad_baseline_configs_are_named(stream):
  for method, field, value, match in [
      ('er', 'er_memory_examples', -1, 'er_memory_examples=-1'),
      ('er', 'er_batch_size', 0, 'er_batch_size=0'),
      ('lwf', 'lwf_temperature', 0.0, 'lwf_temperature=0.0'),
      ('ewc', 'ewc_decay', 2.0, 'ewc_decay=2.0'),
      ('dgr', 'dgr_vae_steps', 0, 'dgr_vae_steps=0'),
      ('hnet', 'hnet_chunk_size', 0, 'hnet_chunk_size=0')]:
    with pytest.raises(ValueError, match=match):
      continual.build_learner(small_config(method, stream, **{field: value}), stream)


# --------------------------------------------------------------------------------------
# Generative replay in pixel space, through a small frozen image tower.


def pixel_stream(tower_params, tower_config):
  """2 tasks x 2 classes of noisy 32x32 class templates, embedded by the tower."""
  rng = np.random.default_rng(0)
  num_classes, size = 4, image_encoder.INPUT_SIZE
  coarse = rng.normal(size=(num_classes, 4, 4))
  templates = np.kron(coarse, np.ones((size // 4, size // 4)))  # blocky class patterns

  def images(c, n):
    x = templates[c] + 0.5 * rng.normal(size=(n, size, size))
    return np.clip(x / 2, -1, 1).astype(np.float32)[..., None]

  encode = jax.jit(lambda p: image_encoder.l2_normalize(
      image_encoder.ImageTower(tower_config).apply({'params': tower_params}, p)))
  train, test, pixels = [], [], []
  for t in range(2):
    classes = (2 * t, 2 * t + 1)
    px = np.concatenate([images(c, 80) for c in classes])
    tx = np.concatenate([images(c, 40) for c in classes])
    train.append((np.asarray(encode(px)), np.repeat(classes, 80)))
    test.append((np.asarray(encode(tx)), np.repeat(classes, 40)))
    pixels.append(px)
  text = rng.normal(size=(num_classes, tower_config.embed_dim)).astype(np.float32)
  text /= np.linalg.norm(text, axis=1, keepdims=True)
  s = tasks.build_stream('pixels', train=train, test=test, class_text=text,
                         class_names=[f'c{c}' for c in range(num_classes)],
                         train_pixels=pixels)
  # The tower applied to a task's images gives its embeddings, row for row, after the
  # validation split and the padding; padding rows are zero images.
  for task in s.tasks:
    n = int(task.train_count)
    assert task.train_pixels.shape == task.train_x.shape[:1] + (size, size, 1)
    np.testing.assert_allclose(np.asarray(encode(task.train_pixels[:n])),
                               np.asarray(task.train_x[:n]), atol=1e-6)
    assert not np.asarray(task.train_pixels[n:]).any()
  return s


@pytest.fixture(scope='module')
def tower_dir(tmp_path_factory):
  tower_config = image_encoder.ImageTowerConfig(widths=(8, 8), embed_dim=32, groups=4)
  params = jax.jit(image_encoder.init_image_tower, static_argnums=0)(tower_config,
                                                                      jax.random.PRNGKey(3))
  directory = tmp_path_factory.mktemp('tower')
  lit.save_checkpoint(directory, params, tower_config=tower_config, metadata={})
  return directory, params, tower_config


def test_pixel_space_generative_replay(tower_dir):
  directory, params, tower_config = tower_dir
  s = pixel_stream(params, tower_config)
  records = []
  r = run('dgr_pixel', s, log=records.append, dgr_tower_dir=str(directory),
          steps_per_task=60, steps_per_chunk=60, dgr_batch_size=16, joint_buffer_rows=0)
  np.testing.assert_array_less(80.0, np.diag(r.acc_matrix))
  consolidations = [x for x in records if x['phase'] == 'consolidate']
  assert all(x['vae_loss_last'] < x['vae_loss_first'] for x in consolidations), records
  replays = [x['replay'] for x in records if x['phase'] == 'adapt']
  assert replays[0] == 0.0 and all(x > 0 for x in replays[1:])


def test_pixel_space_replay_names_the_missing_images(tower_dir, stream):
  directory, _, _ = tower_dir
  small = make_synthetic_stream(num_tasks=2, classes_per_task=2, dim=32, train_per_class=20,
                                test_per_class=10)
  learner = continual.build_learner(
      small_config('dgr_pixel', small, dgr_tower_dir=str(directory)), small)
  state = learner.init(jax.random.PRNGKey(0), learner.put_test(small.test))
  assert small.tasks[0].train_pixels is None
  with pytest.raises(ValueError, match=r'this stream has none.*get_stream\(name, pixels=True\)'):
    learner.consolidate(state, learner.put_task(small.tasks[0]))
  # Images on another grid than the tower's are named too.
  task = small.tasks[0]
  wrong = task.replace(train_pixels=np.zeros(task.train_x.shape[:1] + (28, 28, 1), np.float32))
  with pytest.raises(ValueError, match=r'\[N, 28, 28, 1\] images but the image tower takes'):
    learner.consolidate(state, learner.put_task(wrong))
  with pytest.raises(ValueError, match='32-d embeddings but the stream has 64'):
    continual.build_learner(small_config('dgr_pixel', stream, dgr_tower_dir=str(directory)),
                            stream)
