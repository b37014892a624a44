"""Vision–language datasets that users prepare themselves: COCO captions, Flickr30k, VQA v2.

Read offline and without TensorFlow; nothing is downloaded. ``data_dir`` is the argument, else
``$AUTOSEED_DATA_DIR``, else ``~/.cache/autoseed_jax/tfds`` (``builders.default_data_dir()``),
and holds (docs/vl_datasets.md gives the commands that prepare each part)::

  DATA_DIR/coco_captions/2014/1.1.0/   TFDS coco_captions (Karpathy splits), array_record
  DATA_DIR/coco/dataset_coco.json      or Karpathy's JSON with the COCO 2014 image folders
  DATA_DIR/coco/train2014/, val2014/   COCO_<folder>_<12-digit id>.jpg (also VQA v2's images)
  DATA_DIR/flickr30k/dataset_flickr30k.json
  DATA_DIR/flickr30k/flickr30k-images/<id>.jpg
  DATA_DIR/vqa_v2/v2_OpenEnded_mscoco_{train,val}2014_questions.json
  DATA_DIR/vqa_v2/v2_mscoco_{train,val}2014_annotations.json

Sources:

* ``coco_captions``: the TFDS dataset when ``DATA_DIR/coco_captions/2014/1.1.0`` exists (read
  with ``tfds.builder_from_directory``: ``tfds.data_source('coco_captions')`` itself needs
  TensorFlow, as the builder's code does), else Karpathy's ``dataset_coco.json`` and the image
  folders. Both give the same images, captions (``raw`` sentences, stripped) and image ids
  (COCO ids); the image order differs (TFDS record order, JSON order), so ``max_images``
  picks a different subset; ``CaptionData.source`` says which was read. The TFDS route reads
  every selected record once to collect the captions (the images' bytes too, undecoded).
* ``flickr30k``: TFDS has no builder; Karpathy's ``dataset_flickr30k.json`` and the images.
* VQA v2: TFDS has no builder; the official question and annotation JSON files and the COCO
  2014 images. Splits ``train`` (train2014) and ``val`` (val2014); test answers are not public.

Splits: caption datasets take Karpathy's split names (``train``, ``val``, ``test``, and
``restval`` for COCO) or a ``+`` union (``"train+restval"``, the usual COCO training set).

Images are decoded lazily: ``images[i]`` reads and decodes one image to uint8 [H, W, 3] RGB
(``LazyImages``, any size). Captions, questions and answers are held in memory.

Subsets (``max_images`` / ``max_questions``) are deterministic and nested (a smaller subset is
part of a larger one): images are taken in a fixed permutation (``SUBSET_SEED``), then kept
in stored order. ``load_vqa`` takes whole images' questions in that permutation until it has
``max_questions`` (the last image may give only its first questions), so few images are read.

Fields beyond the contract: ``CaptionData.source`` and ``VQAData.source`` (where the data was
read from), ``VQAData.question_ids`` ([Q] int64, VQA's ids) and ``VQAData.answer_type``
(``yes/no``, ``number`` or ``other``). ``VQAData.answer`` is the most frequent of the human
answers; a tie goes to VQA's own ``multiple_choice_answer`` when it is among the tied, else to
the tied answer given first.

Errors: a missing dataset raises FileNotFoundError naming the missing path, the commands that
prepare it and how to point at its directory; a file without the expected keys, an unknown
dataset or split, or a bad subset size raises ValueError naming the problem and the fix.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import json
import os
import pathlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from autoseed_jax.data import builders, sources

CAPTION_SPLITS = {
    "coco_captions": ("train", "restval", "val", "test"),
    "flickr30k": ("train", "val", "test"),
}
VQA_SPLITS = {"train": "train2014", "val": "val2014"}  # split -> COCO 2014 image folder.
SUBSET_SEED = 0

COCO_TFDS_NAME = "coco_captions"
COCO_TFDS_VERSION = ("2014", "1.1.0")  # TFDS config and version of coco_captions.
COCO_FOLDER = "coco"
VQA_FOLDER = "vqa_v2"
_KARPATHY_ZIP = "https://cs.stanford.edu/people/karpathy/deepimagesent/caption_datasets.zip"
_COCO_ZIPS = "http://images.cocodataset.org/zips/{train2014,val2014}.zip"
_VQA_ZIPS = ("https://s3.amazonaws.com/cvmlp/vqa/mscoco/vqa/"
             "v2_{Questions,Annotations}_{Train,Val}_mscoco.zip")
_RECORD_CHUNK = 256
_PREVIEW = 3  # How many missing names an error lists.


@dataclasses.dataclass(frozen=True)
class CaptionData:
  """One split of an image–caption dataset.

  images: random access, len N; ``images[i]`` is uint8 [H, W, 3] (any size), decoded on access.
  captions: N lists of reference captions (5 per image in Flickr30k, 5 to 7 in COCO).
  image_ids: N dataset image ids (COCO ids; Flickr30k file stems).
  source: where it was read from (the TFDS directory, or the JSON file and image folder).
  """

  images: Sequence[np.ndarray]
  captions: list[list[str]]
  image_ids: list[str]
  source: str = ""


@dataclasses.dataclass(frozen=True)
class VQAData:
  """One split of VQA v2, Q questions about N images.

  images / image_ids: the N images the questions are about (random access, decoded on access).
  questions: Q question strings. question_image: [Q] int32 index into images.
  answers: Q lists of the human answers (10 in VQA v2). answer: Q consensus answers.
  question_type: Q VQA question types (``"what color is the"``). answer_type: Q answer types.
  question_ids: [Q] int64 VQA question ids. source: the files it was read from.
  """

  images: Sequence[np.ndarray]
  image_ids: list[str]
  questions: list[str]
  question_image: np.ndarray
  answers: list[list[str]]
  answer: list[str]
  question_type: list[str]
  answer_type: list[str] = dataclasses.field(default_factory=list)
  question_ids: np.ndarray = dataclasses.field(
      default_factory=lambda: np.zeros(0, np.int64))
  source: str = ""


def decode_rgb(encoded: bytes, where: str) -> np.ndarray:
  """JPEG/PNG bytes -> uint8 [H, W, 3] RGB (grayscale and CMYK images are converted).

  where: what the bytes are (a path or record), named in the error if they do not decode.
  """
  from PIL import Image, UnidentifiedImageError  # pylint: disable=import-outside-toplevel

  try:
    with Image.open(io.BytesIO(encoded)) as image:
      return np.asarray(image.convert("RGB"), dtype=np.uint8)
  except (UnidentifiedImageError, OSError) as error:
    raise ValueError(f"Cannot decode the image of {where} ({error}); the file is damaged or "
                     "not an image: extract it again from the dataset's archive.") from error


class LazyImages(Sequence):
  """A random-access sequence of images that reads and decodes one image per ``[i]``.

  locations: one entry per image, handed to ``read_encoded(location) -> bytes``;
  ``describe(location)`` names it in errors. ``images[i]`` -> uint8 [H, W, 3];
  ``images[a:b]`` -> a LazyImages view (nothing read). A grain source as it is:
  ``grain.MapDataset.source(images)``.
  """

  def __init__(self, locations: Sequence[Any], read_encoded: Callable[[Any], bytes],
               describe: Callable[[Any], str] = str):
    self._locations = list(locations)
    self._read_encoded = read_encoded
    self._describe = describe

  def __len__(self) -> int:
    return len(self._locations)

  def __getitem__(self, index):
    if isinstance(index, slice):
      return LazyImages(self._locations[index], self._read_encoded, self._describe)
    location = self._locations[index]
    return decode_rgb(self._read_encoded(location), self._describe(location))

  def __repr__(self) -> str:
    return f"LazyImages({len(self)} images)"


def _read_file(path: pathlib.Path) -> bytes:
  return path.read_bytes()


@dataclasses.dataclass(frozen=True)
class _TfdsImageBytes:
  """record index -> the encoded image bytes of that record of a TFDS data source."""

  source: Any
  name: str
  image_key: str = "image"

  def __call__(self, record: int) -> bytes:
    return self.source[record][self.image_key]

  def describe(self, record: int) -> str:
    return f"record {record} of {self.name}"


def subset_indices(count: int, max_count: int | None) -> np.ndarray:
  """Sorted int64 indices of a deterministic subset of ``range(count)`` of size
  ``min(count, max_count)`` (all of them for None): the first ``max_count`` of
  ``default_rng(SUBSET_SEED).permutation(count)``, so a smaller subset is part of a larger."""
  if max_count is None or max_count >= count:
    return np.arange(count, dtype=np.int64)
  permutation = np.random.default_rng(SUBSET_SEED).permutation(count)
  return np.sort(permutation[:max_count]).astype(np.int64)


def _check_max(name: str, value: int | None) -> None:
  if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))
                            or value <= 0):
    raise ValueError(f"{name} must be a positive integer or None (all), got {value!r}.")


def _resolve_data_dir(data_dir) -> pathlib.Path:
  return builders.default_data_dir() if data_dir is None else pathlib.Path(data_dir).expanduser()


def _where_to_point(data_dir: pathlib.Path) -> str:
  return (f"Then pass that directory as data_dir (python -m autoseed_jax.main: "
          f"--config.stream.data_dir=DIR) or set ${builders.DATA_DIR_ENV}=DIR (the default "
          f"data_dir, now {builders.default_data_dir()}; this call read {data_dir}). "
          "docs/vl_datasets.md describes each layout.")


def _not_prepared(what: str, missing: pathlib.Path, data_dir: pathlib.Path,
                  prepare: str) -> FileNotFoundError:
  return FileNotFoundError(
      f"{what} is not prepared in {data_dir}: {missing} is missing. Prepare it once: "
      f"{prepare} {_where_to_point(data_dir)}")


def _read_json(path: pathlib.Path, list_key: str, expected: str) -> tuple[dict, list]:
  """Loads a JSON object and its list ``list_key``; ValueError names what is wrong."""
  try:
    content = json.loads(path.read_bytes())
  except json.JSONDecodeError as error:
    raise ValueError(f"{path} is not valid JSON ({error}); replace it with {expected}.") from None
  if not isinstance(content, dict) or not isinstance(content.get(list_key), list):
    raise ValueError(f"{path} has no list {list_key!r} at its top level, so it is not "
                     f"{expected}; replace it with that file.")
  return content, content[list_key]


def _check_keys(path: pathlib.Path, entries: Iterable[dict], keys: tuple[str, ...],
                what: str, expected: str) -> None:
  required = frozenset(keys)
  for position, entry in enumerate(entries):
    if not (isinstance(entry, dict) and required <= entry.keys()):
      missing = [key for key in keys if not isinstance(entry, dict) or key not in entry]
      raise ValueError(f"{path}: {what} {position} has no {', '.join(map(repr, missing))}, so "
                       f"the file is not {expected}; replace it with that file.")


def _field_of_each(path: pathlib.Path, entries: list, key: str, what: str,
                   expected: str) -> list:
  """``[entry[key] for entry in entries]``; a missing key raises _check_keys' ValueError."""
  try:
    return [entry[key] for entry in entries]
  except (KeyError, TypeError):
    _check_keys(path, entries, (key,), what, expected)
    raise


