"""Data layer: TFDS datasets read without TensorFlow (array_record + grain) and an embedding cache.

- ``builders``: TFDS builders for the real datasets shipped in packages (animal_mnist,
  sklearn_digits) and ``prepare(name, data_dir)``.
- ``sources``: ``load_arrays`` of TFDS datasets (read through grain in batches), the
  CIFAR-100 class order and its class-incremental tasks.
- ``cifar``: CIFAR-100 / CIFAR-10 from the standard python archive, without TensorFlow.
- ``vl_sources``: raw loaders of the vision–language datasets users prepare (COCO captions,
  Flickr30k, VQA v2) with lazily decoded images; docs/vl_datasets.md.
- ``embedding_cache``: on-disk cache of frozen-backbone image/text embeddings.
"""
