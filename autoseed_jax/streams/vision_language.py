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

from autoseed_jax.core import task_kinds
from autoseed_jax.data import embedding_cache, scenes
from autoseed_jax.streams import embed
from autoseed_jax.streams.spec import StreamSpec
from autoseed_jax.core.tasks import TaskStream, unit_rows

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
  animals = embed.load_split_arrays(embed.ANIMALS, data_dir)
  digits = embed.load_split_arrays(embed.DIGITS, data_dir)
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



class _Embedder:
  """Scenes and texts through a backbone and the embedding cache."""

  def __init__(self, backbone, cache_dir):
    self.backbone, self.cache_dir = backbone, cache_dir

  def images(self, dataset: str, split: str, images: np.ndarray) -> np.ndarray:
    encode, tag = embed.image_encode_fn(self.backbone, images.shape[1:])
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


def _scene_split(spec: SceneTaskSpec, num: int, pools, split: str, rng, embedder: _Embedder,
                 answer_ids: dict, stream: str = VL_SCENES):
  """One split of a scene task, its scenes drawn from the object ``pools`` (per category),
  as a PairSplit / BankSplit (and its captions)."""
  scene_list = scenes.sample_scenes(num, spec.categories, rng)
  images, _ = scenes.render(scene_list, pools, rng)
  image_x = embedder.images(f'{stream}-{spec.name}', split, images)
  if spec.kind in ('retrieval', 'captioning'):
    captions = [c for scene in scene_list for c in scenes.captions(scene)]
    owner = np.repeat(np.arange(len(scene_list)), scenes.CAPTIONS_PER_SCENE)
    return task_kinds.PairSplit(image_x, embedder.texts(captions), owner, captions)
  asked = [(i, q) for i, scene in enumerate(scene_list)
           for q in scenes.questions(scene, spec.question_types, rng)]
  owner = np.asarray([i for i, _ in asked])
  question_x = embedder.texts([q.text for _, q in asked])
  query = unit_rows(unit_rows(image_x[owner]) + unit_rows(question_x)).astype(np.float32)
  return task_kinds.BankSplit(query, np.asarray([answer_ids[q.answer] for _, q in asked]))


def scene_stream(backbone=None, *, data_dir=None, cache_dir=None, seed: int = 0,
                 val_fraction: float = 0.05, train_fraction: float = 1.0,
                 pixels: bool = False, train_scenes: int = 400, test_scenes: int = 100,
                 clusters: int = 8) -> TaskStream:
  """The ``vl-scenes`` stream (module doc) embedded by ``backbone`` (default: the scene
  backbone). ``train_fraction`` scales the training scenes per task; ``pixels`` is
  accepted for the ``get_stream`` interface, but the stream carries no images (methods
  that replay images refuse its kinds)."""
  del pixels
  pools = {'train': object_pools('train', data_dir), 'test': object_pools('test', data_dir)}
  return _scene_tasks_stream(VL_SCENES, pools, [seed], backbone, cache_dir=cache_dir,
                             seed=seed, val_fraction=val_fraction,
                             train_fraction=train_fraction, train_scenes=train_scenes,
                             test_scenes=test_scenes, clusters=clusters)


def _scene_tasks_stream(name: str, pools: dict, rng_seed: list, backbone, *, cache_dir,
                        seed: int, val_fraction: float, train_fraction: float,
                        train_scenes: int, test_scenes: int, clusters: int) -> TaskStream:
  """The scene tasks (``SCENE_TASKS``) with training scenes from ``pools['train']`` and test
  scenes from ``pools['test']`` (per-category object images); task t's scenes are drawn
  with ``default_rng(rng_seed + [t])``."""
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
    rng = np.random.default_rng(list(rng_seed) + [t])
    train = _scene_split(spec, num_train, pools['train'], 'train', rng, embedder, answer_ids,
                         name)
    test = _scene_split(spec, test_scenes, pools['test'], 'test', rng, embedder, answer_ids,
                        name)
    bank = {}
    if spec.kind == 'captioning':
      bank_captions = sorted(set(train.captions))
      bank = dict(bank_captions=bank_captions, bank_x=embedder.texts(bank_captions))
    built.append(task_kinds.VLTask(spec.name, spec.kind, train, test, **bank))
  return task_kinds.build_vl_stream(
      name, built, bank_text=embedder.texts(list(scenes.ANSWERS)),
      bank_names=scenes.ANSWERS, bank_family=[1] * len(scenes.ANSWERS), clusters=clusters,
      val_fraction=val_fraction, seed=seed, description=SPECS[name].description)


# ---------------------------------------------------------------------------------------------
# The development stream: for choosing settings without touching vl-scenes' test scenes

