r"""Why Auto-Seed VL2's seeds collapse, and where its accuracy against zero-shot goes.

The measurements behind the README's "What we noticed", on animals-ci (METHOD's settings,
``real_stream_config()``); everything is recomputed from the library:

  python experiments/diagnose_seeds.py                  # writes experiments/diagnosis/
  python experiments/diagnose_seeds.py --seeds 0        # one run seed (faster)

1. **Does G_φ's output move with z?** After the seed update of task 1 (run seed 0): the
   within-class cosine of 16 candidates (fresh z each), against that of real training
   pairs of the class; and how far v moves when only z changes, against when only the
   class (u_c, e_c) changes, for G_φ at its initialisation, after METHOD's meta-update,
   and for autoseed_plus's generator (fixed codes z_j).
2. **Which outer-loss term pulls seeds together?** 16 free seeds per class of task 1,
   started at random real training embeddings of the class (spread like the data), are
   optimised (Adam on the sphere, ``kmeans.refine_on_sphere``) on one term of METHOD's
   outer loss at a time (``autoseed.outer_loss_terms``: teach, classified, align,
   anchor), on their weighted sum, and on autoseed_plus's terms (MMD, centre targets);
   reported: their within-class pair cosine and cosine to the class mean afterwards.
3. **Where does the accuracy against zero-shot go?** For zeroshot, finetune, autoseed,
   kmeans_seeds and autoseed_plus (every run seed): the final model's accuracy per task
   over all classes (class-incremental) and within the task's own classes
   (task-incremental), the share of old-task test images it assigns to the newest task's
   classes (bias toward the newest classes) and what an oracle offset on the newest
   task's logits would win back; and, after each task t < T, the accuracy on the classes
   not seen yet, among themselves (what is left of the backbone's zero-shot ability on
   new classes: adapters over-specialising on a 2-class task).

Writes ``<out>/diagnosis.json`` (every number), ``<out>/diagnosis.md`` and figures
``z_sensitivity.png``, ``outer_terms.png``, ``decomposition.png``.
"""

from __future__ import annotations

import argparse
import importlib
import pathlib
import sys

if __package__ in (None, ''):  # run as a script: make the repository importable
  sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from autoseed_jax import continual
from autoseed_jax.core import kmeans, meta, parallel  # noqa: E402
from autoseed_jax.core.generator import SeedGenerator, generate_seeds  # noqa: E402
autoseed_lib = importlib.import_module('autoseed_jax.methods.autoseed')
plus_lib = importlib.import_module('autoseed_jax.methods.autoseed_plus')
from autoseed_jax.streams import get_stream  # noqa: E402
from autoseed_jax.report import result_records
from experiments import suite as suite_lib  # noqa: E402
from experiments.configs.real_streams import real_stream_config  # noqa: E402

STREAM = 'animals-ci'
CANDIDATES = 16
TERM_STEPS, TERM_LEARNING_RATE = 200, 0.01
DECOMPOSITION_METHODS = ('zeroshot', 'finetune', 'autoseed', 'kmeans_seeds', 'autoseed_plus')
REPO = pathlib.Path(__file__).resolve().parents[1]


def _pair_cosines(v: np.ndarray) -> np.ndarray:
  """Cosines of every unordered pair of rows of v [n, d] (unit norm)."""
  sims = v @ v.T
  return sims[np.triu_indices(len(v), 1)]


def _config(method: str, seed: int = 0):
  config = real_stream_config()
  config.method, config.seed = method, seed
  return config


def _first_task(config, stream):
  """(learner, context, task 1 placed, state after its online adaptation, state after its
  consolidation)."""
  learner = continual.build_learner(config, stream)
  test = learner.put_test(stream.test)
  task = learner.put_task(stream.tasks[0])
  state = learner.begin_task(learner.init(jax.random.PRNGKey(config.seed), test), task)
  for n in learner.chunks():
    state, _ = learner.adapt(state, task, n)
  adapted = jax.tree.map(jnp.copy, state)
  consolidated, _ = learner.consolidate(state, task)
  return learner, continual.make_context(config, stream), task, adapted, consolidated


