"""autoseed_jax: rehearsal-free continual learning of vision-language models in JAX.

The functional core under stable names (``import autoseed_jax as asj``); each name is
the function or class of the module in brackets, loaded on first use (so that
``import autoseed_jax`` itself imports nothing heavy). METHOD.md sections in brackets:

  seed memory (§2)       SeedMemory, init_memory, make_seeds, add_seeds, prune_memory,
                         sample_seeds, memory_nbytes                        [seeds]
  losses (§3)            l2_normalize, class_logits, info_nce, task_loss, replay_loss,
                         distillation_kl, consistency_loss, alignment_loss,
                         anchor_loss                                       [losses]
  adapters (§1)          VLAdapter, init_adapter, adapted                  [adapters]
  generator (§4.3b)      SeedGenerator, init_generator, generate_seeds, random_seeds
                                                                           [generator]
  meta-update (§4.3a-c)  task_gradient_condition, unrolled_inner_loop, meta_update [meta]
  seed choice (§4.3d)    gradient_alignment_scores, select_diverse          [selection]
  metrics (§6)           final_average_accuracy, average_incremental_accuracy,
                         forgetting, backward_transfer, forward_transfer,
                         all_metrics                                       [metrics]
  the learner (§4)       ContinualState, Learner, build_learner, run_sequence,
                         RunResult                                         [continual]
  your own data          TaskStream, build_stream                          [tasks]
  runs in a workdir      run_workdir                                       [runner]
  compile once           configure_compilation_cache             [compilation_cache]

The modules themselves (``asj.seeds``, ``asj.losses``, ...) hold the rest: the
baselines (``methods``), devices (``parallel``), backbones (``models``), data
(``data``, ``streams``), the vision-language task kinds (``vl_tasks``, ``vl_engine``,
``vl_metrics``, ``vl_streams``), checkpoints and reports.
"""

from __future__ import annotations

import importlib

__version__ = '0.1.0'

# Public name -> (module, attribute in it).
_EXPORTS = {
    # Seed memory (METHOD §2).
    'SeedMemory': ('seeds', 'SeedMemory'),
    'init_memory': ('seeds', 'init_memory'),
    'make_seeds': ('seeds', 'make_seeds'),
    'add_seeds': ('seeds', 'add'),
    'prune_memory': ('seeds', 'prune'),
    'sample_seeds': ('seeds', 'sample'),
    'memory_nbytes': ('seeds', 'nbytes'),
    # Losses (§3).
    'l2_normalize': ('losses', 'l2_normalize'),
    'class_logits': ('losses', 'class_logits'),
    'info_nce': ('losses', 'info_nce'),
    'task_loss': ('losses', 'task_loss'),
    'replay_loss': ('losses', 'replay_loss'),
    'distillation_kl': ('losses', 'distillation_kl'),
    'consistency_loss': ('losses', 'consistency_loss'),
    'alignment_loss': ('losses', 'alignment_loss'),
    'anchor_loss': ('losses', 'anchor_loss'),
    # Adapters (§1).
    'VLAdapter': ('adapters', 'VLAdapter'),
    'init_adapter': ('adapters', 'init_adapter'),
    'adapted': ('adapters', 'adapted'),
    # Generator (§4.3b).
    'SeedGenerator': ('generator', 'SeedGenerator'),
    'init_generator': ('generator', 'init_generator'),
    'generate_seeds': ('generator', 'generate'),
    'random_seeds': ('generator', 'random_seeds'),
    # Meta-update (§4.3a-c).
    'task_gradient_condition': ('meta', 'task_gradient_condition'),
    'unrolled_inner_loop': ('meta', 'unrolled_inner_loop'),
    'meta_update': ('meta', 'meta_update'),
    # Seed choice (§4.3d).
    'gradient_alignment_scores': ('selection', 'gradient_alignment_scores'),
    'select_diverse': ('selection', 'select_diverse'),
    # Metrics (§6).
    'final_average_accuracy': ('metrics', 'final_average_accuracy'),
    'average_incremental_accuracy': ('metrics', 'average_incremental_accuracy'),
    'forgetting': ('metrics', 'forgetting'),
    'backward_transfer': ('metrics', 'backward_transfer'),
    'forward_transfer': ('metrics', 'forward_transfer'),
    'all_metrics': ('metrics', 'all_metrics'),
    # The learner (§4).
    'ContinualState': ('continual', 'ContinualState'),
    'Learner': ('continual', 'Learner'),
    'build_learner': ('continual', 'build_learner'),
    'run_sequence': ('continual', 'run_sequence'),
    'RunResult': ('continual', 'RunResult'),
    # Your own data and runs.
    'TaskStream': ('tasks', 'TaskStream'),
    'build_stream': ('tasks', 'build_stream'),
    'run_workdir': ('runner', 'run_workdir'),
    'configure_compilation_cache': ('compilation_cache', 'configure'),
}

# Submodules reachable as attributes without importing them first.
_SUBMODULES = (
    'adapters', 'checkpoint', 'cli', 'compilation_cache', 'continual', 'data', 'generator',
    'losses', 'meta', 'methods', 'metrics', 'models', 'parallel', 'plots', 'profiling',
    'report', 'reporting', 'runner', 'seeds', 'selection', 'streams', 'synthetic', 'tasks',
    'vl_engine', 'vl_metrics', 'vl_streams', 'vl_tasks', 'workdir_lock',
)

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
  if name in _EXPORTS:
    module, attribute = _EXPORTS[name]
    value = getattr(importlib.import_module(f'{__name__}.{module}'), attribute)
    globals()[name] = value  # later lookups skip this function
    return value
  if name in _SUBMODULES:
    return importlib.import_module(f'{__name__}.{name}')
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def __dir__():
  return sorted(set(globals()) | set(_EXPORTS) | set(_SUBMODULES))

