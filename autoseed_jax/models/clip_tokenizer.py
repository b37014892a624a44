"""The CLIP text tokenizer: text cleanup, pre-tokenisation and byte-level BPE, in plain Python.

Behaviour follows OpenAI CLIP's `SimpleTokenizer` (as used by OpenCLIP, `clean='lower'`):

1. Cleanup (`clean_text`): the deterministic repairs of `ftfy.fix_text` (HTML entities, C1
   controls read as Windows-1252, Latin ligatures, full/half-width forms, curly quotes,
   surrogates, terminal escapes, control characters, NFC), then `html.unescape` twice,
   whitespace runs collapsed to one space, lowercase. Not reproduced: ftfy's heuristic
   mojibake repair (e.g. "cafÃ©" -> "café"); such text is tokenised as given.
2. Pre-tokenisation (`split_words`): special tokens, the contractions 's 't 're 've 'm 'll 'd,
   runs of letters (Unicode category L*), single digits (category N*), runs of other
   non-space characters. Categories come from Python's `unicodedata` (Unicode 14 on Python
   3.11); characters added in later Unicode versions may split differently from `regex`.
3. Each piece is UTF-8 encoded, its bytes mapped to printable characters, the last one marked
   with `</w>`, and merged by BPE rank (`bpe_simple_vocab_16e6.txt.gz`, vendored in `assets/`).
4. `__call__` wraps ids as `<start_of_text> ... <end_of_text>`, truncates to the context length
   keeping `<end_of_text>` last, and pads with 0.
"""

from __future__ import annotations

import functools
import gzip
import html
import html.entities
import pathlib
import re
import unicodedata
from typing import Sequence

import numpy as np

DEFAULT_MERGES_PATH = pathlib.Path(__file__).parent / "assets" / "bpe_simple_vocab_16e6.txt.gz"
DEFAULT_CONTEXT_LENGTH = 77
START_OF_TEXT = "<start_of_text>"
END_OF_TEXT = "<end_of_text>"
END_OF_WORD = "</w>"
# CLIP's vocabulary: 256 byte symbols, the same with </w>, 48894 merges, 2 special tokens.
NUM_MERGES = 49152 - 256 - 2


# ---------------------------------------------------------------------------------------------
# Cleanup


def _html_entity_table() -> dict[str, str]:
  """'&name;' -> character for every HTML5 entity written with its semicolon, plus the
  all-caps spelling of lowercase-named entities when that spelling is not itself standard
  (so '&EACUTE;' -> 'É', as ftfy does)."""
  table = {}
  for name, character in html.entities.html5.items():
    if not name.endswith(";"):
      continue
    table["&" + name] = character
    if name == name.lower():
      shouted = "&" + name.upper()
      if html.unescape(shouted) == shouted:
        table[shouted] = character.upper()
  return table


_ENTITY_PATTERN = re.compile(r"&#?[0-9A-Za-z]{1,24};")
_ENTITY_TABLE = _html_entity_table()
_C1_CONTROL_PATTERN = re.compile("[\x80-\x9f]")
_SURROGATE_PAIR_PATTERN = re.compile("[\ud800-\udbff][\udc00-\udfff]")
_LONE_SURROGATE_PATTERN = re.compile("[\ud800-\udfff]")
_TERMINAL_ESCAPE_PATTERN = re.compile(r"\x1b\[[\d;]*[a-zA-Z]")
# Latin typographic ligatures and legacy digraphs -> their letters.
_LIGATURES = (
    "Ĳ IJ|ĳ ij|ŉ ʼn|Ǳ DZ|ǲ Dz|ǳ dz|Ǆ DŽ|ǅ Dž|ǆ dž|Ǉ LJ|ǈ Lj|ǉ lj|Ǌ NJ|ǋ Nj|ǌ nj|"
    "ﬀ ff|ﬁ fi|ﬂ fl|ﬃ ffi|ﬄ ffl|ﬅ ſt|ﬆ st"
)
_LIGATURE_TABLE = str.maketrans(dict(pair.split(" ") for pair in _LIGATURES.split("|")))
# Full-width and half-width forms -> standard width; the ideographic space -> ' '.
_WIDTH_TABLE = {
    code: unicodedata.normalize("NFKC", chr(code))
    for code in range(0xFF01, 0xFFF0)
    if unicodedata.normalize("NFKC", chr(code)) != chr(code)
} | {0x3000: " "}
_QUOTE_TABLE = str.maketrans({**dict.fromkeys("\u02bc\u2018\u2019\u201a\u201b", "'"),
                              **dict.fromkeys("\u201c\u201d\u201e\u201f", '"')})  # fmt: skip
