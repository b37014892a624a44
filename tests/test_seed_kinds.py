"""The seed family on every task kind (docs/VL_TASKS.md §6) and the guard on autoseed_plus's
meta-update (docs/autoseed_plus.md §6).

Pair groups, joint points and their summaries against NumPy; per-seed bytes and the byte
prune; the replay loss of answer and pair seeds against NumPy; the family on every kind
within its byte budget; the meta-update's best iterate; a collapsed generator caught by
the guard; every kind on 1 vs 8 devices; resume; the development stream kept apart from
vl-scenes' test scenes.
"""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from autoseed_jax import continual
from autoseed_jax.core import meta, pair_groups, seeds, tasks
from autoseed_jax.methods.autoseed import PairReplay, replay_on_seeds
from autoseed_jax.methods.autoseed_plus import memory_plan
from experiments.configs.common import method_config
from helpers.device_runs import run_on_eight_devices
from helpers.resume_checks import assert_resumes_bit_identically
from helpers.vl_mock import mock_vl_stream, small_vl_config

D = 16


def _unit(x):
  return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope='module')
def stream():
  return mock_vl_stream(dim=D)  # retrieval, captioning, classification, VQA


# ---------------------------------------------------------------------------------------
# Groups, joint points, summaries


def test_groups_are_classes_answers_or_the_pair_tasks_groups(stream):
  for task, kind in zip(stream.tasks, stream.vl.kinds):
    groups = jax.tree.map(np.asarray, pair_groups.summary_groups(task))
    n_train = int(task.train_count)
    if kind in ('retrieval', 'captioning'):
      ids, rows = np.asarray(task.groups), np.asarray(task.train_group)
      assert (ids[ids >= 0] >= 6).all()  # cluster ids follow the 6 bank entries
    else:  # a class or an answer: bank ids, never the VQA clusters
      ids, rows = np.asarray(task.classes), np.asarray(task.train_y)
      assert set(ids[ids >= 0]) == ({0, 1, 2} if kind == 'classification' else {3, 4, 5})
    real = ids[ids >= 0]
    np.testing.assert_array_equal(groups.labels[groups.ok], real)
    assert groups.stores_text[groups.ok].all() == (kind in ('retrieval', 'captioning'))
    assert not groups.stores_text[~groups.ok].any()
    for g, label in enumerate(groups.labels):
      want = np.zeros(task.train_x.shape[0], np.float32)
      if groups.ok[g]:
        want[:n_train] = rows[:n_train] == label
      np.testing.assert_array_equal(groups.train_weights[g], want)
      if groups.ok[g]:
        mean = (want[:, None] * np.asarray(task.train_x)).sum(0)
        np.testing.assert_allclose(groups.image_means[g], _unit(mean), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(groups.text[groups.ok], axis=1), 1.0, atol=1e-5)
    if kind == 'vqa':  # an answer's text is its bank entry
      np.testing.assert_allclose(groups.text[groups.ok],
                                 _unit(np.asarray(stream.test.class_text)[real]), atol=1e-5)


def test_joint_points_against_numpy():
  rng = np.random.default_rng(0)
  x, t = _unit(rng.normal(size=(6, D))), _unit(rng.normal(size=(6, D)))
  pair = np.array([1, 1, 0, 1, 0, 0], bool)
  concat = np.asarray(pair_groups.joint_points(x, t, pair, 'concat'))
  want = np.where(pair[:, None], np.concatenate([x, t], 1) / np.sqrt(2),
                  np.concatenate([x, 0 * t], 1))
  np.testing.assert_allclose(concat, want, atol=1e-6)
  np.testing.assert_allclose(np.linalg.norm(concat, axis=1), 1.0, atol=1e-5)
  summed = np.asarray(pair_groups.joint_points(x, t, pair, 'sum'))
  np.testing.assert_allclose(summed, np.where(pair[:, None], _unit(x + t), x), atol=1e-6)
  v, w = pair_groups.split_joint(jnp.asarray(concat), D)
  np.testing.assert_allclose(v, x, atol=1e-6)
  np.testing.assert_allclose(np.asarray(w)[pair], t[pair], atol=1e-6)
  np.testing.assert_array_equal(np.asarray(w)[~pair], 0.0)
  with pytest.raises(ValueError, match='joint mode'):
    pair_groups.joint_points(x, t, pair, 'product')