def _check_images_exist(paths: Sequence[pathlib.Path], listed_in: str, fix: str) -> None:
  """FileNotFoundError when an image folder or any listed image is missing (one listing a
  folder, not one stat per file)."""
  by_folder: dict[pathlib.Path, list[pathlib.Path]] = collections.defaultdict(list)
  for path in paths:
    by_folder[path.parent].append(path)
  for folder, wanted in by_folder.items():
    if not folder.is_dir():
      raise FileNotFoundError(f"Image folder {folder} (used by {listed_in}) is missing. {fix}")
    present = set(os.listdir(folder))
    absent = [path.name for path in wanted if path.name not in present]
    if absent:
      raise FileNotFoundError(
          f"{len(absent)} of the {len(wanted)} images that {listed_in} needs are missing from "
          f"{folder} (e.g. {', '.join(absent[:_PREVIEW])}). {fix}")


def _parse_split(split: str, known: Sequence[str], dataset: str) -> tuple[str, ...]:
  parts = tuple(part.strip() for part in str(split).split("+"))
  unknown = [part for part in parts if part not in known]
  if unknown or len(set(parts)) != len(parts):
    raise ValueError(
        f"Unknown split {split!r} of {dataset}: use one of {', '.join(known)}, or a '+' "
        f"union of different ones such as {'+'.join(known[:2])!r}.")
  return parts


