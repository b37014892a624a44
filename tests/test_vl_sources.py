"""Tests for autoseed_jax.data.vl_sources on small fake datasets in the real layouts: Karpathy's
JSON files with image folders (COCO, Flickr30k), VQA v2's question/annotation files, and a
TFDS coco_captions built (array_record, no TensorFlow) from TFDS's own feature spec."""

import io
import json
import os
import pickle
import types

import grain
import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from autoseed_jax.data import builders, vl_sources

# (cocoid, image folder, Karpathy split, number of captions); 30 is a grayscale JPEG.
COCO_IMAGES = [
    (9, "train2014", "train", 5), (25, "train2014", "train", 6), (30, "train2014", "train", 5),
    (34, "train2014", "train", 5), (36, "train2014", "train", 5), (42, "val2014", "restval", 5),
    (73, "val2014", "restval", 7), (74, "val2014", "val", 5), (133, "val2014", "val", 5),
    (136, "val2014", "test", 5), (139, "val2014", "test", 5), (143, "val2014", "test", 5),
]
GRAYSCALE_ID = 30
FLICKR_IMAGES = [("1000092795", "train"), ("10002456", "train"), ("1000268201", "train"),
                 ("1000344755", "val"), ("1000366164", "val"), ("1000523639", "test")]

# VQA v2 questions per image: (answers, multiple_choice_answer, question_type, answer_type).
YES = (["yes"] * 7 + ["no"] * 3, "yes", "is the", "yes/no")
TIE_TO_MCA = (["2"] * 4 + ["3"] * 4 + ["4"] * 2, "3", "how many", "number")
TIE_TO_FIRST = (["blue", "red"] * 3 + ["green"] * 2 + ["pink"] * 2, "green", "what color is the",
                "other")
VQA_QUESTIONS = {
    "train2014": {9: [YES, TIE_TO_MCA, TIE_TO_FIRST], 25: [YES], 30: [TIE_TO_MCA, YES],
                  34: [YES, YES, TIE_TO_FIRST, TIE_TO_MCA], 36: [TIE_TO_FIRST]},
    "val2014": {42: [YES, TIE_TO_MCA], 74: [TIE_TO_FIRST], 136: [YES, YES, YES]},
}


def color_of(image_id):
  return np.asarray([image_id * 37 % 256, image_id * 91 % 256, image_id * 53 % 256], np.uint8)


def size_of(image_id):
  return 16 + image_id % 7, 24 + image_id % 5  # height, width


def jpeg_of(image_id, grayscale=False):
  """A solid-colour JPEG of image_id's size; JPEG keeps a flat colour within a few levels."""
  pixels = np.broadcast_to(color_of(image_id), size_of(image_id) + (3,))
  image = Image.fromarray(np.ascontiguousarray(pixels))
  buffer = io.BytesIO()
  (image.convert("L") if grayscale else image).save(buffer, format="JPEG", quality=95)
  return buffer.getvalue()


def coco_captions_of(image_id, count):
  return [f"  A photo number {j} of coco image {image_id}. " for j in range(count)]


def coco_file_name(folder, image_id):
  return f"COCO_{folder}_{image_id:012d}.jpg"