def _condition(context, state, task, data, config):
  """u_c of task 1 under θ_1, with the run's sketch R (as the seed update computes it)."""
  sketch_key = jax.random.fold_in(state.key, autoseed_lib._SKETCH_TAG)  # pylint: disable=protected-access
  return meta.task_gradient_condition(
      lambda p, wts: context.weighted_task_loss(p, state.class_bank, state.seen, task.train_x,
                                                task.train_y, wts),
      state.params, data.train_weights, sketch_key=sketch_key, sketch_dim=config.sketch_dim)


def z_sensitivity(stream) -> dict:
  """Part 1 (see module doc)."""
  out = {}
  real = {}
  for label, method in (('autoseed', 'autoseed'), ('autoseed_plus', 'autoseed_plus')):
    config = _config(method)
    _, context, task, adapted, consolidated = _first_task(config, stream)
    data = autoseed_lib.seed_update_data(task)
    condition = _condition(context, adapted, task, data, config)
    generator = SeedGenerator(hidden_dim=config.generator_hidden,
                              num_layers=config.generator_layers,
                              residual=config.generator_residual)
    noise, visual_base = None, None
    if (method == 'autoseed_plus'
        and plus_lib.settings(config)['plus_generator_base'] == 'image_mean'):
      visual_base = data.image_means
    if method == 'autoseed_plus' and plus_lib.settings(config)['plus_seed_codes'] == 'slots':
      codes = plus_lib.slot_codes(CANDIDATES, config.noise_dim)
      noise = jnp.broadcast_to(codes[None], (condition.shape[0],) + codes.shape)
    phases = (('initial', adapted.gen_params), ('meta-trained', consolidated.gen_params))
    for phase, gen_params in phases if method == 'autoseed' else phases[1:]:
      v, _ = generate_seeds(generator, gen_params, jax.random.PRNGKey(7), condition=condition,
                      class_text=data.class_text, num_per_class=CANDIDATES,
                      noise_dim=config.noise_dim, noise=noise, visual_base=visual_base)
      v = np.asarray(v)  # [n, k, d]
      within = np.concatenate([_pair_cosines(v[c]) for c in range(v.shape[0])])
      move_z = np.mean([np.linalg.norm(v[c][:, None] - v[c][None], axis=-1)[
          np.triu_indices(CANDIDATES, 1)].mean() for c in range(v.shape[0])])
      move_class = float(np.linalg.norm(v[0] - v[1], axis=-1).mean())  # same z, other class
      out[f'{label} ({phase})'] = {
          'pair_cosines': within.round(4).tolist(), 'pair_cosine': suite_lib.mean_std(within),
          'distance_when_z_changes': float(move_z), 'distance_when_class_changes': move_class}
    x, y = np.asarray(task.train_x), np.asarray(task.train_y)
    for c in np.asarray(task.classes):
      rows = x[y == c][:200]
      real[int(c)] = _pair_cosines(rows)
  within = np.concatenate(list(real.values()))
  out['real training pairs'] = {'pair_cosines': within[::20].round(4).tolist(),
                                'pair_cosine': suite_lib.mean_std(within)}
  return out


