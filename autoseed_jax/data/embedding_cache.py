"""On-disk cache of frozen-backbone embeddings (METHOD.md §1: the backbone is frozen, so image
and text embeddings are computed once per dataset split and reused).

Each entry is ``<dataset>_<split>_<key>.npy`` plus a JSON sidecar ``….json`` holding the key,
shape, dtype and sha256 of the array bytes. The key is the sha256 of (backbone fingerprint,
dataset, split, sha256 of the inputs, and the XLA flags that change float results when set),
so a new backbone, other images or other prompts miss the cache. Files are written to a temporary file in the cache directory and moved into place with
``os.replace`` (the array first, the sidecar last), so an interrupted write never yields an
entry that loads; an entry cut short or not matching its sidecar is recomputed after a
one-line warning. A cache directory that is a file, an entry that cannot be read for lack
of permission, and a write that fails (no space left, no permission) raise
``disk_errors.DiskError``: one line naming the path and the fix (``AUTOSEED_CACHE_DIR``).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import pathlib
import re
import sys
import tempfile
from collections.abc import Callable, Sequence

import numpy as np

from autoseed_jax.tools import disk_errors

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


# XLA flags that change an embedding's last float bits (the test suite turns the backend
# optimisations off, tests/conftest.py): embeddings computed under them are kept apart, so a
# cache the tests filled never feeds a command-line run (a chaotic method such as
# Auto-Seed VL2 amplifies such bits: the demo's 40.30 became 43.50).
NUMERICS_FLAGS = ('--xla_backend_optimization_level', '--xla_cpu_use_fusion_emitters')


def numerics_flags() -> str:
  """The ``NUMERICS_FLAGS`` set in ``$XLA_FLAGS``, sorted; '' under XLA's defaults."""
  flags = os.environ.get("XLA_FLAGS", "").split()
  return " ".join(sorted(f for f in flags if f.startswith(NUMERICS_FLAGS)))


def cache_key(*, fingerprint: str, dataset: str, split: str, inputs_digest: str) -> str:
  """sha256 hex identifying one (backbone, dataset, split, inputs) embedding table, and the
  XLA flags it was computed under when they are not the defaults (``numerics_flags``)."""
  fields = {"fingerprint": fingerprint, "dataset": dataset, "split": split,
            "inputs": inputs_digest}
  flags = numerics_flags()
  if flags:
    fields["xla_flags"] = flags
  return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


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
  """The cached array, or None when missing, cut short or not matching its sidecar (a
  warning line says so when a file of the entry is there). Raises DiskError when the
  entry cannot be read for lack of permission."""
  try:
    if not array_path.exists() and not sidecar_path.exists():
      return None
    sidecar = json.loads(sidecar_path.read_text())
    array = np.load(array_path, allow_pickle=False)
    if not isinstance(sidecar, dict):
      raise ValueError("the sidecar is not a JSON object")
  except OSError as error:
    if disk_errors.problem(error) is not None:
      raise disk_errors.disk_error(array_path, "reading the embedding cache entry", error,
                                   where=disk_errors.Where.CACHE) from error
    reason = error
  except (ValueError, EOFError) as error:
    reason = error
  else:
    if (
        sidecar.get("key") == key
        and list(array.shape) == sidecar.get("shape")
        and array.dtype.str == sidecar.get("dtype")
        and array.shape[:1] == (num_items,)
        and array_digest(array) == sidecar.get("sha256")
    ):
      return array
    reason = "its array does not match its sidecar"
  print(f"warning: the embedding cache entry {array_path} is incomplete or damaged "
        f"({disk_errors.one_line(reason, 160)}); computing it again.", file=sys.stderr,
        flush=True)
  return None


def _cached(encode: Callable[[], np.ndarray], *, num_items: int, key: str, dataset: str,
            split: str, fingerprint: str, cache_dir) -> np.ndarray:
  cache_dir = default_cache_dir() if cache_dir is None else pathlib.Path(cache_dir)
  with disk_errors.writing(cache_dir, "reading the embedding cache directory",
                           where=disk_errors.Where.CACHE):
    if cache_dir.exists() and not cache_dir.is_dir():
      raise NotADirectoryError(errno.ENOTDIR, "Not a directory", str(cache_dir))
  array_path, sidecar_path = _entry_paths(cache_dir, dataset, split, key)
  cached = _load_entry(array_path, sidecar_path, key, num_items)
  if cached is not None:
    return cached
  embeddings = np.asarray(encode())
  if embeddings.ndim != 2 or embeddings.shape[0] != num_items:
    raise ValueError(
        f"encode_fn must return [N, d] with N = {num_items}; got shape {embeddings.shape}."
    )
  sidecar = {
      "key": key, "fingerprint": fingerprint, "dataset": dataset, "split": split,
      "shape": list(embeddings.shape), "dtype": embeddings.dtype.str,
      "sha256": array_digest(embeddings),
  }
  with disk_errors.writing(array_path, "writing the embedding cache entry",
                           where=disk_errors.Where.CACHE):
    cache_dir.mkdir(parents=True, exist_ok=True)
    _write_atomically(array_path,
                      lambda handle: np.save(handle, embeddings, allow_pickle=False))
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
