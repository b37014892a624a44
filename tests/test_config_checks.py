"""Bad config values are refused with one line naming the field, before any work starts."""

import os
import subprocess
import sys

import ml_collections
import pytest

from autoseed_jax.core import config_checks
from autoseed_jax import continual, main, runner, streams
from autoseed_jax.streams.synthetic import make_synthetic_stream
from experiments.configs import demo, synthetic, vl_coco_flickr, vl_scenes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_config(**overrides):
  c = synthetic.get_config()
  for k, v in overrides.items():
    c[k] = v
  return c


def test_check_fields_names_the_field_its_rule_and_meaning():
  rules = (('a', '> 0', 'the a'), ('b', 'in [0, 1)', 'the b'), ('absent', '> 0', 'skipped'))
  config_checks.check_fields({'a': 1, 'b': 0.0}, rules)
  with pytest.raises(ValueError) as e:
    config_checks.check_fields({'a': 1, 'b': 1.0}, rules, prefix='stream.')
  assert str(e.value) == 'invalid config: stream.b=1.0 must be in [0, 1) (the b).'


@pytest.mark.parametrize('method, field, value', [
    # The engine (experiments/configs/common.py).
    ('finetune', 'adapter_hidden', 0), ('finetune', 'init_logit_scale', 0.0),
    ('finetune', 'learning_rate', -1e-3), ('finetune', 'weight_decay', -1.0),
    ('finetune', 'adapter_alpha', -0.5),
    # Auto-Seed VL2.
    ('autoseed', 'sketch_dim', 0), ('autoseed', 'noise_dim', -4),
    ('autoseed', 'generator_hidden', 0), ('autoseed', 'generator_layers', -1),
    ('autoseed', 'meta_learning_rate', 0.0), ('autoseed', 'meta_seeds_per_class', 0),
    ('autoseed', 'inner_learning_rate', 0.0), ('autoseed', 'inner_grad_clip', -1.0),
    ('autoseed', 'memory_capacity', -1), ('autoseed', 'redundancy_cosine', -1.5),
    ('autoseed', 'random_seed_sigma', -0.1), ('autoseed', 'consistency_weight', -1.0),
    ('autoseed', 'anchor_weight', -1.0),
    # The baselines' own fields (their defaults()).
    ('er', 'er_weight', -1.0), ('joint', 'joint_buffer_rows', -1), ('lwf', 'lwf_weight', -1.0),
    ('ewc', 'ewc_fisher_batch', 0), ('dgr', 'dgr_hidden', 0), ('dgr_pixel', 'dgr_latent_dim', 0),
    ('hnet', 'hnet_embedding_init', -0.1), ('coop', 'coop_context_length', 0),
    ('maple', 'maple_prompt_depth', 0), ('maple', 'maple_coupling_scale', -1.0),
])
def test_numeric_fields_are_refused_without_a_stream(method, field, value):
  with pytest.raises(ValueError, match=f'^invalid config: {field}={value!r} must be '):
    continual.validate_config(run_config(method=method, **{field: value}))


def test_every_method_of_a_run_is_checked_before_its_stream_is_loaded():
  runner.validate_run_config(run_config())
  with pytest.raises(ValueError, match='ewc_weight=-1.0'):
    runner.validate_run_config(run_config(methods=('finetune', 'ewc'), ewc_weight=-1.0))
  with pytest.raises(ValueError, match="method='nope'"):
    runner.validate_run_config(run_config(methods=('finetune', 'nope')))
  with pytest.raises(ValueError, match='checkpoints_to_keep=0'):
    runner.validate_run_config(run_config(checkpoints_to_keep=0))


def test_unknown_stream_name_is_refused_before_its_fields_are_passed():
  block = synthetic.get_config().stream
  block.name = 'cifar100'
  with pytest.raises(ValueError, match="stream.name='cifar100' is not a stream; choose one "
                     'of synthetic, animals-ci'):
    streams.load_stream(block)