VL_SCENES_DEV = 'vl-scenes-dev'
# Share of each category's stream-train object images held out for the dev stream's test
# scenes, and the tag that keeps its scene draws apart from vl-scenes' (rng seeds [seed]).
DEV_TEST_FRACTION = 0.2
_DEV_TAG = 1000


def dev_object_pools(data_dir=None, fraction: float = DEV_TEST_FRACTION):
  """(train pools, test pools) of ``vl-scenes-dev``: each category's stream-train object
  images (``object_pools('train')``) split by a fixed permutation, ``fraction`` (at least
  one image) for its test scenes and the rest for its training scenes. The TEST objects,
  which vl-scenes' test scenes are made of, play no part."""
  rng = np.random.default_rng(_DEV_TAG)
  train, test = [], []
  for pool in object_pools('train', data_dir):
    order = rng.permutation(len(pool))
    n_test = max(1, int(round(fraction * len(pool))))
    test.append(pool[np.sort(order[:n_test])])
    train.append(pool[np.sort(order[n_test:])])
  return tuple(train), tuple(test)


def scene_dev_stream(backbone=None, *, data_dir=None, cache_dir=None, seed: int = 0,
                     val_fraction: float = 0.05, train_fraction: float = 1.0,
                     pixels: bool = False, train_scenes: int = 400, test_scenes: int = 100,
                     clusters: int = 8) -> TaskStream:
  """``vl-scenes-dev``: vl-scenes' protocol (the same four tasks, sizes and fields) on
  scenes drawn anew from the stream-train objects only (``dev_object_pools``: training and
  test scenes from disjoint object images), with scene draws of their own
  (``default_rng([1000 + seed, t])``)."""
  del pixels
  train, test = dev_object_pools(data_dir)
  return _scene_tasks_stream(VL_SCENES_DEV, {'train': train, 'test': test},
                             [_DEV_TAG + seed], backbone, cache_dir=cache_dir, seed=seed,
                             val_fraction=val_fraction, train_fraction=train_fraction,
                             train_scenes=train_scenes, test_scenes=test_scenes,
                             clusters=clusters)


def _is_offline(backbone) -> bool:
  from autoseed_jax.models.offline_backbone import OfflineBackbone  # pylint: disable=import-outside-toplevel
  return isinstance(backbone, OfflineBackbone)


# ---------------------------------------------------------------------------------------------
# Real datasets that users prepare (autoseed_jax.data.vl_sources)


def embed_image_sequence(embedder: _Embedder, images: Sequence[np.ndarray], ids: Sequence[str],
                         *, dataset: str, split: str, chunk: int = 256) -> np.ndarray:
  """Images of any size (uint8 [H, W, 3], random access) -> [N, d], cached by image id.

  Each image is resized and center-cropped (bicubic, ``sources.resize_center_crop``) to the
  backbone's input side (``image_size``; 32 for the offline backbone) in chunks of
  ``chunk``, so only one chunk of decoded images is in memory at a time.
  """
  from autoseed_jax.data import sources  # pylint: disable=import-outside-toplevel
  from autoseed_jax.models import image_encoder  # pylint: disable=import-outside-toplevel
  backbone = embedder.backbone
  size = embed.backbone_image_size(backbone) or image_encoder.INPUT_SIZE

  def encode(_):
    out = []
    for start in range(0, len(images), chunk):
      batch = np.stack([sources.resize_center_crop(np.asarray(images[i], np.uint8), size)
                        for i in range(start, min(start + chunk, len(images)))])
      out.append(np.asarray(backbone.encode_image(batch)))
    return np.concatenate(out) if out else np.zeros((0, backbone.embed_dim), np.float32)

  return embedding_cache.cached_text_embeddings(
      encode, fingerprint=backbone.fingerprint, prompts=[f'{i}@{size}' for i in ids],
      dataset=f'{dataset}-images', split=split, cache_dir=embedder.cache_dir)


def _caption_pairs(embedder: _Embedder, data, dataset: str, split: str,
                   captions_per_image: int) -> task_kinds.PairSplit:
  image_x = embed_image_sequence(embedder, data.images, data.image_ids, dataset=dataset,
                                 split=split)
  captions, owner = [], []
  for i, refs in enumerate(data.captions):
    for caption in list(refs)[:captions_per_image]:
      captions.append(caption)
      owner.append(i)
  return task_kinds.PairSplit(image_x, embedder.texts(captions), np.asarray(owner), captions)


