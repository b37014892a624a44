"""Scenes composed from real object images, with template captions and CLEVR-style questions.

The offline vision-language data (``autoseed_jax.streams.vision_language``, stream ``vl-scenes``) are
48x48 grayscale canvases holding two or three real objects side by side: Animal-MNIST
silhouettes (PyPI ``animal-mnist``) and scikit-learn's handwritten digits, each resized to
16x16 (bicubic) and placed in one of three horizontal slots (left, middle, right: columns
0, 16, 32, jittered by up to ``JITTER`` pixels) at a random height. Objects of one scene are
distinct categories, so every question below has one answer.

Vocabulary: 20 object categories, ids 0-9 the animals in Animal-MNIST's label order (bear,
bird, cat, cow, dog, elephant, giraffe, horse, sheep, zebra) and 10-19 the digits 0-9
("digit 3"). A scene is ``Scene(objects, slots)``: category ids and slot indices, both left
to right.

Captions (``captions``, ``CAPTIONS_PER_SCENE`` = 5 per scene, in this order), for objects
A, B (, C) from left to right:

  1. the list:      "a cat and a zebra."            / "a cat, a zebra and a digit 3."
  2. left of:       "a cat to the left of a zebra."  (A and B)
  3. right of:      "a zebra to the right of a cat." (the last two objects)
  4. the counts:    "two animals." / "an animal and a digit." / "two animals and a digit."
  5. positions:     "a cat on the left and a zebra on the right." /
                    "a cat on the left, a zebra in the middle and a digit 3 on the right."

Questions (``questions``), each with its answer and a type:

  exists    "is there a zebra?" -> "yes" / "no" (one present and one absent category)
  count     "how many animals are there?" / "how many digits are there?" -> "zero".."three"
  left_of   "what is to the left of the zebra?" -> the name of the object just left of it
  right_of  "what is to the right of the cat?"  -> the name of the object just right of it

(left_of / right_of only for objects that have a neighbour on that side.) ``render`` draws
scenes from per-category pools of object images, so a stream's scenes can be built from
one split of the object datasets and the image tower's pretraining scenes from another.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from autoseed_jax.data import sources

CANVAS = 48            # scene side in pixels
OBJECT_SIZE = 16       # side of each object after resizing
SLOTS = 3              # horizontal slots: left, middle, right
JITTER = 2             # horizontal jitter of an object inside its slot, pixels
CAPTIONS_PER_SCENE = 5

ANIMALS = ('bear', 'bird', 'cat', 'cow', 'dog', 'elephant', 'giraffe', 'horse', 'sheep',
           'zebra')
NUM_ANIMALS = len(ANIMALS)
NUM_CATEGORIES = NUM_ANIMALS + 10
CATEGORY_NAMES = ANIMALS + tuple(f'digit {d}' for d in range(10))
COUNT_WORDS = ('zero', 'one', 'two', 'three')
QUESTION_TYPES = ('exists', 'count', 'left_of', 'right_of')
# Every answer a question can have, in a fixed order (the VQA answer vocabulary).
ANSWERS = ('yes', 'no') + COUNT_WORDS + CATEGORY_NAMES


@dataclasses.dataclass(frozen=True)
class Scene:
  """Objects of one canvas, left to right: category ids and slot indices (0, 1, 2)."""

  objects: tuple[int, ...]
  slots: tuple[int, ...]


def is_animal(category: int) -> bool:
  return category < NUM_ANIMALS


def noun(category: int) -> str:
  """'a cat', 'an elephant', 'a digit 3'."""
  name = CATEGORY_NAMES[category]
  return f'{"an" if name[0] in "aeiou" else "a"} {name}'


def _join(phrases: Sequence[str]) -> str:
  return phrases[0] if len(phrases) == 1 else ', '.join(phrases[:-1]) + ' and ' + phrases[-1]


def _count_phrase(objects: Sequence[int]) -> str:
  animals = sum(is_animal(c) for c in objects)
  parts = []
  for n, singular in ((animals, 'animal'), (len(objects) - animals, 'digit')):
    if n == 1:
      parts.append(f'{"an" if singular[0] in "aeiou" else "a"} {singular}')
    elif n > 1:
      parts.append(f'{COUNT_WORDS[n]} {singular}s')
  return _join(parts)


def captions(scene: Scene) -> list[str]:
  """The ``CAPTIONS_PER_SCENE`` template captions of a scene (see the module doc)."""
  names = [noun(c) for c in scene.objects]
  where = (['on the left', 'on the right'] if len(names) == 2
           else ['on the left', 'in the middle', 'on the right'])
  return [
      f'{_join(names)}.',
      f'{names[0]} to the left of {names[1]}.',
      f'{names[-1]} to the right of {names[-2]}.',
      f'{_count_phrase(scene.objects)}.',
      f'{_join([f"{n} {w}" for n, w in zip(names, where)])}.',
  ]


@dataclasses.dataclass(frozen=True)
class Question:
  """A question about a scene, its answer (one of ``ANSWERS``) and its type."""

  text: str
  answer: str
  kind: str


def questions(scene: Scene, types: Sequence[str], rng: np.random.Generator) -> list[Question]:
  """The questions of the given ``types`` (``QUESTION_TYPES``) about ``scene``.

  exists: one present and one absent category (drawn with ``rng``); count: animals and
  digits; left_of / right_of: every object with a neighbour on that side.
  """
  out = []
  objects = list(scene.objects)
  for kind in types:
    if kind == 'exists':
      present = int(rng.choice(objects))
      absent = int(rng.choice([c for c in range(NUM_CATEGORIES) if c not in objects]))
      out += [Question(f'is there {noun(present)}?', 'yes', kind),
              Question(f'is there {noun(absent)}?', 'no', kind)]
    elif kind == 'count':
      animals = sum(is_animal(c) for c in objects)
      out += [Question('how many animals are there?', COUNT_WORDS[animals], kind),
              Question('how many digits are there?', COUNT_WORDS[len(objects) - animals], kind)]
    elif kind in ('left_of', 'right_of'):
      step = 1 if kind == 'left_of' else -1
      side = 'left' if kind == 'left_of' else 'right'
      for i in range(len(objects)):
        j = i - step
        if 0 <= j < len(objects):
          out.append(Question(f'what is to the {side} of the {CATEGORY_NAMES[objects[i]]}?',
                              CATEGORY_NAMES[objects[j]], kind))
    else:
      raise ValueError(f'question type {kind!r}; choose from {QUESTION_TYPES}.')
  return out


def sample_scenes(num: int, categories: Sequence[int], rng: np.random.Generator, *,
                  min_objects: int = 2, max_objects: int = 3) -> list[Scene]:
  """``num`` scenes of ``min_objects``..``max_objects`` distinct categories drawn from
  ``categories``, in random slots (kept left to right)."""
  categories = np.asarray(categories)
  if not 2 <= min_objects <= max_objects <= min(SLOTS, len(categories)):
    raise ValueError(f'objects per scene {min_objects}..{max_objects} must lie in 2..'
                     f'{min(SLOTS, len(categories))} (slots, categories available).')
  scenes = []
  for _ in range(num):
    n = int(rng.integers(min_objects, max_objects + 1))
    objects = tuple(int(c) for c in rng.choice(categories, n, replace=False))
    slots = tuple(int(s) for s in np.sort(rng.choice(SLOTS, n, replace=False)))
    scenes.append(Scene(objects, slots))
  return scenes


def resize_objects(images: np.ndarray) -> np.ndarray:
  """images: [N, h, w, 1] uint8 -> [N, OBJECT_SIZE, OBJECT_SIZE] uint8 (bicubic)."""
  return np.stack([sources.resize_center_crop(image, OBJECT_SIZE)[..., 0] for image in images])


def render(scenes: Sequence[Scene], pools: Sequence[np.ndarray],
           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
  """Draws scenes from per-category pools of object images.

  Args:
    scenes: the scenes.
    pools: ``NUM_CATEGORIES`` arrays [n_c, OBJECT_SIZE, OBJECT_SIZE] uint8, the images each
      object of category c is drawn from (uniformly, with ``rng``).
    rng: draws the object images, the heights and the horizontal jitter.

  Returns:
    (images [N, CANVAS, CANVAS, 1] uint8, sources [N, SLOTS] int: the pool index of each
    object's image, -1 for an empty slot).
  """
  if len(pools) != NUM_CATEGORIES:
    raise ValueError(f'{len(pools)} object pools for {NUM_CATEGORIES} categories.')
  images = np.zeros((len(scenes), CANVAS, CANVAS, 1), np.uint8)
  picked = np.full((len(scenes), SLOTS), -1, np.int64)
  for n, scene in enumerate(scenes):
    for category, slot in zip(scene.objects, scene.slots):
      pool = pools[category]
      if len(pool) == 0:
        raise ValueError(f'no images of category {CATEGORY_NAMES[category]!r} to draw from.')
      index = int(rng.integers(len(pool)))
      top = int(rng.integers(0, CANVAS - OBJECT_SIZE + 1))
      left = int(np.clip(slot * OBJECT_SIZE + rng.integers(-JITTER, JITTER + 1), 0,
                         CANVAS - OBJECT_SIZE))
      window = images[n, top:top + OBJECT_SIZE, left:left + OBJECT_SIZE, 0]
      np.maximum(window, pool[index], out=window)
      picked[n, slot] = index
  return images, picked


def category_pools(animal_images: np.ndarray, animal_labels: np.ndarray,
                   digit_images: np.ndarray, digit_labels: np.ndarray) -> list[np.ndarray]:
  """Per-category pools of resized objects: animals (labels 0-9) then digits (0-9)."""
  animals, digits = resize_objects(animal_images), resize_objects(digit_images)
  return ([animals[animal_labels == c] for c in range(NUM_ANIMALS)]
          + [digits[digit_labels == d] for d in range(10)])
