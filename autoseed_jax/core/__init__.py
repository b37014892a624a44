"""The method's pure pieces: pytrees and functions with no I/O, no config files, no runs.

Seed memory (``seeds``), losses (``losses``), the adapters (``adapters``), the seed
generator (``generator``), the meta-update (``meta``), seed choice (``selection``), class
k-means for summary seeds (``kmeans``), the summary groups of every task kind and their
bytes (``pair_groups``), the metrics (``metrics``), the task contract
between streams and engine (``tasks``), the task kinds (``task_kinds``) with their losses
(``kind_losses``), evaluation (``kind_eval``) and metrics (``kind_metrics``), devices
(``parallel``) and the config-field rules (``config_checks``). The engine
(``autoseed_jax.continual``) and the methods (``autoseed_jax.methods``) are built on them.
"""
