"""Seed analysis (METHOD §5's fidelity claims): seeds' cosine to real class means and
their spread along task-relevant and task-irrelevant directions."""

from __future__ import annotations

import pathlib

import numpy as np

from autoseed_jax.core.tasks import unit_rows
from autoseed_jax.report import plots
from experiments.paper.common import run_variant, write_experiment
from autoseed_jax.report.result_records import markdown_table
from experiments.suite import fmt, mean_std, Suite


def real_embeddings(stream, split: str) -> tuple[np.ndarray, np.ndarray]:
  """(embeddings [N, d], labels [N]) of every task's ``split`` ('test' or 'train')."""
  if split == 'test':
    count = np.asarray(stream.test.count)
    x = [np.asarray(stream.test.x[t])[:count[t]] for t in range(len(count))]
    y = [np.asarray(stream.test.y[t])[:count[t]] for t in range(len(count))]
  elif split == 'train':
    x = [np.asarray(t.train_x)[:int(t.train_count)] for t in stream.tasks]
    y = [np.asarray(t.train_y)[:int(t.train_count)] for t in stream.tasks]
  else:
    raise ValueError(f"class_mean_split={split!r}: use 'test' or 'train'.")
  return np.concatenate(x), np.concatenate(y)



def seed_statistics(seeds: dict, real_x: np.ndarray, real_y: np.ndarray,
                    class_text: np.ndarray) -> dict:
  """Fidelity of one run's seeds to the real embeddings of their classes.

  Args:
    seeds: {'v': [K, d], 'w': [K, d], 'label': [K]} valid seeds.
    real_x: [N, d] real image embeddings; real_y: [N] labels.
    class_text: [C, d] the classes' frozen text embeddings.

  Returns:
    'cosines' [K]: cos(v, mean real embedding of v's class); reference cosines (each real
    example to its class mean, each class's text embedding to its class mean, v to w);
    and the variance of the seed set and of the real set (each around its own mean) per
    direction, along the task-relevant subspace (the top C - 1 principal directions of
    the C real class means) and along its orthogonal complement (the rest), with the
    share of each set's variance that lies in the rest.
  """
  classes = np.unique(real_y)
  means = np.stack([real_x[real_y == c].mean(axis=0) for c in classes])
  row = {c: i for i, c in enumerate(classes)}
  v, labels = np.asarray(seeds['v']), np.asarray(seeds['label'])
  cosines = np.sum(unit_rows(v) * unit_rows(means[[row[int(c)] for c in labels]]), axis=-1)
  real_cos = np.sum(unit_rows(real_x) * unit_rows(means[[row[int(c)] for c in real_y]]), axis=-1)
  text_cos = np.sum(unit_rows(class_text[classes]) * unit_rows(means), axis=-1)
  seed_text_cos = np.sum(unit_rows(v) * unit_rows(np.asarray(seeds['w'])), axis=-1)
  rank = len(classes) - 1
  directions = np.linalg.svd(means - means.mean(axis=0), full_matrices=False)[2][:rank]
  dim = real_x.shape[1]

  def spread(x):
    """(variance per relevant direction, per other direction, share in the others)."""
    centred = x - x.mean(axis=0)
    along = np.sum((centred @ directions.T) ** 2, axis=-1).mean()
    total = np.sum(centred ** 2, axis=-1).mean()
    rest = max(total - along, 0.0)
    return float(along / rank), float(rest / (dim - rank)), float(rest / max(total, 1e-30))

  seed_rel, seed_irr, seed_share = spread(v)
  real_rel, real_irr, real_share = spread(real_x)
  return {
      'cosines': cosines.round(5).tolist(),
      'seeds_per_class': {int(c): int(np.sum(labels == c)) for c in np.unique(labels)},
      'real_example_cosine': mean_std(real_cos.tolist()),
      'text_embedding_cosine': mean_std(text_cos.tolist()),
      'seed_v_w_cosine': mean_std(seed_text_cos.tolist()),
      'relevant_dims': rank,
      'seed_var_relevant': seed_rel, 'seed_var_irrelevant': seed_irr,
      'seed_irrelevant_share': seed_share,
      'real_var_relevant': real_rel, 'real_var_irrelevant': real_irr,
      'real_irrelevant_share': real_share,
  }