def write_raw_layout(root):
  """DATA_DIR with coco/ (Karpathy JSON + images), flickr30k/ and vqa_v2/."""
  for image_id, folder, _, _ in COCO_IMAGES:
    (root / "coco" / folder).mkdir(parents=True, exist_ok=True)
    (root / "coco" / folder / coco_file_name(folder, image_id)).write_bytes(
        jpeg_of(image_id, grayscale=image_id == GRAYSCALE_ID))
  coco = {"dataset": "coco", "images": [
      {"filepath": folder, "filename": coco_file_name(folder, image_id), "imgid": position,
       "split": split, "cocoid": image_id,
       "sentences": [{"raw": raw, "tokens": raw.split(), "sentid": j}
                     for j, raw in enumerate(coco_captions_of(image_id, count))]}
      for position, (image_id, folder, split, count) in enumerate(COCO_IMAGES)]}
  (root / "coco" / "dataset_coco.json").write_text(json.dumps(coco))

  (root / "flickr30k" / "flickr30k-images").mkdir(parents=True)
  for position, (stem, _) in enumerate(FLICKR_IMAGES):
    (root / "flickr30k" / "flickr30k-images" / f"{stem}.jpg").write_bytes(jpeg_of(position))
  flickr = {"dataset": "flickr30k", "images": [
      {"filename": f"{stem}.jpg", "imgid": position, "split": split,
       "sentences": [{"raw": f"Flickr {stem} caption {j} .", "sentid": j} for j in range(5)]}
      for position, (stem, split) in enumerate(FLICKR_IMAGES)]}
  (root / "flickr30k" / "dataset_flickr30k.json").write_text(json.dumps(flickr))

  (root / "vqa_v2").mkdir()
  for folder, by_image in VQA_QUESTIONS.items():
    questions, annotations = [], []
    for image_id, items in by_image.items():
      for k, (answers, mca, question_type, answer_type) in enumerate(items):
        question_id = image_id * 1000 + k
        questions.append({"image_id": image_id, "question_id": question_id,
                          "question": f"{question_type} thing {k} in image {image_id}?"})
        annotations.append({
            "question_id": question_id, "image_id": image_id, "question_type": question_type,
            "answer_type": answer_type, "multiple_choice_answer": mca,
            "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": i + 1}
                        for i, a in enumerate(answers)]})
    common = {"info": {}, "license": {}, "data_type": "mscoco", "data_subtype": folder}
    (root / "vqa_v2" / f"v2_OpenEnded_mscoco_{folder}_questions.json").write_text(json.dumps(
        {**common, "task_type": "Open-Ended", "questions": questions}))
    (root / "vqa_v2" / f"v2_mscoco_{folder}_annotations.json").write_text(json.dumps(
        {**common, "annotations": annotations}))


class _FakeCocoCaptions(tfds.builder_cls("coco_captions"), skip_registration=True):
  """TFDS's own coco_captions builder (name, 2014 config, version, features) fed with our
  fake images instead of the 37 GiB download."""

  name = "coco_captions"
  code_path = None

  def _split_generators(self, dl_manager):
    del dl_manager
    return {split: self._generate_examples(split) for split in ("train", "restval", "val", "test")}

  def _generate_examples(self, split):  # pylint: disable=arguments-differ
    for image_id, folder, image_split, count in COCO_IMAGES:
      if image_split == split:
        yield str(image_id), {
            "image": jpeg_of(image_id, grayscale=image_id == GRAYSCALE_ID),
            "image/filename": coco_file_name(folder, image_id), "image/id": image_id,
            "objects": [], "captions": [{"id": image_id * 10 + j, "text": raw} for j, raw in
                                        enumerate(coco_captions_of(image_id, count))]}


@pytest.fixture(scope="module")
def raw_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("vl_raw")
  write_raw_layout(root)
  return root


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
  """A data_dir holding only a TFDS coco_captions/2014/1.1.0 in array_record."""
  root = tmp_path_factory.mktemp("vl_tfds")
  coco_module = __import__("tensorflow_datasets.object_detection.coco", fromlist=["tf"])
  real_tf = coco_module.tf
  coco_module.tf = types.SimpleNamespace(int64=np.int64)  # its _info's only use of TensorFlow
  try:
    _FakeCocoCaptions(data_dir=os.fspath(root), file_format="array_record").download_and_prepare()
  finally:
    coco_module.tf = real_tf
  return root


def expected_coco(splits):
  return {str(image_id): [c.strip() for c in coco_captions_of(image_id, count)]
          for image_id, _, split, count in COCO_IMAGES if split in splits}


def as_mapping(data):
  assert len(data.images) == len(data.captions) == len(data.image_ids)
  return dict(zip(data.image_ids, data.captions))


def assert_flat_image(image, image_id, grayscale=False):
  assert image.dtype == np.uint8 and image.shape == size_of(image_id) + (3,)
  expected = color_of(image_id).astype(float)
  if grayscale:  # ITU-R 601 luma, as PIL's convert("L")
    expected = np.full(3, expected @ [0.299, 0.587, 0.114])
  np.testing.assert_allclose(image.reshape(-1, 3).mean(0), expected, atol=3)


# ---------------------------------------------------------------- caption datasets