# ---------------------------------------------------------------------------------------------
# Caption datasets


@dataclasses.dataclass(frozen=True)
class _KarpathyLayout:
  """Where a caption dataset stands on disk in Karpathy's JSON layout.

  folder: DATA_DIR/<folder> holds the JSON; dataset: the JSON's "dataset" value;
  image_folder: the images' folder under DATA_DIR/<folder>, or None to use each entry's
  "filepath" (COCO: train2014 / val2014). prepare: what to download and the shell commands
  that put it in place, ``{root}`` standing for DATA_DIR (``how_to_prepare`` fills it in).
  """

  label: str
  folder: str
  json_name: str
  dataset: str
  image_folder: str | None
  prepare: str

  def how_to_prepare(self, data_dir: pathlib.Path) -> str:
    return self.prepare.replace("{root}", os.fspath(data_dir))


_KARPATHY_LAYOUTS = {
    "coco_captions": _KarpathyLayout(
        "COCO captions (Karpathy splits)", COCO_FOLDER, "dataset_coco.json", "coco", None,
        f"download train2014.zip and val2014.zip ({_COCO_ZIPS}) and {_KARPATHY_ZIP}, then "
        f"`mkdir -p {{root}}/{COCO_FOLDER} && unzip -q train2014.zip -d {{root}}/{COCO_FOLDER} "
        f"&& unzip -q val2014.zip -d {{root}}/{COCO_FOLDER} && unzip -j caption_datasets.zip "
        f"'*dataset_coco.json' -d {{root}}/{COCO_FOLDER}`."),
    "flickr30k": _KarpathyLayout(
        "Flickr30k (Karpathy splits)", "flickr30k", "dataset_flickr30k.json", "flickr30k",
        "flickr30k-images",
        "request flickr30k-images.tar.gz at https://shannon.cs.illinois.edu/DenotationGraph/ "
        f"and download {_KARPATHY_ZIP}, then `mkdir -p {{root}}/flickr30k && tar -xzf "
        "flickr30k-images.tar.gz -C {root}/flickr30k && unzip -j caption_datasets.zip "
        "'*dataset_flickr30k.json' -d {root}/flickr30k`."),
}


