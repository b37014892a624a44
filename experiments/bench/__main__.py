"""Benchmarks of the engine on whatever devices are present: one command, one table.

  python -m experiments.bench [--quick] [--out runs/bench/bench.json] [--memory-results PATH ...]

Sections (keys of the JSON file; each is also a group of rows in the Markdown table):

* ``machine``: date, devices, CPU, versions, load average before and after.
* ``matmul``: the machine's f32 matrix-multiply rate, measured in this process.
* ``online_adaptation``: steps/s and examples/s of Auto-Seed VL2's ``learner.adapt``
  (a jitted ``lax.scan`` chunk, timed after compilation with ``block_until_ready``,
  median of repeats) at several batch sizes, and the FLOP/s this reaches as a fraction
  of the matmul rate (FLOPs per step from XLA's cost analysis of the compiled step, else
  an analytic count; the JSON says which).
* ``meta_update``: seconds per meta step at several inner-loop lengths (the difference
  of two seed updates with different ``meta_steps``), and the seed-update phase's share
  of a task's time in the default config.
* ``embedding_extraction``: images/s and texts/s of the offline backbone (LiT CNN +
  MiniLM) and of CLIP ViT-B/32 with random weights.
* ``compile``: lowering and compile seconds of each step function, and the number of
  XLA compilations while learning tasks 2..T (must be 0).
* ``cost_growth``: seconds per task as the stream's class count and the seed-memory
  capacity K grow, with the fitted log-log exponent.
* ``memory``: seed-memory bytes vs exemplar-replay bytes at equal accuracy, read from
  the memory-vs-accuracy experiment's results (``--memory-results``); never invented.
* ``peers``: the ER-VLM baseline three ways (our engine, a plain PyTorch loop,
  Avalanche's ``Replay``), repeats interleaved, ratios from this one run. Needs the
  optional extra (``pip install -r requirements-bench.txt``), else it says it was skipped.
* ``seeds``: runs per second of S run seeds in one program (``config.seeds``) against S
  sequential runs, S = 1, 5, 10, 20, for ER, ``kmeans_seeds`` and Auto-Seed VL2, and the
  placements of 8 seeds on simulated CPU devices (``seeds``).

Each section is a module of this package (``machine``, ``engine``, ``embedding``,
``memory``, ``peers``; ``table`` writes the Markdown, ``common`` holds the sizes and
helpers).

``--quick`` runs every section at toy sizes (for the tests; its timings mean little).
The JSON and the table are rewritten after every section, so an interrupted run keeps what
it measured.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time
from typing import Any, Callable

from autoseed_jax.report.result_records import write_json
from experiments.bench import seeds
from experiments.bench.common import (FULL, QUICK, SCHEMA_VERSION, SECTIONS, Learners,
                                      accelerator_present, main_stream)
from experiments.bench.embedding import embedding_section
from experiments.bench.engine import (compile_section, cost_growth_section, meta_update_section,
                                      online_adaptation_section)
from experiments.bench.machine import MatmulProbe, machine_section, matmul_section
from experiments.bench.memory import memory_section
from experiments.bench.peers import peers_section
from experiments.bench.table import markdown_table


def parse_args(argv=None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--quick', action='store_true',
                      help='toy sizes for the tests (every section, timings not meaningful)')
  parser.add_argument('--out', type=pathlib.Path, default=pathlib.Path('runs/bench/bench.json'),
                      help='JSON output path; the Markdown table goes next to it (.md)')
  parser.add_argument('--memory-results', nargs='*', default=[],
                      help="results.json files (or workdirs, or globs) of the "
                           "memory-vs-accuracy experiment's autoseed and er runs")
  parser.add_argument('--peers', choices=('auto', 'off'), default='auto',
                      help='auto: run the PyTorch/Avalanche comparison when installed')
  parser.add_argument('--peer-stream', choices=('animals-ci', 'synthetic'), default=None,
                      help='stream of the peers comparison (default: animals-ci; '
                           'synthetic with --quick)')
  parser.add_argument('--peer-repeats', type=int, default=None,
                      help='interleaved repeats of each implementation (default 3)')
  parser.add_argument('--sections', nargs='*', choices=SECTIONS, default=list(SECTIONS),
                      help='run only these sections')
  return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
  preset = QUICK if args.quick else FULL
  out = args.out
  out.parent.mkdir(parents=True, exist_ok=True)
  report: dict = {'schema': SCHEMA_VERSION, 'mode': preset.name, 'seconds': {}}
  started = time.perf_counter()

  def record(name: str, build: Callable[[], Any]):
    if name not in args.sections:
      return None
    print(f'[bench] {name} ...', flush=True)
    start = time.perf_counter()
    value = build()
    report[name] = value
    report['seconds'][name] = time.perf_counter() - start
    write_json(os.fspath(out), report)
    out.with_suffix('.md').write_text(markdown_table(report))
    return value

  record('machine', machine_section)
  probe = MatmulProbe(preset)
  record('matmul', lambda: matmul_section(probe))
  learners = Learners(preset)
  stream = main_stream(preset)
  main_learner, main_config = learners.get(stream)
  compiled = {}

  def compile_and_learn():
    section, compiled['run'] = compile_section(main_learner, stream)
    return section

  record('compile', compile_and_learn)
  if 'run' in compiled:
    final_state, phases = compiled['run']
    record('meta_update', lambda: meta_update_section(preset, learners, stream, main_config,
                                                      final_state, phases))
  record('online_adaptation',
         lambda: online_adaptation_section(preset, learners, stream, probe))
  record('embedding_extraction', lambda: embedding_section(preset))
  record('cost_growth', lambda: cost_growth_section(preset))
  record('memory', lambda: memory_section(args.memory_results))
  record('peers', lambda: ({'skipped': 'turned off (--peers off)'} if args.peers == 'off'
                           else peers_section(preset, args.peer_stream, args.peer_repeats,
                                              probe)))
  record('seeds', lambda: seeds.seeds_section(
      seeds.preset_for(preset.name, accelerator_present()), probe,
      accelerator=accelerator_present()))
  if 'machine' in report:
    report['machine']['load_average_end'] = list(os.getloadavg())
  report['seconds']['total'] = time.perf_counter() - started
  write_json(os.fspath(out), report)
  table = markdown_table(report)
  out.with_suffix('.md').write_text(table)
  print(table)
  print(f'[bench] wrote {out} and {out.with_suffix(".md")} in '
        f'{report["seconds"]["total"]:.0f} s')
  return report


def main(argv=None) -> int:
  run(parse_args(argv))
  return 0


if __name__ == '__main__':
  sys.exit(main())