# Control characters that are neither whitespace nor meaningful for rendering -> removed.
_CONTROL_TABLE = dict.fromkeys(
    [*range(0x00, 0x09), 0x0B, *range(0x0E, 0x20), 0x7F,
     *range(0x206A, 0x2070), 0xFEFF, *range(0xFFF9, 0xFFFD)]  # fmt: skip
)


def _decode_entity(match: re.Match) -> str:
  entity = match.group(0)
  if entity in _ENTITY_TABLE:
    return _ENTITY_TABLE[entity]
  if entity.startswith("&#"):
    decoded = html.unescape(entity)
    return entity if ";" in decoded else decoded
  return entity


def _c1_as_windows_1252(match: re.Match) -> str:
  """A C1 control character read as the Windows-1252 byte it most likely was."""
  try:
    return bytes([ord(match.group(0))]).decode("cp1252")
  except UnicodeDecodeError:  # 0x81, 0x8D, 0x8F, 0x90, 0x9D are unassigned: kept
    return match.group(0)


def _join_surrogate_pair(match: re.Match) -> str:
  high, low = match.group(0)
  return chr(0x10000 + (ord(high) - 0xD800) * 0x400 + (ord(low) - 0xDC00))


def _repair_line(line: str, decode_entities: bool) -> str:
  """The deterministic ftfy repairs, in ftfy's order, repeated until nothing changes."""
  while True:
    before = line
    if decode_entities:
      line = _ENTITY_PATTERN.sub(_decode_entity, line)
    line = _C1_CONTROL_PATTERN.sub(_c1_as_windows_1252, line)
    line = line.translate(_LIGATURE_TABLE).translate(_WIDTH_TABLE).translate(_QUOTE_TABLE)
    line = _SURROGATE_PAIR_PATTERN.sub(_join_surrogate_pair, line)
    line = _LONE_SURROGATE_PATTERN.sub("\ufffd", line)
    line = _TERMINAL_ESCAPE_PATTERN.sub("", line)
    line = line.translate(_CONTROL_TABLE)
    line = unicodedata.normalize("NFC", line)
    if line == before:
      return line


def repair_text(text: str) -> str:
  """The deterministic part of `ftfy.fix_text`, applied line by line.

  HTML entities are decoded up to the first line that contains '<' (which may be markup);
  from that line on they are left alone here.
  """
  repaired = []
  decode_entities = True
  for line in re.findall(r"[^\n]*\n|[^\n]+$", text):
    decode_entities = decode_entities and "<" not in line
    repaired.append(_repair_line(line, decode_entities))
  return "".join(repaired)


def clean_text(text: str) -> str:
  """CLIP's 'lower' cleanup: repair, unescape HTML twice, collapse whitespace, lowercase."""
  unescaped = html.unescape(html.unescape(repair_text(text))).strip()
  return " ".join(unescaped.split()).lower()


# ---------------------------------------------------------------------------------------------
# Pre-tokenisation

_PREFIX_TOKEN_PATTERN = re.compile(
    re.escape(START_OF_TEXT) + "|" + re.escape(END_OF_TEXT) + r"|'s|'t|'re|'ve|'m|'ll|'d",
    re.IGNORECASE,
)


def _is_letter(character: str) -> bool:
  return unicodedata.category(character)[0] == "L"


def _is_number(character: str) -> bool:
  return unicodedata.category(character)[0] == "N"