def caption_task(name: str, kind: str, train, test, embedder: _Embedder, *,
                 bank_images: int, captions_per_image: int = 5) -> task_kinds.VLTask:
  """A retrieval or captioning task from ``vl_sources.CaptionData`` train / test splits.

  Rows: (image, caption) pairs, the first ``captions_per_image`` captions of each image.
  A captioning task's bank: the distinct captions of its first ``bank_images`` training
  images (fixed by the dataset's order, the same for every method).
  """
  train_pairs = _caption_pairs(embedder, train, name, 'train', captions_per_image)
  test_pairs = _caption_pairs(embedder, test, name, 'test', captions_per_image)
  bank = {}
  if kind == 'captioning':
    chosen = [c for refs in train.captions[:bank_images] for c in refs]
    bank_captions = sorted(set(chosen))
    bank = dict(bank_captions=bank_captions, bank_x=embedder.texts(bank_captions))
  return task_kinds.VLTask(name, kind, train_pairs, test_pairs, **bank)


COCO_FLICKR = 'coco-flickr'


def coco_flickr_stream(backbone=None, *, data_dir=None, cache_dir=None, seed: int = 0,
                       val_fraction: float = 0.05, train_fraction: float = 1.0,
                       pixels: bool = False, kind: str = 'captioning',
                       max_train_images: int | None = 20000,
                       max_test_images: int | None = None, bank_images: int = 5000,
                       clusters: int = 8) -> TaskStream:
  """The paper's C->F sequence: COCO captions then Flickr30k (Karpathy splits), each a
  ``kind`` task ('captioning': BLEU-4 primary, R@1/5/10 beside it; or 'retrieval').

  Reads ``vl_sources.load_caption_dataset`` (train: ``train+restval`` for COCO, ``train``
  for Flickr30k, the first ``max_train_images`` x ``train_fraction`` of a fixed
  permutation; test: Karpathy's test split, ``max_test_images``) from ``data_dir``; a
  dataset that is not prepared raises FileNotFoundError naming the commands that prepare it.
  """
  del pixels
  from autoseed_jax.data import vl_sources  # pylint: disable=import-outside-toplevel
  backbone = _default_backbone(backbone)
  embedder = _Embedder(backbone, cache_dir or embedding_cache.default_cache_dir())
  limit = None if max_train_images is None else max(2, int(max_train_images * train_fraction))
  built = []
  for name, train_split in (('coco_captions', 'train+restval'), ('flickr30k', 'train')):
    train = vl_sources.load_caption_dataset(name, train_split, data_dir=data_dir,
                                            max_images=limit)
    test = vl_sources.load_caption_dataset(name, 'test', data_dir=data_dir,
                                           max_images=max_test_images)
    built.append(caption_task(name, kind, train, test, embedder, bank_images=bank_images))
  return task_kinds.build_vl_stream(
      COCO_FLICKR, built, bank_text=np.zeros((0, backbone.embed_dim), np.float32),
      bank_names=(), bank_family=(), clusters=clusters, val_fraction=val_fraction, seed=seed,
      description=SPECS[COCO_FLICKR].description)


def answer_type_of(answer: str) -> str:
  """VQA's answer types from an answer string: 'yes/no', 'number' or 'other'."""
  if answer in ('yes', 'no'):
    return 'yes/no'
  return 'number' if answer.isdigit() or answer in scenes.COUNT_WORDS else 'other'


VQA_V2 = 'vqa-v2'
VQA_ANSWER_TYPES = ('yes/no', 'number', 'other')


