"""Resume from a checkpoint in the middle of a run, in process, shared by the tests of
every method family."""

import shutil

from autoseed_jax import continual, runner
from autoseed_jax.tools import checkpoint


def copy_up_to(full, partial, ids, ckpt_id) -> None:
  """Copies the workdir ``full`` (checkpoint ids ``ids``) to ``partial`` without the
  checkpoints after ``ckpt_id``: a run stopped just after saving it."""
  shutil.copytree(full, partial)
  for later in ids[ids.index(ckpt_id) + 1:]:
    shutil.rmtree(partial / str(later))


def resume_from_the_middle(config, stream, tmp_path):
  """Runs ``config`` on ``stream`` to the end in ``tmp_path/full``, then again in
  ``tmp_path/partial`` from a copy of the middle checkpoint; returns (the lines of the
  resumed run, the middle checkpoint's id, the full run's state digest, the resumed run's)."""
  learner = continual.build_learner(config, stream)
  store = checkpoint.CheckpointStore(str(tmp_path / 'full'), keep=100)
  try:
    full = runner.run_method(config, stream, learner, store, out=lambda line: None)
  finally:
    store.close()
  ids = checkpoint.CheckpointStore(str(tmp_path / 'full'), keep=100).ids()
  middle = ids[len(ids) // 2]
  partial = tmp_path / 'partial'
  copy_up_to(tmp_path / 'full', partial, ids, middle)
  store = checkpoint.CheckpointStore(str(partial), keep=100)
  lines = []
  try:
    resumed = runner.run_method(config, stream, learner, store, out=lines.append)
  finally:
    store.close()
  return (lines, middle, checkpoint.state_digest(full.state),
          checkpoint.state_digest(resumed.state))


def assert_resumes_bit_identically(config, stream, tmp_path):
  """A run resumed from its middle checkpoint ends in the uninterrupted run's state."""
  lines, middle, full, resumed = resume_from_the_middle(config, stream, tmp_path)
  assert any(line.startswith(f'resuming from checkpoint {middle} ') for line in lines)
  assert resumed == full
