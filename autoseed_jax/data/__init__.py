"""Data layer: TFDS datasets read without TensorFlow (array_record + grain) and an embedding cache.

- ``builders``: TFDS builders for the real datasets shipped in packages (animal_mnist,
  sklearn_digits) and ``prepare(name, data_dir)``.
- ``sources``: ``load_arrays``, grain pipelines with sharding, CIFAR-100 class-incremental
  tasks and the MTIL dataset order for user-prepared TFDS datasets.
- ``vl_sources``: raw loaders of the vision–language datasets users prepare (COCO captions,
  Flickr30k, VQA v2) with lazily decoded images; docs/vl_datasets.md.
- ``embedding_cache``: on-disk cache of frozen-backbone image/text embeddings.
"""
