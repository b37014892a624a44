"""Backbone wrappers shared by the stream tests."""


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