def test_summaries_find_pair_clusters_that_one_side_alone_cannot_tell_apart():
  """Group 0: three pair clusters; two share their caption (only the image tells them
  apart), two share their image. Group 1: one cluster. Each summary is its members' mean
  image and mean caption (NumPy), largest first."""
  rng = np.random.default_rng(1)
  images, texts = _unit(rng.normal(size=(3, D))), _unit(rng.normal(size=(2, D)))
  clusters = [(images[0], texts[0], 30), (images[1], texts[0], 20), (images[0], texts[1], 10),
              (images[2], texts[1], 8)]
  x, t, truth = [], [], []
  for c, (img, txt, n) in enumerate(clusters):
    x.append(_unit(img + 0.05 * rng.normal(size=(n, D))))
    t.append(_unit(txt + 0.05 * rng.normal(size=(n, D))))
    truth += [c] * n
  x, t, truth = np.concatenate(x), np.concatenate(t), np.asarray(truth)
  weights = np.stack([truth < 3, truth == 3]).astype(np.float32)
  points = pair_groups.joint_points(x, t, True, 'concat')
  v, w, sizes = map(np.asarray, pair_groups.group_summaries(
      points, x, t, jnp.asarray(weights), jax.random.PRNGKey(0), num_centres=3))
  np.testing.assert_array_equal(sizes[0], [30, 20, 10])
  for k, c in enumerate((0, 1, 2)):
    np.testing.assert_allclose(v[0, k], _unit(x[truth == c].sum(0)), atol=1e-5)
    np.testing.assert_allclose(w[0, k], _unit(t[truth == c].sum(0)), atol=1e-5)
  # One cluster cut in three: parts of it, largest first, each near the cluster's means.
  assert sizes[1].sum() == 8 and np.all(np.diff(sizes[1]) <= 0)
  assert (v[1] @ _unit(x[truth == 3].sum(0))).min() > 0.97
  assert (w[1] @ _unit(t[truth == 3].sum(0))).min() > 0.97


# ---------------------------------------------------------------------------------------
# Bytes


def _np_byte_prune(label, valid, score, nbytes, budget):
  """The balanced rule's order (rank within class by score, -score, slot), cut by bytes."""
  rank = np.full(len(label), 10**9)
  for c in set(label[valid]):
    members = np.flatnonzero(valid & (label == c))
    order = members[np.lexsort((members, -score[members]))]
    rank[order] = np.arange(len(order))
  order = [i for i in np.lexsort((np.arange(len(label)), -score, rank)) if valid[i]]
  kept, spent = set(), 0
  for i in order:
    if spent + nbytes[i] > budget:
      break
    kept.add(i)
    spent += nbytes[i]
  return kept


