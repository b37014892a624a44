"""Helpers shared by the tests, imported as ``helpers`` (``tests/`` is on the test path,
pyproject.toml), never as ``tests.helpers``: other distributions install a top-level
``tests`` package (avalanche-lib does) that would shadow ours."""