def test_flickr30k_splits_captions_and_ids(raw_dir):
  for split in ("train", "val", "test"):
    data = vl_sources.load_caption_dataset("flickr30k", split, data_dir=raw_dir)
    stems = [stem for stem, image_split in FLICKR_IMAGES if image_split == split]
    assert data.image_ids == stems  # JSON order
    assert data.captions == [[f"Flickr {stem} caption {j} ." for j in range(5)]
                             for stem in stems]
    assert "dataset_flickr30k.json" in data.source
  both = vl_sources.load_caption_dataset("flickr30k", "train+test", data_dir=raw_dir)
  assert both.image_ids == ["1000092795", "10002456", "1000268201", "1000523639"]
  position = [stem for stem, _ in FLICKR_IMAGES].index("1000268201")
  assert_flat_image(both.images[2], position)


@pytest.mark.parametrize("route", ["karpathy", "tfds"])
def test_coco_captions_karpathy_splits_from_either_route(route, raw_dir, tfds_dir):
  data_dir = raw_dir if route == "karpathy" else tfds_dir
  for split in ("train", "restval", "val", "test", "train+restval"):
    data = vl_sources.load_caption_dataset("coco_captions", split, data_dir=data_dir)
    assert as_mapping(data) == expected_coco(split.split("+")), split
    assert ("TFDS coco_captions" in data.source) == (route == "tfds")
  for image_id, image in zip(data.image_ids, data.images):  # train+restval: 7 images
    assert_flat_image(image, int(image_id), grayscale=int(image_id) == GRAYSCALE_ID)
  assert {len(c) for c in data.captions} == {5, 6, 7}


def test_images_are_decoded_only_when_indexed(raw_dir, tfds_dir, monkeypatch):
  decoded = []
  real_decode = vl_sources.decode_rgb
  monkeypatch.setattr(vl_sources, "decode_rgb",
                      lambda encoded, where: decoded.append(where) or real_decode(encoded, where))
  karpathy = vl_sources.load_caption_dataset("coco_captions", "train", data_dir=raw_dir)
  from_tfds = vl_sources.load_caption_dataset("coco_captions", "train", data_dir=tfds_dir)
  vqa = vl_sources.load_vqa("train", data_dir=raw_dir)
  assert decoded == []
  assert_flat_image(karpathy.images[-1], int(karpathy.image_ids[-1]))
  assert_flat_image(from_tfds.images[1], int(from_tfds.image_ids[1]))
  assert len(decoded) == 2 and decoded[0].endswith(coco_file_name("train2014", 36))
  assert decoded[1].startswith("record ")
  view = vqa.images[1:3]  # a slice is a lazy view
  assert isinstance(view, vl_sources.LazyImages) and len(view) == 2 and len(decoded) == 2
  assert_flat_image(view[0], int(vqa.image_ids[1]), grayscale=vqa.image_ids[1] == "30")
  assert len(decoded) == 3
  with pytest.raises(IndexError):
    karpathy.images[len(karpathy.images)]


def test_images_feed_grain_and_pickle_for_its_workers(raw_dir, tfds_dir):
  data = vl_sources.load_caption_dataset("flickr30k", "train", data_dir=raw_dir)
  batches = list(grain.MapDataset.source(data.images).batch(2, batch_fn=list))
  assert [len(batch) for batch in batches] == [2, 1]
  np.testing.assert_array_equal(batches[1][0], data.images[2])
  from_tfds = vl_sources.load_caption_dataset("coco_captions", "val", data_dir=tfds_dir)
  for images in (data.images, from_tfds.images):
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(images))[1], images[1])


def test_caption_subsets_are_deterministic_and_nested_in_both_routes(raw_dir, tfds_dir):
  for data_dir in (raw_dir, tfds_dir):
    full = vl_sources.load_caption_dataset("coco_captions", "train+restval", data_dir=data_dir)
    by_size = {size: vl_sources.load_caption_dataset(
        "coco_captions", "train+restval", data_dir=data_dir, max_images=size)
               for size in (2, 4, 100)}
    again = vl_sources.load_caption_dataset("coco_captions", "train+restval",
                                            data_dir=data_dir, max_images=4)
    assert [len(by_size[s].image_ids) for s in (2, 4, 100)] == [2, 4, 7]
    assert by_size[4].image_ids == again.image_ids
    assert set(by_size[2].image_ids) < set(by_size[4].image_ids) < set(full.image_ids)
    order = [full.image_ids.index(i) for i in by_size[4].image_ids]
    assert order == sorted(order)  # kept in stored order
    expected = expected_coco(("train", "restval"))
    assert all(expected[i] == c for i, c in zip(by_size[4].image_ids, by_size[4].captions))
    for position, image_id in enumerate(by_size[2].image_ids):
      assert_flat_image(by_size[2].images[position], int(image_id),
                        grayscale=int(image_id) == GRAYSCALE_ID)


