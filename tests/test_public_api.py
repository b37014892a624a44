"""The public surface ``import autoseed_jax as asj``: its names are pinned, each is the
function or class of its module, importing the package loads nothing heavy, and the
composition program of docs/LIBRARY.md uses exactly this surface."""

import importlib
import re
import subprocess
import sys

import pytest

import autoseed_jax as asj
from helpers.check_install import compose_example

# Renaming or removing one of these breaks users' code: change it on purpose only.
PUBLIC = {
    'core.seeds': ('SeedMemory', 'init_memory', 'make_seeds', 'add_seeds', 'prune_memory',
                   'sample_seeds', 'memory_nbytes'),
    'core.losses': ('l2_normalize', 'class_logits', 'info_nce', 'task_loss', 'replay_loss',
                    'distillation_kl', 'consistency_loss', 'alignment_loss', 'anchor_loss'),
    'core.adapters': ('VLAdapter', 'init_adapter', 'adapted'),
    'core.generator': ('SeedGenerator', 'init_generator', 'generate_seeds', 'random_seeds'),
    'core.meta': ('task_gradient_condition', 'unrolled_inner_loop', 'meta_update'),
    'core.selection': ('gradient_alignment_scores', 'select_diverse'),
    'core.metrics': ('final_average_accuracy', 'average_incremental_accuracy', 'forgetting',
                     'backward_transfer', 'forward_transfer', 'all_metrics'),
    'continual': ('ContinualState', 'Learner', 'build_learner', 'run_sequence', 'RunResult'),
    'core.tasks': ('TaskStream', 'build_stream'),
    'runner': ('run_workdir',),
    'tools.compilation_cache': ('configure_compilation_cache',),
}


def test_public_names_are_pinned_and_are_their_modules_objects_under_one_name():
  pinned = {name for names in PUBLIC.values() for name in names}
  assert set(asj.__all__) == pinned
  for module, names in PUBLIC.items():
    mod = importlib.import_module(f'autoseed_jax.{module}')
    for name in names:
      assert getattr(asj, name) is getattr(mod, name), name
  assert pinned <= set(dir(asj))
  for package in ('core', 'methods', 'streams', 'report', 'tools', 'models', 'data'):
    assert getattr(asj, package) is importlib.import_module(f'autoseed_jax.{package}')


def test_old_module_paths_and_names_still_work_for_one_release_with_a_warning():
  """Release 0.1's module paths (``asj.seeds``, ``import autoseed_jax.vl_tasks``) and
  function names (``seeds.add``) reach the same objects, each with a DeprecationWarning
  that names the new place."""
  for old, new in asj.MOVED_MODULES.items():
    new_module = importlib.import_module(f'autoseed_jax.{new}')
    with pytest.warns(DeprecationWarning, match=f'use autoseed_jax.{new}'):
      assert getattr(asj, old) is new_module
    sys.modules.pop(f'autoseed_jax.{old}', None)
    with pytest.warns(DeprecationWarning, match=f'use autoseed_jax.{new}'):
      assert importlib.import_module(f'autoseed_jax.{old}') is new_module
    sys.modules.pop(f'autoseed_jax.{old}', None)
  for (module, old), new in asj.RENAMED.items():
    target = new if '.' in new else f'{module}.{new}'
    target_module, _, attribute = target.rpartition('.')
    expected = getattr(importlib.import_module(f'autoseed_jax.{target_module}'), attribute)
    with pytest.warns(DeprecationWarning, match=f'use autoseed_jax.{target}'):
      assert getattr(importlib.import_module(f'autoseed_jax.{module}'), old) is expected
  with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
    getattr(importlib.import_module('autoseed_jax.core.seeds'), 'no_such_name')


def test_importing_the_package_imports_no_jax():
  proc = subprocess.run([sys.executable, '-c', 'import sys, autoseed_jax; '
                         'print(sorted(m for m in ("jax", "flax", "optax") if m in sys.modules))'],
                        capture_output=True, text=True, timeout=60)
  assert proc.returncode == 0 and proc.stdout.strip() == '[]', proc.stdout + proc.stderr


def test_unknown_names_raise_attribute_error():
  with pytest.raises(AttributeError, match='no_such_thing'):
    asj.no_such_thing  # pylint: disable=pointless-statement


def test_library_page_composition_program_uses_exactly_the_public_surface():
  program = compose_example()
  imports = re.findall(r'^(?:import|from) (\S+)', program, re.M)
  assert [m for m in imports if m.startswith('autoseed_jax')] == ['autoseed_jax']
  assert 'import autoseed_jax as asj' in program
  used = set(re.findall(r'\basj\.(\w+)', program))
  assert used and used <= set(asj.__all__), used - set(asj.__all__)


def test_the_surface_is_documented_where_it_is_written():
  """asj's names appear in its docstring and in docs/LIBRARY.md's table, each beside the
  module that defines it: the lists cannot drift from ``asj._EXPORTS``."""
  import pathlib  # pylint: disable=import-outside-toplevel
  page = (pathlib.Path(__file__).resolve().parents[1] / 'docs' / 'LIBRARY.md').read_text()
  table = {}
  for names, module in re.findall(r'^\| (`\w+`(?:, `\w+`)*) \| .*? \| `([\w.]+)` \|$', page,
                                  re.M):
    for name in re.findall(r'`(\w+)`', names):
      table[name] = module
  assert table == asj._EXPORTS  # pylint: disable=protected-access
  doc = re.sub(r'\s+', ' ', asj.__doc__)
  for name, module in asj._EXPORTS.items():  # pylint: disable=protected-access
    assert re.search(rf'\b{name}\b', doc), name
    assert f'[{module}]' in doc, module
