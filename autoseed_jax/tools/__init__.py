"""What a run in a workdir needs beside the engine: checkpoints of the run state, the
workdir lock, JAX's compilation cache, one-line errors for failed writes, compile counting
and the command-line helpers. Nothing here changes a run's numbers."""
