"""Defaults shared by every config: the Auto-Seed VL2 method and its ablation switches.

Each field is documented where it is set. Configs import ``method_config()`` and
override what they need; any field can be overridden on the command line,
e.g. ``--config.memory_budget=40``.
"""

import importlib

import ml_collections


def method_config() -> ml_collections.ConfigDict:
  """Method hyperparameters (METHOD §1-§5), flat so `--config.<field>=` works."""
  c = ml_collections.ConfigDict()
  c.seed = 0                      # run seed: parameter init, data order, noise, sketch R
  c.seeds = ()                    # run seeds to run together in one compiled program
                                  # (autoseed_jax/seed_axis.py, docs/SEEDS_AXIS.md), e.g.
                                  # (0, 1, 2, 3, 4); empty: config.seed alone
  c.seed_sharding = 'data'        # with seeds on several devices: 'data' (task rows
                                  # sharded, every device holds every seed) | 'seeds'
                                  # (the seed axis sharded over the devices; jit only)
  c.method = 'autoseed'           # a name of autoseed_jax.methods.METHODS

  # Adapters (METHOD §1).
  c.adapter_hidden = 256          # hidden width of each residual adapter MLP
  c.adapter_alpha = 0.5           # residual ratio α
  c.init_logit_scale = 10.0       # exp(log τ) at initialisation (learnable)

  # Online adaptation (METHOD §4.2).
  c.steps_per_task = 300          # optimiser steps on each task
  c.steps_per_chunk = 100         # steps per compiled scan call (progress/checkpoint unit)
  c.batch_size = 64               # real examples per step
  c.learning_rate = 1e-3          # AdamW on θ
  c.weight_decay = 1e-4
  c.reset_optimizer = True        # fresh optimiser state at the start of every task

  # Seed replay and consistency (METHOD §3, §4.1-4.2).
  c.seed_batch_size = 32          # seeds drawn per step, without replacement (at most K)
  c.replay_weight = 1.0           # λ_r
  c.replay_infonce_weight = 1.0   # weight of in-batch InfoNCE inside L_replay
  c.consistency_weight = 1.0      # λ_c; 0 is the "no consistency loss" ablation
  c.kd_temperature = 2.0          # T_kd of the KL term

  # Seed memory (METHOD §2, §4.3d).
  c.memory_budget = 50            # K: seeds kept in memory after each task
  c.memory_capacity = 0           # fixed slots of the memory pytree; 0 means = K
  c.seeds_per_class = 5           # k: seeds kept per new class
  c.candidates_per_class = 16     # k_gen: candidates generated per class before scoring
  c.redundancy_cosine = 0.98      # skip a candidate this similar to a kept seed
  c.prune = True                  # False: "no seed pruning (full memory)" ablation
  c.seed_source = 'generator'     # 'generator' | 'generator_no_meta' | 'random'
  c.random_seed_sigma = 0.05      # σ of the "random seeds" ablation: v = norm(e + σε)

  # Generator G_φ and its meta-update (METHOD §4.3a-c).
  c.sketch_dim = 128              # m: size of the sketched task gradient u_c
  c.sketch_cache = True           # keep the Gaussian R (m x P float32, 202 MB for the
                                  # default adapters) in memory for the whole run instead
                                  # of redrawing it at every seed update (same R, faster)
  c.noise_dim = 16                # size of z
  c.generator_hidden = 256
  c.generator_layers = 2
  c.generator_residual = True     # v, w = normalize(e_c + Δ) (see generator.py)
  c.meta_steps = 20               # M: Adam steps on φ per task
  c.meta_learning_rate = 1e-3
  c.meta_seeds_per_class = 4      # seeds per class generated inside each meta step
  c.inner_steps = 5               # n_inner: unrolled SGD steps from θ_{t-1}
  c.inner_learning_rate = 0.5     # α of the inner loop
  c.inner_grad_clip = 0.0         # 0: plain gradient descent, METHOD §4.3c as written; > 0
                                  # clips each inner-loop gradient to this global norm
                                  # (ours, opt-in: keeps the meta-optimiser from driving the
                                  # unrolled loop to divergence; docs/DEVICES.md)
  c.align_weight = 0.1            # β
  c.anchor_weight = 1.0           # γ
  c.vl_condition_rows = 512       # vision-language tasks: training rows (a random subset)
                                  # the task-gradient conditions use (methods/autoseed.py)

  # Devices (autoseed_jax/core/parallel.py).
  c.parallel = 'jit'              # 'jit' (NamedSharding over a data mesh) | 'pmap'
  c.num_devices = 0               # data-parallel devices; 0 = every device
  c.distributed = False           # call jax.distributed.initialize (multi-host runs)

  # Compiled programs are kept on disk and loaded by later runs instead of compiled again
  # (autoseed_jax/tools/compilation_cache.py). Unset: $AUTOSEED_COMPILATION_CACHE_DIR or
  # ~/.cache/autoseed_jax/jax_compilation_cache; 'none' turns the cache off.
  c.compilation_cache_dir = ml_collections.config_dict.placeholder(str)

  # Checkpoints (autoseed_jax/runner.py): rerunning a command on its --workdir resumes it.
  c.checkpoint_every_steps = -1   # also save at chunk ends crossing a multiple of this
                                  # many steps of a task (-1: every chunk; 0: only after
                                  # each task)
  c.checkpoints_to_keep = 3       # newest checkpoints kept per method (>= 2 keeps a fallback)

  # Baselines (METHOD §7) and methods of ours beyond METHOD (docs/autoseed_plus.md): each
  # module's defaults(), documented there field by field (er_*, joint_*, lwf_*, ewc_*,
  # dgr_*, hnet_*, coop_*, maple_*, prompt_text_tower; plus_*, mmd_* of autoseed_plus,
  # summary_* of kmeans_seeds / refined_seeds; gauss_*, fetril_* of gauss_replay / fetril,
  # ncm_*, ranpac_* of the training-free heads, docs/PEERS.md).
  for baseline in ('er', 'joint', 'lwf', 'ewc', 'dgr', 'hnet', 'coop', 'maple',
                   'autoseed_plus', 'summary_seeds', 'class_gaussian', 'frozen_heads'):
    c.update(importlib.import_module(f'autoseed_jax.methods.{baseline}').defaults())
  return c
