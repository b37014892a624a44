"""Group Gaussians of every task kind: the pair form of the class-Gaussian memory.

The class-Gaussian replay (``methods/class_gaussian.py``) stores one Gaussian per class of
its image embeddings (``class_stats.ClassMemory``). On a vision-language stream the
groups are those of the seed family (``pair_groups.summary_groups``): a bank group (a class
or a VQA answer, label < C, the bank size) and a pair group (a text cluster of a retrieval
or captioning task, label >= C). The memory is two ``ClassMemory``:

  memory   slots                         rows fitted                       dims
  bank     C, slot = label               the group's queries x             d
  pairs    P = num_groups - C, slot =    its joint points [x ; t] / √2     2d
           label - C                     (``pair_groups.joint_points``,
                                         'concat')

so a pair group stores (and pays for) a text half of its statistics, a bank group none
(its text is the bank's). A draw of a pair group is split into its image and text halves
(``pair_groups.split_joint``, each normalised): (v, w); a draw of a bank group is v (on
the unit sphere when asked) with w the bank text (``pair_groups.seed_text``).

Only the 'concat' joint space is used: a point of the 'sum' space normalize(x + t) has no
image and text halves to split a draw into.

Bytes: ``class_stats.nbytes`` of each memory (stored slots × their bytes, by
``seeds.bytes_per_seed``'s rule), summed; ``group_memory_plan`` chooses the low-rank
form's rank (one r for both memories) and refuses a form that does not fit the budget.
Everything is pure and jit-able on fixed shapes; the task kind may be traced.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from autoseed_jax.core import class_stats, pair_groups, task_kinds


def group_slots(num_bank: int, vl) -> tuple[int, int]:
  """(bank slots C, pair slots P the plan pays for) of a vision-language stream (``vl``:
  its ``VLInfo``): P = ``vl.num_groups`` − C (an upper bound of the pair groups, as the
  seed family's ``memory_plan``) when the stream has a retrieval or captioning task, else
  0."""
  pair_kinds = {task_kinds.KINDS[k] for k in task_kinds.PAIR_KINDS}
  has_pairs = bool(pair_kinds & set(vl.kinds))
  return num_bank, max(int(vl.num_groups) - num_bank, 0) if has_pairs else 0


def init_group_memory(num_bank: int, num_pair: int, dim: int, *, covariance: str,
                      rank: int = 0) -> tuple[class_stats.ClassMemory, class_stats.ClassMemory]:
  """(bank memory: ``num_bank`` slots of d dims, pair memory: max(``num_pair``, 1) slots of
  2d dims), empty. The pair memory keeps one slot when the stream has no pair group (it is
  never filled, so it holds no bytes)."""
  bank = class_stats.init_class_memory(num_bank, dim, covariance=covariance, rank=rank)
  pairs = class_stats.init_class_memory(max(num_pair, 1), 2 * dim, covariance=covariance,
                                        rank=rank)
  return bank, pairs


def nbytes(bank: class_stats.ClassMemory, pairs: class_stats.ClassMemory) -> jax.Array:
  """int32 bytes both memories hold (``class_stats.nbytes`` of each)."""
  return class_stats.nbytes(bank) + class_stats.nbytes(pairs)


def group_memory_plan(covariance: str, dim: int, num_bank: int, num_pair: int,
                      budget_bytes: int, *, rank: int = 0,
                      method: str = 'gauss_replay') -> tuple[int, int]:
  """(rank, bytes when every slot is stored) of the ``covariance`` form for ``num_bank``
  bank groups of d dims and ``num_pair`` pair groups of 2d dims within ``budget_bytes``.

  The low-rank form with ``rank`` 0 takes the largest r <= d whose memory fits (one r for
  both). A form that does not fit is refused with one line (``class_stats.BudgetTooSmall``)
  naming ``method``, the form and the bytes it needs.
  """
  form = f'{method} (pair form) with covariance {covariance!r}'
  groups = f'{num_bank} bank groups of d={dim} and {num_pair} pair groups of 2d={2 * dim}'

  def total(r):
    bank, pairs = (class_stats.init_class_memory(1, n, covariance=covariance, rank=r)
                   for n in (dim, 2 * dim))
    shared = class_stats.shared_bytes(bank) + (class_stats.shared_bytes(pairs) if num_pair
                                               else 0)
    return (num_bank * class_stats.bytes_per_class(bank)
            + num_pair * class_stats.bytes_per_class(pairs) + shared)

  if covariance == 'lowrank' and rank == 0:
    per_rank = 4 * dim * num_bank + 8 * dim * num_pair
    rank = min(dim, (budget_bytes - total(1)) // per_rank + 1)
    if rank < 1:
      raise class_stats.BudgetTooSmall(
          f'invalid config: {form} needs {total(1)} bytes at rank 1 for {groups}, over the '
          f"byte budget of {budget_bytes}; raise plus_memory_bytes or use "
          "gauss_covariance='diag'.")
  needed = total(rank if covariance == 'lowrank' else 0)
  if needed > budget_bytes:
    what = f' at rank {rank}' if covariance == 'lowrank' else ''
    raise class_stats.BudgetTooSmall(
        f'invalid config: {form}{what} needs {needed} bytes for {groups}, over the byte '
        f'budget of {budget_bytes}; raise plus_memory_bytes or choose a cheaper form.')
  return rank, needed


def fit_groups(task, *, covariance: str, rank: int, shrinkage: float):
  """(groups, bank fit, pair fit) of a vision-language ``task``: its summary groups
  (``pair_groups.summary_groups``), the Gaussians of every group slot over the queries x
  ([n, d] fields) and over the joint points [x ; t] / √2 ([n, 2d] fields), as
  ``class_stats.fit_class_gaussians`` gives them. Both are computed (the kind may be
  traced); ``store_groups`` keeps the one that belongs to each group."""
  groups = pair_groups.summary_groups(task)
  fit = lambda rows: class_stats.fit_class_gaussians(
      rows, groups.train_weights, covariance=covariance, rank=rank, shrinkage=shrinkage)
  points = pair_groups.joint_points(task.train_x, task.train_text, True, 'concat')
  return groups, fit(task.train_x), fit(points)


def store_groups(bank: class_stats.ClassMemory, pairs: class_stats.ClassMemory,
                 groups: pair_groups.SummaryGroups, bank_fit: dict, pair_fit: dict
                 ) -> tuple[class_stats.ClassMemory, class_stats.ClassMemory]:
  """Both memories with the task's groups written: a bank group (``stores_text`` False)
  into bank slot = label, a pair group into pair slot = label − C."""
  num_bank = bank.valid.shape[0]
  bank = class_stats.store_classes(bank, groups.labels, bank_fit,
                                   groups.ok & ~groups.stores_text)
  pairs = class_stats.store_classes(pairs, groups.labels - num_bank, pair_fit,
                                    groups.ok & groups.stores_text)
  return bank, pairs


def sample_groups(bank: class_stats.ClassMemory, pairs: class_stats.ClassMemory,
                  bank_text: jax.Array, key: jax.Array, per_group: int, *, sphere: bool
                  ) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
  """``per_group`` draws of every slot of both memories as seeds.

  A bank draw (``class_stats.sample_class_gaussians``, on the unit sphere with
  ``sphere``) is v with w its bank text; a pair draw [2d] is split into (v, w), each half
  normalised (``pair_groups.split_joint``).

  Returns:
    (v [S, d], w [S, d], label [S] int32: bank id or C + pair slot, valid [S] bool), the
    C · per_group bank draws first; S = (C + P) · per_group. bank_text: [C, d].
  """
  num_bank, dim = bank.mean.shape
  k_bank, k_pair = jax.random.split(key)
  bank_v, bank_label, bank_ok = class_stats.sample_class_gaussians(bank, k_bank, per_group,
                                                                   sphere=sphere)
  joint, pair_slot, pair_ok = class_stats.sample_class_gaussians(pairs, k_pair, per_group,
                                                                 sphere=False)
  pair_v, pair_w = pair_groups.split_joint(joint, dim)
  v = jnp.concatenate([bank_v, pair_v])
  label = jnp.concatenate([bank_label, pair_slot + num_bank])
  stored_w = jnp.concatenate([jnp.zeros_like(bank_v), pair_w])
  w = pair_groups.seed_text(stored_w, label, bank_text, num_bank)
  return v, w, label, jnp.concatenate([bank_ok, pair_ok])