def vqa_v2_stream(backbone=None, *, data_dir=None, cache_dir=None, seed: int = 0,
                  val_fraction: float = 0.05, train_fraction: float = 1.0, pixels: bool = False,
                  max_train_questions: int | None = 60000,
                  max_test_questions: int | None = 10000, num_answers: int = 1000,
                  clusters: int = 8) -> TaskStream:
  """VQA v2 as three VQA tasks by answer type (yes/no, number, other), learnt in that order.

  Queries: unit(unit(f_I(image)) + unit(f_T(question))); answers: a bank of the
  ``num_answers`` most frequent consensus answers of the training questions (family 1).
  Training keeps the questions whose consensus answer is in the bank; the test split is
  VQA's ``val`` (its test answers are not public), scored with the human answers
  (``kind_metrics.vqa_accuracy``), leaving out questions none of whose human answers is in
  the bank (every method would score 0 on them).
  """
  del pixels
  from autoseed_jax.data import vl_sources  # pylint: disable=import-outside-toplevel
  backbone = _default_backbone(backbone)
  embedder = _Embedder(backbone, cache_dir or embedding_cache.default_cache_dir())
  limit = (None if max_train_questions is None
           else max(2, int(max_train_questions * train_fraction)))
  train = vl_sources.load_vqa('train', data_dir=data_dir, max_questions=limit)
  test = vl_sources.load_vqa('val', data_dir=data_dir, max_questions=max_test_questions)
  counts = {}
  for answer in train.answer:
    counts[answer] = counts.get(answer, 0) + 1
  bank = sorted(counts, key=lambda a: (-counts[a], a))[:num_answers]
  answer_id = {a: i for i, a in enumerate(bank)}
  splits = {}
  for split, data in (('train', train), ('test', test)):
    image_x = embed_image_sequence(embedder, data.images, data.image_ids, dataset=VQA_V2,
                                   split=split)
    query = unit_rows(unit_rows(image_x[np.asarray(data.question_image)])
                  + unit_rows(embedder.texts(data.questions))).astype(np.float32)
    splits[split] = (data, query)
  built = []
  for answer_type in VQA_ANSWER_TYPES:
    parts = {}
    for split, (data, query) in splits.items():
      rows, labels, humans = [], [], []
      for q, answer in enumerate(data.answer):
        if answer_type_of(answer) != answer_type:
          continue
        ids = [answer_id[a] for a in data.answers[q] if a in answer_id]
        if split == 'train' and answer in answer_id:
          rows.append(q)
          labels.append(answer_id[answer])
        elif split == 'test' and ids:
          rows.append(q)
          labels.append(max(set(ids), key=lambda i: (ids.count(i), -i)))
          humans.append(ids + [-1] * (len(data.answers[q]) - len(ids)))
      answers = None
      if humans:
        width = max(len(h) for h in humans)
        answers = np.asarray([h + [-1] * (width - len(h)) for h in humans], np.int32)
      parts[split] = task_kinds.BankSplit(query[rows], np.asarray(labels, np.int32), answers)
    built.append(task_kinds.VLTask(f'vqa-{answer_type}', 'vqa', parts['train'], parts['test']))
  return task_kinds.build_vl_stream(
      VQA_V2, built, bank_text=embedder.texts(bank), bank_names=bank,
      bank_family=[1] * len(bank), clusters=clusters, val_fraction=val_fraction, seed=seed,
      description=SPECS[VQA_V2].description)


def _default_backbone(backbone):
  if backbone is None:
    from autoseed_jax.models.offline_backbone import load_offline_backbone  # pylint: disable=import-outside-toplevel
    backbone = load_offline_backbone()
  return backbone


# The streams of this module, merged into ``streams.STREAMS``.
SPECS = {
    VL_SCENES: StreamSpec(
        VL_SCENES,
        "Vision-language scenes (offline): 48x48 canvases of 2-3 real objects (Animal-MNIST "
        "silhouettes, scikit-learn digits) side by side, 4 tasks: (1) animal-retrieval: "
        "image-text retrieval on animal scenes, 5 template captions per scene (objects, "
        "counts, left/right relations); (2) digit-captioning: retrieval captioning on digit "
        "scenes (the domain shift), BLEU-4 of the best caption of the fixed bank of the "
        "task's distinct training captions; (3) count-vqa: existence and counting questions "
        "on mixed scenes; (4) relational-vqa: 'what is to the left of the zebra?'. 400 "
        "training / 100 test scenes per task (from stream-train / TEST object images; the "
        "scene tower was pretrained on scenes of the pretraining split). R[i, j]: mean recall "
        "(1), BLEU-4 (2), VQA accuracy (3, 4).",
        scene_stream, datasets=(('animal_mnist', 0), ('sklearn_digits', 10))),
    VL_SCENES_DEV: StreamSpec(
        VL_SCENES_DEV,
        "Development stream: vl-scenes' four tasks (animal-retrieval, digit-captioning, "
        "count-vqa, relational-vqa), 400 training / 100 test scenes per task, drawn anew "
        "(scene seeds of their own) from the stream-TRAIN object images only: per "
        "category, a fixed 20% of them are drawn into the test scenes and the rest into the "
        "training scenes. The TEST object images, of which vl-scenes' test scenes are made, "
        "play no part. (Animal-MNIST's stream-train holds pairs of identical images, so 66 of "
        "the 1,440 animal test objects have a twin among the training objects.)",
        scene_dev_stream, datasets=(('animal_mnist', 0), ('sklearn_digits', 10))),
    COCO_FLICKR: StreamSpec(
        COCO_FLICKR,
        "The paper's C->F sequence (user-prepared data, autoseed_jax/data/vl_sources.py): "
        "task 1 = COCO captions, task 2 = Flickr30k, Karpathy splits, each a retrieval-"
        "captioning task: (image, caption) pairs trained with symmetric InfoNCE; R[i, j] = "
        "BLEU-4 of the best caption of the task's fixed bank (the captions of its first 5,000 "
        "training images) against the test image's references, R@1/5/10 both ways beside it.",
        coco_flickr_stream),
    VQA_V2: StreamSpec(
        VQA_V2,
        "VQA v2 (user-prepared data, autoseed_jax/data/vl_sources.py) as three VQA tasks by "
        "answer type (yes/no, number, other): (image + question) queries scored against a "
        "bank of the 1,000 most frequent answers; R[i, j] = VQA accuracy on val.",
        vqa_v2_stream),
}
