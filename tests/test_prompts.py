"""The prompt-learning baselines of METHOD §7: CoOp (``coop``) and MaPLe (``maple``).

Parity of the learned-prompt text path with the frozen towers (MiniLM and a tiny CLIP),
gradients reaching the prompts only, MaPLe's image side moving only through its coupling,
and both methods learning each task of a small real stream (animals-ci, 10% of the training
images) with nothing recompiled after the first task.
"""

import dataclasses
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from autoseed_jax import continual, streams
from autoseed_jax.core import parallel
from autoseed_jax.core.adapters import VLAdapter
from autoseed_jax.methods import base
from autoseed_jax.methods.coop import coop, load_tower
from autoseed_jax.methods.maple import maple, prompted_image, vision_prompts
from autoseed_jax.models import clip, minilm
from autoseed_jax.streams.synthetic import make_synthetic_stream
from experiments.configs.real_streams import real_stream_config
from helpers.device_runs import learn_all_tasks

CLIP_WEIGHTS = pathlib.Path(__file__).parent / 'fixtures' / 'clip_tiny' / 'open_clip_model.safetensors'
STEPS = 15
LEARNING_RATE = 3e-3  # few steps: a larger rate than real_streams.py's, to show learning
# Measured: at most 1.1e-7 (MiniLM) and 1.7e-7 (tiny CLIP) on CPU.
PARITY_TOLERANCE = 2e-6
NAMES = ('bear', 'bird', 'digit 3', 'giraffe')


@pytest.fixture(scope='module')
def stream():
  return streams.get_stream('animals-ci', train_fraction=0.1)


@pytest.fixture(scope='module')
def encoder():
  return minilm.load_minilm()


@pytest.fixture(scope='module')
def clip_backbone():
  return clip.CLIPBackbone.from_checkpoint(CLIP_WEIGHTS)


def config_for(method, **overrides):
  c = real_stream_config()
  c.method = method
  c.steps_per_task = STEPS
  c.steps_per_chunk = STEPS
  for k, v in overrides.items():
    c[k] = v
  return c


def context_for(config, class_names, dim):
  """A method Context like ``continual.build_learner``'s, for ``class_names`` in ``dim``-d."""
  return base.Context(config=config, adapter=VLAdapter(), num_classes=len(class_names), dim=dim,
                      num_tasks=1, parallelism=parallel.make_parallelism(config),
                      class_names=tuple(class_names))


def initial_params(method):
  return method.init_params(jax.random.PRNGKey(0), None)


def run(method, stream, **overrides):
  """All tasks of ``stream``; returns (learner, state, compilations while learning tasks 2..T)."""
  overrides.setdefault('learning_rate', LEARNING_RATE)
  learner = continual.build_learner(config_for(method, **overrides), stream)
  state, compilations = learn_all_tasks(learner, stream)
  return learner, state, compilations


@pytest.fixture(scope='module')
def runs(stream):
  return {method: run(method, stream) for method in ('coop', 'maple')}


# --- parity with the frozen towers -------------------------------------------------------------


@pytest.mark.parametrize('init,length', [('a photo of a', 4), ('a photo of a', 2)])
def test_coop_class_embeddings_equal_minilm_on_the_prompt_text(init, length, encoder):
  config = config_for('coop', coop_context_init=init, coop_context_length=length)
  method = coop(context_for(config, NAMES, 384))
  assert method.prompts.texts == tuple(f'a photo of a {name}.' for name in NAMES)
  params = initial_params(method)
  assert params['context'].shape == (length, 384)
  expected = encoder.encode_text(list(method.prompts.texts))
  got = np.asarray(method.class_embeddings(params))
  np.testing.assert_allclose(got, expected, atol=PARITY_TOLERANCE)


def test_coop_initialised_on_the_stream_template_is_the_zero_shot_backbone(stream):
  # animals-ci's prompts are 'a black and white silhouette of a {class}.' (7 word pieces).
  config = config_for('coop', coop_context_init='a black and white silhouette of a',
                      coop_context_length=7)
  learner = continual.build_learner(config, stream)
  got = learner.method.class_embeddings(initial_params(learner.method))
  np.testing.assert_allclose(np.asarray(got), stream.test.class_text, atol=PARITY_TOLERANCE)
  test = learner.put_test(stream.test)
  zeroshot = continual.build_learner(config_for('zeroshot'), stream)
  np.testing.assert_array_equal(
      np.asarray(learner.init(jax.random.PRNGKey(0), test).initial_acc),
      np.asarray(zeroshot.init(jax.random.PRNGKey(0), test).initial_acc))