def test_a_seed_stores_and_pays_for_w_only_in_a_pair_group_and_the_prune_fits_the_bytes():
  rng = np.random.default_rng(2)
  num_bank, n = 4, 12
  label = np.array([0, 0, 1, 5, 5, 5, 6, 1, 2, 6, 7, -1])
  valid = label >= 0
  score = rng.normal(size=n).astype(np.float32)
  memory = seeds.make_seeds(jnp.asarray(_unit(rng.normal(size=(n, D)))),
                            jnp.asarray(_unit(rng.normal(size=(n, D)))), label, 0,
                            score=jnp.asarray(score), valid=jnp.asarray(valid))
  nbytes = np.asarray(pair_groups.seed_nbytes(memory, num_bank))
  np.testing.assert_array_equal(nbytes, np.where(valid, np.where(label < num_bank, 4 * D + 13,
                                                                 8 * D + 13), 0))
  assert int(pair_groups.memory_nbytes(memory, num_bank)) == nbytes.sum()
  for budget in (0, 200, 700, 1000, 1500, 5000):
    pruned = pair_groups.prune_to_bytes(memory, budget, num_bank)
    kept = {int(np.flatnonzero((np.asarray(memory.v) == v).all(1))[0])
            for v, ok in zip(np.asarray(pruned.v), np.asarray(pruned.valid)) if ok}
    assert kept == _np_byte_prune(label, valid, score, nbytes, budget), budget
    assert int(pair_groups.memory_nbytes(pruned, num_bank)) <= budget
  # Equal sizes: the byte prune keeps what the count prune keeps.
  same = seeds.make_seeds(memory.v, memory.w[:, :0], label, 0, score=memory.score,
                          valid=memory.valid)
  b = seeds.bytes_per_seed(same)
  for count in (3, 7):
    by_bytes = seeds.prune_memory_bytes(same, count * b + b - 1, jnp.full((n,), b))
    chex_equal = jax.tree.map(np.array_equal, by_bytes, seeds.prune_memory(same, count))
    assert all(jax.tree.leaves(chex_equal))
  bank = jnp.asarray(_unit(rng.normal(size=(num_bank, D))))
  w = np.asarray(pair_groups.seed_text(memory.w, memory.label, bank, num_bank))
  np.testing.assert_allclose(w[label == 1], np.asarray(bank)[[1, 1]])
  np.testing.assert_allclose(w[label == 6], np.asarray(memory.w)[label == 6])


def test_the_plan_on_a_stream_with_pair_tasks_counts_the_smaller_seeds(stream):
  config = small_vl_config('kmeans_seeds')
  plan = memory_plan(config, D, stream.num_classes, stream.vl)
  assert plan.pair_text and not plan.text_prototypes
  assert plan.budget_bytes == config.memory_budget * (8 * D + 13)
  assert plan.budget == plan.budget_bytes // (4 * D + 13)  # room if every seed were a bank seed
  classification = memory_plan(config, D, stream.num_classes)
  assert not classification.pair_text


# ---------------------------------------------------------------------------------------
# Replay against NumPy


def _np_infonce(img, txt, scale, mask, ids):
  rows = np.flatnonzero(mask)
  logits = scale * img[rows] @ txt[rows].T
  pos = (ids[rows][:, None] == ids[rows][None]).astype(float)
  total = 0.0
  for lg, p in ((logits, pos), (logits.T, pos.T)):
    logp = lg - np.log(np.exp(lg - lg.max(1, keepdims=True)).sum(1, keepdims=True)) \
        - lg.max(1, keepdims=True)
    total = total + (-(p / p.sum(1, keepdims=True)) * logp).sum(1) / 2
  return total.mean() if len(rows) else 0.0


@pytest.mark.parametrize('pair', [None, PairReplay('group', 0.5, None),
                                  PairReplay('seed', 2.0, None)])
