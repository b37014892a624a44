"""Named task streams: data -> frozen backbone -> cached embeddings -> ``TaskStream``.

``STREAMS`` maps each name to its ``StreamSpec`` (the protocol in one paragraph, the
builder, the fields it takes). The builders live beside their descriptions: the image
streams in ``images`` (animals-ci, animals-digits, cifar100-*, the development streams),
the vision-language streams in ``vision_language`` (vl-scenes, coco-flickr, vqa-v2); both
build on ``embed`` (the pretraining split and the embedding cache). ``synthetic`` is the
small synthetic benchmark, built without a backbone. docs/STREAMS.md describes every
stream and the data each reads.
"""

from __future__ import annotations

import inspect
import os

from autoseed_jax.core.config_checks import check_fields
from autoseed_jax.core.tasks import TaskStream
from autoseed_jax.data import embedding_cache
from autoseed_jax.models import backbone as backbone_lib
from autoseed_jax.streams import images, synthetic, vision_language
from autoseed_jax.streams.spec import STREAM_RULES, StreamSpec

STREAMS: dict[str, StreamSpec] = {**images.SPECS, **vision_language.SPECS}
SYNTHETIC = 'synthetic'


def get_stream(name: str, *, backbone=None, data_dir=None, cache_dir=None, seed: int = 0,
               val_fraction: float = 0.05, train_fraction: float = 1.0,
               pixels: bool = False, **options) -> TaskStream:
  """Builds the named stream (see ``STREAMS``) on cached embeddings of ``backbone``.

  Args:
    backbone: a ``models.backbone.Backbone`` (default: ``load_offline_backbone()``).
    data_dir: where the embedded TFDS datasets are built and where user-prepared ones
      (CIFAR-100) are read from (default ``data.builders.default_data_dir()``).
    cache_dir: the embedding cache (default ``data.embedding_cache.default_cache_dir()``).
    seed: seed of the validation split and of the ``train_fraction`` subsample.
    val_fraction: share of each task's training data held out as D_t^val.
    train_fraction: share of each class's stream-train images kept (1.0: all).
    pixels: also give each task its training images (``Task.train_pixels`` [N, 32, 32, 1]
      float32 on the LiT image tower's input grid, row i the image of train_x[i]), which
      method ``dgr_pixel`` replays through that tower. The embeddings are the same either
      way. The CIFAR-100 streams accept it only with the offline backbone.
    options: a stream's own fields (``StreamSpec.fields``, e.g. vl-scenes'
      ``train_scenes``); an unknown one is a ValueError.

  Raises FileNotFoundError (user-prepared data missing, e.g. CIFAR-100 in data_dir neither
  as its python archive nor as a prepared TFDS dataset; the message says where to put the
  archive and gives the `tfds build` command), ValueError (unknown name, field, bad
  fraction, backbone; data that is incomplete or damaged) and ``tools.disk_errors.DiskError``
  (data_dir or the cache a file, unreadable, or a write that fails); names, fields and
  fractions are checked before anything is loaded.
  """
  if name not in STREAMS:
    raise ValueError(f'Unknown stream {name!r}. Known streams: {", ".join(sorted(STREAMS))}.')
  spec = STREAMS[name]
  foreign = sorted(set(options) - set(spec.fields))
  if foreign:
    raise ValueError(f'Stream {name!r} does not take the field(s) {foreign}; it takes '
                     f'{", ".join(spec.fields)}.')
  check_fields(dict(val_fraction=val_fraction, train_fraction=train_fraction),
               STREAM_RULES)  # before anything is encoded
  if backbone is None:
    from autoseed_jax.models.offline_backbone import load_offline_backbone  # pylint: disable=import-outside-toplevel
    backbone = load_offline_backbone()
  if not isinstance(backbone, backbone_lib.Backbone):
    raise ValueError('backbone must implement models.backbone.Backbone (embed_dim, '
                     f'fingerprint, encode_text, encode_image); got {type(backbone).__name__}.')
  if cache_dir is None:
    cache_dir = embedding_cache.default_cache_dir()
  return spec.build(backbone, data_dir=data_dir, cache_dir=os.fspath(cache_dir), seed=seed,
                    val_fraction=val_fraction, train_fraction=train_fraction,
                    pixels=bool(pixels), **options)


def _check_backbone_spec(spec: str) -> None:
  if spec != 'offline' and not spec.startswith('clip:'):
    raise ValueError(f"invalid config: stream.backbone={spec!r}; use 'offline' or "
                     "'clip:/path/to/open_clip_model.safetensors'.")


def load_backbone(spec: str):
  """The frozen backbone named by ``config.stream.backbone``.

  ``offline`` (default): the LiT-pretrained CNN image tower + MiniLM text tower shipped
  with the project. ``clip:<path>``: an OpenCLIP/OpenAI CLIP checkpoint you bring
  (``open_clip_model.safetensors`` or ``.npz``; the architecture is read from its shapes).
  """
  _check_backbone_spec(spec)
  if spec == 'offline':
    return None  # get_stream's default
  from autoseed_jax.models.clip import CLIPBackbone  # pylint: disable=import-outside-toplevel
  return CLIPBackbone.from_checkpoint(spec[len('clip:'):])


def stream_fields(name: str) -> tuple[str, ...]:
  """The fields a ``config.stream`` block of stream ``name`` may hold beside ``name``."""
  if name == SYNTHETIC:
    return tuple(inspect.signature(synthetic.make_synthetic_stream).parameters)
  return STREAMS[name].fields


def check_stream_config(stream_config) -> None:
  """Raises ValueError naming the field and a fix for a ``config.stream`` block that
  cannot be loaded, before anything is loaded: an unknown ``name`` (checked first), a
  field the named stream does not take, a value out of range."""
  name = stream_config.get('name')
  known = (SYNTHETIC, *sorted(STREAMS))
  if name not in known:
    raise ValueError(f'invalid config: stream.name={name!r} is not a stream; choose one of '
                     f'{", ".join(known)} (your own embeddings: tasks.build_stream and '
                     'runner.run_workdir, see docs/LIBRARY.md).')
  takes = stream_fields(name)
  foreign = sorted(set(stream_config) - set(takes) - {'name'})
  if foreign:
    raise ValueError(
        f'invalid config: stream.name={name!r} does not take the field(s) '
        f'{", ".join("stream." + f for f in foreign)} of this config\'s stream block; it '
        f'takes {", ".join(takes)}.')
  check_fields(stream_config, synthetic.RULES if name == SYNTHETIC else STREAM_RULES,
               prefix='stream.')
  if name != SYNTHETIC:
    _check_backbone_spec(stream_config.get('backbone', 'offline'))


def load_stream(stream_config, *, pixels: bool = False) -> TaskStream:
  """Builds the task stream named by ``config.stream.name``.

  The block is checked first (``check_stream_config``), so a bad name or field is
  refused before any backbone or data is loaded. ``pixels``: the caller's methods replay
  images (``dgr_pixel``), so the real streams also carry each task's training images
  (``get_stream(..., pixels=True)``); a ``pixels`` field of the block wins.
  """
  check_stream_config(stream_config)
  kwargs = {k: v for k, v in stream_config.items() if k not in ('name', 'backbone')}
  if stream_config.name == SYNTHETIC:
    return synthetic.make_synthetic_stream(**kwargs)
  kwargs.setdefault('pixels', pixels)
  backbone = load_backbone(stream_config.get('backbone', 'offline'))
  return get_stream(stream_config.name, backbone=backbone, **kwargs)