def _coco_tfds_dir(data_dir: pathlib.Path) -> pathlib.Path:
  return data_dir.joinpath(COCO_TFDS_NAME, *COCO_TFDS_VERSION)


def _karpathy_image_id(entry: dict) -> str:
  return str(entry["cocoid"]) if "cocoid" in entry else pathlib.PurePath(entry["filename"]).stem


def _load_karpathy(name: str, splits: tuple[str, ...], data_dir: pathlib.Path,
                   max_images: int | None) -> CaptionData:
  layout = _KARPATHY_LAYOUTS[name]
  root = data_dir / layout.folder
  json_path = root / layout.json_name
  prepare = layout.how_to_prepare(data_dir)
  if not json_path.is_file():
    raise _not_prepared(layout.label, json_path, data_dir, prepare)
  expected = f"Karpathy's {layout.json_name} (from caption_datasets.zip)"
  content, entries = _read_json(json_path, "images", expected)
  if content.get("dataset", layout.dataset) != layout.dataset:
    raise ValueError(f"{json_path} describes dataset {content['dataset']!r}, not "
                     f"{layout.dataset!r}; replace it with {expected}.")
  entry_keys = ("split", "filename", "sentences") + (("filepath",) if layout.image_folder is None
                                                     else ())
  _check_keys(json_path, entries, entry_keys, "image entry", expected)
  in_split = [entry for entry in entries if entry["split"] in splits]
  if not in_split:
    found = sorted({str(entry["split"]) for entry in entries})
    raise ValueError(f"{json_path} has no images of split {'+'.join(splits)} (its splits: "
                     f"{', '.join(found) or 'none'}); replace it with {expected}.")
  chosen = [in_split[index] for index in subset_indices(len(in_split), max_images)]
  captions = []
  for entry in chosen:
    captions.append([raw.strip() for raw in _field_of_each(
        json_path, entry["sentences"], "raw", f"image {entry['filename']}, sentence", expected)])
    if not captions[-1]:
      raise ValueError(f"{json_path}: image {entry['filename']} has no captions; replace the "
                       f"file with {expected}.")
  paths = [root / (layout.image_folder or entry["filepath"]) / entry["filename"]
           for entry in chosen]
  _check_images_exist(paths, json_path.name, f"Extract the images again: {prepare}")
  image_folder = root / layout.image_folder if layout.image_folder else root
  return CaptionData(
      images=LazyImages(paths, _read_file),
      captions=captions,
      image_ids=[_karpathy_image_id(entry) for entry in chosen],
      source=f"{json_path} with images under {image_folder}")