def test_replay_of_answer_class_and_pair_seeds_matches_numpy(stream, pair):
  config = small_vl_config('kmeans_seeds', replay_infonce_weight=0.7)
  learner = continual.build_learner(config, stream)
  context = continual.make_context(config, stream)
  rng = np.random.default_rng(3)
  params = jax.tree.map(lambda p: p + 0.1 * jnp.asarray(rng.normal(size=p.shape), p.dtype),
                        learner.init(jax.random.PRNGKey(0),
                                     learner.put_test(stream.test)).params)
  bank = jnp.asarray(stream.test.class_text)
  family = np.asarray(stream.vl.bank_family)
  seen = jnp.asarray([True, True, False, True, True, False])
  label = np.array([0, 1, 3, 4, 4, 7, 7, 9, 3, 0])
  valid = np.array([1, 1, 1, 1, 1, 1, 1, 1, 1, 0], bool)
  v, w = _unit(rng.normal(size=(10, D))), _unit(rng.normal(size=(10, D)))
  got = replay_on_seeds(context, params, bank, seen, v, w, jnp.asarray(label),
                        jnp.asarray(valid), pair)
  img, txt, scale = map(np.asarray, context.embed(params, v, w))
  class_emb = np.asarray(context.embed(params, text_z=bank)[1])
  ce = []  # answer selection for an answer, CE over the seen class prompts for a class
  for i in np.flatnonzero(valid & (label < 6)):
    space = np.flatnonzero(np.asarray(seen) & (family == family[label[i]]))
    logits = scale * img[i] @ class_emb[space].T
    ce.append(np.log(np.exp(logits).sum()) - logits[list(space).index(label[i])])
  is_pair = valid & (label >= 6)
  if pair is None:
    want = np.mean(ce) + 0.7 * _np_infonce(img, txt, scale, valid, label)
  else:
    ids = label if pair.positives == 'group' else np.where(label >= 6, -2 - np.arange(10), label)
    want = (np.mean(ce) + 0.7 * _np_infonce(img, txt, scale, valid & ~is_pair, ids)
            + pair.infonce_weight * _np_infonce(img, txt, scale, is_pair, ids))
  np.testing.assert_allclose(float(got), want, rtol=1e-4)


# ---------------------------------------------------------------------------------------
# The family on every kind


@pytest.mark.parametrize('method, overrides', [
    ('kmeans_seeds', {}),
    ('refined_seeds', {'summary_refine_steps': 3}),
    ('autoseed_plus', {'plus_meta_steps': 2, 'plus_guard': 'best_iterate+centres'}),
])
def test_the_family_summarises_every_kind_within_its_byte_budget(stream, method, overrides):
  config = small_vl_config(method, steps_per_task=8, **overrides)
  result = continual.run_sequence(config, stream)
  assert np.isfinite(result.acc_matrix).all()
  memory = jax.tree.map(np.asarray, result.state.memory)
  label, w = memory.label[memory.valid], memory.w[memory.valid]
  assert {0, 1, 2} <= set(label) and {3, 4, 5} <= set(label)  # classes and answers
  assert (label >= 6).any()                                   # pair groups
  np.testing.assert_allclose(np.linalg.norm(w[label >= 6], axis=1), 1.0, atol=1e-4)
  np.testing.assert_array_equal(w[label < 6], 0.0)           # a bank seed stores no w
  plan = memory_plan(config, D, stream.num_classes, stream.vl)
  want = ((label < 6) * (4 * D + 13) + (label >= 6) * (8 * D + 13)).sum()
  assert result.memory_bytes == want <= plan.budget_bytes
  assert want > plan.budget_bytes - (8 * D + 13)  # the budget is used


# ---------------------------------------------------------------------------------------
# The guard


def test_the_meta_update_keeps_its_best_iterate():
  import optax  # pylint: disable=import-outside-toplevel
  loss = lambda phi, key: jnp.sum((phi['a'] - 1.0) ** 2)
  phi = {'a': jnp.zeros(3)}
  optimizer = optax.sgd(1.1)  # overshoots: every step ends further from the minimum
  opt_state = optimizer.init(phi)
  last, _, plain = meta.meta_update(loss, phi, opt_state, jax.random.PRNGKey(0),
                                    optimizer=optimizer, num_steps=4)
  best, _, losses = meta.meta_update(loss, phi, opt_state, jax.random.PRNGKey(0),
                                     optimizer=optimizer, num_steps=4, keep_best=True)
  assert losses.shape == (5,) and np.all(np.diff(np.asarray(losses)) > 0)
  np.testing.assert_allclose(losses[:4], plain)
  np.testing.assert_array_equal(best['a'], phi['a'])  # φ_0 was the best
  assert float(loss(last, None)) > float(losses[0])
  good = optax.sgd(0.3)  # converges: the last iterate is the best
  kept, _, losses = meta.meta_update(loss, phi, good.init(phi), jax.random.PRNGKey(0),
                                     optimizer=good, num_steps=4, keep_best=True)
  assert float(loss(kept, None)) == pytest.approx(float(losses[-1]))
  assert float(losses[-1]) < float(losses[0])


