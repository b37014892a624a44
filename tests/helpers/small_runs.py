"""The small synthetic run of tests/test_vmap_seeds.py, also timed by
experiments/bench_test_flags.py: a 3-task stream (``STREAM``, the arguments of
``make_synthetic_stream``) and method settings that compile and run in seconds
(``SMALL``, config fields)."""

STREAM = dict(num_tasks=3, classes_per_task=2, dim=16, train_per_class=30, test_per_class=20,
              seed=0)
SMALL = dict(steps_per_task=12, steps_per_chunk=6, adapter_hidden=16, generator_hidden=16,
             sketch_dim=16, noise_dim=4, meta_steps=2, plus_meta_steps=2, inner_steps=1,
             memory_budget=12, candidates_per_class=8)