def test_prompt_methods_on_clip_equal_clip_on_the_prompt_text(clip_backbone):
  backbone = clip_backbone
  spec = f'clip:{CLIP_WEIGHTS}'
  for method_fn, fields in ((coop, dict(coop_context_length=3)),
                            (maple, dict(maple_context_length=3, maple_prompt_depth=2))):
    config = config_for(method_fn.__name__, prompt_text_tower=spec, **fields)
    method = method_fn(context_for(config, NAMES, backbone.embed_dim))
    assert method.tower.name == spec
    params = initial_params(method)
    # CLIP's tower is causal: the deep prompts' initial states do not depend on the class.
    expected = backbone.encode_text(list(method.prompts.texts))
    got = np.asarray(method.class_embeddings(params))
    np.testing.assert_allclose(got, expected, atol=PARITY_TOLERANCE, err_msg=method.name)


def test_shallow_maple_is_the_prompt_text_and_leaves_images_untouched(stream, encoder):
  config = config_for('maple', maple_prompt_depth=1, maple_context_init='a photo of a')
  method = maple(context_for(config, NAMES, 384))
  params = initial_params(method)
  expected = encoder.encode_text(list(method.prompts.texts))
  np.testing.assert_allclose(np.asarray(method.class_embeddings(params)), expected,
                             atol=PARITY_TOLERANCE)
  x = stream.test.x[0][:16]
  np.testing.assert_allclose(np.asarray(method.image_embeddings(params, x)), x, atol=1e-6)


# --- what is trained --------------------------------------------------------------------------


def test_gradients_reach_the_prompts_and_not_the_text_tower(clip_backbone):
  # The tiny CLIP tower keeps this cheap; the stop-gradient is PromptTower.encode's, shared
  # by every tower.
  config = config_for('coop', prompt_text_tower=f'clip:{CLIP_WEIGHTS}')
  method = coop(context_for(config, NAMES, clip_backbone.embed_dim))
  tower = method.tower
  params = initial_params(method)
  x = jax.random.normal(jax.random.PRNGKey(1), (8, clip_backbone.embed_dim))
  y = jnp.arange(8) % len(NAMES)

  def loss(context, tower_params):
    tokens = method.prompts.with_context(context)
    weights = dataclasses.replace(tower, params=tower_params)
    class_emb = weights.encode(tokens, jnp.asarray(method.prompts.mask),
                               jnp.asarray(method.prompts.end))
    logits = 10.0 * x @ class_emb.T
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1))

  g_context, g_tower = jax.jit(jax.grad(loss, argnums=(0, 1)))(params['context'], tower.params)
  assert float(jnp.max(jnp.abs(g_context))) > 1e-6
  assert all(float(jnp.max(jnp.abs(g))) == 0.0 for g in jax.tree.leaves(g_tower))


def test_training_changes_the_prompts_only(runs, encoder):
  learner, state, _ = runs['coop']
  assert set(state.params) == {'context'}
  initial = initial_params(learner.method)['context']
  assert float(jnp.max(jnp.abs(state.params['context'] - initial))) > 1e-3
  # The optimiser state covers the context alone; the tower's weights are the files' weights.
  assert {leaf.size for leaf in jax.tree.leaves(state.opt_state)} <= {1, initial.size}
  fresh = encoder.params
  for name, leaf in learner.method.tower.params.items():
    for a, b in zip(jax.tree.leaves(leaf), jax.tree.leaves(fresh[name])):
      np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  learner, state, _ = runs['maple']
  assert set(state.params) == {'context', 'deep_context', 'coupling'}