def _read_records(source, indices: np.ndarray) -> Iterable[dict]:
  """Records ``source[i]`` for i in indices, read in batches (``__getitems__``, as grain does)."""
  for start in range(0, len(indices), _RECORD_CHUNK):
    yield from source.__getitems__([int(i) for i in indices[start:start + _RECORD_CHUNK]])


def _text(value) -> str:
  return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _load_coco_tfds(splits: tuple[str, ...], data_dir: pathlib.Path,
                    max_images: int | None) -> CaptionData:
  version_dir = _coco_tfds_dir(data_dir)
  problem = sources.stored_format_problem(COCO_TFDS_NAME, os.fspath(data_dir), version_dir)
  if problem is not None:
    raise type(problem)(f"{problem} {_where_to_point(data_dir)}")
  builder = tfds.builder_from_directory(os.fspath(version_dir))
  features = builder.info.features
  if not {"image", "image/id", "captions"} <= set(features.keys()):
    raise ValueError(
        f"The TFDS dataset in {version_dir} has features {sorted(features.keys())}, not "
        f"coco_captions' image, image/id and captions; rebuild it with `tfds build "
        f"{COCO_TFDS_NAME} --data_dir {data_dir} --file_format array_record`.")
  source = builder.as_data_source(
      "+".join(splits), decoders={"image": tfds.decode.SkipDecoding()})
  records = subset_indices(len(source), max_images)
  captions, image_ids = [], []
  for record in _read_records(source, records):
    captions.append([_text(text).strip() for text in record["captions"]["text"]])
    image_ids.append(str(int(record["image/id"])))
  where = f"TFDS {COCO_TFDS_NAME} in {version_dir}, split {'+'.join(splits)}"
  image_bytes = _TfdsImageBytes(source, where)
  return CaptionData(images=LazyImages(records.tolist(), image_bytes, image_bytes.describe),
                     captions=captions, image_ids=image_ids, source=where)


def load_caption_dataset(name: str, split: str, *, data_dir=None,
                         max_images: int | None = None) -> CaptionData:
  """Loads split ``split`` of caption dataset ``name`` (``coco_captions`` or ``flickr30k``).

  split: a Karpathy split (``train``, ``val``, ``test``; ``restval`` for COCO) or a ``+``
    union (``"train+restval"``). data_dir: see the module docstring (default
    ``$AUTOSEED_DATA_DIR``). max_images: a deterministic, nested subset of that many images.
  Returns CaptionData with lazily decoded images.
  Raises FileNotFoundError (dataset or images missing; the message says how to prepare them)
  and ValueError (unknown name or split, bad max_images, a file of the wrong layout).
  """
  if name not in CAPTION_SPLITS:
    raise ValueError(f"Unknown caption dataset {name!r}; known: "
                     f"{', '.join(CAPTION_SPLITS)} (VQA v2: load_vqa).")
  splits = _parse_split(split, CAPTION_SPLITS[name], name)
  _check_max("max_images", max_images)
  root = _resolve_data_dir(data_dir)
  if name == COCO_TFDS_NAME and _coco_tfds_dir(root).is_dir():
    return _load_coco_tfds(splits, root, max_images)
  layout = _KARPATHY_LAYOUTS[name]
  if name == COCO_TFDS_NAME and not (root / layout.folder / layout.json_name).is_file():
    raise FileNotFoundError(
        f"{layout.label} is not prepared in {root}: neither the TFDS dataset "
        f"{_coco_tfds_dir(root)} nor Karpathy's {root / layout.folder / layout.json_name} is "
        "there. Prepare one of them once: (a) "
        + sources.how_to_prepare(COCO_TFDS_NAME, os.fspath(root))
        + " (it downloads 37.6 GiB); or (b), without TensorFlow, "
        + layout.how_to_prepare(root) + " " + _where_to_point(root))
  return _load_karpathy(name, splits, root, max_images)


