"""Section ``seeds`` of the bench (``python -m experiments.bench --sections machine seeds``): S run seeds in one program (``config.seeds``,
``autoseed_jax.seed_axis``) against the same S seeds run one after the other in one process.

For each method (ER, ``kmeans_seeds``, Auto-Seed VL2) and each S, one compiled learner of S
seeds and one single-seed learner (shared by every S) are compiled and run once untimed;
then every repeat times, in a rotated order and each after one matmul probe (as the other
sections do), a whole run of the S seeds vmapped and the S seeds in sequence (every task,
consolidation and evaluation, results fetched to the host). Reported: the median seconds,
runs per second (S / seconds), the speed-up, and the vmapped time over the time of one
sequential run (the targets: 5 seeds in at most 2x one run on 2 CPU cores; 10 seeds in at
most the time of 2 runs on an accelerator).

``devices`` (CPU only): the same 8 seeds of ER in a child process with 8 simulated CPU
devices, once per way of placing them (one device in sequence, one device vmapped, jit with
the seed axis replicated and task rows sharded, pmap, the seed axis sharded over the
devices). Simulated devices share the machine's cores: the comparison says which placement
the XLA CPU runtime runs fastest here, not what real devices would do.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import subprocess
import sys
import time

import jax
import numpy as np

from autoseed_jax import continual, seed_axis
from autoseed_jax.streams.synthetic import make_synthetic_stream
from experiments.configs.common import method_config

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


@dataclasses.dataclass(frozen=True)
class SeedsPreset:
  """The sizes of the ``seeds`` section."""

  name: str
  dim: int
  num_tasks: int
  train_per_class: int
  test_per_class: int
  overrides: dict           # method config fields (experiments/configs/common.py)
  methods: tuple
  seed_counts: tuple        # the S measured
  repeats: int
  device_count: int         # simulated CPU devices of the placement comparison (0: none)
  device_seeds: int         # seeds of that comparison
  device_repeats: int


_FULL_OVERRIDES = dict(steps_per_task=100, steps_per_chunk=100, meta_steps=5)

FULL = SeedsPreset(
    name='full', dim=64, num_tasks=5, train_per_class=200, test_per_class=100,
    overrides=_FULL_OVERRIDES, methods=('er', 'kmeans_seeds', 'autoseed'),
    seed_counts=(1, 5, 10, 20), repeats=2, device_count=8, device_seeds=8, device_repeats=2)

# An accelerator: the real streams' embedding size, S = 2 for its target, one repeat (the
# accelerator script gives this section 5 minutes, compilation included).
ACCELERATOR = dataclasses.replace(FULL, name='accelerator', dim=384, repeats=1,
                                  seed_counts=(1, 2, 5, 10, 20), device_count=0)

QUICK = SeedsPreset(
    name='quick', dim=16, num_tasks=2, train_per_class=20, test_per_class=10,
    overrides=dict(steps_per_task=4, steps_per_chunk=4, meta_steps=1, inner_steps=1,
                   adapter_hidden=16, generator_hidden=16, sketch_dim=8, noise_dim=4,
                   memory_budget=8, candidates_per_class=4, seeds_per_class=2,
                   batch_size=16),
    methods=('er',), seed_counts=(2,), repeats=1, device_count=2,
    device_seeds=2, device_repeats=1)


def preset_for(bench_preset: str, accelerator: bool) -> SeedsPreset:
  """The section's sizes for the bench's preset (``full`` or ``quick``)."""
  if bench_preset == 'quick':
    return QUICK
  return ACCELERATOR if accelerator else FULL


def make_stream(preset: SeedsPreset):
  return make_synthetic_stream(num_tasks=preset.num_tasks, classes_per_task=2, dim=preset.dim,
                               train_per_class=preset.train_per_class,
                               test_per_class=preset.test_per_class, seed=0)


def make_config(preset: SeedsPreset, method: str, seeds, **overrides):
  config = method_config()
  config.method = method
  for key, value in {**preset.overrides, **overrides}.items():
    config[key] = value
  config.seeds = tuple(seeds)
  return config


def _timed(fn) -> float:
  start = time.perf_counter()
  fn()
  return time.perf_counter() - start


def seeds_section(preset: SeedsPreset, probe, *, accelerator: bool) -> dict:
  """Vmapped vs sequential runs per method and S (module doc); ``probe`` is the bench's
  ``MatmulProbe``, measured before every timed run."""
  stream = make_stream(preset)
  load_start = list(os.getloadavg())
  entries, compile_s = [], {}
  for method in preset.methods:
    most = make_config(preset, method, range(max(preset.seed_counts)))
    single = continual.build_learner(seed_axis.seed_config(most, 0), stream)
    compile_s[method] = {'sequential': _timed(
        lambda: seed_axis.run_sequences(make_config(preset, method, (0,)), stream,
                                        learner=single))}
    for s in preset.seed_counts:
      config = make_config(preset, method, range(s))
      learner = seed_axis.build_seeds_learner(config, stream)
      compile_s[method][f'vmapped_{s}'] = _timed(
          lambda: seed_axis.run_sequences(config, stream, learner=learner))
      for form, used in (('vmapped', learner), ('sequential', single)):
        entries.append(dict(method=method, seeds=s, form=form, times=[],
                            run=lambda config=config, used=used: seed_axis.run_sequences(
                                config, stream, learner=used)))
  first_probe = len(probe.rates)
  order_log = []
  for r in range(preset.repeats):
    shift = r * max(1, len(entries) // max(preset.repeats, 1))
    order = entries[shift % len(entries):] + entries[:shift % len(entries)]
    order_log.append([f"{e['method']}/{e['seeds']}/{e['form']}" for e in order])
    for entry in order:
      probe.measure()
      entry['times'].append(_timed(entry['run']))
  matmul_rate = probe.median(since=first_probe)

  methods = {}
  for method in preset.methods:
    mine = {(e['seeds'], e['form']): e for e in entries if e['method'] == method}
    one_run = float(np.median([t / s for (s, form), e in mine.items() if form == 'sequential'
                               for t in e['times']]))
    points = []
    for s in preset.seed_counts:
      vmapped = float(np.median(mine[s, 'vmapped']['times']))
      sequential = float(np.median(mine[s, 'sequential']['times']))
      points.append({
          'seeds': s, 'vmapped_s': vmapped, 'sequential_s': sequential,
          'vmapped_runs_per_s': s / vmapped, 'sequential_runs_per_s': s / sequential,
          'speedup': sequential / vmapped, 'vmapped_over_one_run': vmapped / one_run,
          'vmapped_s_all': mine[s, 'vmapped']['times'],
          'sequential_s_all': mine[s, 'sequential']['times']})
    methods[method] = {'one_run_s': one_run, 'compile_and_first_run_s': compile_s[method],
                       'points': points}
  if accelerator:
    target = {'name': '10 seeds vmapped in at most the time of 2 sequential runs',
              'seeds': 10, 'max_over_one_run': 2.0}
  else:
    target = {'name': '5 seeds vmapped in at most 2x the time of one run (2 CPU cores)',
              'seeds': 5, 'max_over_one_run': 2.0}
  target['met'] = {m: next((p['vmapped_over_one_run'] <= target['max_over_one_run']
                            for p in r['points'] if p['seeds'] == target['seeds']), None)
                   for m, r in methods.items()}
  section = {
      'preset': preset.name, 'stream': {'dim': preset.dim, 'num_tasks': preset.num_tasks,
                                        'train_per_class': preset.train_per_class,
                                        'test_per_class': preset.test_per_class},
      'config_overrides': preset.overrides, 'seed_counts': list(preset.seed_counts),
      'repeats': preset.repeats, 'order': order_log, 'methods': methods, 'target': target,
      'matmul_flops_per_s_interleaved': matmul_rate,
      'load_average_start': load_start, 'load_average_end': list(os.getloadavg()),
      'timing': 'median seconds of a whole run of S seeds (every task, consolidation and '
                'evaluation, results on the host) after one untimed run; vmapped and '
                'sequential interleaved, each after a matmul probe',
  }
  section['devices'] = devices_comparison(preset) if not accelerator else {
      'skipped': 'the simulated-device comparison runs on the CPU only'}
  return section


# ---------------------------------------------------------------------------------------------
# Placements on simulated CPU devices (a child process)

PLACEMENTS = {
    'one_device_sequential': None,
    'one_device_vmapped': dict(num_devices=1),
    'jit_seeds_x_data': dict(parallel='jit', seed_sharding='data'),
    'pmap_seeds_x_data': dict(parallel='pmap', seed_sharding='data'),
    'jit_seeds_over_devices': dict(parallel='jit', seed_sharding='seeds'),
}


def devices_comparison(preset: SeedsPreset) -> dict:
  """Runs ``_devices_child`` with ``preset.device_count`` simulated CPU devices."""
  if not preset.device_count:
    return {'skipped': 'no simulated devices in this preset'}
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  env['XLA_FLAGS'] = (env.get('XLA_FLAGS', '') + ' --xla_force_host_platform_device_count='
                      f'{preset.device_count}').strip()
  proc = subprocess.run([sys.executable, '-m', 'experiments.bench.seeds', '--devices-child',
                         preset.name], cwd=REPO_ROOT, capture_output=True, text=True, env=env, timeout=1800, check=False)
  lines = [l for l in proc.stdout.splitlines() if l.startswith('RESULT ')]
  if proc.returncode != 0 or not lines:
    return {'error': proc.stderr[-2000:]}
  return json.loads(lines[-1][len('RESULT '):])


def _devices_child(preset: SeedsPreset) -> dict:
  """In a process with ``preset.device_count`` devices: ER with ``device_seeds`` seeds in
  every placement of ``PLACEMENTS``, compiled and run once, then ``device_repeats``
  interleaved timed runs each."""
  stream = make_stream(preset)
  seeds = range(preset.device_seeds)
  runs = {}
  for name, fields in PLACEMENTS.items():
    if fields is None:
      config = make_config(preset, 'er', seeds, num_devices=1)
      learner = continual.build_learner(seed_axis.seed_config(config, 0), stream)
    else:
      config = make_config(preset, 'er', seeds, **fields)
      learner = seed_axis.build_seeds_learner(config, stream)
    runs[name] = (lambda config=config, learner=learner: seed_axis.run_sequences(
        config, stream, learner=learner))
    runs[name]()  # compile
  times = {name: [] for name in runs}
  names = list(runs)
  for r in range(preset.device_repeats):
    for name in names[r % len(names):] + names[:r % len(names)]:
      times[name].append(_timed(runs[name]))
  medians = {name: float(np.median(t)) for name, t in times.items()}
  return {'method': 'er', 'devices': jax.device_count(), 'seeds': preset.device_seeds,
          'seconds': medians, 'seconds_all': times, 'fastest': min(medians, key=medians.get),
          'load_average': list(os.getloadavg()),
          'note': 'simulated CPU devices share the same cores'}


def table_rows(section: dict) -> list[tuple[str, str, str]]:
  """(section, measurement, value) rows of the bench's Markdown table."""
  rows = []
  for method, r in section['methods'].items():
    for p in r['points']:
      rows.append(('seeds', f"{method}, S={p['seeds']}: vmapped vs sequential",
                   f"{p['vmapped_s']:.3g} s ({p['vmapped_runs_per_s']:.3g} runs/s) vs "
                   f"{p['sequential_s']:.3g} s ({p['sequential_runs_per_s']:.3g} runs/s): "
                   f"{p['speedup']:.2f}x faster; vmapped / one run "
                   f"{p['vmapped_over_one_run']:.2f}"))
  target = section['target']
  met = ', '.join(f"{m}: {'met' if ok else 'not met' if ok is not None else 'n/a'}"
                  for m, ok in target['met'].items())
  rows.append(('seeds', f"target: {target['name']}", met))
  load = section['load_average_start']
  rows.append(('seeds', 'load average at start (1/5/15 min)', ' / '.join(f'{x:.1f}' for x in load)))
  devices = section.get('devices', {})
  if 'seconds' in devices:
    rows.append(('seeds', f"{devices['seeds']} seeds of ER on {devices['devices']} simulated "
                          'CPU devices (s)',
                 ', '.join(f'{k} {v:.3g}' for k, v in devices['seconds'].items())
                 + f"; fastest: {devices['fastest']}"))
  elif devices:
    rows.append(('seeds', 'placements on simulated devices',
                 devices.get('skipped') or f"failed: {devices.get('error', '')[-200:]}"))
  return rows


if __name__ == '__main__':
  if len(sys.argv) == 3 and sys.argv[1] == '--devices-child':
    chosen = {'full': FULL, 'quick': QUICK, 'accelerator': ACCELERATOR}[sys.argv[2]]
    print('RESULT ' + json.dumps(_devices_child(chosen)), flush=True)
  else:
    sys.exit('run it through the bench: python -m experiments.bench --sections machine seeds')
