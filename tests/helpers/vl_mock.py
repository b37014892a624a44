"""A small vision-language stream of every task kind on random embeddings, for the tests."""

import numpy as np

from autoseed_jax.core import task_kinds

WORDS = ('cat', 'dog', 'zebra', 'bird', 'horse')


def _unit(x):
  return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


ALL_KINDS = ('retrieval', 'captioning', 'classification', 'vqa')


def mock_vl_stream(*, dim: int = 16, seed: int = 0, images: int = 40, per_image: int = 3,
                   clusters: int = 3, pad_multiple: int = 8, kinds=ALL_KINDS):
  """One task of each of ``kinds``, in that order: retrieval, captioning, classification
  (bank entries 0-2), VQA (bank entries 3-5)."""
  rng = np.random.default_rng(seed)
  bank = _unit(rng.normal(size=(6, dim)))

  def pairs(n):
    img = _unit(rng.normal(size=(n, dim)))
    owner = np.repeat(np.arange(n), per_image)
    cap = _unit(img[owner] + 0.3 * rng.normal(size=(n * per_image, dim)))
    captions = [f'a {WORDS[i % 5]} and a {WORDS[(i // 5 + k) % 5]} .'
                for i, k in zip(owner, np.tile(np.arange(per_image), n))]
    return task_kinds.PairSplit(img, cap, owner, captions)

  def labelled(n, labels):
    y = rng.choice(labels, n)
    return task_kinds.BankSplit(_unit(bank[y] + 0.5 * rng.normal(size=(n, dim))), y)

  caption_train = pairs(images)
  bank_captions = sorted(set(caption_train.captions))
  every = {
      'retrieval': lambda: task_kinds.VLTask('ret', 'retrieval', pairs(images),
                                           pairs(images // 4)),
      'captioning': lambda: task_kinds.VLTask(
          'cap', 'captioning', caption_train, pairs(images // 4), bank_captions=bank_captions,
          bank_x=_unit(rng.normal(size=(len(bank_captions), dim)))),
      'classification': lambda: task_kinds.VLTask('cls', 'classification',
                                                labelled(60, [0, 1, 2]), labelled(20, [0, 1, 2])),
      'vqa': lambda: task_kinds.VLTask('vqa', 'vqa', labelled(60, [3, 4, 5]),
                                     labelled(20, [3, 4, 5])),
  }
  tasks = [every[kind]() for kind in kinds]
  return task_kinds.build_vl_stream('mock-vl', tasks, bank_text=bank,
                                  bank_names=[f'entry {i}' for i in range(6)],
                                  bank_family=[0, 0, 0, 1, 1, 1], clusters=clusters,
                                  pad_multiple=pad_multiple)


def small_vl_config(method='autoseed', **overrides):
  """Tiny settings for runs on ``mock_vl_stream``."""
  from experiments.configs.common import method_config  # pylint: disable=import-outside-toplevel
  c = method_config()
  c.method = method
  c.steps_per_task, c.steps_per_chunk, c.batch_size = 16, 8, 16
  c.adapter_hidden, c.generator_hidden, c.sketch_dim, c.noise_dim = 16, 16, 16, 4
  c.meta_steps, c.inner_steps, c.memory_budget, c.seed_batch_size = 2, 1, 20, 8
  c.candidates_per_class, c.seeds_per_class = 4, 2
  c.dgr_vae_steps, c.er_memory_examples, c.ewc_fisher_batch = 5, 30, 16
  for name, value in overrides.items():
    c[name] = value
  return c