def test_subset_indices():
  np.testing.assert_array_equal(vl_sources.subset_indices(5, None), np.arange(5))
  small, large = vl_sources.subset_indices(1000, 10), vl_sources.subset_indices(1000, 100)
  assert len(small) == 10 and np.all(np.diff(small) > 0) and np.isin(small, large).all()
  assert small.max() > 500  # spread over the split, not its head


# ---------------------------------------------------------------- VQA v2


def test_vqa_questions_align_with_images_answers_and_consensus(raw_dir):
  data = vl_sources.load_vqa("train", data_dir=raw_dir)
  expected = [(image_id, k, item) for image_id, items in VQA_QUESTIONS["train2014"].items()
              for k, item in enumerate(items)]
  assert len(data.questions) == len(expected) == 11
  assert data.image_ids == ["9", "25", "30", "34", "36"]
  assert data.question_image.dtype == np.int32
  consensus = {"is the": "yes", "how many": "3", "what color is the": "blue"}  # by type
  for q, (image_id, k, item) in enumerate(expected):
    assert data.image_ids[data.question_image[q]] == str(image_id)
    assert data.question_ids[q] == image_id * 1000 + k
    assert data.questions[q] == f"{item[2]} thing {k} in image {image_id}?"
    assert data.answers[q] == item[0] and len(data.answers[q]) == 10
    assert data.answer[q] == consensus[item[2]]
    assert (data.question_type[q], data.answer_type[q]) == (item[2], item[3])
  image = data.images[data.question_image[6]]  # question 6 is about image 34
  assert_flat_image(image, 34)
  val = vl_sources.load_vqa("val", data_dir=raw_dir)
  assert val.image_ids == ["42", "74", "136"] and len(val.questions) == 6
  assert_flat_image(val.images[2], 136)
  assert "val2014" in val.source


def test_consensus_answer_tie_rules():
  assert vl_sources.consensus_answer(["a", "b", "b"], "a") == "b"
  assert vl_sources.consensus_answer(["a", "b", "b", "a"], "b") == "b"
  assert vl_sources.consensus_answer(["a", "b", "b", "a"], "c") == "a"
  assert vl_sources.consensus_answer(["a", "b", "b", "a"]) == "a"


def test_vqa_subset_takes_whole_images_and_is_nested(raw_dir):
  full = vl_sources.load_vqa("train", data_dir=raw_dir)
  subsets = {k: vl_sources.load_vqa("train", data_dir=raw_dir, max_questions=k)
             for k in (1, 3, 5, 7, 11, 50)}
  for k, data in subsets.items():
    assert len(data.questions) == min(k, 11)
    assert len(data.images) == len(set(data.question_image)) == len(data.image_ids)
    for q, question_id in enumerate(data.question_ids):
      position = list(full.question_ids).index(question_id)
      assert data.questions[q] == full.questions[position]
      assert data.answer[q] == full.answer[position]
      assert data.image_ids[data.question_image[q]] == full.image_ids[full.question_image[position]]
  for small, large in ((1, 3), (3, 5), (5, 7), (7, 11)):
    assert set(subsets[small].question_ids) <= set(subsets[large].question_ids)
  assert list(subsets[50].question_ids) == list(full.question_ids)


def test_vqa_question_subset_groups_questions_by_image():
  images = np.repeat(np.arange(200), 5)  # 200 images x 5 questions
  chosen = vl_sources.vqa_question_subset(images, 42)
  assert len(chosen) == 42 and np.all(np.diff(chosen) > 0)
  counts = np.bincount(images[chosen])
  assert (counts > 0).sum() == 9 and sorted(counts[counts > 0])[1:] == [5] * 8
  assert np.isin(vl_sources.vqa_question_subset(images, 17), chosen).all()


# ---------------------------------------------------------------- errors


