r"""Why autoseed_plus's generator can end its meta-update worse than where it started.

The failure of docs/autoseed_plus.md §6: on animals-ci some run seeds' seeds of task 1 end
as one point for both classes. This script replays the seed update of task 1, step by step,
for the given run seeds (autoseed_plus's defaults, ``real_stream_config()``, no guard), and
records at every meta-step:

* the outer loss and its terms (teach: L_task(θ'; D_t^val) after the inner loop;
  classified; align; the centre-target term), checked against the method's own first loss;
* what G_φ outputs: the mean norm of Δ_v (the offset added to the class image mean μ_I
  before normalising), the norm of the output layer's bias (shared by every class and
  slot), the cosine between the two classes' seed means and the mean within-class pair
  cosine of the seeds;
* the inner loop: the replay loss before and after its 5 steps and the global norm of its
  first gradient (a diverging inner loop is where the teach term's meta-gradient blows up).

  python experiments/diagnose_collapse.py                      # run seeds 0-4
  python experiments/diagnose_collapse.py --seeds 0 1 --stream animals-ci

Writes ``<out>/collapse.json`` (every number), ``<out>/collapse.md`` and
``<out>/collapse.png`` (default ``experiments/diagnosis/``).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import pathlib
import sys

if __package__ in (None, ''):  # run as a script: make the repository importable
  sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from autoseed_jax import continual  # noqa: E402
from autoseed_jax.core import kmeans, losses, meta  # noqa: E402
from autoseed_jax.core.generator import SeedGenerator, generate_seeds  # noqa: E402
autoseed_lib = importlib.import_module('autoseed_jax.methods.autoseed')
plus_lib = importlib.import_module('autoseed_jax.methods.autoseed_plus')
from autoseed_jax.report import result_records  # noqa: E402
from autoseed_jax.report.plots import save_figure  # noqa: E402
from autoseed_jax.streams import get_stream  # noqa: E402
from experiments.configs.real_streams import real_stream_config  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]


def _pair_cosine(v: np.ndarray) -> float:
  sims = v @ v.T
  return float(sims[np.triu_indices(len(v), 1)].mean())


def replay_meta_update(stream, seed: int, overrides: dict | None = None) -> dict:
  """The seed update of task 1 for run seed ``seed``, one meta-step at a time (module doc)."""
  config = real_stream_config()
  config.method, config.seed = 'autoseed_plus', seed
  config.plus_guard = 'none'
  for name, value in (overrides or {}).items():
    config[name] = value
  learner = continual.build_learner(config, stream)
  task = learner.put_task(stream.tasks[0])
  state = learner.begin_task(learner.init(jax.random.PRNGKey(seed),
                                          learner.put_test(stream.test)), task)
  for n in learner.chunks():
    state, _ = learner.adapt(state, task, n)
  state = jax.tree.map(jnp.copy, state)
  _, info = learner.consolidate(jax.tree.map(jnp.copy, state), task)

  s = plus_lib.settings(config)
  plan = plus_lib.memory_plan(config, stream.dim, stream.num_classes)
  derived = plus_lib.seed_method_config(config, plan)
  derived.meta_seeds_per_class = plan.candidates
  context = dataclasses.replace(continual.make_context(config, stream), config=derived)
  data = autoseed_lib.seed_update_data(task)
  key = jax.random.fold_in(jax.random.fold_in(state.key, autoseed_lib._SEED_UPDATE_TAG),  # pylint: disable=protected-access
                           task.index)
  _, k_means = jax.random.split(jax.random.fold_in(key, autoseed_lib._VARIANT_TAG))  # pylint: disable=protected-access
  centres = kmeans.class_kmeans(data.train_x, data.train_weights, k_means,
                                num_centres=plan.candidates)[0]
  condition = meta.task_gradient_condition(
      lambda p, wts: context.weighted_task_loss(p, state.class_bank, state.seen, task.train_x,
                                                task.train_y, wts),
      state.params, data.train_weights,
      sketch_key=jax.random.fold_in(state.key, autoseed_lib._SKETCH_TAG),  # pylint: disable=protected-access
      sketch_dim=derived.sketch_dim)
  generator = SeedGenerator(hidden_dim=derived.generator_hidden,
                            num_layers=derived.generator_layers,
                            residual=derived.generator_residual)
  n, k, d = centres.shape
  codes = jnp.broadcast_to(plus_lib.slot_codes(k, derived.noise_dim)[None], (n, k, derived.noise_dim))
  slot = jnp.repeat(jnp.arange(n), k)
  label, ok = data.labels[slot], data.class_ok[slot]
  in_val = jnp.arange(task.val_x.shape[0]) < task.val_count

  def seeds_of(phi):
    v, _ = generate_seeds(generator, phi, None, condition=condition, class_text=data.class_text,
                          num_per_class=k, noise_dim=derived.noise_dim, noise=codes,
                          visual_base=data.image_means)
    return v.reshape(-1, d)

  @jax.jit
  def offsets(phi):
    """[n, k] norms of Δ_v, G_φ's offset from μ_I before normalising."""
    cond = jnp.broadcast_to(condition[:, None], (n, k, condition.shape[-1]))
    text = jnp.broadcast_to(data.class_text[:, None], (n, k, d))
    h = jnp.concatenate([cond, text, codes], axis=-1)
    params = phi['params']
    for i in range(derived.generator_layers):
      layer = params[f'hidden_{i}']
      h = jax.nn.gelu(h @ layer['kernel'] + layer['bias'])  # flax's nn.gelu
    out = h @ params['out']['kernel'] + params['out']['bias']
    return jnp.linalg.norm(out[..., :d], axis=-1), jnp.linalg.norm(params['out']['bias'][:d])

  def terms(phi):
    v = seeds_of(phi)
    w = data.class_text[slot]
    parts = autoseed_lib.outer_loss_terms(
        context, state, v, w, slot, label, ok, data,
        val_rows=(task.val_x, task.val_text, task.val_y), val_mask=in_val,
        val_count=task.val_count, kinds=task.kind)
    centre = jnp.mean(jnp.sum((v - centres.reshape(-1, d)) ** 2, axis=-1))
    total = (parts['teach'] + parts['classified'] + derived.align_weight * parts['align']
             + derived.anchor_weight * parts['anchor'] + s['plus_centre_weight'] * centre)
    return total, {**parts, 'centre': centre, 'v': v}

  @jax.jit
  def inner(phi):
    v = jax.lax.stop_gradient(seeds_of(phi))
    replay = lambda p: autoseed_lib.replay_on_seeds(
        context, p, state.class_bank, state.seen, v, data.class_text[slot], label, ok)
    grads = jax.grad(replay)(state.prev_params)
    after = meta.unrolled_inner_loop(replay, state.prev_params,
                                     learning_rate=derived.inner_learning_rate,
                                     num_steps=derived.inner_steps)
    return replay(state.prev_params), replay(after), optax.global_norm(grads)

  optimizer = optax.adam(derived.meta_learning_rate)

  @jax.jit
  def step(phi, opt_state):
    (loss, parts), grads = jax.value_and_grad(terms, has_aux=True)(phi)
    updates, opt_state = optimizer.update(grads, opt_state, phi)
    return optax.apply_updates(phi, updates), opt_state, loss, parts, optax.global_norm(grads)

  phi, opt_state = state.gen_params, state.gen_opt_state
  rows = []
  for i in range(derived.meta_steps + 1):
    if i < derived.meta_steps:
      new_phi, new_opt, loss, parts, grad_norm = step(phi, opt_state)
    else:
      loss, parts = jax.jit(terms)(phi)
      grad_norm = jnp.nan
    v = np.asarray(parts['v']).reshape(n, k, d)
    offset, bias = offsets(phi)
    before, after, inner_grad = inner(phi)
    rows.append({
        'step': i, 'loss': float(loss), 'teach': float(parts['teach']),
        'classified': float(parts['classified']), 'align': float(parts['align']),
        'centre': float(parts['centre']), 'meta_grad_norm': float(grad_norm),
        'offset_norm': float(jnp.mean(offset)), 'out_bias_norm': float(bias),
        'between_class_cosine': float(losses.l2_normalize(v[0].mean(0)) @
                                      losses.l2_normalize(v[1].mean(0))),
        'within_class_cosine': float(np.mean([_pair_cosine(v[c]) for c in range(n)])),
        'inner_replay_before': float(before), 'inner_replay_after': float(after),
        'inner_grad_norm': float(inner_grad)})
    if i < derived.meta_steps:
      phi, opt_state = new_phi, new_opt
  return {'seed': seed, 'method_meta_loss_first': float(info['meta_loss_first']),
          'method_meta_loss_last': float(info['meta_loss_last']), 'steps': rows}


