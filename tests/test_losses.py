"""Each loss against an independent NumPy computation, with and without jit."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized

from autoseed_jax.core import losses

B, C, D = 6, 5, 8


def _unit(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _log_softmax(z):
  z = z - z.max(axis=-1, keepdims=True)
  return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _inputs(seed=0):
  rng = np.random.default_rng(seed)
  return dict(
      img=_unit(rng.normal(size=(B, D))).astype(np.float32),
      txt=_unit(rng.normal(size=(B, D))).astype(np.float32),
      prev_img=_unit(rng.normal(size=(B, D))).astype(np.float32),
      prev_txt=_unit(rng.normal(size=(B, D))).astype(np.float32),
      cls=_unit(rng.normal(size=(C, D))).astype(np.float32),
      prev_cls=_unit(rng.normal(size=(C, D))).astype(np.float32),
      labels=np.array([0, 1, 1, 3, 0, 2], np.int32),
      class_mask=np.array([True, True, True, True, False]),
      mask=np.array([True, True, False, True, True, True]),
      scale=np.float32(7.0), prev_scale=np.float32(5.0),
  )


def np_ce(img, cls, labels, scale, class_mask, mask):
  out = []
  for i in range(len(labels)):
    if not mask[i]:
      continue
    logits = np.array([scale * img[i] @ cls[c] for c in range(len(cls)) if class_mask[c]])
    idx = [c for c in range(len(cls)) if class_mask[c]].index(labels[i])
    out.append(-_log_softmax(logits)[idx])
  return float(np.mean(out))


def np_info_nce(img, txt, scale, mask, labels=None):
  rows = [i for i in range(len(img)) if mask[i]]
  total = []
  for i in rows:
    for a, b in ((img, txt), (txt, img)):
      logits = np.array([scale * a[i] @ b[j] for j in rows])
      if labels is None:
        target = np.array([1.0 if j == i else 0.0 for j in rows])
      else:
        target = np.array([1.0 if labels[j] == labels[i] else 0.0 for j in rows])
      target /= target.sum()
      total.append(-0.5 * (target * _log_softmax(logits)).sum())
  return float(np.sum(total) / len(rows))


def np_consistency(x, temperature):
  terms = []
  for i in range(B):
    if not x['mask'][i]:
      continue
    drift = (np.sum((x['img'][i] - x['prev_img'][i]) ** 2)
             + np.sum((x['txt'][i] - x['prev_txt'][i]) ** 2))
    cs = [c for c in range(C) if x['class_mask'][c]]
    p = np.exp(_log_softmax(np.array([x['scale'] * x['img'][i] @ x['cls'][c] for c in cs])
                            / temperature))
    q = np.exp(_log_softmax(np.array(
        [x['prev_scale'] * x['prev_img'][i] @ x['prev_cls'][c] for c in cs]) / temperature))
    terms.append(drift + temperature**2 * np.sum(q * (np.log(q) - np.log(p))))
  return float(np.mean(terms))


class LossesTest(chex.TestCase, parameterized.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_task_loss_matches_numpy(self):
    x = _inputs()
    fn = self.variant(lambda *a: losses.task_loss(*a, class_mask=x['class_mask'],
                                                  mask=x['mask']))
    got = fn(x['img'], x['cls'], x['labels'], x['scale'])
    want = np_ce(x['img'], x['cls'], x['labels'], x['scale'], x['class_mask'], x['mask'])
    np.testing.assert_allclose(got, want, rtol=1e-5)

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters(True, False)
  def test_info_nce_matches_numpy(self, with_labels):
    x = _inputs(1)
    labels = x['labels'] if with_labels else None
    fn = self.variant(lambda a, b: losses.info_nce(a, b, x['scale'], mask=x['mask'],
                                                   labels=labels))
    want = np_info_nce(x['img'], x['txt'], x['scale'], x['mask'], labels)
    np.testing.assert_allclose(fn(x['img'], x['txt']), want, rtol=1e-5)

  @chex.variants(with_jit=True, without_jit=True)
  def test_replay_loss_is_ce_plus_weighted_info_nce(self):
    x = _inputs(2)
    fn = self.variant(lambda a, b: losses.replay_loss(
        a, b, x['labels'], x['cls'], x['scale'], class_mask=x['class_mask'],
        mask=x['mask'], infonce_weight=0.3))
    want = (np_ce(x['img'], x['cls'], x['labels'], x['scale'], x['class_mask'], x['mask'])
            + 0.3 * np_info_nce(x['img'], x['txt'], x['scale'], x['mask'], x['labels']))
    np.testing.assert_allclose(fn(x['img'], x['txt']), want, rtol=1e-5)

  @chex.variants(with_jit=True, without_jit=True)
  def test_consistency_loss_matches_numpy(self):
    x = _inputs(3)
    fn = self.variant(lambda img, txt: losses.consistency_loss(
        img, x['prev_img'], txt, x['prev_txt'], class_emb=x['cls'],
        prev_class_emb=x['prev_cls'], logit_scale=x['scale'],
        prev_logit_scale=x['prev_scale'], class_mask=x['class_mask'], mask=x['mask'],
        kd_temperature=2.0))
    np.testing.assert_allclose(fn(x['img'], x['txt']), np_consistency(x, 2.0), rtol=1e-5)

  @chex.variants(with_jit=True, without_jit=True)
  def test_alignment_and_anchor_match_numpy(self):
    x = _inputs(4)
    v = x['img'] * 2.0  # alignment normalises its inputs itself
    align = self.variant(lambda a, b: losses.alignment_loss(a, b, mask=x['mask']))
    cos = np.sum(_unit(v) * _unit(x['txt']), axis=1)
    np.testing.assert_allclose(align(v, x['txt']), np.mean(1 - cos[x['mask']]), rtol=1e-5)

    anchor = self.variant(lambda a, b: losses.anchor_loss(
        a, b, x['labels'], x['cls'], x['prev_cls'], mask=x['mask']))
    dist = [np.sum((x['img'][i] - x['cls'][x['labels'][i]]) ** 2)
            + np.sum((x['txt'][i] - x['prev_cls'][x['labels'][i]]) ** 2)
            for i in range(B) if x['mask'][i]]
    np.testing.assert_allclose(anchor(x['img'], x['txt']), np.mean(dist), rtol=1e-5)


def test_consistency_is_zero_for_identical_models_and_positive_otherwise():
  x = _inputs(5)
  same = losses.consistency_loss(
      x['img'], x['img'], x['txt'], x['txt'], class_emb=x['cls'], prev_class_emb=x['cls'],
      logit_scale=x['scale'], prev_logit_scale=x['scale'], class_mask=x['class_mask'])
  assert abs(float(same)) < 1e-6
  diff = losses.consistency_loss(
      x['img'], x['prev_img'], x['txt'], x['prev_txt'], class_emb=x['cls'],
      prev_class_emb=x['prev_cls'], logit_scale=x['scale'], prev_logit_scale=x['prev_scale'],
      class_mask=x['class_mask'])
  assert float(diff) > 0.1


@pytest.mark.parametrize('name', ['task', 'replay', 'consistency', 'align', 'anchor', 'nce'])
def test_gradients_are_finite_and_nonzero(name):
  x = _inputs(6)
  img, txt = jnp.asarray(x['img']), jnp.asarray(x['txt'])
  fns = {
      'task': lambda a, b: losses.task_loss(a, x['cls'], x['labels'], x['scale'],
                                            class_mask=x['class_mask'], mask=x['mask']),
      'replay': lambda a, b: losses.replay_loss(a, b, x['labels'], x['cls'], x['scale'],
                                                class_mask=x['class_mask'], mask=x['mask']),
      'consistency': lambda a, b: losses.consistency_loss(
          a, x['prev_img'], b, x['prev_txt'], class_emb=x['cls'],
          prev_class_emb=x['prev_cls'], logit_scale=x['scale'],
          prev_logit_scale=x['prev_scale'], class_mask=x['class_mask'], mask=x['mask']),
      'align': lambda a, b: losses.alignment_loss(a, b, mask=x['mask']),
      'anchor': lambda a, b: losses.anchor_loss(a, b, x['labels'], x['cls'], x['prev_cls'],
                                                mask=x['mask']),
      'nce': lambda a, b: losses.info_nce(a, b, x['scale'], mask=x['mask']),
  }
  g_img, g_txt = jax.grad(fns[name], argnums=(0, 1))(img, txt)
  assert np.all(np.isfinite(g_img)) and np.all(np.isfinite(g_txt))
  # Valid rows get gradient; the masked row (index 2) gets none.
  assert np.abs(np.asarray(g_img)[[0, 1, 3]]).sum() > 0
  np.testing.assert_array_equal(np.asarray(g_img)[2], 0.0)
  if name != 'task':
    assert np.abs(np.asarray(g_txt)[[0, 1, 3]]).sum() > 0


def test_fully_masked_batch_gives_zero_loss_and_zero_gradient():
  x = _inputs(7)
  none = np.zeros(B, bool)
  fn = lambda a: losses.replay_loss(a, x['txt'], x['labels'], x['cls'], x['scale'],
                                    class_mask=x['class_mask'], mask=none)
  assert float(fn(x['img'])) == 0.0
  np.testing.assert_array_equal(jax.grad(fn)(jnp.asarray(x['img'])), 0.0)


def test_info_nce_row_is_that_row_of_info_nce_rows():
  rng = np.random.default_rng(3)
  b, d = 7, 5
  img = jnp.asarray(rng.normal(size=(b, d)), jnp.float32)
  txt = jnp.asarray(rng.normal(size=(b, d)), jnp.float32)
  labels = jnp.asarray([0, 1, 0, 2, 1, 3, 0])
  mask = jnp.asarray([True, True, True, False, True, True, True])
  for kwargs in (dict(), dict(labels=labels), dict(mask=mask, labels=labels), dict(mask=mask)):
    rows = losses.info_nce_rows(img, txt, 3.0, **kwargs)
    valid = np.asarray(kwargs.get('mask', np.ones(b, bool)))
    for i in np.flatnonzero(valid):
      np.testing.assert_allclose(losses.info_nce_row(i, img, txt, 3.0, **kwargs), rows[i],
                                 rtol=1e-5)
      np.testing.assert_allclose(jax.jit(losses.info_nce_row)(i, img, txt, 3.0, **kwargs),
                                 rows[i], rtol=1e-5)