def outer_term_preferences(stream) -> dict:
  """Part 2 (see module doc)."""
  config = _config('autoseed')
  _, context, task, adapted, _ = _first_task(config, stream)
  data = autoseed_lib.seed_update_data(task)
  n = data.class_ok.shape[0]
  rows, _ = kmeans.sample_class_rows(data.train_weights, jax.random.PRNGKey(3), CANDIDATES)
  start = data.train_x[rows].reshape(-1, stream.dim)
  slot = jnp.repeat(jnp.arange(n), CANDIDATES)
  label = task.classes[slot]
  ok = data.class_ok[slot]
  w = data.class_text[slot]
  in_val = jnp.arange(task.val_x.shape[0]) < task.val_count
  real_x, real_ok = plus_lib.real_rows(jax.random.PRNGKey(4), data, 256)
  centres = kmeans.class_kmeans(data.train_x, data.train_weights, jax.random.PRNGKey(5),
                                 num_centres=CANDIDATES)[0].reshape(-1, stream.dim)
  bandwidths = tuple(plus_lib.settings(config)['mmd_bandwidths'])

  def terms(v):
    t = autoseed_lib.outer_loss_terms(context, adapted, v, w, slot, label, ok, data,
                                      val_rows=(task.val_x, task.val_text, task.val_y),
                                      val_mask=in_val, val_count=task.val_count)
    t['METHOD outer loss (weighted sum)'] = (t['teach'] + t['classified']
                                              + config.align_weight * t['align']
                                              + config.anchor_weight * t['anchor'])
    t['MMD (autoseed_plus)'] = plus_lib.class_mmd(v, slot, ok, real_x, real_ok,
                                                  bandwidths=bandwidths)
    t['centre targets (autoseed_plus)'] = jnp.mean(jnp.sum((v - centres) ** 2, axis=-1))
    return t

  means = np.asarray(data.image_means)
  out = {}

  def describe(v):
    v = np.asarray(v).reshape(n, CANDIDATES, -1)
    pair = np.concatenate([_pair_cosines(v[c]) for c in range(n)])
    to_mean = np.concatenate([v[c] @ means[c] for c in range(n)])
    return {'pair_cosine': suite_lib.mean_std(pair), 'cosine_to_class_mean':
            suite_lib.mean_std(to_mean)}

  out['start (random real examples)'] = describe(start)
  for name in terms(start):
    v = kmeans.refine_on_sphere(start, lambda v, name=name: terms(v)[name],
                                 num_steps=TERM_STEPS, learning_rate=TERM_LEARNING_RATE)
    out[name] = describe(v)
  return out


def _embed_logits(context, params, x, class_text):
  """[..., C] logits of images x [..., d] against every class text [C, d] (no mask)."""
  img, class_emb, scale = context.embed(params, x, class_text)
  return np.asarray(scale * img @ class_emb.T)


def decomposition(stream, seeds) -> dict:
  """Part 3 (see module doc)."""
  test = stream.test
  task_classes = [stream.task_classes(t) for t in range(stream.num_tasks)]
  num_tasks = stream.num_tasks
  out = {}
  for method in DECOMPOSITION_METHODS:
    per_seed = []
    for seed in seeds:
      config = _config(method, seed)
      learner = continual.build_learner(config, stream)
      context = continual.make_context(config, stream)
      placed_test = learner.put_test(test)
      state = learner.init(jax.random.PRNGKey(seed), placed_test)
      initial = parallel.to_host(state.params)
      params_after = []
      for task in stream.tasks:
        state = learner.learn_task(state, learner.put_task(task), test=placed_test)
        params_after.append(parallel.to_host(state.params))
      per_seed.append(_decompose(context, initial, params_after, test, task_classes,
                                 num_tasks))
    out[method] = {k: suite_lib.mean_std([s[k] for s in per_seed]) for k in per_seed[0]
                   if not isinstance(per_seed[0][k], list)}
    out[method]['unseen_after_task'] = [suite_lib.mean_std([s['unseen_after_task'][t]
                                                            for s in per_seed])
                                        for t in range(num_tasks - 1)]
  return out


