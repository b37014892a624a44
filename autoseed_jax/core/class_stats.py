"""Class statistics of frozen embeddings: the memories of the statistics-replay peers.

What the rehearsal-free peers of the seed methods store instead of images or seeds
(docs/PEERS.md): per-class Gaussians (mean only as PASS and FeTrIL, diagonal, low-rank +
diagonal, full as RAPF and SLCA), FeTrIL's translated pseudo-features, and the running
Gram and class-sum statistics of a RanPAC closed-form head. Every function is pure and
jit-able on fixed shapes; a task's rows are x [N, d] with per-class weights [n, N] (1 where
a row belongs to the class, 0 elsewhere, as ``methods.autoseed.SeedUpdateData``), so the
pieces serve any grouping of rows (a later pair-level form groups by k-means cluster).

The class memory (``ClassMemory``) has one slot per class of the stream (the slot index is
the class id, so no label is stored); its bytes are counted as ``seeds.bytes_per_seed``
counts a seed: every stored float and int of a slot (its mean, covariance factors and
valid flag), times the slots filled, plus the fields shared by all classes (the mean-only
form's radius). ``bytes_per_class`` and ``nbytes`` are that count; ``class_memory_plan``
chooses the low-rank form's rank to fill a byte budget and refuses a form that does not fit.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp

from autoseed_jax.core.losses import l2_normalize

# Covariance forms of a class Gaussian (``ClassMemory``), cheapest first.
COVARIANCES = ('mean', 'diag', 'lowrank', 'full')


class BudgetTooSmall(ValueError):
  """A memory form that does not fit the byte budget (the message names the bytes it
  needs): not a bad setting of the run, but a point of a memory curve where the method
  cannot take part."""


@flax.struct.dataclass
class ClassMemory:
  """Per-class Gaussians of unit-norm embeddings, one slot per class id (C slots).

  Attributes:
    mean: [C, d] float32 class means μ_c of the raw embeddings (norm <= 1, not renormalised).
    scale: [C, d] float32 per-dimension standard deviations: 'diag': sqrt(diag Σ_c + ε);
      'lowrank': sqrt of the residual variance ψ_c = diag Σ_c − diag(F_cᵀ F_c) + ε;
      [C, 0] for 'mean' and 'full'.
    factor: [C, r, d] float32 low-rank factor F_c (Σ_c ≈ F_cᵀ F_c + diag ψ_c, rows the
      top-r principal axes scaled by the square roots of their variances); [C, 0, d] for
      the other forms.
    chol: [C, d, d] float32 lower Cholesky factor L_c of Σ_c + εI ('full'); [C, 0, 0] else.
    valid: [C] bool, which classes are stored.
    radius: [1] float32 (form 'mean'): the shared isotropic standard deviation r, with
      r² = the mean over stored classes of tr Σ_c / d (PASS's one radius); [0] otherwise.
  """

  mean: jax.Array
  scale: jax.Array
  factor: jax.Array
  chol: jax.Array
  valid: jax.Array
  radius: jax.Array

  @property
  def covariance(self) -> str:
    """The form this memory stores (one of ``COVARIANCES``), read from its shapes."""
    if self.chol.shape[-1]:
      return 'full'
    if self.factor.shape[1]:
      return 'lowrank'
    return 'diag' if self.scale.shape[-1] else 'mean'

  @property
  def rank(self) -> int:
    return self.factor.shape[1]

  def num_valid(self) -> jax.Array:
    """Number of stored classes, an int32 scalar."""
    return jnp.sum(self.valid, dtype=jnp.int32)


def init_class_memory(num_classes: int, dim: int, *, covariance: str = 'mean',
                      rank: int = 0, shared_radius: bool = True) -> ClassMemory:
  """An empty memory of ``num_classes`` slots holding the ``covariance`` form (``rank``:
  the low-rank form's r >= 1, ignored by the others; ``shared_radius``: whether the
  mean-only form keeps PASS's radius, False for FeTrIL's means alone)."""
  if covariance not in COVARIANCES:
    raise ValueError(f'covariance={covariance!r}; choose one of {COVARIANCES}.')
  if covariance == 'lowrank' and not 1 <= rank <= dim:
    raise ValueError(f'a low-rank covariance needs 1 <= rank <= d={dim}, got rank={rank}.')
  has = lambda *forms: covariance in forms
  zeros = lambda *shape: jnp.zeros(shape, jnp.float32)
  return ClassMemory(
      mean=zeros(num_classes, dim),
      scale=zeros(num_classes, dim if has('diag', 'lowrank') else 0),
      factor=zeros(num_classes, rank if has('lowrank') else 0, dim),
      chol=zeros(num_classes, *((dim, dim) if has('full') else (0, 0))),
      valid=jnp.zeros((num_classes,), bool),
      radius=zeros(1 if has('mean') and shared_radius else 0))


_PER_CLASS = ('mean', 'scale', 'factor', 'chol', 'valid')


def bytes_per_class(memory: ClassMemory) -> int:
  """Bytes one stored class occupies: every per-class field (mean, scale, factor, chol and
  the valid flag), by ``seeds.bytes_per_seed``'s rule (itemsize × elements of a slot)."""
  return sum(getattr(memory, f).dtype.itemsize * getattr(memory, f)[0].size for f in _PER_CLASS)


def shared_bytes(memory: ClassMemory) -> int:
  """Bytes of the fields shared by all classes (the mean-only form's radius)."""
  return memory.radius.dtype.itemsize * memory.radius.size


def nbytes(memory: ClassMemory) -> jax.Array:
  """Bytes the memory holds: stored classes × ``bytes_per_class`` plus ``shared_bytes``
  once a class is stored; an int32 scalar."""
  n = memory.num_valid()
  return n * bytes_per_class(memory) + jnp.where(n > 0, shared_bytes(memory), 0)


def class_memory_plan(covariance: str, dim: int, num_classes: int, budget_bytes: int, *,
                      rank: int = 0, shared_radius: bool = True,
                      method: str = 'gauss_replay') -> tuple[int, int]:
  """(rank, bytes when all ``num_classes`` classes are stored) of the ``covariance`` form
  within ``budget_bytes``.

  The low-rank form with ``rank`` 0 takes the largest r whose memory of every class fits
  the budget (bytes per class 4d(r + 2) + 1). A form (or a given rank) that does not fit
  is refused with one line naming ``method``, the form and the bytes it needs; nothing
  degrades silently.
  """
  form = f'{method} with covariance {covariance!r}'
  if covariance == 'lowrank' and rank == 0:
    base = init_class_memory(1, dim, covariance='lowrank', rank=1)
    per_rank = 4 * dim
    fixed = bytes_per_class(base) - per_rank
    rank = min(dim, (budget_bytes // num_classes - fixed) // per_rank)
    if rank < 1:
      raise BudgetTooSmall(
          f'invalid config: {form} needs {num_classes * (fixed + per_rank)} bytes at rank 1 '
          f'for {num_classes} classes of d={dim}, over the byte budget of {budget_bytes}; '
          "raise plus_memory_bytes or use gauss_covariance='diag'.")
  memory = init_class_memory(1, dim, covariance=covariance, rank=rank,
                             shared_radius=shared_radius)
  total = num_classes * bytes_per_class(memory) + shared_bytes(memory)
  if total > budget_bytes:
    what = f' at rank {rank}' if covariance == 'lowrank' else ''
    raise BudgetTooSmall(
        f'invalid config: {form}{what} needs {total} bytes for {num_classes} classes of '
        f'd={dim} ({bytes_per_class(memory)} per class), over the byte budget of '
        f'{budget_bytes}; raise plus_memory_bytes or choose a cheaper form.')
  return rank, total


def class_means(x: jax.Array, weights: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(count [n], mean [n, d]) of each class's rows of x [N, d] (weights [n, N]); a class
  without rows has mean 0."""
  count = jnp.sum(weights, axis=1)
  return count, (weights @ x) / jnp.maximum(count, 1.0)[:, None]


def class_covariances(x: jax.Array, weights: jax.Array, mean: jax.Array) -> jax.Array:
  """[n, d, d] maximum-likelihood covariances Σ_c = (1/n_c) Σ_i (x_i − μ_c)(x_i − μ_c)ᵀ of
  each class's rows (the 1/n_c form: for unit-norm rows tr Σ_c = 1 − ‖μ_c‖² exactly, so a
  sample's expected squared norm ‖μ_c‖² + tr Σ_c is 1)."""
  count = jnp.maximum(jnp.sum(weights, axis=1), 1.0)
  second = jnp.einsum('cn,nd,ne->cde', weights, x, x,
                      precision=jax.lax.Precision.HIGHEST) / count[:, None, None]
  return second - mean[:, :, None] * mean[:, None, :]


def class_variances(x: jax.Array, weights: jax.Array, mean: jax.Array) -> jax.Array:
  """[n, d] the diagonals of ``class_covariances`` (computed without the d × d matrices)."""
  count = jnp.maximum(jnp.sum(weights, axis=1), 1.0)
  second = jnp.matmul(weights, x * x, precision=jax.lax.Precision.HIGHEST) / count[:, None]
  return jnp.maximum(second - mean * mean, 0.0)


def each_matrix(decompose, matrices: jax.Array):
  """``decompose`` (an eigh or Cholesky factorisation) of each of ``matrices`` [n, d, d]
  in turn (``lax.map``), its outputs stacked over n; bit-identical to the batched call.

  jaxlib's CPU LAPACK kernels split a batch over XLA's intra-op thread pool and wait for
  the pieces on a pool thread. When every pool thread is such a waiting kernel (8
  simulated CPU devices on 2 cores, each running the program) nobody runs the pieces and
  the process deadlocks (docs/DEVICES.md); a batch of one runs inline. (Under the seed
  axis's ``vmap`` the call is batched again, over the run seeds.)
  """
  return jax.lax.map(decompose, matrices)


def lowrank_plus_diag(cov: jax.Array, rank: int, shrinkage: float) -> tuple[jax.Array, jax.Array]:
  """Σ ≈ Fᵀ F + diag ψ with the top-``rank`` principal axes in F and the exact diagonal.

  Args:
    cov: [n, d, d] covariances.
    rank: r, principal axes kept.
    shrinkage: ε added to ψ (keeps the residual scale positive).

  Returns:
    (factor F [n, r, d]: rows sqrt(λ_k) u_k for the r largest eigenvalues λ_k (clipped at
    0) with eigenvectors u_k; scale [n, d]: sqrt(ψ) with ψ = max(diag Σ − diag FᵀF, 0) + ε).
  """
  eigenvalues, eigenvectors = each_matrix(jnp.linalg.eigh, cov)       # ascending
  top_values = jnp.maximum(eigenvalues[:, ::-1][:, :rank], 0.0)        # [n, r]
  top_vectors = jnp.swapaxes(eigenvectors[:, :, ::-1][:, :, :rank], 1, 2)  # [n, r, d]
  factor = jnp.sqrt(top_values)[..., None] * top_vectors
  explained = jnp.sum(factor * factor, axis=1)                        # diag FᵀF, [n, d]
  residual = jnp.maximum(jnp.diagonal(cov, axis1=1, axis2=2) - explained, 0.0)
  return factor, jnp.sqrt(residual + shrinkage)


def fit_class_gaussians(x: jax.Array, weights: jax.Array, *, covariance: str, rank: int = 0,
                        shrinkage: float = 1e-4) -> dict[str, jax.Array]:
  """The ``ClassMemory`` fields of n classes from their rows (one row each per class).

  Args:
    x: [N, d] unit-norm embeddings; weights: [n, N] class membership.
    covariance: the form (``COVARIANCES``); rank: r of 'lowrank'.
    shrinkage: ε added to the variances ('diag', 'lowrank') or to Σ's diagonal ('full';
      Σ_c is singular when a class has fewer than d rows).

  Returns:
    {'mean' [n, d], 'scale', 'factor', 'chol' (the form's shapes, see ``ClassMemory``),
    'trace' [n]: tr Σ_c, which the mean-only form's radius averages}.
  """
  n, d = weights.shape[0], x.shape[1]
  _, mean = class_means(x, weights)
  empty = init_class_memory(n, d, covariance=covariance, rank=max(rank, 1))
  out = dict(mean=mean, scale=empty.scale, factor=empty.factor, chol=empty.chol)
  if covariance in ('mean', 'diag'):
    variances = class_variances(x, weights, mean)
    out['trace'] = jnp.sum(variances, axis=1)
    if covariance == 'diag':
      out['scale'] = jnp.sqrt(variances + shrinkage)
    return out
  cov = class_covariances(x, weights, mean)
  out['trace'] = jnp.trace(cov, axis1=1, axis2=2)
  if covariance == 'lowrank':
    out['factor'], out['scale'] = lowrank_plus_diag(cov, rank, shrinkage)
  else:
    out['chol'] = each_matrix(jnp.linalg.cholesky,
                              cov + shrinkage * jnp.eye(d, dtype=cov.dtype))
  return out


def store_classes(memory: ClassMemory, classes: jax.Array, fitted: dict, ok: jax.Array
                  ) -> ClassMemory:
  """``memory`` with the fitted classes written into their slots.

  Args:
    classes: [n] class ids of the fitted rows (padding rows may hold anything);
    fitted: ``fit_class_gaussians``'s output for them (a field it lacks is left as it is:
      FeTrIL stores only 'mean'); ok: [n] bool, which rows to store.
    The mean-only form's radius becomes the mean of tr Σ_c / d over every stored class
    (the running mean: the old radius² weighs the classes stored before).
  """
  num_slots = memory.valid.shape[0]
  slots = jnp.where(ok, classes, num_slots)  # out of range -> dropped
  fields = {name: getattr(memory, name).at[slots].set(
      fitted[name].astype(getattr(memory, name).dtype), mode='drop')
            for name in ('mean', 'scale', 'factor', 'chol') if name in fitted}
  radius = memory.radius
  if radius.size:
    old = memory.num_valid().astype(jnp.float32)
    new = jnp.sum(ok).astype(jnp.float32)
    added = jnp.sum(jnp.where(ok, fitted['trace'], 0.0)) / memory.mean.shape[1]
    radius_sq = (old * radius[0] ** 2 + added) / jnp.maximum(old + new, 1.0)
    radius = jnp.sqrt(radius_sq)[None]
  return memory.replace(valid=memory.valid.at[slots].set(True, mode='drop'), radius=radius,
                        **fields)


def sample_class_gaussians(memory: ClassMemory, key: jax.Array, per_class: int, *,
                           sphere: bool = True) -> tuple[jax.Array, jax.Array, jax.Array]:
  """``per_class`` draws from every slot's Gaussian N(μ_c, Σ_c) in the stored form.

  A draw is μ_c + δ with δ = r z ('mean'), scale_c ⊙ z ('diag'), F_cᵀ z' + scale_c ⊙ z
  ('lowrank'), L_c z ('full'), z, z' standard normal; with ``sphere`` it is then projected
  onto the unit sphere (x / ‖x‖), where the real embeddings live.

  Returns:
    (x [C · per_class, d] grouped by class, label [C · per_class] int32 class ids, valid
    [C · per_class] bool: the slot's class is stored).
  """
  num_slots, dim = memory.mean.shape
  k_full, k_low = jax.random.split(key)
  z = jax.random.normal(k_full, (num_slots, per_class, dim))
  form = memory.covariance
  if form == 'mean':
    deviation = memory.radius[0] * z
  elif form == 'diag':
    deviation = memory.scale[:, None] * z
  elif form == 'lowrank':
    z_low = jax.random.normal(k_low, (num_slots, per_class, memory.rank))
    deviation = (jnp.einsum('crd,csr->csd', memory.factor, z_low)
                 + memory.scale[:, None] * z)
  else:
    deviation = jnp.einsum('cde,cse->csd', memory.chol, z)
  x = memory.mean[:, None] + deviation
  if sphere:
    x = l2_normalize(x)
  label = jnp.repeat(jnp.arange(num_slots, dtype=jnp.int32), per_class)
  return x.reshape(-1, dim), label, jnp.repeat(memory.valid, per_class)


def translate(x: jax.Array, source_mean: jax.Array, target_mean: jax.Array, *,
              sphere: bool = True) -> jax.Array:
  """FeTrIL's geometric translation x − μ_source + μ_target (rows [..., d], broadcast);
  with ``sphere`` projected onto the unit sphere."""
  out = x - source_mean + target_mean
  return l2_normalize(out) if sphere else out


def translated_pseudo_features(key: jax.Array, pool_x: jax.Array, pool_y: jax.Array,
                               pool_count: jax.Array, pool_means: jax.Array,
                               memory: ClassMemory, per_class: int, *, sphere: bool = True
                               ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """FeTrIL pseudo-features: ``per_class`` for every stored class c, each a real row x_i of
  the current task drawn uniformly (with replacement) and translated to c:
  x_i − μ_{y_i} + μ_c (``translate``).

  Args:
    pool_x: [N, d] the current task's training rows (the first ``pool_count`` real);
    pool_y: [N] their class ids; pool_means: [C, d] the current task's class means (rows of
      its classes; indexed by class id); memory: the stored class means μ_c.

  Returns:
    As ``sample_class_gaussians``: (x [C · per_class, d], label, valid).
  """
  num_slots, dim = memory.mean.shape
  rows = jax.random.randint(key, (num_slots, per_class), 0, jnp.maximum(pool_count, 1))
  x = translate(pool_x[rows], pool_means[pool_y[rows]], memory.mean[:, None], sphere=sphere)
  label = jnp.repeat(jnp.arange(num_slots, dtype=jnp.int32), per_class)
  return x.reshape(-1, dim), label, jnp.repeat(memory.valid, per_class)


# ----------------------------------------------------------------------------------------
# The closed-form head (RanPAC): random features, running statistics, ridge solve.


def random_features(x: jax.Array, projection: jax.Array) -> jax.Array:
  """φ(x) = ReLU(x W): x [N, d] through the fixed random projection W [d, M] -> [N, M]."""
  return jax.nn.relu(x @ projection)


def accumulate_statistics(gram: jax.Array, class_sums: jax.Array, features: jax.Array,
                          labels: jax.Array, weights: jax.Array) -> tuple[jax.Array, jax.Array]:
  """G + Σ_i w_i φ_i φ_iᵀ and Q + Σ_i w_i φ_i y_iᵀ (y_i one-hot over Q's C columns).

  Args:
    gram: [M, M]; class_sums: [M, C]; features: [N, M]; labels: [N] class ids;
    weights: [N] (1 for real rows, 0 for padding).
  """
  weighted = features * weights[:, None]
  onehot = jax.nn.one_hot(labels, class_sums.shape[1], dtype=features.dtype)
  hi = jax.lax.Precision.HIGHEST
  return (gram + jnp.matmul(weighted.T, features, precision=hi),
          class_sums + jnp.matmul(weighted.T, onehot, precision=hi))


def ridge_solve(gram: jax.Array, class_sums: jax.Array, ridge) -> jax.Array:
  """The ridge-regression head (G + λI)⁻¹ Q, [M, C], by a Cholesky solve."""
  eye = jnp.eye(gram.shape[0], dtype=gram.dtype)
  factor = jax.scipy.linalg.cho_factor(gram + ridge * eye, lower=True)
  return jax.scipy.linalg.cho_solve(factor, class_sums)


def ridge_errors(gram: jax.Array, class_sums: jax.Array, features: jax.Array,
                 labels: jax.Array, weights: jax.Array, class_mask: jax.Array,
                 grid: jax.Array) -> jax.Array:
  """[len(grid)] mean squared error of each ridge λ's head on held-out rows.

  The error is RanPAC's: mean over the held-out rows (``weights``) and the classes of
  ``class_mask`` of (φᵀ W_λ − onehot(y))²; a λ whose solve is not finite scores +inf.
  """
  onehot = jax.nn.one_hot(labels, class_sums.shape[1], dtype=features.dtype)
  columns = class_mask.astype(features.dtype)

  def error(ridge):
    residual = features @ ridge_solve(gram, class_sums, ridge) - onehot
    per_row = jnp.sum(residual * residual * columns, axis=1) / jnp.maximum(jnp.sum(columns), 1)
    value = jnp.sum(per_row * weights) / jnp.maximum(jnp.sum(weights), 1.0)
    return jnp.where(jnp.isfinite(value), value, jnp.inf)

  return jax.lax.map(error, grid)