def _clustered_stream():
  """2 tasks x 2 classes in R^16, each class three tight clusters."""
  rng = np.random.default_rng(0)
  text = _unit(rng.normal(size=(4, D)))
  centres = _unit(rng.normal(size=(4, 3, D)) + 0.5 * text[:, None])
  train, test = [], []
  for classes in ((0, 1), (2, 3)):
    for split, n in ((train, 40), (test, 10)):
      x = np.concatenate([_unit(centres[c][k] + 0.08 * rng.normal(size=(n, D)))
                          for c in classes for k in range(3)])
      split.append((x, np.repeat(classes, 3 * n)))
  return tasks.build_stream('clustered', train=train, test=test, class_text=text,
                            class_names=[f'c{c}' for c in range(4)], seed=0), centres


@pytest.fixture(scope='module')
def collapsed_seed_update():
  """Task 1's seed update from a collapsed generator (a shared output offset 100x the
  class mean, as in run seed 1 on animals-ci, docs/autoseed_plus.md §6), without and with
  the guard."""
  stream, centres = _clustered_stream()
  out = {}
  for guard in ('none', 'centres'):
    config = method_config()
    config.method, config.plus_guard = 'autoseed_plus', guard
    config.steps_per_task = config.steps_per_chunk = 20
    config.adapter_hidden, config.generator_hidden, config.sketch_dim = 16, 32, 8
    config.plus_meta_steps, config.inner_steps, config.memory_budget = 3, 1, 8
    config.candidates_per_class = 3
    learner = continual.build_learner(config, stream)
    task = learner.put_task(stream.tasks[0])
    state = learner.begin_task(learner.init(jax.random.PRNGKey(0),
                                            learner.put_test(stream.test)), task)
    state, _ = learner.adapt(state, task, 20)
    bias = state.gen_params['params']['out']['bias']
    offset = 100.0 * _unit(np.ones((1, D)))[0]
    gen = jax.tree.map(lambda a: a, state.gen_params)
    gen['params']['out']['bias'] = bias.at[:D].set(offset)
    state = state.replace(gen_params=gen)
    before = jax.tree.map(np.asarray, state.gen_params)
    after, info = learner.consolidate(state, task)
    out[guard] = (jax.tree.map(np.asarray, after), info, before)
  return out, centres


def _class_seeds(state):
  memory = state.memory
  return {c: memory.v[memory.valid & (memory.label == c)] for c in (0, 1)}


def test_a_collapsed_generator_gives_one_point_without_the_guard(collapsed_seed_update):
  runs, _ = collapsed_seed_update
  state, info, _ = runs['none']
  own = _class_seeds(state)
  assert (own[0] @ own[1].T).min() > 0.99, 'both classes should be one point'
  assert 'guard_fallback' not in info


def test_the_guard_falls_back_to_the_centres_and_the_previous_generator(collapsed_seed_update):
  runs, centres = collapsed_seed_update
  state, info, before = runs['centres']
  assert int(info['guard_fallback']) == 1
  assert float(info['guard_loss_generated']) > float(info['guard_loss_targets'])
  own = _class_seeds(state)
  assert (own[0] @ own[1].T).max() < 0.9  # the classes are apart again
  for c in (0, 1):  # each seed is one of its class's cluster centres
    assert (own[c] @ centres[c].T).max(axis=1).min() > 0.98
  for a, b in zip(jax.tree.leaves(state.gen_params), jax.tree.leaves(before)):
    np.testing.assert_array_equal(a, b)  # φ as it was before the meta-update


def test_the_centres_ablation_leaves_the_generator_alone(stream):
  config = small_vl_config('autoseed_plus', plus_seed_source='centres', steps_per_task=8)
  learner = continual.build_learner(config, stream)
  test = learner.put_test(stream.test)
  state = learner.init(jax.random.PRNGKey(0), test)
  start = jax.tree.map(np.asarray, state.gen_params)
  for task in stream.tasks:
    state = learner.learn_task(state, learner.put_task(task), test=test)
  for a, b in zip(jax.tree.leaves(state.gen_params), jax.tree.leaves(start)):
    np.testing.assert_array_equal(a, b)
  assert learner.method.constants is None  # no sketch R: no condition is computed