# ---------------------------------------------------------------------------------------------
# VQA v2


def consensus_answer(answers: Sequence[str], multiple_choice_answer: str | None = None) -> str:
  """The most frequent of ``answers``; a tie goes to ``multiple_choice_answer`` when it is
  among the tied, else to the tied answer that comes first in ``answers``."""
  counts = collections.Counter(answers)
  top = max(counts.values())
  if multiple_choice_answer is not None and counts.get(multiple_choice_answer) == top:
    return multiple_choice_answer
  return next(answer for answer in answers if counts[answer] == top)


def vqa_question_subset(question_images: np.ndarray, max_questions: int | None) -> np.ndarray:
  """Sorted int64 indices of at most ``max_questions`` questions, grouped by image.

  question_images: [Q] image id of each question. Images are visited in the order
  ``default_rng(SUBSET_SEED).permutation`` of the distinct ids and all their questions taken,
  until ``max_questions`` are reached (the last image gives its first questions in file
  order). A smaller subset is part of a larger one.
  """
  question_images = np.asarray(question_images)
  if max_questions is None or max_questions >= len(question_images):
    return np.arange(len(question_images), dtype=np.int64)
  _, image_of_question = np.unique(question_images, return_inverse=True)
  image_count = int(image_of_question.max()) + 1
  image_order = np.random.default_rng(SUBSET_SEED).permutation(image_count)
  taken = np.cumsum(np.bincount(image_of_question, minlength=image_count)[image_order])
  needed = int(np.searchsorted(taken, max_questions)) + 1
  chosen = np.flatnonzero(np.isin(image_of_question, image_order[:needed]))
  surplus = int(taken[needed - 1]) - max_questions
  if surplus:
    last_image_questions = np.flatnonzero(image_of_question == image_order[needed - 1])
    chosen = np.setdiff1d(chosen, last_image_questions[-surplus:])
  return chosen.astype(np.int64)


def _vqa_paths(data_dir: pathlib.Path, image_folder: str) -> tuple[pathlib.Path, pathlib.Path]:
  root = data_dir / VQA_FOLDER
  return (root / f"v2_OpenEnded_mscoco_{image_folder}_questions.json",
          root / f"v2_mscoco_{image_folder}_annotations.json")


def _vqa_prepare(data_dir: pathlib.Path) -> str:
  return (f"download {_VQA_ZIPS} and the COCO 2014 images ({_COCO_ZIPS}), then "
          f"`mkdir -p {data_dir}/{VQA_FOLDER} {data_dir}/{COCO_FOLDER} && for f in "
          f"v2_*_mscoco.zip; do unzip -o -j \"$f\" -d {data_dir}/{VQA_FOLDER}; done && unzip -q "
          f"train2014.zip -d {data_dir}/{COCO_FOLDER} && unzip -q val2014.zip -d "
          f"{data_dir}/{COCO_FOLDER}`.")


