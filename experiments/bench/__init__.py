"""The benchmark harness: ``python -m experiments.bench`` (see ``__main__``); one module
per section."""
