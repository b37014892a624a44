"""Helpers shared by the tests, imported as ``helpers`` (``tests/`` is on the test path,
pyproject.toml), never as ``tests.helpers``: other distributions install a top-level
``tests`` package (avalanche-lib does) that would shadow ours."""

# The XLA flags of every test process (tests/conftest.py puts them in the environment, so
# every subprocess inherits them): tests pin behaviour, not speed. Compiling is most of a
# test's time on 2 cores: with XLA's backend optimisations off a program compiles about
# twice as fast, and without the CPU fusion emitters (XLA's older loop emitter instead)
# about 40% faster again (experiments/bench_test_flags.py measures both).
TEST_XLA_FLAGS = '--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false'