def _figure(runs: list[dict], out: pathlib.Path) -> str:
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  panels = (('loss', 'outer loss', True), ('teach', 'teach term (D_t^val)', True),
            ('offset_norm', '‖Δ_v‖ (offset from μ_I)', False),
            ('between_class_cosine', 'cos(class 0 seeds, class 1 seeds)', False))
  fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4))
  for ax, (field, title, log) in zip(axes, panels):
    for run in runs:
      ax.plot([r[field] for r in run['steps']], label=f"run seed {run['seed']}")
    ax.set_title(title)
    ax.set_xlabel('meta-step')
    if log:
      ax.set_yscale('log')
  axes[0].legend(fontsize=8)
  fig.tight_layout()
  return save_figure(fig, out / 'collapse.png')


def _markdown(runs: list[dict], stream: str) -> str:
  header = ['run seed', 'loss first → min (step) → last', 'teach first → last',
            'centre first → last', '‖Δ_v‖ first → last', 'cos between classes last',
            'within-class cos last', 'inner grad norm first → max', 'meta-gradient norm, step 0']
  body = []
  for run in runs:
    r = run['steps']
    best = min(range(len(r)), key=lambda i: r[i]['loss'])
    body.append([run['seed'],
                 f"{r[0]['loss']:.2f} → {r[best]['loss']:.2f} ({best}) → {r[-1]['loss']:.2f}",
                 f"{r[0]['teach']:.3f} → {r[-1]['teach']:.3f}",
                 f"{r[0]['centre']:.3f} → {r[-1]['centre']:.3f}",
                 f"{r[0]['offset_norm']:.2f} → {r[-1]['offset_norm']:.2f}",
                 f"{r[-1]['between_class_cosine']:.3f}", f"{r[-1]['within_class_cosine']:.3f}",
                 f"{r[0]['inner_grad_norm']:.2f} → {max(x['inner_grad_norm'] for x in r):.2f}",
                 f"{r[0]['meta_grad_norm']:.1f}"])
  return (f'# The meta-update of task 1 on {stream}, step by step\n\n'
          'autoseed_plus defaults, no guard; written by `experiments/diagnose_collapse.py`. '
          'Every number per step is in collapse.json.\n\n'
          + result_records.markdown_table(header, body) + '\n')


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2, 3, 4])
  parser.add_argument('--stream', default='animals-ci')
  parser.add_argument('--out', default=str(REPO / 'experiments' / 'diagnosis'))
  args = parser.parse_args(argv)
  out = pathlib.Path(args.out)
  stream = get_stream(args.stream)
  runs = []
  for seed in args.seeds:
    run = replay_meta_update(stream, seed)
    first = run['steps'][0]['loss']
    assert abs(first - run['method_meta_loss_first']) <= 1e-3 * max(1.0, abs(first)), (
        'the replayed meta-update is not the method\'s', first, run['method_meta_loss_first'])
    runs.append(run)
    print(f"seed {seed}: loss {first:.2f} -> {run['steps'][-1]['loss']:.2f}", flush=True)
  result = {'stream': args.stream, 'runs': runs, 'figure': _figure(runs, out)}
  result_records.write_json(out / 'collapse.json', result)
  (out / 'collapse.md').write_text(_markdown(runs, args.stream) + '\n![collapse](collapse.png)\n')
  return 0


if __name__ == '__main__':
  sys.exit(main())
