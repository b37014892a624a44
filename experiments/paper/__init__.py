"""The paper's experiments (METHOD §5-§7) on the embedded streams: one module per
experiment, each reading its config (experiments/configs/exp_*.py).

  python -m experiments.paper --config experiments/configs/exp_all.py --workdir experiments/results
  python -m experiments.paper --config experiments/configs/exp_all.py:quick --workdir runs/quick
  python -m experiments.paper --config experiments/configs/exp_main.py --workdir DIR

  main_table  every method on every stream over run seeds: METHOD §6 metrics
  ablation    the rows of METHOD §5 (and ours), beside the paper's numbers
  memory      seed methods and ER-VLM across byte budgets (bytes vs final accuracy)
  seeds       seed fidelity: cosine to real class means, spread along task directions
  fwt         forward transfer per task, per method
  claims      the paper's claims beside what was measured (claims.json / claims.md)
  driver      runs configs in that order into the workdir, then claims and suite.json

Each experiment writes ``<workdir>/<experiment>/``: ``<experiment>.json`` (every run, the
summary, the Markdown tables and notes), ``<experiment>.csv``, ``<experiment>_runs.csv``,
``<experiment>.md`` and PNG figures. All runs go through one ``experiments.suite.Suite``,
which compiles each (method, config) once and caches finished runs (``config.cache_dir``),
so rerunning an interrupted command resumes it. ``experiments/update_readme.py`` turns the
files into experiments/results/README.md.
"""
