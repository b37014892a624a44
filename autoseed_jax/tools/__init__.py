"""Tooling of the commands: the workdir lock, JAX's compilation cache, compile counting
and the command-line helpers. Nothing here changes a run's numbers."""