def split_words(text: str) -> list[str]:
  """Cleaned text -> pieces, as CLIP's pattern
  `<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|\\p{L}+|\\p{N}|[^\\s\\p{L}\\p{N}]+`
  (case-insensitive) finds them; whitespace separates pieces and is dropped."""
  pieces = []
  position = 0
  length = len(text)
  while position < length:
    prefix = _PREFIX_TOKEN_PATTERN.match(text, position)
    if prefix:
      pieces.append(prefix.group(0))
      position = prefix.end()
      continue
    character = text[position]
    if character.isspace():
      position += 1
      continue
    if _is_number(character):
      pieces.append(character)
      position += 1
      continue
    start = position
    if _is_letter(character):
      while position < length and _is_letter(text[position]):
        position += 1
    else:
      while position < length and not (
          text[position].isspace() or _is_letter(text[position]) or _is_number(text[position])
      ):
        position += 1
    pieces.append(text[start:position])
  return pieces


# ---------------------------------------------------------------------------------------------
# Byte-level BPE


@functools.lru_cache(maxsize=1)
def byte_symbols() -> tuple[tuple[int, str], ...]:
  """The 256 (byte, printable stand-in character) pairs, in CLIP's vocabulary order.

  Printable Latin-1 bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for themselves and come first,
  by value; the k-th remaining byte (control chars, space, soft hyphen...) gets chr(256 + k).
  """
  printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
               *range(ord("®"), ord("ÿ") + 1)]  # fmt: skip
  others = sorted(set(range(256)) - set(printable))
  return tuple((byte, chr(byte)) for byte in printable) + tuple(
      (byte, chr(256 + k)) for k, byte in enumerate(others)
  )


def _read_merges(merges_path: pathlib.Path) -> list[tuple[str, str]]:
  if not merges_path.is_file():
    raise FileNotFoundError(
        f"CLIP BPE merges file not found at {merges_path}. It ships with autoseed_jax in "
        f"autoseed_jax/models/assets/; reinstall the package or pass merges_path= pointing "
        f"to a copy of bpe_simple_vocab_16e6.txt.gz."
    )
  with gzip.open(merges_path, "rt", encoding="utf-8") as handle:
    lines = handle.read().split("\n")
  merges = [tuple(line.split()) for line in lines[1 : NUM_MERGES + 1]]
  if len(merges) != NUM_MERGES or any(len(merge) != 2 for merge in merges):
    raise ValueError(
        f"{merges_path} is not CLIP's BPE merges file: expected a header line and "
        f"{NUM_MERGES} lines 'left right'; use bpe_simple_vocab_16e6.txt.gz."
    )
  return merges  # type: ignore[return-value]


