"""docs/METHOD.md resolves every "METHOD §n" citation, and links to it point at real files.

Pure Python (no JAX): reads files only.

Heading convention of docs/METHOD.md: a numbered section's Markdown heading starts with
``§`` and its number, nothing between: ``## §4 ...``, ``### §4.3 ...``, ``#### §4.3a ...``
(a lettered part is its own heading). A section id is digits and dots with an optional
final letter. So a citation resolves exactly when a heading carries its id.

Citations are "METHOD §<id>" (or "METHOD.md §<id>") with lists and ranges:
"METHOD §4.3a-c" (ends 4.3a and 4.3c: a letter alone continues the start's number),
"METHOD §5-§7", "METHOD §3, §4.1-4.2", "METHOD §1)". A range is checked at both ends.
They are collected from the code (*.py under autoseed_jax/, experiments/, tests/) and the
Markdown pages (README.md, docs/, experiments/), this file and METHOD.md itself excepted.
"""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
METHOD_DOC = ROOT / 'docs' / 'METHOD.md'

SECTION_ID = r'\d+(?:\.\d+)*(?:[a-z](?![a-z]))?'
RANGE_END = rf'(?:§?{SECTION_ID}|[a-z](?![a-z]))'
ITEM = rf'§{SECTION_ID}(?:\s*[-–]\s*{RANGE_END})?'
CITATION = re.compile(rf'METHOD(?:\.md)?\s+({ITEM}(?:\s*,\s*{ITEM})*)')
CITATION_START = re.compile(r'METHOD(?:\.md)?\s+§')
HEADING = re.compile(rf'^#{{1,6}}\s+§({SECTION_ID})(?=[\s.:]|$)', re.MULTILINE)
LINK = re.compile(r'\]\(\s*<?([^)\s>]+)>?[^)]*\)|^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)',
                  re.MULTILINE)


def section_ids(text: str) -> list[str]:
  """The section ids one citation names, ranges given by both ends."""
  ids = []
  for item in re.findall(ITEM, text):
    start, end = re.fullmatch(rf'§({SECTION_ID})(?:\s*[-–]\s*({RANGE_END}))?', item).groups()
    ids.append(start)
    if end is not None:
      end = end.lstrip('§')
      ids.append(start.rstrip('abcdefghijklmnopqrstuvwxyz') + end if end.isalpha() else end)
  return ids


def citations(text: str) -> list[tuple[int, str, list[str]]]:
  """(offset, citation text, section ids) of every citation in ``text``; a "METHOD §"
  that no citation parses gives an empty id list."""
  found = []
  for start in CITATION_START.finditer(text):
    match = CITATION.match(text, start.start())
    if match is None:
      found.append((start.start(), text[start.start():start.start() + 30], []))
    else:
      found.append((start.start(), match.group(0), section_ids(match.group(1))))
  return found


def cited_files() -> list[pathlib.Path]:
  files = []
  for folder in ('autoseed_jax', 'experiments', 'tests'):
    files += sorted((ROOT / folder).rglob('*.py'))
  files += [ROOT / 'README.md'] + sorted((ROOT / 'docs').rglob('*.md'))
  files += sorted((ROOT / 'experiments').rglob('*.md'))
  skip = {pathlib.Path(__file__).resolve(), METHOD_DOC}
  return [f for f in files if f.is_file() and f.resolve() not in skip]


def headings() -> list[str]:
  return HEADING.findall(METHOD_DOC.read_text(encoding='utf-8'))


@pytest.mark.parametrize('text, ids', [
    ('METHOD §4.3a-c).', ['4.3a', '4.3c']),
    ('METHOD §4.3a–c (en dash)', ['4.3a', '4.3c']),
    ('(METHOD §5-§7).', ['5', '7']),
    ('(METHOD §3, §4.1-4.2).', ['3', '4.1', '4.2']),
    ('(METHOD §1).', ['1']),
    ("METHOD §4.3d's scores", ['4.3d']),
    ('METHOD.md §1 says', ['1']),
    ('(METHOD §1, §6; the full design', ['1', '6']),
    ('(METHOD §4.2, used by the seed update)', ['4.2']),
    ('METHOD §6 metrics per method', ['6']),
    ('METHOD\n  §4.3c as written', ['4.3c']),
])
def test_citation_parsing(text, ids):
  (_, _, got), = citations(text)
  assert got == ids


def test_heading_parsing():
  text = '## §4 Phases\n### §4.3 Seed update\n#### §4.3a Condition\n## §8\n## Source\n# §x\n'
  assert HEADING.findall(text) == ['4', '4.3', '4.3a', '8']


def test_method_doc_headings_are_unique_and_cover_the_reading():
  ids = headings()
  assert len(ids) == len(set(ids)), ids
  # The shared reading's numbering, kept so that existing citations resolve.
  for wanted in ('1', '2', '3', '4', '4.1', '4.2', '4.3', '4.3a', '4.3b', '4.3c', '4.3d',
                 '5', '6', '7'):
    assert wanted in ids


def test_every_method_citation_resolves():
  known = set(headings())
  cited, unresolved = 0, []
  for path in cited_files():
    text = path.read_text(encoding='utf-8')
    for offset, cite, ids in citations(text):
      line = text.count('\n', 0, offset) + 1
      where = f'{path.relative_to(ROOT)}:{line}: {cite!r}'
      if not ids:
        unresolved.append(f'{where} (not a citation the parser reads)')
      for section in ids:
        cited += 1
        if section not in known:
          unresolved.append(f'{where} (no heading §{section} in docs/METHOD.md)')
  assert not unresolved, '\n'.join(unresolved)
  assert cited >= 40  # the code cites METHOD about 70 times; none found means a broken scan


def method_links(path: pathlib.Path) -> list[str]:
  """Link targets (the path part) in ``path`` whose file is METHOD.md."""
  targets = []
  for inline, reference in LINK.findall(path.read_text(encoding='utf-8')):
    target = (inline or reference).split('#', 1)[0]
    if target.split('/')[-1] == 'METHOD.md' and '://' not in target:
      targets.append(target)
  return targets


def test_links_to_method_doc_point_at_files_in_the_repository():
  pages = [ROOT / 'README.md'] + sorted((ROOT / 'docs').rglob('*.md'))
  pages += sorted((ROOT / 'experiments').rglob('README.md'))
  checked, broken = 0, []
  for page in pages:
    if not page.is_file():
      continue
    for target in method_links(page):
      checked += 1
      resolved = ((ROOT / target.lstrip('/')) if target.startswith('/')
                  else (page.parent / target)).resolve()
      if not resolved.is_file() or ROOT not in resolved.parents:
        broken.append(f'{page.relative_to(ROOT)}: ({target}) -> {resolved}')
  assert not broken, '\n'.join(broken)
  assert checked >= 1


def test_link_scan_reads_inline_and_reference_links(tmp_path):
  page = tmp_path / 'page.md'
  page.write_text('See [the method](../docs/METHOD.md#4-phases) and [x](other.md).\n'
                  '[ref]: ../shared/docs/METHOD.md\n', encoding='utf-8')
  assert method_links(page) == ['../docs/METHOD.md', '../shared/docs/METHOD.md']
