"""The Markdown table of a bench report: one group of rows per section."""

from __future__ import annotations

from autoseed_jax.report import result_records
from experiments.bench import seeds




def table_rows(report: dict) -> list[tuple[str, str, str]]:
  """(section, measurement, value) rows of the Markdown table."""
  rows = []
  m = report.get('machine')
  if m:
    rows.append(('machine', 'date (UTC), backend',
                 f"{m['date_utc']}, {m['backend']} x{m['device_count']}"))
    rows.append(('machine', 'CPU, cores, load avg at start',
                 f"{m['cpu']}, {m['cpu_count']}, "
                 f"{' / '.join(f'{x:.1f}' for x in m['load_average_start'])}"))
  mm = report.get('matmul')
  if mm:
    rows.append(('matmul', f"f32 {mm['n']}x{mm['n']} @ {mm['n']}x{mm['n']}",
                 f"{mm['flops_per_s'] / 1e9:,.1f} GFLOP/s"))
  oa = report.get('online_adaptation')
  if oa:
    for p in oa['points']:
      rows.append(('online adaptation', f"Auto-Seed adapt, batch {p['batch_size']}",
                   f"{p['steps_per_s']:,.1f} steps/s, {p['examples_per_s']:,.0f} examples/s, "
                   f"{p['flops_per_step'] / 1e6:,.1f} MFLOP/step ({p['flops_source']}), "
                   f"{100 * p['fraction_of_matmul']:.1f}% of matmul rate"))
  mu = report.get('meta_update')
  if mu:
    for p in mu['points']:
      rows.append(('meta-update', f"inner_steps={p['inner_steps']}",
                   f"{1e3 * p['seconds_per_meta_step']:,.2f} ms per meta step"))
    parts = mu['seed_update_breakdown_s']
    rows.append(('meta-update', 'seed update without meta-update: task-gradient condition + rest',
                 f"{1e3 * parts['without_meta_update']:,.0f} ms = "
                 f"{1e3 * parts['task_gradient_condition']:,.0f} ms + "
                 f"{1e3 * parts['rest (generate, score, select, prune)']:,.0f} ms"))
    redrawn = parts.get('without_meta_update_R_redrawn')
    if redrawn:
      rows.append(('meta-update', 'seed update without meta-update, R kept vs redrawn each time',
                   f"{1e3 * parts['without_meta_update']:,.0f} ms vs {1e3 * redrawn:,.0f} ms "
                   f"({redrawn / parts['without_meta_update']:.1f}x)"))
    r = mu['sketch_matrix']
    rows.append(('meta-update', 'sketch matrix R, drawn once per run' if
                 r['kept_between_seed_updates'] else 'sketch matrix R, drawn every seed update',
                 f"{1e3 * r['draw_once_s']:,.0f} ms, {r['shape'][0]} x {r['shape'][1]:,}, "
                 f"{r['bytes'] / 2**20:,.0f} MiB"))
    share = mu['seed_update_share']
    if share['median_fraction'] is not None:
      rows.append(('meta-update', 'seed update / task time (default config)',
                   f"{100 * share['median_fraction']:.1f}% (tasks {share['tasks']})"))
  emb = report.get('embedding_extraction')
  if emb:
    off = emb['offline_lit_minilm']
    rows.append(('embedding', 'offline LiT CNN images / MiniLM texts',
                 f"{off['images']['rows_per_s']:,.0f} images/s, "
                 f"{off['texts']['rows_per_s']:,.0f} texts/s"))
    c = emb['clip_vit_b32_random']
    shrunk = ', shrunk for --quick' if c['config_overrides'] else ''
    rows.append(('embedding', f"CLIP ViT-B/32 random weights (batch {c['batch']}{shrunk})",
                 f"{c['images']['rows_per_s']:,.1f} images/s, "
                 f"{c['texts']['rows_per_s']:,.1f} texts/s"))
  comp = report.get('compile')
  if comp:
    for name, f in comp['functions'].items():
      rows.append(('compile', name, f"{f['lower_s'] + f['compile_s']:.2f} s "
                                    f"(lower {f['lower_s']:.2f} + compile {f['compile_s']:.2f})"))
    rows.append(('compile', f"recompilations learning tasks 2..{comp['num_tasks']}",
                 str(comp['recompilations_tasks_2_to_T'])))
  cg = report.get('cost_growth')
  if cg:
    for key, label, x in (('classes', 'classes C', 'num_classes'),
                          ('memory_capacity', 'memory capacity K', 'memory_capacity')):
      pts = cg[key]['points']
      series = ', '.join(f"{p[x]:,}: {p['seconds_per_task']:.3g}" for p in pts)
      rows.append(('cost growth', f's/task vs {label}',
                   f"{series}; exponent {cg[key]['exponent']:.2f}"))
  mem = report.get('memory')
  if mem:
    if mem['status'] != 'ok':
      rows.append(('memory', 'seed vs replay bytes at equal accuracy', mem['message']))
    else:
      for c in mem['comparisons']:
        value = (f"seeds {c['seed_bytes']:,.0f} B vs ER "
                 + (f"{c['replay_bytes_at_equal_acc']:,.0f} B "
                    f"({c['replay_to_seed_ratio']:.1f}x)" if c['replay_bytes_at_equal_acc']
                    else f"n/a ({c['note']})"))
        where = f"{c['stream']}: " if c.get('stream') else ''
        rows.append(('memory', f"{where}at {c['final_avg_acc']:.1f}% final avg acc", value))
  peers = report.get('peers')
  if peers:
    if 'skipped' in peers:
      rows.append(('peers', 'ER-VLM: ours vs PyTorch vs Avalanche', f"skipped: {peers['skipped']}"))
    else:
      for name, impl in peers['implementations'].items():
        rate = ('' if impl['fraction_of_matmul'] is None
                else f", {100 * impl['fraction_of_matmul']:.0f}% of matmul rate")
        rows.append(('peers', f"ER-VLM {name}, batch {peers['batch_size']} ({peers['stream']})",
                     f"{1e3 * impl['epoch_s_median']:,.1f} ms/epoch{rate}, final avg acc "
                     f"{impl['final_avg_acc_mean']:.1f} ± {impl['final_avg_acc_std']:.1f}%"))
      for impl, target in (('torch', 'vs_torch'), ('avalanche', 'vs_avalanche')):
        sp = peers[f'speedup_vs_{impl}']
        rows.append(('peers', f'speed-up per epoch vs {impl} (one run, interleaved)',
                     f"{sp['vs_best']:.2f}x vs its fastest thread count "
                     f"({sp['best_threads']}), {sp['vs_default_threads']:.2f}x vs its default; "
                     f"target {peers['targets'][target]:.0f}x"))
  if report.get('seeds'):
    rows += seeds.table_rows(report['seeds'])
  return rows


def markdown_table(report: dict) -> str:
  """The bench report as one Markdown table (section, measurement, value)."""
  return result_records.markdown_table(('section', 'measurement', 'value'),
                                       table_rows(report)) + '\n'
