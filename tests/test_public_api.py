"""The public surface ``import autoseed_jax as asj``: its names are pinned, each is the
function or class of its module, importing the package loads nothing heavy, and the
README's composition program uses exactly this surface."""

import importlib
import re
import subprocess
import sys

import autoseed_jax as asj
from helpers.check_install import compose_example

# Renaming or removing one of these breaks users' code: change it on purpose only.
PUBLIC = {
    'seeds': {'SeedMemory': 'SeedMemory', 'init_memory': 'init_memory',
              'make_seeds': 'make_seeds', 'add_seeds': 'add', 'prune_memory': 'prune',
              'sample_seeds': 'sample', 'memory_nbytes': 'nbytes'},
    'losses': {name: name for name in (
        'l2_normalize', 'class_logits', 'info_nce', 'task_loss', 'replay_loss',
        'distillation_kl', 'consistency_loss', 'alignment_loss', 'anchor_loss')},
    'adapters': {name: name for name in ('VLAdapter', 'init_adapter', 'adapted')},
    'generator': {'SeedGenerator': 'SeedGenerator', 'init_generator': 'init_generator',
                  'generate_seeds': 'generate', 'random_seeds': 'random_seeds'},
    'meta': {name: name for name in (
        'task_gradient_condition', 'unrolled_inner_loop', 'meta_update')},
    'selection': {name: name for name in ('gradient_alignment_scores', 'select_diverse')},
    'metrics': {name: name for name in (
        'final_average_accuracy', 'average_incremental_accuracy', 'forgetting',
        'backward_transfer', 'forward_transfer', 'all_metrics')},
    'continual': {name: name for name in (
        'ContinualState', 'Learner', 'build_learner', 'run_sequence', 'RunResult')},
    'tasks': {name: name for name in ('TaskStream', 'build_stream')},
    'runner': {'run_workdir': 'run_workdir'},
    'compilation_cache': {'configure_compilation_cache': 'configure'},
}


def test_public_names_are_pinned_and_are_their_modules_objects():
  pinned = {name for names in PUBLIC.values() for name in names}
  assert set(asj.__all__) == pinned
  for module, names in PUBLIC.items():
    mod = importlib.import_module(f'autoseed_jax.{module}')
    assert getattr(asj, module) is mod
    for public, attribute in names.items():
      assert getattr(asj, public) is getattr(mod, attribute), public
  assert pinned <= set(dir(asj))


def test_importing_the_package_imports_no_jax():
  proc = subprocess.run([sys.executable, '-c', 'import sys, autoseed_jax; '
                         'print(sorted(m for m in ("jax", "flax", "optax") if m in sys.modules))'],
                        capture_output=True, text=True, timeout=60)
  assert proc.returncode == 0 and proc.stdout.strip() == '[]', proc.stdout + proc.stderr


def test_unknown_names_raise_attribute_error():
  try:
    asj.no_such_thing  # pylint: disable=pointless-statement
  except AttributeError as e:
    assert 'no_such_thing' in str(e)
  else:
    raise AssertionError('asj.no_such_thing did not raise')


def test_readme_composition_program_uses_exactly_the_public_surface():
  program = compose_example()
  imports = re.findall(r'^(?:import|from) (\S+)', program, re.M)
  assert [m for m in imports if m.startswith('autoseed_jax')] == ['autoseed_jax']
  assert 'import autoseed_jax as asj' in program
  used = set(re.findall(r'\basj\.(\w+)', program))
  assert used and used <= set(asj.__all__), used - set(asj.__all__)
