"""Vision-language streams: the offline scene stream and the real datasets users prepare.

``vl-scenes`` (offline, the default vision-language stream) -- four tasks on scenes of two
or three real objects (``autoseed_jax.data.scenes``), covering every kind and a domain
shift:

  1. animal-retrieval   retrieval on scenes of animals (Animal-MNIST silhouettes)
  2. digit-captioning   captioning on scenes of handwritten digits (the domain shift); the
                        caption bank is the set of distinct captions of the task's
                        training scenes (fixed, the same for every method)
  3. count-vqa          VQA on mixed scenes: existence ("is there a zebra?") and counting
                        ("how many digits are there?")
  4. relational-vqa     VQA on mixed scenes: "what is to the left of the zebra?" /
                        "what is to the right of the digit 3?"

Each task has ``train_scenes`` training scenes composed from the stream-train object
images (the 90% of each dataset's TRAIN split outside the pretraining split) and
``test_scenes`` test scenes from the TEST objects; the scene tower was pretrained on scenes
of the pretraining split (``pretraining_scenes``), so no object image of the stream was
seen in pretraining. Retrieval and captioning rows are (scene, caption) pairs, five per
scene; VQA rows are (scene + question) queries whose embedding is the unit-norm sum of the
scene and question embeddings, labelled by their answer in a bank of the 26 answer texts
(``scenes.ANSWERS``). Embeddings are cached (``data.embedding_cache``).

The backbone: by default the scene backbone (``models.scene_tower``: the LiT-pretrained
scene tower + MiniLM); a CLIP backbone (``clip:<path>``) embeds the same scenes resized
to its input size.

Real datasets (``caption_stream`` / ``coco_flickr``, ``vqa_stream``): from the raw data of
``autoseed_jax.data.vl_sources`` (``CaptionData``, ``VQAData``: COCO captions and
Flickr30k in the Karpathy splits, VQA v2) embedded by a backbone; the paper's C->F
sequence is COCO captions then Flickr30k, each as a retrieval-captioning task.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import numpy as np

from autoseed_jax import streams, vl_tasks
from autoseed_jax.data import embedding_cache, scenes
from autoseed_jax.tasks import TaskStream

VL_SCENES = 'vl-scenes'


@dataclasses.dataclass(frozen=True)
class SceneTaskSpec:
  """One task of the scene stream: name, kind, object categories, question types."""

  name: str
  kind: str
  categories: tuple[int, ...]
  question_types: tuple[str, ...] = ()


ANIMAL_IDS = tuple(range(scenes.NUM_ANIMALS))
DIGIT_IDS = tuple(range(scenes.NUM_ANIMALS, scenes.NUM_CATEGORIES))
SCENE_TASKS = (
    SceneTaskSpec('animal-retrieval', 'retrieval', ANIMAL_IDS),
    SceneTaskSpec('digit-captioning', 'captioning', DIGIT_IDS),
    SceneTaskSpec('count-vqa', 'vqa', ANIMAL_IDS + DIGIT_IDS, ('exists', 'count')),
    SceneTaskSpec('relational-vqa', 'vqa', ANIMAL_IDS + DIGIT_IDS, ('left_of', 'right_of')),
)
RELATIONAL_TASK = 'relational-vqa'


@functools.lru_cache(maxsize=3)
def object_pools(part: str, data_dir=None) -> tuple[np.ndarray, ...]:
  """Per-category pools of 16x16 object images from one part of the object datasets:
  'pretrain' (the pretraining split), 'train' (the rest of TRAIN) or 'test' (TEST)."""
  if part not in ('pretrain', 'train', 'test'):
    raise ValueError(f"object part {part!r}: use 'pretrain', 'train' or 'test'.")
  animals = streams.load_split_arrays(streams.ANIMALS, data_dir)
  digits = streams.load_split_arrays(streams.DIGITS, data_dir)
  return tuple(scenes.category_pools(animals[f'{part}_x'], animals[f'{part}_y'],
                                     digits[f'{part}_x'], digits[f'{part}_y']))


def _caption_table(scene_list) -> tuple[list[str], np.ndarray]:
  """(distinct caption strings, [N, 5] their rows for each scene)."""
  texts, index, table = [], {}, []
  for scene in scene_list:
    row = []
    for caption in scenes.captions(scene):
      if caption not in index:
        index[caption] = len(texts)
        texts.append(caption)
      row.append(index[caption])
    table.append(row)
  return texts, np.asarray(table, np.int32)


def pretraining_scenes(num: int, *, seed: int = 0, data_dir=None) -> dict:
  """The scene tower's pretraining data: ``num`` scenes from the pretraining split's
  objects, a third animal-only, a third digit-only, a third mixed.

  Returns {'images': uint8 [num, 48, 48, 1], 'scene_captions': [num, 5] int rows of
  'caption_texts' (the distinct captions)}.
  """
  rng = np.random.default_rng(seed)
  shares = (num // 3, num // 3, num - 2 * (num // 3))
  scene_list = []
  for categories, n in zip((ANIMAL_IDS, DIGIT_IDS, ANIMAL_IDS + DIGIT_IDS), shares):
    scene_list += scenes.sample_scenes(n, categories, rng)
  images, _ = scenes.render(scene_list, object_pools('pretrain', data_dir), rng)
  texts, table = _caption_table(scene_list)
  return {'images': images, 'scene_captions': table, 'caption_texts': texts}


def _unit(x: np.ndarray) -> np.ndarray:
  return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class _Embedder:
  """Scenes and texts through a backbone and the embedding cache."""

  def __init__(self, backbone, cache_dir):
    self.backbone, self.cache_dir = backbone, cache_dir

  def images(self, dataset: str, split: str, images: np.ndarray) -> np.ndarray:
    encode, tag = streams.image_encode_fn(self.backbone, images.shape[1:])
    return embedding_cache.cached_embeddings(
        encode, fingerprint=self.backbone.fingerprint, dataset=dataset, split=split + tag,
        images=images, cache_dir=self.cache_dir)

  def texts(self, texts: Sequence[str]) -> np.ndarray:
    """[len(texts), d]: the distinct strings embedded once (cached), then indexed."""
    distinct = sorted(set(texts))
    table = embedding_cache.cached_text_embeddings(
        self.backbone.encode_text, fingerprint=self.backbone.fingerprint, prompts=distinct,
        dataset='vl-texts', cache_dir=self.cache_dir)
    row = {t: i for i, t in enumerate(distinct)}
    return table[[row[t] for t in texts]]


def _scene_split(spec: SceneTaskSpec, num: int, part: str, rng, embedder: _Embedder,
                 data_dir, answer_ids: dict):
  """One split of a scene task as a PairSplit / BankSplit (and its captions)."""
  scene_list = scenes.sample_scenes(num, spec.categories, rng)
  images, _ = scenes.render(scene_list, object_pools(part, data_dir), rng)
  image_x = embedder.images(f'{VL_SCENES}-{spec.name}', part, images)
  if spec.kind in ('retrieval', 'captioning'):
    captions = [c for scene in scene_list for c in scenes.captions(scene)]
    owner = np.repeat(np.arange(len(scene_list)), scenes.CAPTIONS_PER_SCENE)
    return vl_tasks.PairSplit(image_x, embedder.texts(captions), owner, captions)
  asked = [(i, q) for i, scene in enumerate(scene_list)
           for q in scenes.questions(scene, spec.question_types, rng)]
  owner = np.asarray([i for i, _ in asked])
  question_x = embedder.texts([q.text for _, q in asked])
  query = _unit(_unit(image_x[owner]) + _unit(question_x)).astype(np.float32)
  return vl_tasks.BankSplit(query, np.asarray([answer_ids[q.answer] for _, q in asked]))


def scene_stream(backbone=None, *, data_dir=None, cache_dir=None, seed: int = 0,
                 val_fraction: float = 0.05, train_fraction: float = 1.0,
                 pixels: bool = False, train_scenes: int = 400, test_scenes: int = 100,
                 clusters: int = 8) -> TaskStream:
  """The ``vl-scenes`` stream (module doc) embedded by ``backbone`` (default: the scene
  backbone). ``train_fraction`` scales the training scenes per task; ``pixels`` is
  accepted for the ``get_stream`` interface, but the stream carries no images (methods
  that replay images refuse its kinds)."""
  del pixels
  if backbone is None or _is_offline(backbone):
    from autoseed_jax.models.scene_tower import load_scene_backbone  # pylint: disable=import-outside-toplevel
    backbone = load_scene_backbone(text_encoder=getattr(backbone, 'text_encoder', None))
  if cache_dir is None:
    cache_dir = embedding_cache.default_cache_dir()
  embedder = _Embedder(backbone, cache_dir)
  answer_ids = {a: i for i, a in enumerate(scenes.ANSWERS)}
  num_train = max(10, int(round(train_fraction * train_scenes)))
  built = []
  for t, spec in enumerate(SCENE_TASKS):
    rng = np.random.default_rng([seed, t])
    train = _scene_split(spec, num_train, 'train', rng, embedder, data_dir, answer_ids)
    test = _scene_split(spec, test_scenes, 'test', rng, embedder, data_dir, answer_ids)
    bank = {}
    if spec.kind == 'captioning':
      bank_captions = sorted(set(train.captions))
      bank = dict(bank_captions=bank_captions, bank_x=embedder.texts(bank_captions))
    built.append(vl_tasks.VLTask(spec.name, spec.kind, train, test, **bank))
  return vl_tasks.build_vl_stream(
      VL_SCENES, built, bank_text=embedder.texts(list(scenes.ANSWERS)),
      bank_names=scenes.ANSWERS, bank_family=[1] * len(scenes.ANSWERS), clusters=clusters,
      val_fraction=val_fraction, seed=seed,
      description=streams.STREAMS[VL_SCENES].description)


def _is_offline(backbone) -> bool:
  from autoseed_jax.models.offline_backbone import OfflineBackbone  # pylint: disable=import-outside-toplevel
  return isinstance(backbone, OfflineBackbone)
