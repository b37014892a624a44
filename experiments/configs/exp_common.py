"""Settings shared by the experiment configs (exp_*.py) and their quick form.

Every experiment config is run by the one entry point; ``:quick`` selects the smoke form:

  python -m experiments.paper --config experiments/configs/exp_main.py --workdir DIR
  python -m experiments.paper --config experiments/configs/exp_main.py:quick --workdir DIR

Fields every experiment config has (``experiment_config``); each exp_*.py adds its own:

  experiment      which experiment runs: main | ablation | memory | seeds | fwt
  quick           True for the ``:quick`` form (set by the argument; informational)
  streams         embedded real streams, names from autoseed_jax/streams.py
  seeds           run seeds (``config.seed`` of every run); results are mean ± std over them
  train_fraction  share of each class's training images used, in (0, 1]
  base            the method settings every run starts from (``base_config``; fields in
                  common.py / real_streams.py), e.g. ``--config.base.steps_per_task=50``
  cache_dir       finished runs are kept here and read back instead of rerun (keyed by
                  config, stream and library source): rerunning an interrupted command
                  resumes it. Relative to the current directory; 'none': memory only.
  compilation_cache_dir  compiled XLA programs are kept here for later runs (unset:
                  $AUTOSEED_COMPILATION_CACHE_DIR or ~/.cache/autoseed_jax/
                  jax_compilation_cache; 'none': off; autoseed_jax/tools/compilation_cache.py)

Every method of every experiment runs with ``real_stream_config()`` (the real-stream
settings chosen on animals-ci), so all methods share the optimisation settings: 100 AdamW
steps of batch 64 per task at learning rate 3e-4 on the same adapters. Baseline
hyperparameters are the library defaults (er.py, lwf.py, ewc.py, dgr.py, hnet.py).

Method variants. A *label* names a method and what it sets on top of the base config:
``er_1x`` / ``er_10x`` are ER-VLM with a memory of 1x / 10x the bytes that the Auto-Seed
VL2 run with the same stream and seed actually held at the end (its ``memory_bytes``,
passed as ``er_memory_bytes``); ``er_budget`` is ER-VLM with the seed memory's full byte
budget, the bytes of K = ``memory_budget`` seeds (``er_memory_seed_multiple=1``), which is
also the budget of ``autoseed_plus``, ``kmeans_seeds`` and ``refined_seeds`` (their
``plus_memory_bytes`` = 0): the fair comparison for every seed method. The statistics
replays and frozen heads (docs/PEERS.md) take the same budget: ``gauss_mean`` / ``gauss_diag``
/ ``gauss_lowrank`` / ``gauss_full`` (class-Gaussian replay by covariance form; a form that
does not fit is shown as such), ``fetril``, ``ncm``, ``ncm_text``, ``ranpac_budget`` (the
projection width that fits the bytes) and ``ranpac`` (its tuned width, whatever its Gram
matrix costs).

Run seeds: every (method, config) runs all of ``seeds`` in one compiled program (a leading
seed axis, autoseed_jax/seed_axis.py); a row shows the worst seed beside mean ± std.
"""

import ml_collections

from experiments.configs.real_streams import real_stream_config

STREAMS = ('animals-ci', 'animals-digits')
VL_STREAM = 'vl-scenes'  # the main table's vision-language stream (exp_main.py)
SEEDS = (0, 1, 2, 3, 4)  # run together in one program per (method, config): seed_axis

# label -> (method, config overrides, ER bytes as a multiple of Auto-Seed's memory or 0).
METHOD_VARIANTS = {
    'zeroshot': ('zeroshot', {}, 0),
    'finetune': ('finetune', {}, 0),
    'joint': ('joint', {}, 0),
    'er_1x': ('er', {}, 1),
    'er_10x': ('er', {}, 10),
    'lwf': ('lwf', {}, 0),
    'ewc': ('ewc', {}, 0),
    'dgr': ('dgr', {}, 0),
    'dgr_pixel': ('dgr_pixel', {}, 0),
    'hnet': ('hnet', {}, 0),
    'coop': ('coop', {}, 0),
    'maple': ('maple', {}, 0),
    'autoseed': ('autoseed', {}, 0),
    'er_budget': ('er', {'er_memory_seed_multiple': 1.0}, 0),
    'kmeans_seeds': ('kmeans_seeds', {}, 0),
    'refined_seeds': ('refined_seeds', {}, 0),
    'autoseed_plus': ('autoseed_plus', {}, 0),
    # The statistics replays and frozen heads (docs/PEERS.md), at the seed family's bytes.
    'gauss_mean': ('gauss_replay', {'gauss_covariance': 'mean'}, 0),
    'gauss_diag': ('gauss_replay', {'gauss_covariance': 'diag'}, 0),
    'gauss_lowrank': ('gauss_replay', {'gauss_covariance': 'lowrank'}, 0),
    'gauss_full': ('gauss_replay', {'gauss_covariance': 'full'}, 0),
    'fetril': ('fetril', {}, 0),
    'ncm': ('ncm', {}, 0),
    'ncm_text': ('ncm_text', {}, 0),
    'ranpac': ('ranpac', {}, 0),  # its tuned width M; its Gram matrix far over the budget
    'ranpac_budget': ('ranpac', {'ranpac_dim': 0}, 0),  # M chosen to fit the budget
}

# Where finished runs are cached (``cache_dir``): shared by every workdir, so runs common to
# several experiments (and to the quick and full suites' shared settings) run once.
DEFAULT_CACHE_DIR = 'runs/experiments_cache'

# The quick form: tiny steps, one seed, 10% of the training images, one stream.
QUICK_STREAMS = ('animals-ci',)
QUICK_SEEDS = (0,)
QUICK_TRAIN_FRACTION = 0.1
QUICK_SETTINGS = dict(
    steps_per_task=5, steps_per_chunk=5, meta_steps=2, inner_steps=1,
    candidates_per_class=4, seeds_per_class=1, memory_budget=10, dgr_vae_steps=5,
    plus_meta_steps=2, summary_refine_steps=5,
)


def base_config(quick: bool = False) -> ml_collections.ConfigDict:
  """The method settings every run starts from (``QUICK_SETTINGS`` applied when quick)."""
  config = real_stream_config()
  config.methods = ()  # unused here: the experiments choose their methods
  del config['compilation_cache_dir']  # a setting of the process: the top-level field
  if quick:
    for name, value in QUICK_SETTINGS.items():
      config[name] = value
  return config


def experiment_config(name: str, arg: str | None) -> ml_collections.ConfigDict:
  """The fields every experiment has (listed in this module's docstring).

  ``arg``: None for the full experiment, 'quick' for the quick form.
  """
  if arg not in (None, '', 'quick'):
    raise ValueError(f"experiment config argument {arg!r}: use none (the full experiment, "
                     "e.g. exp_main.py) or 'quick' (the smoke form, e.g. exp_main.py:quick).")
  quick = arg == 'quick'
  c = ml_collections.ConfigDict()
  c.experiment = name
  c.quick = quick
  c.streams = QUICK_STREAMS if quick else STREAMS
  c.seeds = QUICK_SEEDS if quick else SEEDS
  c.train_fraction = QUICK_TRAIN_FRACTION if quick else 1.0
  c.base = base_config(quick)
  c.cache_dir = DEFAULT_CACHE_DIR
  c.compilation_cache_dir = ml_collections.config_dict.placeholder(str)
  return c