def _decompose(context, initial, params_after, test, task_classes, num_tasks) -> dict:
  final = params_after[-1]
  class_text = test.class_text
  correct_ci, correct_ti, old_to_newest, old_total, errors_old = [], [], 0, 0, 0
  logits_by_task = []
  for t in range(num_tasks):
    count = int(test.count[t])
    x, y = np.asarray(test.x[t])[:count], np.asarray(test.y[t])[:count]
    logits = _embed_logits(context, final, x, class_text)
    logits_by_task.append((logits, y))
    seen = sorted(c for ts in task_classes for c in ts)
    pred_ci = np.asarray(seen)[np.argmax(logits[:, seen], axis=1)]
    own = task_classes[t]
    pred_ti = np.asarray(own)[np.argmax(logits[:, own], axis=1)]
    correct_ci.append(100 * np.mean(pred_ci == y))
    correct_ti.append(100 * np.mean(pred_ti == y))
    if t < num_tasks - 1:
      wrong = pred_ci != y
      errors_old += int(wrong.sum())
      old_to_newest += int(np.isin(pred_ci, task_classes[-1]).sum())
      old_total += count
  # An oracle offset b subtracted from the newest task's logits (chosen on the test set:
  # an upper bound on what correcting that bias alone could win).
  seen = sorted(c for ts in task_classes for c in ts)
  newest = np.isin(np.asarray(seen), task_classes[-1])

  def accuracy_with(offset):
    accs = []
    for logits, y in logits_by_task:
      shifted = logits[:, seen] - offset * newest
      accs.append(100 * np.mean(np.asarray(seen)[np.argmax(shifted, axis=1)] == y))
    return float(np.mean(accs))

  offsets = np.linspace(0.0, 10.0, 41)
  with_offset = [accuracy_with(b) for b in offsets]
  # After task t: accuracy on the classes of tasks > t among themselves (zero-shot ability
  # left for classes not seen yet), minus the same for the initial model.
  unseen = []
  for t in range(num_tasks - 1):
    future = [c for ts in task_classes[t + 1:] for c in ts]
    xs = np.concatenate([np.asarray(test.x[j])[:int(test.count[j])]
                         for j in range(t + 1, num_tasks)])
    ys = np.concatenate([np.asarray(test.y[j])[:int(test.count[j])]
                         for j in range(t + 1, num_tasks)])

    def acc(params):
      logits = _embed_logits(context, params, xs, class_text)[:, future]
      return 100 * np.mean(np.asarray(future)[np.argmax(logits, axis=1)] == ys)

    unseen.append(float(acc(params_after[t]) - acc(initial)))
  return {'class_incremental_acc': float(np.mean(correct_ci)),
          'task_incremental_acc': float(np.mean(correct_ti)),
          'old_images_to_newest_task_pct': 100.0 * old_to_newest / max(old_total, 1),
          'old_errors_to_newest_task_pct': 100.0 * old_to_newest / max(errors_old, 1),
          'oracle_newest_offset_gain': float(max(with_offset) - with_offset[0]),
          'oracle_newest_offset': float(offsets[int(np.argmax(with_offset))]),
          'unseen_after_task': unseen}


def _figures(result: dict, out: pathlib.Path) -> list[str]:
  plt = suite_lib._pyplot()  # pylint: disable=protected-access
  paths = []
  fig, ax = plt.subplots(figsize=(6.4, 4.0))
  for name, r in result['z_sensitivity'].items():
    ax.hist(r['pair_cosines'], bins=np.linspace(0.0, 1.0, 51), alpha=0.5, density=True,
            label=f'{name}: {r["pair_cosine"]["mean"]:.3f}')
  ax.set_xlabel('cosine between two seeds (or real images) of one class')
  ax.set_ylabel('density')
  ax.set_title('animals-ci task 1: within-class similarity of 16 candidates')
  ax.legend(fontsize=7)
  paths.append(suite_lib._save(fig, out / 'z_sensitivity.png'))  # pylint: disable=protected-access
  groups = {name: {'pair cosine': (r['pair_cosine']['mean'], r['pair_cosine']['std']),
                   'cosine to class mean': (r['cosine_to_class_mean']['mean'],
                                            r['cosine_to_class_mean']['std'])}
            for name, r in result['outer_terms'].items()}
  paths.append(suite_lib.bar_plot(groups, out / 'outer_terms.png', ylabel='cosine',
                                  title='16 free seeds per class optimised on one term'))
  decomposition_groups = {
      method: {'class-incremental acc': _ms(r['class_incremental_acc']),
               'task-incremental acc': _ms(r['task_incremental_acc']),
               'old images -> newest task (%)': _ms(r['old_images_to_newest_task_pct']),
               'unseen classes vs zero-shot': _ms(suite_lib.mean_std(
                   [u['mean'] for u in r['unseen_after_task']]))}
      for method, r in result['decomposition'].items()}
  paths.append(suite_lib.bar_plot(decomposition_groups, out / 'decomposition.png',
                                  ylabel='percent / points',
                                  title='animals-ci: where accuracy goes (final model)'))
  return paths


