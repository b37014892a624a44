"""Runs ``python -m autoseed_jax.main`` with TensorFlow hidden, as on a machine where it
is not installed:

  python tests/helpers/without_tensorflow.py --config ... --workdir ...

Every import finder answers "not found" for ``tensorflow`` and its submodules, so
``import tensorflow`` raises ModuleNotFoundError and ``importlib.util.find_spec
('tensorflow')`` is None, as without it; ``tensorflow_datasets``, which does not need
TensorFlow, imports as usual.
"""

import os
import runpy
import sys


class WithoutTensorFlow:
  """An import finder that finds what ``finder`` finds, but not TensorFlow."""

  def __init__(self, finder):
    self.finder = finder

  def find_spec(self, name, path=None, target=None):
    if name == 'tensorflow' or name.startswith('tensorflow.'):
      return None
    return self.finder.find_spec(name, path, target)

  def __getattr__(self, attribute):  # invalidate_caches, find_distributions, ...
    return getattr(self.finder, attribute)


if __name__ == '__main__':
  sys.meta_path[:] = [WithoutTensorFlow(finder) for finder in sys.meta_path]
  sys.path[0] = os.getcwd()  # as `python -m`: the current directory, not this folder
  sys.argv = ['autoseed_jax.main'] + sys.argv[1:]
  runpy.run_module('autoseed_jax.main', run_name='__main__', alter_sys=True)