def test_a_named_stream_refuses_the_synthetic_streams_fields():
  block = synthetic.get_config().stream
  block.name = 'animals-ci'
  with pytest.raises(ValueError, match=r"does not take the field\(s\) stream.classes_per_task.*"
                     'it takes backbone, data_dir'):
    streams.load_stream(block)
  with pytest.raises(ValueError, match='experiments/configs/demo.py --config.stream.name='
                     'animals-ci'):
    main.check_stream_block(block)
  block = demo.get_config().stream
  block.name = 'synthetic'
  with pytest.raises(ValueError, match='stream.backbone.*it takes num_tasks'):
    streams.check_stream_config(block)
  with pytest.raises(ValueError, match='stream.backbone.*experiments/configs/synthetic.py'):
    main.check_stream_block(block)


def test_vision_language_streams_take_their_own_fields_and_refuse_the_others():
  """Every vision-language config passes the check; a block written for one stream names
  the config written for another."""
  for config in (vl_scenes.get_config(), vl_coco_flickr.get_config(),
                 vl_coco_flickr.get_config('vqa-v2')):
    runner.validate_run_config(config)
    streams.check_stream_config(config.stream)
  block = vl_coco_flickr.get_config().stream
  block.name = 'vqa-v2'
  with pytest.raises(ValueError, match=r"stream.bank_images, stream.kind.*"
                     'experiments/configs/vl_coco_flickr.py:vqa-v2'):
    main.check_stream_block(block)


@pytest.mark.parametrize('field, value, rule', [
    ('num_tasks', 0, '> 0'), ('classes_per_task', 1, '>= 2'), ('dim', 1, '>= 2'),
    ('train_per_class', 1, '>= 2'), ('test_per_class', 0, '> 0')])
def test_synthetic_stream_fields_are_checked(field, value, rule):
  block = synthetic.get_config().stream
  block[field] = value
  with pytest.raises(ValueError, match=f'stream.{field}={value} must be {rule} '):
    streams.check_stream_config(block)
  with pytest.raises(ValueError, match=f'invalid config: {field}={value} must be'):
    make_synthetic_stream(**{field: value})


@pytest.mark.parametrize('field, value', [('val_fraction', 1.0), ('train_fraction', 0.0),
                                          ('backbone', 'resnet')])
def test_named_stream_fields_are_checked_before_anything_loads(field, value):
  block = demo.get_config().stream
  block[field] = value
  with pytest.raises(ValueError, match=f'stream.{field}={value!r}'):
    streams.check_stream_config(block)


@pytest.mark.parametrize('flag, message', [
    ('--config.sketch_dim=0', 'invalid config: sketch_dim=0 must be > 0 (m, the size of the '
     'sketched task gradient'),
    ('--config.noise_dim=-4', 'invalid config: noise_dim=-4 must be > 0 (the size of the '
     'generator noise z'),
    ('--config.stream.name=imagenet', "invalid config: stream.name='imagenet' is not a "
     'stream; choose one of'),
])
def test_issue_13_bad_inputs_are_one_line_exit_2_before_any_work(tmp_path, flag, message):
  workdir = tmp_path / 'run'
  proc = subprocess.run(
      [sys.executable, '-m', 'autoseed_jax.main', '--config',
       os.path.join(ROOT, 'experiments/configs/synthetic.py'), '--workdir', str(workdir), flag],
      cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 2, proc.stderr[-2000:]
  lines = [line for line in proc.stderr.splitlines() if line.strip()]
  assert lines == [f'error: {lines[0][len("error: "):]}'] and message in lines[0], proc.stderr
  assert 'Traceback' not in proc.stderr
  assert not workdir.exists() and 'stream' not in proc.stdout  # refused before any work


def test_a_stream_block_of_your_own_is_not_checked_by_the_runner():
  # The README's "your own embeddings" path: a stream block naming no built-in stream is
  # fine when no stream is loaded from it (run_workdir takes the stream object).
  config = run_config(methods=('zeroshot',))
  config.stream = ml_collections.ConfigDict({'name': 'mine'})
  runner.validate_run_config(config)
