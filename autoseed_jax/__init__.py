"""autoseed_jax: rehearsal-free continual learning of vision-language models in JAX.

The functional core under stable names (``import autoseed_jax as asj``); each name is the
function or class of the same name in the module in brackets, loaded on first use (so
that ``import autoseed_jax`` itself imports nothing heavy). METHOD sections
(docs/METHOD.md) in brackets:

  seed memory (§2)       SeedMemory, init_memory, make_seeds, add_seeds, prune_memory,
                         sample_seeds, memory_nbytes                     [core.seeds]
  losses (§3)            l2_normalize, class_logits, info_nce, task_loss, replay_loss,
                         distillation_kl, consistency_loss, alignment_loss,
                         anchor_loss                                    [core.losses]
  adapters (§1)          VLAdapter, init_adapter, adapted               [core.adapters]
  generator (§4.3b)      SeedGenerator, init_generator, generate_seeds, random_seeds
                                                                        [core.generator]
  meta-update (§4.3a-c)  task_gradient_condition, unrolled_inner_loop, meta_update
                                                                        [core.meta]
  seed choice (§4.3d)    gradient_alignment_scores, select_diverse       [core.selection]
  metrics (§6)           final_average_accuracy, average_incremental_accuracy,
                         forgetting, backward_transfer, forward_transfer,
                         all_metrics                                    [core.metrics]
  the learner (§4)       ContinualState, Learner, build_learner, run_sequence,
                         RunResult                                      [continual]
  your own data          TaskStream, build_stream                       [core.tasks]
  runs in a workdir      run_workdir                                    [runner]
  compile once           configure_compilation_cache         [tools.compilation_cache]

The packages hold the rest (``asj.core``, ``asj.methods``, ``asj.streams``, ``asj.models``,
``asj.data``, ``asj.report``, ``asj.tools``; ``asj.seed_axis`` runs many run seeds in one
program; docs/LIBRARY.md). The module names of
release 0.1 (``asj.seeds``, ``asj.vl_tasks``, ...) and their functions' old names
(``seeds.add``, ...) still work for this release, with a DeprecationWarning naming the
new place (``MOVED_MODULES``, ``RENAMED``).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

__version__ = '0.2.0'

# Public name -> module that defines it under the same name.
_EXPORTS = {
    **dict.fromkeys(('SeedMemory', 'init_memory', 'make_seeds', 'add_seeds', 'prune_memory',
                     'sample_seeds', 'memory_nbytes'), 'core.seeds'),
    **dict.fromkeys(('l2_normalize', 'class_logits', 'info_nce', 'task_loss', 'replay_loss',
                     'distillation_kl', 'consistency_loss', 'alignment_loss', 'anchor_loss'),
                    'core.losses'),
    **dict.fromkeys(('VLAdapter', 'init_adapter', 'adapted'), 'core.adapters'),
    **dict.fromkeys(('SeedGenerator', 'init_generator', 'generate_seeds', 'random_seeds'),
                    'core.generator'),
    **dict.fromkeys(('task_gradient_condition', 'unrolled_inner_loop', 'meta_update'),
                    'core.meta'),
    **dict.fromkeys(('gradient_alignment_scores', 'select_diverse'), 'core.selection'),
    **dict.fromkeys(('final_average_accuracy', 'average_incremental_accuracy', 'forgetting',
                     'backward_transfer', 'forward_transfer', 'all_metrics'), 'core.metrics'),
    **dict.fromkeys(('ContinualState', 'Learner', 'build_learner', 'run_sequence',
                     'RunResult'), 'continual'),
    **dict.fromkeys(('TaskStream', 'build_stream'), 'core.tasks'),
    'run_workdir': 'runner',
    'configure_compilation_cache': 'tools.compilation_cache',
}

# Subpackages and modules reachable as attributes without importing them first.
_SUBMODULES = ('continual', 'core', 'data', 'main', 'methods', 'models', 'report', 'runner',
               'seed_axis', 'streams', 'tools')

# Deprecated for one release: module paths of release 0.1 -> where they live now.
MOVED_MODULES = {
    'adapters': 'core.adapters', 'losses': 'core.losses', 'seeds': 'core.seeds',
    'generator': 'core.generator', 'meta': 'core.meta', 'selection': 'core.selection',
    'metrics': 'core.metrics', 'tasks': 'core.tasks', 'parallel': 'core.parallel',
    'config_checks': 'core.config_checks', 'summary': 'core.kmeans',
    'vl_tasks': 'core.task_kinds', 'vl_engine': 'core.kind_losses',
    'vl_metrics': 'core.kind_metrics', 'workdir_lock': 'tools.workdir_lock',
    'compilation_cache': 'tools.compilation_cache', 'profiling': 'tools.profiling',
    'cli': 'tools.cli', 'reporting': 'report.result_records', 'plots': 'report.plots',
    'vl_streams': 'streams.vision_language', 'synthetic': 'streams.synthetic',
    'checkpoint': 'tools.checkpoint',
}
# Deprecated for one release: (module now, old name) -> new name.
RENAMED = {
    ('core.seeds', 'add'): 'add_seeds', ('core.seeds', 'prune'): 'prune_memory',
    ('core.seeds', 'sample'): 'sample_seeds', ('core.seeds', 'nbytes'): 'memory_nbytes',
    ('core.generator', 'generate'): 'generate_seeds',
    ('core.kind_losses', 'evaluate'): 'core.kind_eval.evaluate',
    ('tools.compilation_cache', 'configure'): 'configure_compilation_cache',
}

__all__ = sorted(_EXPORTS)


def _warn_moved(old: str, new: str) -> None:
  warnings.warn(f'{old} is deprecated and will be removed in the next release; use {new}.',
                DeprecationWarning, stacklevel=3)


def _moved_module(name: str):
  new = f'{__name__}.{MOVED_MODULES[name]}'
  _warn_moved(f'{__name__}.{name}', new)
  return importlib.import_module(new)


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
  """``import autoseed_jax.<old module>`` imports the module at its new place."""

  def find_spec(self, fullname, path=None, target=None):
    del path, target
    prefix, _, name = fullname.rpartition('.')
    if prefix == __name__ and name in MOVED_MODULES:
      return importlib.util.spec_from_loader(fullname, self)
    return None

  def create_module(self, spec):
    return _moved_module(spec.name.rpartition('.')[2])

  def exec_module(self, module):
    del module


sys.meta_path.append(_MovedModuleFinder())


def renamed_attribute(module: str, name: str):
  """The object an old name of ``module`` (``RENAMED``) stands for, with a warning; an
  AttributeError for any other missing name (a module's ``__getattr__`` calls this)."""
  new = RENAMED.get((module, name))
  if new is None:
    raise AttributeError(f'module {__name__}.{module!r} has no attribute {name!r}')
  target_module, _, attribute = (f'{module}.{new}' if '.' not in new else new).rpartition('.')
  _warn_moved(f'{__name__}.{module}.{name}', f'{__name__}.{target_module}.{attribute}')
  return getattr(importlib.import_module(f'{__name__}.{target_module}'), attribute)


def __getattr__(name: str):
  if name in _EXPORTS:
    value = getattr(importlib.import_module(f'{__name__}.{_EXPORTS[name]}'), name)
    globals()[name] = value  # later lookups skip this function
    return value
  if name in _SUBMODULES:
    return importlib.import_module(f'{__name__}.{name}')
  if name in MOVED_MODULES:
    return _moved_module(name)
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def __dir__():
  return sorted(set(globals()) | set(_EXPORTS) | set(_SUBMODULES))