class CLIPTokenizer:
  """CLIP's byte-level BPE tokenizer.

  tokenizer(texts) -> [N, context_length] int32 ids: <start_of_text>, the BPE ids,
  <end_of_text>, then 0s; a text too long is cut so that <end_of_text> is the last id.
  """

  def __init__(
      self,
      merges_path: str | pathlib.Path = DEFAULT_MERGES_PATH,
      context_length: int = DEFAULT_CONTEXT_LENGTH,
  ):
    if context_length < 2:
      raise ValueError(
          f"context_length must be >= 2 (room for <start_of_text> and <end_of_text>), "
          f"got {context_length}"
      )
    merges = _read_merges(pathlib.Path(merges_path))
    symbols = [symbol for _, symbol in byte_symbols()]
    vocabulary = symbols + [symbol + END_OF_WORD for symbol in symbols]
    vocabulary += ["".join(merge) for merge in merges]
    vocabulary += [START_OF_TEXT, END_OF_TEXT]
    self.token_to_id = {token: index for index, token in enumerate(vocabulary)}
    self.id_to_token = vocabulary
    self.merge_rank = {merge: rank for rank, merge in enumerate(merges)}
    self.context_length = context_length
    self.vocab_size = len(vocabulary)
    self.start_of_text_id = self.token_to_id[START_OF_TEXT]
    self.end_of_text_id = self.token_to_id[END_OF_TEXT]
    self._byte_to_symbol = dict(byte_symbols())
    self._symbol_to_byte = {symbol: byte for byte, symbol in byte_symbols()}
    self._piece_cache: dict[str, list[int]] = {}

  def _merge_piece(self, symbols: list[str]) -> list[str]:
    """BPE: repeatedly merge every occurrence (left to right) of the best-ranked pair."""
    while len(symbols) > 1:
      ranked = [
          (self.merge_rank[pair], pair)
          for pair in zip(symbols[:-1], symbols[1:])
          if pair in self.merge_rank
      ]
      if not ranked:
        break
      _, (left, right) = min(ranked)
      merged = []
      index = 0
      while index < len(symbols):
        if (
            index + 1 < len(symbols)
            and symbols[index] == left
            and symbols[index + 1] == right
        ):
          merged.append(left + right)
          index += 2
        else:
          merged.append(symbols[index])
          index += 1
      symbols = merged
    return symbols

  def _piece_ids(self, piece: str) -> list[int]:
    """One pre-tokenised piece -> its BPE ids (special tokens map to their own id)."""
    cached = self._piece_cache.get(piece)
    if cached is not None:
      return cached
    if piece in (START_OF_TEXT, END_OF_TEXT):
      ids = [self.token_to_id[piece]]
    else:
      symbols = [self._byte_to_symbol[byte] for byte in piece.encode("utf-8")]
      symbols[-1] += END_OF_WORD
      ids = [self.token_to_id[token] for token in self._merge_piece(symbols)]
    self._piece_cache[piece] = ids
    return ids

  def encode(self, text: str) -> list[int]:
    """text -> BPE ids, without <start_of_text>/<end_of_text>."""
    if not isinstance(text, str):
      raise TypeError(f"CLIPTokenizer.encode expects a str, got {type(text).__name__}")
    pieces = split_words(clean_text(text))
    return [token_id for piece in pieces for token_id in self._piece_ids(piece)]

  def decode(self, ids: Sequence[int]) -> str:
    """ids (e.g. one row of `__call__`'s output) -> text, with the special tokens written
    out and each </w> as a space; ids after the first <end_of_text> (padding) are dropped."""
    ids = [int(token_id) for token_id in ids]
    if self.end_of_text_id in ids:
      ids = ids[: ids.index(self.end_of_text_id) + 1]
    pieces = []
    word_bytes = bytearray()
    for token_id in ids:
      if token_id in (self.start_of_text_id, self.end_of_text_id):
        pieces.append(word_bytes.decode("utf-8", errors="replace"))
        pieces.append(self.id_to_token[token_id])
        word_bytes = bytearray()
        continue
      token = self.id_to_token[token_id]
      ends_word = token.endswith(END_OF_WORD)
      symbols = token[: -len(END_OF_WORD)] if ends_word else token
      word_bytes.extend(self._symbol_to_byte[symbol] for symbol in symbols)
      if ends_word:
        word_bytes.extend(b" ")
    pieces.append(word_bytes.decode("utf-8", errors="replace"))
    return "".join(pieces)

  def __call__(self, texts: str | Sequence[str]) -> np.ndarray:
    """texts: one string or N strings -> [N, context_length] int32 token ids."""
    if isinstance(texts, str):
      texts = [texts]
    token_ids = np.zeros((len(texts), self.context_length), dtype=np.int32)
    for row, text in enumerate(texts):
      ids = [self.start_of_text_id, *self.encode(text), self.end_of_text_id]
      if len(ids) > self.context_length:
        ids = ids[: self.context_length - 1] + [self.end_of_text_id]
      token_ids[row, : len(ids)] = ids
    return token_ids


@functools.lru_cache(maxsize=4)
def get_tokenizer(context_length: int = DEFAULT_CONTEXT_LENGTH) -> CLIPTokenizer:
  """A shared CLIPTokenizer with the vendored merges (built once per context length)."""
  return CLIPTokenizer(DEFAULT_MERGES_PATH, context_length)