def _message(error_type, function, *args, **kwargs):
  with pytest.raises(error_type) as error:
    function(*args, **kwargs)
  return str(error.value)


def test_unknown_names_splits_and_bad_subset_sizes(raw_dir):
  load = vl_sources.load_caption_dataset
  assert "known: coco_captions, flickr30k" in _message(ValueError, load, "coco", "train")
  message = _message(ValueError, load, "flickr30k", "restval", data_dir=raw_dir)
  assert "Unknown split 'restval' of flickr30k" in message and "train, val, test" in message
  assert "Unknown split" in _message(ValueError, load, "flickr30k", "train+train")
  for bad in (0, -3, 1.5, True):
    assert "max_images must be a positive integer" in _message(
        ValueError, load, "flickr30k", "train", data_dir=raw_dir, max_images=bad)
  assert "'val' serves as the test split" in _message(
      ValueError, vl_sources.load_vqa, "test", data_dir=raw_dir)
  assert "max_questions must be" in _message(
      ValueError, vl_sources.load_vqa, "val", data_dir=raw_dir, max_questions=0)


def _assert_says_where_to_point(message):
  assert "--config.stream.data_dir=DIR" in message and "$AUTOSEED_DATA_DIR=DIR" in message


def test_missing_datasets_name_the_commands_that_prepare_them(tmp_path):
  message = _message(FileNotFoundError, vl_sources.load_caption_dataset, "flickr30k", "train",
                     data_dir=tmp_path)
  assert f"{tmp_path / 'flickr30k' / 'dataset_flickr30k.json'} is missing" in message
  assert f"tar -xzf flickr30k-images.tar.gz -C {tmp_path}/flickr30k" in message
  assert "caption_datasets.zip" in message
  _assert_says_where_to_point(message)

  message = _message(FileNotFoundError, vl_sources.load_caption_dataset, "coco_captions",
                     "test", data_dir=tmp_path)
  assert f"tfds build coco_captions --data_dir {tmp_path} --file_format array_record" in message
  assert f"unzip -q train2014.zip -d {tmp_path}/coco" in message
  assert "'*dataset_coco.json'" in message
  _assert_says_where_to_point(message)

  message = _message(FileNotFoundError, vl_sources.load_vqa, "val", data_dir=tmp_path)
  assert "v2_OpenEnded_mscoco_val2014_questions.json is missing" in message
  assert f"unzip -o -j \"$f\" -d {tmp_path}/vqa_v2" in message
  _assert_says_where_to_point(message)


def test_default_data_dir_is_the_environment_variable(raw_dir, monkeypatch):
  monkeypatch.setenv(builders.DATA_DIR_ENV, str(raw_dir))
  assert len(vl_sources.load_vqa("val").questions) == 6
  monkeypatch.setenv(builders.DATA_DIR_ENV, str(raw_dir / "elsewhere"))
  message = _message(FileNotFoundError, vl_sources.load_caption_dataset, "flickr30k", "val")
  assert str(raw_dir / "elsewhere" / "flickr30k") in message


def _copy_layout(raw_dir, tmp_path):
  for path in raw_dir.rglob("*"):
    if path.is_file():
      target = tmp_path / path.relative_to(raw_dir)
      target.parent.mkdir(parents=True, exist_ok=True)
      target.write_bytes(path.read_bytes())
  return tmp_path


def _edit_json(path, edit):
  content = json.loads(path.read_text())
  edit(content)
  path.write_text(json.dumps(content))


@pytest.mark.parametrize("damage,expected", [
    (lambda c: c.pop("images"), "has no list 'images' at its top level"),
    (lambda c: c.update(dataset="flickr8k"), "describes dataset 'flickr8k', not 'flickr30k'"),
    (lambda c: c["images"][1].pop("split"), "image entry 1 has no 'split'"),
    (lambda c: c["images"][0]["sentences"][2].pop("raw"),
     "image 1000092795.jpg, sentence 2 has no 'raw'"),
    (lambda c: c["images"][0].update(sentences=[]), "image 1000092795.jpg has no captions"),
    (lambda c: [e.update(split="restval") for e in c["images"] if e["split"] == "train"],
     "no images of split train (its splits: restval, test, val)"),
])
def test_flickr30k_json_of_the_wrong_layout(damage, expected, raw_dir, tmp_path):
  root = _copy_layout(raw_dir, tmp_path)
  _edit_json(root / "flickr30k" / "dataset_flickr30k.json", damage)
  message = _message(ValueError, vl_sources.load_caption_dataset, "flickr30k", "train",
                     data_dir=root)
  assert expected in message and "Karpathy's dataset_flickr30k.json" in message