def test_bad_family_settings_are_named(stream):
  for field, value in (('plus_guard', 'always'), ('plus_seed_source', 'text'),
                       ('plus_pair_points', 'product'), ('plus_pair_positives', 'all'),
                       ('plus_pair_infonce_weight', -1.0)):
    with pytest.raises(ValueError, match=field):
      continual.build_learner(small_vl_config('autoseed_plus', **{field: value}), stream)
  # METHOD's noise codes with the guard (the ablation row "METHOD's noise"): the centres
  # stand in for the k_gen noise candidates of a class, scored and filtered as theirs.
  config = small_vl_config('autoseed_plus', plus_seed_codes='noise', plus_centre_weight=0.0,
                           plus_mmd_weight=10.0, plus_guard='best_iterate+centres',
                           plus_meta_steps=1, steps_per_task=8)
  assert np.isfinite(continual.run_sequence(config, stream).acc_matrix).all()


# ---------------------------------------------------------------------------------------
# Devices and resume


def test_eight_devices_equal_one_device_on_every_kind():
  out = run_on_eight_devices('seed_kinds_parallel_check.py')
  for method, runs in out.items():
    for form in ('jit8', 'pmap8'):
      np.testing.assert_allclose(runs[form]['acc_matrix'], runs['one']['acc_matrix'],
                                 atol=1e-3, err_msg=f'{method} {form}')
      np.testing.assert_allclose(runs[form]['memory_v'], runs['one']['memory_v'], atol=1e-4,
                                 err_msg=f'{method} {form}')
      np.testing.assert_allclose(runs[form]['memory_w'], runs['one']['memory_w'], atol=1e-4,
                                 err_msg=f'{method} {form}')
      assert runs[form]['memory_bytes'] == runs['one']['memory_bytes']


def test_resume_on_every_kind_is_bit_identical(stream, tmp_path):
  config = small_vl_config('autoseed_plus', plus_meta_steps=2, plus_guard='best_iterate+centres')
  assert_resumes_bit_identically(config, stream, tmp_path)


# ---------------------------------------------------------------------------------------
# The vision-language development stream


def test_vl_scenes_dev_draws_no_object_of_vl_scenes_test_scenes(tmp_path):
  from autoseed_jax import streams  # pylint: disable=import-outside-toplevel
  from autoseed_jax.streams import vision_language  # pylint: disable=import-outside-toplevel

  def digests(pools):
    return [[hash(image.tobytes()) for image in pool] for pool in pools]

  dev_train, dev_test = map(digests, vision_language.dev_object_pools())
  test = digests(vision_language.object_pools('test'))
  train = digests(vision_language.object_pools('train'))
  for c in range(len(train)):
    assert dev_train[c] and dev_test[c]
    assert len(dev_train[c]) + len(dev_test[c]) == len(train[c])  # a partition of train
    assert not set(dev_train[c] + dev_test[c]) & set(test[c])  # no image of vl-scenes' test
    assert set(dev_train[c] + dev_test[c]) <= set(train[c])
    # A test object seen in training is one the dataset holds twice (Animal-MNIST's twins).
    twins = {h for h in train[c] if train[c].count(h) > 1}
    assert set(dev_train[c]) & set(dev_test[c]) <= twins
  assert 'vl-scenes-dev' in streams.STREAMS
  dev = vision_language.scene_dev_stream(cache_dir=tmp_path, train_scenes=12, test_scenes=6)
  assert dev.name == 'vl-scenes-dev'
  assert dev.vl.kinds == ('retrieval', 'captioning', 'vqa', 'vqa')
  assert dev.test.count.tolist()[:2] == [6, 6]