def _read_vqa_file(path: pathlib.Path, list_key: str, image_folder: str, data_dir: pathlib.Path,
                   keys: tuple[str, ...], what: str) -> list[dict]:
  if not path.is_file():
    raise _not_prepared("VQA v2", path, data_dir, _vqa_prepare(data_dir))
  expected = f"VQA v2's official {path.name}"
  content, entries = _read_json(path, list_key, expected)
  subtype = content.get("data_subtype", image_folder)
  if subtype != image_folder:
    raise ValueError(f"{path} holds the {subtype!r} {list_key}, not {image_folder!r}; replace "
                     f"it with {expected}.")
  _check_keys(path, entries, keys, what, expected)
  return entries


def load_vqa(split: str, *, data_dir=None, max_questions: int | None = None) -> VQAData:
  """Loads split ``split`` (``train`` or ``val``) of VQA v2 from its official JSON files.

  data_dir: see the module docstring (default ``$AUTOSEED_DATA_DIR``). max_questions: a
  deterministic, nested subset of questions, taken a whole image at a time
  (``vqa_question_subset``). Images are the COCO 2014 files, decoded on access.
  Raises FileNotFoundError (files or images missing; the message says how to prepare them)
  and ValueError (unknown split, bad max_questions, files of the wrong layout or split).
  """
  if split not in VQA_SPLITS:
    raise ValueError(f"Unknown VQA v2 split {split!r}: use 'train' or 'val' (the answers of "
                     "test-dev and test are not public, so 'val' serves as the test split).")
  _check_max("max_questions", max_questions)
  root = _resolve_data_dir(data_dir)
  image_folder = VQA_SPLITS[split]
  questions_path, annotations_path = _vqa_paths(root, image_folder)
  questions = _read_vqa_file(questions_path, "questions", image_folder, root,
                             ("question_id", "image_id", "question"), "question")
  annotations = _read_vqa_file(
      annotations_path, "annotations", image_folder, root,
      ("question_id", "answers", "question_type", "answer_type", "multiple_choice_answer"),
      "annotation")
  annotation_of = {entry["question_id"]: entry for entry in annotations}
  unanswered = [entry["question_id"] for entry in questions
                if entry["question_id"] not in annotation_of]
  if unanswered:
    raise ValueError(
        f"{len(unanswered)} of the {len(questions)} questions in {questions_path} have no "
        f"annotation in {annotations_path} (e.g. question_id {unanswered[0]}); both files must "
        "be VQA v2's official files of the same split.")
  chosen = [questions[i] for i in vqa_question_subset(
      np.asarray([entry["image_id"] for entry in questions]), max_questions)]
  image_index: dict[int, int] = {}
  for entry in chosen:
    image_index.setdefault(entry["image_id"], len(image_index))
  answers = []
  for entry in chosen:
    annotation = annotation_of[entry["question_id"]]
    answers.append(_field_of_each(annotations_path, annotation["answers"], "answer",
                                  f"question {entry['question_id']}, answer",
                                  "VQA v2's official file"))
    if not answers[-1]:
      raise ValueError(f"{annotations_path}: question {entry['question_id']} has no answers; "
                       "replace the file with VQA v2's official annotations.")
  image_dir = root / COCO_FOLDER / image_folder
  paths = [image_dir / f"COCO_{image_folder}_{int(image_id):012d}.jpg" for image_id in image_index]
  _check_images_exist(paths, questions_path.name,
                      f"Extract the COCO 2014 images again: {_vqa_prepare(root)}")
  annotated = [annotation_of[entry["question_id"]] for entry in chosen]
  return VQAData(
      images=LazyImages(paths, _read_file),
      image_ids=[str(image_id) for image_id in image_index],
      questions=[str(entry["question"]) for entry in chosen],
      question_image=np.asarray([image_index[entry["image_id"]] for entry in chosen], np.int32),
      answers=answers,
      answer=[consensus_answer(given, annotation["multiple_choice_answer"])
              for given, annotation in zip(answers, annotated)],
      question_type=[str(annotation["question_type"]) for annotation in annotated],
      answer_type=[str(annotation["answer_type"]) for annotation in annotated],
      question_ids=np.asarray([entry["question_id"] for entry in chosen], np.int64),
      source=f"{questions_path}, {annotations_path} with images under {image_dir}")
