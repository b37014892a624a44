"""The frozen-encoder interface the rest of autoseed_jax uses, and helpers shared by encoders.

An encoder maps inputs to unit-norm float32 embeddings in a space of width `embed_dim`:

- `TextEncoder`: `encode_text(texts)` only (e.g. `minilm.MiniLMTextEncoder`).
- `Backbone`: a `TextEncoder` that also has `encode_image(images)` (e.g. the CLIP backbone in
  `clip.py`), with image and text embeddings in one shared space.

`fingerprint` is a content hash of the weights and of everything else that changes the output
(config, tokenizer, preprocessing); embedding caches key on it, so two encoders with the same
fingerprint must give the same embeddings.
"""

from __future__ import annotations

import hashlib
import sys
from typing import Any, Callable, Mapping, Protocol, Sequence, runtime_checkable

import jax
import numpy as np
import tqdm


@runtime_checkable
class TextEncoder(Protocol):
  """Encodes text into unit-norm embeddings.

  embed_dim: width d of the embeddings.
  fingerprint: hex sha256 identifying weights + config (see `weights_fingerprint`).
  """

  embed_dim: int
  fingerprint: str

  def encode_text(self, texts: Sequence[str]) -> np.ndarray:
    """texts: N strings -> [N, d] float32, each row unit-norm."""
    ...


@runtime_checkable
class Backbone(TextEncoder, Protocol):
  """Encodes images and text into one shared space of unit-norm embeddings."""

  def encode_image(self, images: np.ndarray) -> np.ndarray:
    """images: [N, H, W, C] (dtype and size as the backbone documents) -> [N, d] float32,
    each row unit-norm."""
    ...


def weights_fingerprint(arrays: Mapping[str, np.ndarray], extra: str = "") -> str:
  """Hex sha256 over the sorted keys, shapes, dtypes and bytes of `arrays`, then `extra`.

  arrays: name -> array (e.g. the tensors of a safetensors file).
  extra: anything else that changes the encoder's output (config, tokenizer, preprocessing).
  """
  digest = hashlib.sha256()
  for key in sorted(arrays):
    array = np.ascontiguousarray(arrays[key])
    header = f"{key}|{array.shape}|{array.dtype.str}|"
    digest.update(header.encode("utf-8"))
    digest.update(array.tobytes())
  digest.update(b"extra|")
  digest.update(extra.encode("utf-8"))
  return digest.hexdigest()


def _row_sharding(batch_size: int):
  """Rows of a batch split over this process's devices, or None on one device (or when the
  device count does not divide the batch)."""
  devices = jax.local_devices()
  if len(devices) < 2 or batch_size % len(devices):
    return None
  mesh = jax.sharding.Mesh(np.array(devices), ("data",))
  return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))


def batched(
    fn: Callable[[Any], Any],
    inputs: Any,
    batch_size: int,
    desc: str = "encoding",
    shard: bool = True,
) -> Any:
  """Runs `fn` over `inputs` in batches of exactly `batch_size` rows and concatenates the outputs.

  The last batch is padded (by repeating its last row) up to `batch_size` and the padded rows
  are dropped from the output, so a jitted `fn` sees one input shape and compiles once.
  A tqdm progress bar is shown only when stderr is a terminal.

  Data parallel: with `shard` and several local devices dividing `batch_size`, each batch is
  placed sharded along its rows over a `data` mesh of this process's devices, so a jitted
  `fn` (with unplaced, hence replicated, weights) encodes on all of them at once.

  fn: batch -> outputs; batch has the structure of `inputs` with leading dimension batch_size,
    outputs is an array or pytree of arrays with leading dimension batch_size.
  inputs: array or pytree of arrays sharing the leading dimension N >= 1.
  Returns: outputs of `fn` as numpy arrays with leading dimension N.
  """
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
  leaves = jax.tree_util.tree_leaves(inputs)
  if not leaves:
    raise ValueError("batched() got no input arrays; pass an array or a pytree of arrays")
  leaves = [np.asarray(leaf) for leaf in leaves]
  if any(leaf.ndim == 0 for leaf in leaves):
    raise ValueError("batched() inputs must have a leading batch dimension; got a scalar")
  num_rows = leaves[0].shape[0]
  if any(leaf.shape[0] != num_rows for leaf in leaves):
    shapes = [leaf.shape for leaf in leaves]
    raise ValueError(f"batched() inputs must share their leading dimension; got shapes {shapes}")
  if num_rows == 0:
    raise ValueError("batched() got 0 rows; handle empty inputs before calling it")

  inputs = jax.tree_util.tree_map(np.asarray, inputs)
  sharding = _row_sharding(batch_size) if shard else None
  num_batches = -(-num_rows // batch_size)
  outputs = []
  progress = tqdm.tqdm(
      range(num_batches), desc=desc, unit="batch", disable=not sys.stderr.isatty()
  )
  for index in progress:
    start = index * batch_size
    stop = min(start + batch_size, num_rows)
    batch = jax.tree_util.tree_map(lambda leaf: _pad_rows(leaf[start:stop], batch_size), inputs)
    if sharding is not None:
      batch = jax.device_put(batch, sharding)
    result = fn(batch)
    outputs.append(jax.tree_util.tree_map(lambda out: np.asarray(out)[: stop - start], result))
  return jax.tree_util.tree_map(lambda *parts: np.concatenate(parts, axis=0), *outputs)


def _pad_rows(rows: np.ndarray, num_rows: int) -> np.ndarray:
  """rows: [n, ...] with 1 <= n <= num_rows -> [num_rows, ...], last row repeated."""
  missing = num_rows - rows.shape[0]
  if missing == 0:
    return rows
  padding = np.repeat(rows[-1:], missing, axis=0)
  return np.concatenate([rows, padding], axis=0)