def test_maple_image_side_moves_only_through_the_coupling(runs, stream):
  learner, state, _ = runs['maple']
  method = learner.method
  x = jnp.asarray(stream.test.x[0][:32])
  trained = state.params
  assert float(jnp.max(jnp.abs(trained['coupling']['kernel']))) > 0.0
  moved = np.asarray(method.image_embeddings(trained, x))
  assert np.max(np.abs(moved - np.asarray(x))) > 1e-3  # the learned coupling is in use
  # Coupling at zero: any text prompts leave the image embeddings as they are.
  zero = jax.tree.map(jnp.zeros_like, trained['coupling'])
  noisy = {'context': trained['context'] + 1.0, 'deep_context': trained['deep_context'] - 1.0,
           'coupling': zero}
  np.testing.assert_allclose(np.asarray(method.image_embeddings(noisy, x)), x, atol=1e-6)

  def image_side(text_prompts, coupling):
    params = {'context': text_prompts[0], 'deep_context': text_prompts[1:],
              'coupling': coupling}
    return jnp.sum(method.image_embeddings(params, x) * x[::-1])

  text = jnp.concatenate([trained['context'][None], trained['deep_context']])
  grad = jax.jit(jax.grad(image_side))
  through_zero, through_trained = grad(text, zero), grad(text, trained['coupling'])
  assert float(jnp.max(jnp.abs(through_zero))) == 0.0
  assert float(jnp.max(jnp.abs(through_trained))) > 0.0


def test_vision_prompts_are_the_coupled_text_prompts():
  key = jax.random.split(jax.random.PRNGKey(3), 4)
  params = {'context': jax.random.normal(key[0], (2, 6)),
            'deep_context': jax.random.normal(key[1], (1, 2, 6)),
            'coupling': {'kernel': jax.random.normal(key[2], (2, 6, 5)),
                         'bias': jax.random.normal(key[3], (2, 5))}}
  text = np.concatenate([np.asarray(params['context'])[None], np.asarray(params['deep_context'])])
  rms = text / np.sqrt(np.mean(text ** 2, axis=-1, keepdims=True) + 1e-6)
  expected = 0.5 * (np.einsum('jmw,jwd->jmd', rms, np.asarray(params['coupling']['kernel']))
                    + np.asarray(params['coupling']['bias'])[:, None])
  got = np.asarray(vision_prompts(params, 0.5))
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
  # One attention residual per depth, keys = values = the vision prompts.
  z = np.asarray(jax.random.normal(key[0], (3, 5)))
  u = z / np.linalg.norm(z, axis=-1, keepdims=True)
  for j in range(2):
    logits = u @ expected[j].T
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    u = u + weights @ expected[j]
    u /= np.linalg.norm(u, axis=-1, keepdims=True)
  np.testing.assert_allclose(np.asarray(prompted_image(jnp.asarray(z), jnp.asarray(expected))),
                             u, rtol=1e-5, atol=1e-5)


# --- learning on a real stream ------------------------------------------------------------------


def test_each_prompt_method_learns_its_current_task_without_recompiling(runs, stream):
  for method, (_, state, later_compilations) in runs.items():
    acc, initial = np.asarray(state.acc_matrix), np.asarray(state.initial_acc)
    # R[i, i]: task i's test images over the 2(i+1) classes seen so far (chance <= 50%).
    np.testing.assert_array_less(65.0, np.diag(acc), err_msg=method)
    assert np.mean(np.diag(acc)) > np.mean(initial) + 10, (method, acc, initial)
    assert later_compilations == 0, method


# --- errors -----------------------------------------------------------------------------------


def test_bad_settings_are_errors_that_name_the_field(stream):
  bad = [('coop', dict(coop_context_length=5), 'coop_context_init'),
         ('coop', dict(coop_context_length=0), 'coop_context_length=0'),
         ('maple', dict(maple_prompt_depth=7), 'maple_prompt_depth=7'),
         ('maple', dict(maple_coupling_scale=-1.0), 'maple_coupling_scale'),
         ('coop', dict(prompt_text_tower='bert'), 'prompt_text_tower')]
  for method, fields, message in bad:
    with pytest.raises(ValueError, match=message):
      continual.build_learner(config_for(method, **fields), stream)
  synthetic = make_synthetic_stream(num_tasks=2, classes_per_task=2, dim=64,
                                    train_per_class=8, test_per_class=4, seed=0)
  with pytest.raises(ValueError, match='prompt_text_tower'):
    continual.build_learner(config_for('coop'), synthetic)


def test_the_offline_tower_is_loaded_once():
  assert load_tower('offline') is load_tower('offline')