def _ms(stat):
  return (stat['mean'], stat['std'] or 0.0)


def _markdown(result: dict) -> str:
  z_rows = [[name, suite_lib.fmt(r['pair_cosine'], 3),
             f'{r.get("distance_when_z_changes", float("nan")):.3f}',
             f'{r.get("distance_when_class_changes", float("nan")):.3f}']
            for name, r in result['z_sensitivity'].items()]
  t_rows = [[name, suite_lib.fmt(r['pair_cosine'], 3), suite_lib.fmt(r['cosine_to_class_mean'], 3)]
            for name, r in result['outer_terms'].items()]
  d_rows = [[m, suite_lib.fmt(r['class_incremental_acc']), suite_lib.fmt(r['task_incremental_acc']),
             suite_lib.fmt(r['old_images_to_newest_task_pct']),
             suite_lib.fmt(r['old_errors_to_newest_task_pct']),
             suite_lib.fmt(r['oracle_newest_offset_gain']),
             ' / '.join(f'{u["mean"]:+.1f}' for u in r['unseen_after_task'])]
            for m, r in result['decomposition'].items()]
  return '\n\n'.join([
      f'# Diagnosis of the seed collapse and of the loss against zero-shot ({STREAM})',
      '## 1. Does G_φ\'s output move with z? (task 1, run seed 0)',
      result_records.markdown_table(['generator', 'within-class pair cosine',
                                'mean distance when only z changes',
                                'mean distance when only the class changes'], z_rows),
      '## 2. Where does each outer-loss term put 16 free seeds per class? (task 1)',
      result_records.markdown_table(['optimised on', 'within-class pair cosine',
                                'cosine to class mean'], t_rows),
      f'## 3. Where the accuracy goes (final model; seeds {result["seeds"]})',
      result_records.markdown_table(
          ['method', 'class-incremental acc', 'task-incremental acc',
           'old-task images predicted as newest task (%)',
           'share of old-task errors that go to the newest task (%)',
           'gain from an oracle offset on newest logits (points)',
           'unseen-class accuracy vs zero-shot after tasks 1..T-1 (points)'], d_rows)]) + '\n'


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--out', default=str(REPO / 'experiments' / 'diagnosis'))
  parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
  args = parser.parse_args(argv)
  out = pathlib.Path(args.out)
  stream = get_stream(STREAM)
  result = {'stream': STREAM, 'seeds': args.seeds}
  result['z_sensitivity'] = z_sensitivity(stream)
  print('part 1 done', flush=True)
  result['outer_terms'] = outer_term_preferences(stream)
  print('part 2 done', flush=True)
  result['decomposition'] = decomposition(stream, args.seeds)
  result['figures'] = [pathlib.Path(p).name for p in _figures(result, out)]
  result_records.write_json(out / 'diagnosis.json', result)
  (out / 'diagnosis.md').write_text(_markdown(result) + ''.join(
      f'\n![{f}]({f})\n' for f in result['figures']))
  print(_markdown(result))
  return 0


if __name__ == '__main__':
  sys.exit(main())
