"""autoseed_jax: rehearsal-free continual learning of vision-language models in JAX.

Public modules (METHOD.md section in brackets):
  seeds      SeedMemory and its pure operations init_memory/add/prune/sample/nbytes (§2)
  losses     info_nce, task_loss, replay_loss, consistency_loss, alignment/anchor (§3)
  adapters   residual image/text adapters and the learnable temperature (§1)
  generator  the seed hypernetwork G_φ and generate (§4.3b)
  meta       task_gradient_condition and meta_update (§4.3a-c)
  metrics    accuracy-matrix metrics (§6)
  continual  ContinualState, build_learner, learn_task, run_sequence (§4)
"""

__version__ = '0.1.0'
