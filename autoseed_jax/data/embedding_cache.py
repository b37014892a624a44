"""On-disk cache of frozen-backbone embeddings (METHOD.md §1: the backbone is frozen, so image
and text embeddings are computed once per dataset split and reused).

Each entry is ``<dataset>_<split>_<key>.npy`` plus a JSON sidecar ``….json`` holding the key,
shape, dtype and sha256 of the array bytes. The key is the sha256 of (backbone fingerprint,
dataset, split, sha256 of the inputs), so a new backbone, other images or other prompts miss the
cache. Files are written to a temporary file in the cache directory and moved into place with
``os.replace`` (the array first, the sidecar last), so an interrupted write never yields an
entry that loads; an entry whose array does not match its sidecar is recomputed.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import re
import tempfile
from collections.abc import Callable, Sequence

import numpy as np

CACHE_DIR_ENV = "AUTOSEED_CACHE_DIR"


def default_cache_dir() -> pathlib.Path:
  """``$AUTOSEED_CACHE_DIR`` or ``~/.cache/autoseed_jax/embeddings``."""
  from_env = os.environ.get(CACHE_DIR_ENV)
  if from_env:
    return pathlib.Path(from_env).expanduser()
  return pathlib.Path.home() / ".cache" / "autoseed_jax" / "embeddings"


def array_digest(array: np.ndarray) -> str:
  """sha256 hex of an array's dtype, shape and bytes."""
  array = np.ascontiguousarray(array)
  digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
  digest.update(memoryview(array).cast("B"))
  return digest.hexdigest()


def texts_digest(texts: Sequence[str]) -> str:
  """sha256 hex of an ordered list of strings."""
  return hashlib.sha256(json.dumps(list(texts), ensure_ascii=False).encode()).hexdigest()


def cache_key(*, fingerprint: str, dataset: str, split: str, inputs_digest: str) -> str:
  """sha256 hex identifying one (backbone, dataset, split, inputs) embedding table."""
  payload = json.dumps(
      {"fingerprint": fingerprint, "dataset": dataset, "split": split, "inputs": inputs_digest},
      sort_keys=True,
  )
  return hashlib.sha256(payload.encode()).hexdigest()


def _entry_paths(cache_dir: pathlib.Path, dataset: str, split: str, key: str):
  readable = re.sub(r"[^A-Za-z0-9_-]+", "-", f"{dataset}_{split}")
  stem = f"{readable}_{key}"
  return cache_dir / f"{stem}.npy", cache_dir / f"{stem}.json"


def _write_atomically(path: pathlib.Path, write: Callable) -> None:
  handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp",
                                       delete=False)
  try:
    with handle:
      write(handle)
      handle.flush()
      os.fsync(handle.fileno())
    os.replace(handle.name, path)
  except BaseException:
    pathlib.Path(handle.name).unlink(missing_ok=True)
    raise


def _load_entry(array_path: pathlib.Path, sidecar_path: pathlib.Path, key: str,
                num_items: int) -> np.ndarray | None:
  """The cached array, or None when missing, unreadable or not matching its sidecar."""
  try:
    sidecar = json.loads(sidecar_path.read_text())
    array = np.load(array_path, allow_pickle=False)
  except (OSError, ValueError, EOFError):
    return None
  if (
      sidecar.get("key") != key
      or list(array.shape) != sidecar.get("shape")
      or array.dtype.str != sidecar.get("dtype")
      or array.shape[:1] != (num_items,)
      or array_digest(array) != sidecar.get("sha256")
  ):
    return None
  return array


def _cached(encode: Callable[[], np.ndarray], *, num_items: int, key: str, dataset: str,
            split: str, fingerprint: str, cache_dir) -> np.ndarray:
  cache_dir = default_cache_dir() if cache_dir is None else pathlib.Path(cache_dir)
  array_path, sidecar_path = _entry_paths(cache_dir, dataset, split, key)
  cached = _load_entry(array_path, sidecar_path, key, num_items)
  if cached is not None:
    return cached
  embeddings = np.asarray(encode())
  if embeddings.ndim != 2 or embeddings.shape[0] != num_items:
    raise ValueError(
        f"encode_fn must return [N, d] with N = {num_items}; got shape {embeddings.shape}."
    )
  cache_dir.mkdir(parents=True, exist_ok=True)
  sidecar = {
      "key": key, "fingerprint": fingerprint, "dataset": dataset, "split": split,
      "shape": list(embeddings.shape), "dtype": embeddings.dtype.str,
      "sha256": array_digest(embeddings),
  }
  _write_atomically(array_path, lambda handle: np.save(handle, embeddings, allow_pickle=False))
  _write_atomically(sidecar_path, lambda handle: handle.write(json.dumps(sidecar).encode()))
  return embeddings


def cached_embeddings(
    encode_fn: Callable[[np.ndarray], np.ndarray],
    *,
    fingerprint: str,
    dataset: str,
    split: str,
    images: np.ndarray,
    cache_dir: str | os.PathLike | None = None,
) -> np.ndarray:
  """Image embeddings from the cache, or ``encode_fn(images)`` stored for next time.

  encode_fn: images [N, H, W, C] -> [N, d]. fingerprint: identifies the backbone weights and
  preprocessing (change it and the cache misses). Returns [N, d] numpy array.
  """
  images = np.asarray(images)
  key = cache_key(fingerprint=fingerprint, dataset=dataset, split=split,
                  inputs_digest=array_digest(images))
  return _cached(lambda: encode_fn(images), num_items=len(images), key=key, dataset=dataset,
                 split=split, fingerprint=fingerprint, cache_dir=cache_dir)


def cached_text_embeddings(
    encode_fn: Callable[[list[str]], np.ndarray],
    *,
    fingerprint: str,
    prompts: Sequence[str],
    dataset: str = "prompts",
    split: str = "text",
    cache_dir: str | os.PathLike | None = None,
) -> np.ndarray:
  """Text embeddings of ``prompts`` from the cache, or ``encode_fn(prompts)`` stored.

  encode_fn: list of P strings -> [P, d]. Returns [P, d] numpy array.
  """
  prompts = list(prompts)
  key = cache_key(fingerprint=fingerprint, dataset=dataset, split=split,
                  inputs_digest=texts_digest(prompts))
  return _cached(lambda: encode_fn(prompts), num_items=len(prompts), key=key, dataset=dataset,
                 split=split, fingerprint=fingerprint, cache_dir=cache_dir)
