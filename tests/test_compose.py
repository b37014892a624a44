"""Using seeds, the generator and the consistency loss from a user's own train step.

This runs the "compose with your own model" program of docs/LIBRARY.md itself (the block is
the source): a user has their own Flax model and optax optimiser, and adds Auto-Seed
VL2's seed replay and consistency term to their own jitted step through ``import
autoseed_jax as asj``, without our engine. tests/helpers/check_install.py runs the same
program from a fresh pip install.
"""

import contextlib
import io

import numpy as np

from helpers.check_install import COMPOSE_RESULT, compose_example


def test_library_page_composition_program_trains_with_seed_replay_and_consistency():
  namespace = {'__name__': '__main__'}
  printed = io.StringIO()
  with contextlib.redirect_stdout(printed):
    exec(compile(compose_example(), 'docs/LIBRARY.md (compose)', 'exec'), namespace)  # pylint: disable=exec-used
  assert COMPOSE_RESULT.search(printed.getvalue()), printed.getvalue()
  consistencies = namespace['consistencies']
  assert len(consistencies) == 30
  assert consistencies[0] < 1e-6                     # θ = θ⁻ at the start
  assert all(np.isfinite(consistencies)) and max(consistencies) > 0
  # The consistency term keeps the old classes' seeds where θ⁻ put them.
  assert namespace['drift'] < 0.5
  memory = namespace['memory']
  assert int(memory.num_valid()) == 6 and set(np.asarray(memory.label[:6])) == {0, 1}
