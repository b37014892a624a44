"""Vision-language task kinds: metrics against hand-worked cases, k-means seed groups, the
fixed-shape packing, the scene stream's protocol, every method on every kind, compile
once, resume and multi-device exactness (docs/VL_TASKS.md)."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from autoseed_jax import continual
from autoseed_jax.core import kind_metrics, task_kinds
from autoseed_jax.streams import vision_language
from autoseed_jax.data import scenes, vl_sources
from autoseed_jax.methods.base import MethodRefused
from autoseed_jax.methods.er import bytes_per_example, bytes_per_pair_example
from helpers.device_runs import learn_all_tasks, run_on_eight_devices
from helpers.resume_checks import assert_resumes_bit_identically
from helpers.vl_mock import mock_vl_stream, small_vl_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------------------------------
# Metrics


def test_recall_at_k_against_a_hand_worked_gallery():
  # 3 images, 4 captions; captions 0, 1 belong to image 0, caption 2 to image 1, 3 to 2.
  sims = jnp.array([[0.9, 0.1, 0.5, 0.95],    # image 0: best own caption 0.9, one above
                    [0.2, 0.3, 0.1, 0.4],     # image 1: own caption 0.1, three above
                    [0.0, 0.0, 0.0, 0.8]])    # image 2: own caption ranks first
  owner = jnp.array([0, 0, 1, 2])
  ok_i, ok_t = jnp.ones(3, bool), jnp.ones(4, bool)
  recalls = np.asarray(kind_metrics.image_text_recalls(sims, owner, ok_i, ok_t, ks=(1, 2, 4)))
  # image->text ranks 1, 3, 0 -> R@1 1/3, R@2 2/3, R@4 1.
  np.testing.assert_allclose(recalls[:3], [100 / 3, 200 / 3, 100], rtol=1e-6)
  # text->image: caption 0 -> image 0 first (0.9 vs 0.2, 0); caption 1 -> image 1 (0.3)
  # beats image 0 (0.1): rank 1; caption 2 -> image 0 (0.5) above image 1 (0.1): rank 1;
  # caption 3 -> image 0 (0.95) above image 2 (0.8): rank 1. Ranks 0, 1, 1, 1.
  np.testing.assert_allclose(recalls[3:], [25, 100, 100], rtol=1e-6)
  # A padded caption is neither a candidate nor a query: without caption 3, image 0 ranks
  # first, image 1 third and image 2 has no positive left (not counted); captions 0-2 keep
  # their ranks 0, 1, 1.
  padded = kind_metrics.image_text_recalls(sims, owner, ok_i, jnp.array([1, 1, 1, 0], bool),
                                         ks=(1,))
  np.testing.assert_allclose(np.asarray(padded), [50, 100 / 3], rtol=1e-6)


def test_bleu4_against_a_hand_worked_sentence():
  # 5/6 unigrams, 3/5 bigrams, 1/4 trigrams, 0/3 four-grams (smoothed to 1/(2*3)), BP = 1.
  expected = 100 * (5 / 6 * 3 / 5 * 1 / 4 * 1 / 6) ** 0.25
  got = kind_metrics.corpus_bleu4(['the cat sat on the mat'], [['the cat is on the mat']])
  assert got == pytest.approx(expected, rel=1e-6)
  assert kind_metrics.corpus_bleu4(['A cat, a dog.'], [['a cat, a dog.', 'other']]) == pytest.approx(
      100.0)
  with pytest.raises(ValueError, match='at least one reference'):
    kind_metrics.corpus_bleu4(['x'], [[]])


def test_vqa_accuracy_credits_three_agreeing_humans_in_full():
  answers = jnp.array([[5, 5, 5, 1, 1, 2, 2, 2, 2, 2],    # pred 5: 3 humans -> 1
                       [5, 5, 1, 1, 1, 2, 2, 2, 2, 2],    # pred 5: 2 humans -> 2/3
                       [7, -1, -1, -1, -1, -1, -1, -1, -1, -1],  # one human, exact
                       [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]])   # wrong -> 0
  pred = jnp.array([5, 5, 7, 5])
  got = kind_metrics.vqa_accuracy(pred, answers, jnp.ones(4, bool))
  assert float(got) == pytest.approx(100 * (1 + 2 / 3 + 1 + 0) / 4, rel=1e-6)
  masked = kind_metrics.vqa_accuracy(pred, answers, jnp.array([1, 1, 0, 0], bool))
  assert float(masked) == pytest.approx(100 * (1 + 2 / 3) / 2, rel=1e-6)


# ---------------------------------------------------------------------------------------
# Seed groups and the fixed-shape layout


def test_kmeans_groups_recover_separated_clusters_and_never_exceed_distinct_texts():
  rng = np.random.default_rng(0)
  centres = np.eye(8)[:3]
  truth = rng.integers(0, 3, 90)
  text = centres[truth] + 0.05 * rng.normal(size=(90, 8))
  text /= np.linalg.norm(text, axis=1, keepdims=True)
  labels, means = task_kinds.kmeans_groups(text, 3, seed=0)
  for g in range(3):  # each found group is one true cluster
    assert len(set(truth[labels == g])) == 1
  np.testing.assert_allclose(np.linalg.norm(means, axis=1), 1.0, rtol=1e-5)
  assert np.max(np.abs(np.sort(means @ centres.T, axis=0)[-1] - 1)) < 0.01
  duplicates = np.repeat(centres[:2], 10, axis=0)  # only 2 distinct texts
  labels, means = task_kinds.kmeans_groups(duplicates, 5, seed=0)
  assert means.shape[0] == 2 and set(labels) == {0, 1}


@pytest.fixture(scope='module')
def stream():
  return mock_vl_stream()


def test_every_kind_shares_one_layout_and_groups_follow_the_bank(stream):
  shapes = {jax.tree.map(np.shape, t).__repr__() for t in stream.tasks}
  assert len(shapes) == 1  # one compiled program for every kind
  assert stream.vl.kinds == ('retrieval', 'captioning', 'classification', 'vqa')
  cls, vqa = stream.tasks[2], stream.tasks[3]
  np.testing.assert_array_equal(np.asarray(cls.groups)[:3], [0, 1, 2])
  n = int(cls.train_count)
  np.testing.assert_array_equal(cls.train_group[:n], cls.train_y[:n])
  for t in (0, 1, 3):  # clusters get stream-wide ids after the 6 bank entries
    groups = np.asarray(stream.tasks[t].groups)
    assert (groups[groups >= 0] >= 6).all()
  ids = [set(np.asarray(stream.tasks[t].groups)[np.asarray(stream.tasks[t].groups) >= 0])
         for t in (0, 1, 3)]
  assert not (ids[0] & ids[1]) and not (ids[1] & ids[2])
  np.testing.assert_array_equal(sorted(np.asarray(vqa.classes)[:3]), [3, 4, 5])
  # Retrieval: validation holds out whole images (no image in both train and val).
  ret = stream.tasks[0]
  train_images = set(np.asarray(ret.train_y)[:int(ret.train_count)])
  val_images = set(np.asarray(ret.val_y)[:int(ret.val_count)])
  assert val_images and not train_images & val_images
  assert stream.vl.references[1] and len(stream.vl.caption_banks[1]) == int(
      stream.test.bank_count[1])


def test_bad_vl_input_is_named():
  bank = np.eye(4, dtype=np.float32)
  split = task_kinds.BankSplit(np.eye(4, dtype=np.float32), np.array([0, 1, 2, 3]))
  with pytest.raises(ValueError, match='but this kind scores VQA answers'):
    task_kinds.build_vl_stream('x', [task_kinds.VLTask('t', 'vqa', split, split)], bank_text=bank,
                             bank_names='abcd', bank_family=[0, 0, 1, 1])
  with pytest.raises(ValueError, match="kind 'ranking'"):
    task_kinds.build_vl_stream('x', [task_kinds.VLTask('t', 'ranking', split, split)],
                             bank_text=bank, bank_names='abcd', bank_family=[0] * 4)
  pairs = task_kinds.PairSplit(np.eye(4, dtype=np.float32), np.eye(4, dtype=np.float32),
                             np.array([0, 1, 2, 3]), list('abcd'))
  with pytest.raises(ValueError, match='needs its fixed caption bank'):
    task_kinds.build_vl_stream('x', [task_kinds.VLTask('t', 'captioning', pairs, pairs)],
                             bank_text=np.zeros((0, 4)), bank_names=(), bank_family=())


# ---------------------------------------------------------------------------------------
# The offline scene stream's protocol


def test_scene_captions_and_answers_agree_with_the_scene():
  rng = np.random.default_rng(1)
  for scene in scenes.sample_scenes(200, range(scenes.NUM_CATEGORIES), rng):
    names = [scenes.CATEGORY_NAMES[c] for c in scene.objects]
    assert list(scene.slots) == sorted(scene.slots) and len(set(scene.objects)) == len(names)
    captions = scenes.captions(scene)
    assert len(captions) == scenes.CAPTIONS_PER_SCENE
    positions = [captions[0].find(n) for n in names]  # the list names them left to right
    assert positions == sorted(positions) and min(positions) >= 0
    assert captions[1].startswith(f'{scenes.noun(scene.objects[0])} to the left of '
                                  f'{scenes.noun(scene.objects[1])}')
    animals = sum(c < scenes.NUM_ANIMALS for c in scene.objects)
    for q in scenes.questions(scene, scenes.QUESTION_TYPES, rng):
      if q.kind == 'exists':
        named = q.text[len('is there '):-1].split(' ', 1)[1]
        assert q.answer == ('yes' if named in names else 'no')
      elif q.kind == 'count':
        n = animals if 'animals' in q.text else len(names) - animals
        assert q.answer == scenes.COUNT_WORDS[n]
      else:
        target = q.text.split(' of the ')[1][:-1]
        i = names.index(target)
        assert q.answer == names[i - 1 if q.kind == 'left_of' else i + 1]
      assert q.answer in scenes.ANSWERS


def test_scene_objects_of_pretraining_and_of_the_stream_are_disjoint():
  def digests(part):
    return {hash(image.tobytes()) for pool in vision_language.object_pools(part) for image in pool}

  pretrain, train, test = digests('pretrain'), digests('train'), digests('test')
  assert len(pretrain) > 500 and len(train) > 5000 and len(test) > 1500
  assert not pretrain & train and not pretrain & test


def test_scene_stream_zero_shot_retrieval_is_far_above_chance(tmp_path):
  stream = vision_language.scene_stream(cache_dir=tmp_path, train_scenes=40, test_scenes=30)
  assert stream.vl.kinds == ('retrieval', 'captioning', 'vqa', 'vqa')
  assert stream.test.count.tolist()[:2] == [30, 30]
  result = continual.run_sequence(small_vl_config('zeroshot'), stream)
  i2t_r1, t2i_r1 = result.initial_task_metrics[0, 0], result.initial_task_metrics[0, 3]
  # chance: 5 of 150 captions (3%) and 1 of 30 images (3%).
  assert i2t_r1 > 20 and t2i_r1 > 10, result.initial_task_metrics[0]
  assert 0 < result.initial_acc[1] <= 100  # BLEU-4 of the retrieved bank captions


# ---------------------------------------------------------------------------------------
# The engine on every kind


def test_finetuning_compiles_once_for_every_kind_and_reruns_identically(stream):
  config = small_vl_config('finetune')
  learner = continual.build_learner(config, stream)
  state, compilations = learn_all_tasks(learner, stream)
  assert compilations == 0, f'{compilations} compilations while learning tasks 2..T'
  again = continual.run_sequence(config, stream, learner=learner)
  np.testing.assert_array_equal(np.asarray(state.acc_matrix), again.acc_matrix)
  np.testing.assert_array_equal(np.asarray(state.task_metrics), again.task_metrics)
  # Each task's primary score is its kind's: mean recall, BLEU-4, accuracy, VQA accuracy.
  final = again.task_metrics[-1]
  np.testing.assert_allclose(again.acc_matrix[-1, 0], np.mean(final[0, :6]), rtol=1e-5)
  assert again.acc_matrix[-1, 1] == pytest.approx(final[1, 6])
  assert again.acc_matrix[-1, 2] == pytest.approx(final[2, 8])
  assert again.acc_matrix[-1, 3] == pytest.approx(final[3, 7])
  assert np.isnan(final[2, :8]).all() and np.isnan(final[0, 6:]).all()


@pytest.fixture(scope='module')
def pair_and_class_stream():
  return mock_vl_stream(kinds=('captioning', 'classification'), images=24)


@pytest.mark.parametrize('method', ['autoseed', 'er', 'joint', 'lwf', 'ewc', 'dgr'])
def test_every_method_runs_image_text_and_class_tasks(pair_and_class_stream, method):
  stream = pair_and_class_stream
  result = continual.run_sequence(small_vl_config(method, steps_per_task=8), stream)
  assert np.isfinite(result.acc_matrix).all()
  assert (np.diag(result.acc_matrix) > 0).all()
  if method == 'er':
    extras = result.state.extras
    valid, kind = np.asarray(extras['valid']), np.asarray(extras['kind'])
    pair = valid & ((kind == 1) | (kind == 2))
    assert pair.any() and (valid & ~pair).any()  # rows of every kind were kept
    assert result.memory_bytes == (pair.sum() * bytes_per_pair_example(stream.dim)
                                   + (valid & ~pair).sum() * bytes_per_example(stream.dim))
  if method == 'autoseed':
    memory = result.state.memory
    labels = np.asarray(memory.label)[np.asarray(memory.valid)]
    assert (labels >= 6).any() and (labels < 3).any()  # cluster seeds and class seeds
  assert stream.vl.kinds == ('captioning', 'classification')


def test_methods_that_cannot_run_a_kind_are_refused_naming_it():
  stream = mock_vl_stream(dim=384, images=8)
  for method, overrides, reason in [
      ('coop', {}, 'prompts for class names'),
      ('dgr_pixel', {}, 'generates images alone'),
      ('hnet', {'hnet_task_inference': 'entropy'}, 'entropy')]:
    with pytest.raises(MethodRefused, match=f"cannot run task kind 'retrieval'.*{reason}"):
      continual.build_learner(small_vl_config(method, **overrides), stream)


def test_resume_from_a_checkpoint_is_bit_identical(stream, tmp_path):
  # ER's buffer holds rows of every kind.
  assert_resumes_bit_identically(small_vl_config('er'), stream, tmp_path)


def test_eight_devices_equal_one_device_on_every_kind():
  out = run_on_eight_devices('vl_parallel_check.py')
  for form in ('jit8', 'pmap8'):
    np.testing.assert_allclose(out[form]['acc_matrix'], out['one']['acc_matrix'], atol=1e-3)
    np.testing.assert_allclose(out[form]['task_metrics'], out['one']['task_metrics'],
                               atol=1e-3)
    np.testing.assert_allclose(out[form]['memory_v'], out['one']['memory_v'], atol=1e-4)


# ---------------------------------------------------------------------------------------
# Real datasets (mock data in the loaders' contract)


class _FakeBackbone:
  """Deterministic stand-in: images by their mean colour, texts by their words."""

  embed_dim, fingerprint, image_size = 8, 'fake-vl-backbone', 16

  def encode_image(self, images):
    images = np.asarray(images, np.float32)
    assert images.shape[1:] == (16, 16, 3)
    x = np.concatenate([images.mean(axis=(1, 2)), images.std(axis=(1, 2)), np.ones((len(images), 2))],
                       axis=1)
    return x / np.linalg.norm(x, axis=1, keepdims=True)

  def encode_text(self, texts):
    rows = []
    for text in texts:
      v = np.zeros(8)
      for word in text.split():
        v[sum(map(ord, word)) % 8] += 1
      rows.append(v + 1e-3)
    x = np.asarray(rows, np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _mock_caption_data(n, seed):
  rng = np.random.default_rng(seed)
  images = [rng.integers(0, 256, (20 + i % 3, 24, 3), dtype=np.uint8) for i in range(n)]
  captions = [[f'a {w} photo number {i % 4}' for w in ('red', 'green', 'blue', 'dark', 'bright')]
              for i in range(n)]
  return vl_sources.CaptionData(images, captions, [f'img{seed}-{i}' for i in range(n)])


def test_coco_flickr_stream_from_caption_data(monkeypatch, tmp_path):
  calls = []

  def load(name, split, *, data_dir=None, max_images=None):
    calls.append((name, split, max_images))
    return _mock_caption_data(12 if split != 'test' else 6, hash((name, split)) % 100)

  monkeypatch.setattr(vl_sources, 'load_caption_dataset', load)
  stream = vision_language.coco_flickr_stream(_FakeBackbone(), cache_dir=tmp_path,
                                         max_train_images=12, bank_images=4)
  assert [c[:2] for c in calls] == [('coco_captions', 'train+restval'), ('coco_captions', 'test'),
                                    ('flickr30k', 'train'), ('flickr30k', 'test')]
  assert stream.vl.kinds == ('captioning', 'captioning') and stream.num_classes == 1
  assert len(stream.vl.references[0]) == 6 and len(stream.vl.references[0][0]) == 5
  assert set(stream.vl.caption_banks[1]) == {f'a {w} photo number {i}' for w in
                                             ('red', 'green', 'blue', 'dark', 'bright')
                                             for i in range(4)}
  result = continual.run_sequence(small_vl_config('finetune', steps_per_task=4,
                                                  steps_per_chunk=4, batch_size=8), stream)
  assert np.isfinite(result.acc_matrix).all()


def test_vqa_v2_stream_splits_by_answer_type_and_scores_human_answers(monkeypatch, tmp_path):
  def load(split, *, data_dir=None, max_questions=None):
    rng = np.random.default_rng(0 if split == 'train' else 1)
    images = [rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(6)]
    answers = ['yes', 'no', '2', '3', 'red', 'blue'] * 4
    humans = [[a] * 6 + ['yes'] * 4 for a in answers]
    return vl_sources.VQAData(images, [f'i{k}' for k in range(6)],
                              [f'question {k} about {a}?' for k, a in enumerate(answers)],
                              np.arange(24, dtype=np.int32) % 6, humans, answers, ['t'] * 24)

  monkeypatch.setattr(vl_sources, 'load_vqa', load)
  stream = vision_language.vqa_v2_stream(_FakeBackbone(), cache_dir=tmp_path, num_answers=6)
  assert stream.vl.task_names == ('vqa-yes/no', 'vqa-number', 'vqa-other')
  assert stream.test.answers.shape[-1] == 10
  assert list(stream.test.count) == [8, 8, 8]


def test_scene_tower_pretrains_and_its_checkpoint_reads_back(tmp_path):
  from autoseed_jax.models import lit, scene_tower  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (8, 48, 48, 1), dtype=np.uint8)
  caption_text = np.eye(6, 384, dtype=np.float32)
  config = scene_tower.SceneTowerConfig(widths=(8, 8, 8))
  params, history = scene_tower.pretrain_scene_tower(
      images, rng.integers(0, 6, (8, 5)), caption_text, config=config,
      lit_config=lit.LitConfig(num_steps=3, batch_size=4, warmup_steps=1), log_every=1)
  assert len(history['loss']) == 3 and np.isfinite(history['loss']).all()
  lit.save_checkpoint(tmp_path, params['tower'], tower_config=config, metadata={})
  backbone = scene_tower.load_scene_backbone(tmp_path, text_encoder=_FakeText384())
  expected = scene_tower.encode_scenes(params['tower'], images, config=config)
  np.testing.assert_allclose(backbone.encode_image(images), expected, rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match='uint8 images'):
    backbone.encode_image(images[:, :32, :32])


class _FakeText384:
  embed_dim, fingerprint = 384, 'fake-text'

  def encode_text(self, texts):
    return np.eye(len(texts), 384, dtype=np.float32)


def test_coco_flickr_config_without_the_data_stops_naming_how_to_prepare_it(tmp_path):
  proc = subprocess.run(
      [sys.executable, '-m', 'autoseed_jax.main', '--config',
       'experiments/configs/vl_coco_flickr.py', '--workdir', str(tmp_path / 'run'),
       f'--config.stream.data_dir={tmp_path / "nothing"}'],
      cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert 'Traceback' not in proc.stderr and 'coco' in proc.stderr.lower()
  assert 'karpathy' in proc.stderr.lower() or 'tfds' in proc.stderr.lower(), proc.stderr