def test_bad_files_and_missing_images(raw_dir, tmp_path):
  root = _copy_layout(raw_dir, tmp_path)
  (root / "coco" / "dataset_coco.json").write_text("{not json")
  assert "is not valid JSON" in _message(
      ValueError, vl_sources.load_caption_dataset, "coco_captions", "val", data_dir=root)

  (root / "flickr30k" / "flickr30k-images" / "10002456.jpg").unlink()
  message = _message(FileNotFoundError, vl_sources.load_caption_dataset, "flickr30k", "train",
                     data_dir=root)
  assert "1 of the 3 images that dataset_flickr30k.json needs are missing" in message
  assert "10002456.jpg" in message and "tar -xzf flickr30k-images.tar.gz" in message
  # the subset that does not need the missing image still loads
  assert len(vl_sources.load_caption_dataset("flickr30k", "val", data_dir=root).images) == 2

  (root / "flickr30k" / "flickr30k-images" / "1000344755.jpg").write_bytes(b"not a jpeg")
  val = vl_sources.load_caption_dataset("flickr30k", "val", data_dir=root)
  message = _message(ValueError, val.images.__getitem__, 0)
  assert "1000344755.jpg" in message and "extract it again" in message
  assert val.images[1].shape[-1] == 3

  for folder in ("train2014",):
    for path in (root / "coco" / folder).iterdir():
      path.unlink()
    (root / "coco" / folder).rmdir()
  message = _message(FileNotFoundError, vl_sources.load_vqa, "train", data_dir=root)
  assert f"Image folder {root / 'coco' / 'train2014'}" in message
  assert "unzip -q train2014.zip" in message


@pytest.mark.parametrize("damage,expected", [
    ("subtype", "holds the 'val2014' questions, not 'train2014'"),
    ("unanswered", "1 of the 11 questions in"),
    ("annotation_key", "annotation 0 has no 'multiple_choice_answer'"),
    ("answer_key", "question 9000, answer 3 has no 'answer'"),
])
def test_vqa_files_of_the_wrong_layout(damage, expected, raw_dir, tmp_path):
  root = _copy_layout(raw_dir, tmp_path)
  questions = root / "vqa_v2" / "v2_OpenEnded_mscoco_train2014_questions.json"
  annotations = root / "vqa_v2" / "v2_mscoco_train2014_annotations.json"
  if damage == "subtype":
    _edit_json(questions, lambda c: c.update(data_subtype="val2014"))
  elif damage == "unanswered":
    _edit_json(annotations, lambda c: c["annotations"].pop(4))
  elif damage == "annotation_key":
    _edit_json(annotations, lambda c: c["annotations"][0].pop("multiple_choice_answer"))
  else:
    _edit_json(annotations, lambda c: c["annotations"][0]["answers"][3].pop("answer"))
  assert expected in _message(ValueError, vl_sources.load_vqa, "train", data_dir=root)


def test_unreadable_tfds_coco_captions_says_how_to_fix_it(tfds_dir, tmp_path):
  version_dir = tmp_path / "coco_captions" / "2014" / "1.1.0"
  version_dir.mkdir(parents=True)
  message = _message(FileNotFoundError, vl_sources.load_caption_dataset, "coco_captions",
                     "val", data_dir=tmp_path)
  assert "no " + str(version_dir / "dataset_info.json") in message
  assert f"tfds build coco_captions --data_dir {tmp_path}" in message
  _assert_says_where_to_point(message)

  info = json.loads((tfds_dir / "coco_captions" / "2014" / "1.1.0" / "dataset_info.json")
                    .read_text())
  (version_dir / "dataset_info.json").write_text(json.dumps({**info, "fileFormat": "tfrecord"}))
  message = _message(ValueError, vl_sources.load_caption_dataset, "coco_captions", "val",
                     data_dir=tmp_path)
  assert "stored as tfrecord" in message and "tfds convert_format" in message
