"""Backbone wrappers shared by the stream tests."""

import hashlib

import numpy as np


class CountingBackbone:
  """Delegates to a backbone and counts its encoder calls (to see embedding-cache hits)."""

  def __init__(self, inner):
    self.inner = inner
    self.embed_dim = inner.embed_dim
    self.fingerprint = inner.fingerprint
    self.image_calls = 0
    self.text_calls = 0

  def encode_image(self, images):
    self.image_calls += 1
    return self.inner.encode_image(images)

  def encode_text(self, texts):
    self.text_calls += 1
    return self.inner.encode_text(texts)


class FixedSizeBackbone:
  """A backbone that only takes image_size x image_size RGB images (like CLIP): a fixed
  random projection of the pixels, and of a hash of each text; records the image shapes."""

  def __init__(self, image_size: int, embed_dim: int = 16):
    self.image_size = image_size
    self.embed_dim = embed_dim
    self.fingerprint = f"fixed-size-test-backbone/{image_size}"
    self.seen_shapes = []
    self._projection = np.random.default_rng(0).normal(
        size=(image_size * image_size * 3, embed_dim)).astype(np.float32)

  def encode_image(self, images):
    images = np.asarray(images)
    if images.shape[1:] != (self.image_size, self.image_size, 3):
      raise ValueError(f"got images of shape {images.shape}")
    self.seen_shapes.append(images.shape)
    features = (images.reshape(len(images), -1) / 255.0 - 0.5) @ self._projection
    return features / np.linalg.norm(features, axis=1, keepdims=True)

  def encode_text(self, texts):
    rows = [np.random.default_rng(int(hashlib.sha256(t.encode()).hexdigest()[:8], 16))
            .normal(size=self.embed_dim) for t in texts]
    rows = np.asarray(rows, np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)