def experiment_seeds(suite: Suite, cfg, out_dir: pathlib.Path) -> list[str]:
  """Seed fidelity of the main table's Auto-Seed VL2 runs."""
  payload, rows, body, figures = [], [], [], []
  paper = f'{cfg.paper_cosine_mean:.2f} ± {cfg.paper_cosine_std:.2f}'
  spread_keys = ('seed_var_relevant', 'seed_var_irrelevant', 'seed_irrelevant_share')
  real_keys = ('real_var_relevant', 'real_var_irrelevant', 'real_irrelevant_share')
  for stream in cfg.streams:
    data = suite.stream(stream, train_fraction=cfg.train_fraction)
    class_text = np.asarray(data.test.class_text)
    for split in dict.fromkeys((cfg.class_mean_split, 'test', 'train')):
      real_x, real_y = real_embeddings(data, split)
      per_run = []
      for r in run_variant(suite, cfg, stream, 'autoseed'):
        seed = r.seed
        if r.error is not None or r.seeds is None or len(r.seeds['v']) == 0:
          continue
        per_run.append({'seed': seed, **seed_statistics(r.seeds, real_x, real_y, class_text)})
        if split == cfg.class_mean_split and seed == cfg.seeds[0]:
          test_x, test_y = real_embeddings(data, 'test')
          figures.append(plots.seed_projection(
              test_x, test_y, np.asarray(r.seeds['v']), np.asarray(r.seeds['label']),
              str(out_dir / f'seed_projection_{stream}.png'), class_names=data.class_names,
              title=f'{stream}, seed {seed}: seeds (stars) vs real test embeddings (dots)'))
      if not per_run:
        continue
      pooled = mean_std([c for p in per_run for c in p['cosines']])
      agg = {k: mean_std([p[k] for p in per_run]) for k in spread_keys}
      real = {k: per_run[0][k] for k in real_keys}  # the same data in every run
      seeds_count = mean_std([len(p['cosines']) for p in per_run])
      payload.append({'stream': stream, 'class_mean_split': split,
                      'primary': split == cfg.class_mean_split, 'seed_cosine': pooled,
                      'seeds_per_run': seeds_count, 'per_run': per_run,
                      'real_example_cosine': per_run[0]['real_example_cosine'],
                      'text_embedding_cosine': per_run[0]['text_embedding_cosine'],
                      'seed_v_w_cosine': mean_std([c for p in per_run for c in
                                                   [p['seed_v_w_cosine']['mean']]]),
                      **agg, **real})
      rows.append({'stream': stream, 'class_mean_split': split,
                   'seeds_per_run': seeds_count['mean'],
                   'seed_cosine_mean': pooled['mean'], 'seed_cosine_std': pooled['std'],
                   'real_example_cosine_mean': per_run[0]['real_example_cosine']['mean'],
                   'real_example_cosine_std': per_run[0]['real_example_cosine']['std'],
                   'text_embedding_cosine_mean': per_run[0]['text_embedding_cosine']['mean'],
                   **{f'{k}_mean': v['mean'] for k, v in agg.items()},
                   **{f'{k}_mean': v for k, v in real.items()},
                   'paper_cosine_mean': cfg.paper_cosine_mean,
                   'paper_cosine_std': cfg.paper_cosine_std})
      body.append([stream, split, fmt(seeds_count, 1), fmt(pooled, 3), paper,
                   fmt(per_run[0]['real_example_cosine'], 3),
                   fmt(per_run[0]['text_embedding_cosine'], 3),
                   f'{agg["seed_var_relevant"]["mean"]:.2e} / '
                   f'{agg["seed_var_irrelevant"]["mean"]:.2e} '
                   f'({100 * agg["seed_irrelevant_share"]["mean"]:.0f}%)',
                   f'{real["real_var_relevant"]:.2e} / {real["real_var_irrelevant"]:.2e} '
                   f'({100 * real["real_irrelevant_share"]:.0f}%)'])
  tables = [('Seed fidelity', markdown_table(
      ['stream', 'class means from', 'seeds per run', 'cos(seed v, class mean)', 'paper',
       'cos(real example, class mean)', 'cos(class text emb., class mean)',
       'seeds: variance per direction, relevant / rest (rest\'s share)',
       'real: variance per direction, relevant / rest (rest\'s share)'], body))]
  notes = [
      f'Seeds: the final seed memory of the main table\'s Auto-Seed VL2 runs (seeds '
      f'{list(cfg.seeds)}). cos(seed v, class mean): every seed\'s visual prototype against '
      f'the mean real image embedding of its class, mean ± std pooled over all seeds of all '
      f'runs; class means from the {cfg.class_mean_split.upper()} embeddings are primary '
      '(the other split is shown too). References (mean ± std over examples / classes): a '
      'real example\'s cosine to its own class mean, and the class prompt\'s text embedding '
      '(where the generator starts and what the "random seeds" ablation perturbs) against '
      'the image class mean.',
      'Variance: of the seed set (all classes, around its own mean) and of the real set, per '
      'direction, in the task-relevant subspace (the top C-1 principal directions of the C '
      'real class means) and in its orthogonal complement (the rest); in brackets the share '
      'of the set\'s total variance that lies in the rest.']
  return write_experiment(out_dir, 'seeds', cfg=cfg, payload={'summary': payload}, rows=rows,
                          columns=list(rows[0]) if rows else ['stream'], runs=None,
                          title='Seed analysis', notes=notes, tables=tables, figures=figures)
