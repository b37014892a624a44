"""The paper suite's command line: ``python -m experiments.paper --config FILE --workdir DIR``
(see ``experiments.paper``); ``--claims_only`` re-evaluates the claims from the files
already in the workdir and runs nothing."""

from __future__ import annotations

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from autoseed_jax import main as main_lib
from autoseed_jax import runner
from autoseed_jax.tools import cli, compilation_cache, profiling, workdir_lock
from experiments.paper import claims, configs, driver


def define_flags() -> None:
  config_flags.DEFINE_config_file(
      'config', None, 'An experiment config (experiments/configs/exp_*.py, exp_all.py); '
      '`file.py:quick` is its smoke form. Override a field with --config.<field>=value '
      '(--config.base.<field> for the method settings).', lock_config=True)
  flags.DEFINE_string('workdir', None, 'The results directory; rerunning the same command '
                      'on it resumes from the run cache.')
  flags.DEFINE_boolean('claims_only', False, 'Only re-evaluate claims.json / claims.md from '
                       'the experiment files already in --workdir.')
  flags.mark_flag_as_required('workdir')


def main(argv):
  if not flags.FLAGS['verbosity'].present:
    logging.set_verbosity(logging.WARNING)
  workdir = flags.FLAGS.workdir
  if flags.FLAGS.claims_only:
    print(claims.claims_markdown(claims.write_claims(workdir)))
    return
  config = flags.FLAGS.config
  if config is None:
    raise ValueError('--config is required (an experiments/configs/exp_*.py file).')
  if 'experiment' not in config:
    raise ValueError('the --config file has no `experiment` field: it is a run config; run '
                     'it with `python -m autoseed_jax.main --config <file> --workdir <dir>`.')
  compilation_cache.configure_compilation_cache(config.get('compilation_cache_dir'))
  with profiling.count_compilations() as compiles:
    runner.prepare_workdir(workdir)
    with workdir_lock.hold(workdir):
      driver.run_configs(
          [config], workdir, cache_dir=configs.resolve_cache_dir(config.get('cache_dir')),
          log=lambda line: print(line, flush=True),
          command=' '.join(['python -m experiments.paper'] + sys.argv[1:]))
  print(compiles.summary())


if __name__ == '__main__':
  define_flags()
  app.run(lambda argv: main_lib.run_cli(argv, main),
          flags_parser=cli.config_flags_parser('experiments.paper'))
