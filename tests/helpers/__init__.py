"""Helpers shared by the tests, imported as ``helpers`` (``tests/`` is on the test path,
pyproject.toml), never as ``tests.helpers``: other distributions install a top-level
``tests`` package (avalanche-lib does) that would shadow ours."""

# The XLA flags of every test process (tests/conftest.py puts them in the environment, so
# every subprocess inherits them): tests pin behaviour, not speed, and with XLA's backend
# optimisations off the programs compile about twice as fast (compiling is most of a test's
# time on 2 cores).
TEST_XLA_FLAGS = '--xla_backend_optimization_level=0'
