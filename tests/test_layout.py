"""The package's layout by role: no import cycle among the library's modules, no library
module importing the repository's ``experiments``, at most 12 entries at the top of
``autoseed_jax/``. Imports are read from the source (every ``import`` statement,
function-local ones included), so nothing is imported to check."""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / 'autoseed_jax'


def module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(ROOT).with_suffix('').parts
  return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def library_modules() -> dict[str, pathlib.Path]:
  return {module_name(p): p for p in PACKAGE.rglob('*.py')}


def imported_modules(path: pathlib.Path, known: set[str]) -> set[str]:
  """The modules of ``known`` (and any ``experiments`` module) that ``path`` imports: for
  ``from a.b import c`` the module ``a.b.c`` when it is one, else ``a.b``."""
  found = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      found.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      for alias in node.names:
        full = f'{node.module}.{alias.name}'
        found.add(full if full in known else node.module)
  return {m for m in found if m in known or m.split('.')[0] == 'experiments'}


def import_graph() -> dict[str, set[str]]:
  modules = library_modules()
  known = set(modules)
  return {name: imported_modules(path, known) - {name} for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
  """One cycle of ``graph`` as a list of modules (first == last), or None."""
  state, stack = {}, []

  def visit(node):
    state[node] = 'open'
    stack.append(node)
    for nxt in sorted(graph.get(node, ())):
      if state.get(nxt) == 'open':
        return stack[stack.index(nxt):] + [nxt]
      if nxt not in state:
        cycle = visit(nxt)
        if cycle:
          return cycle
    stack.pop()
    state[node] = 'done'
    return None

  for node in sorted(graph):
    if node not in state:
      cycle = visit(node)
      if cycle:
        return cycle
  return None


def test_find_cycle_finds_one_and_only_one():
  assert find_cycle({'a': {'b'}, 'b': {'c'}, 'c': set()}) is None
  assert find_cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}) == ['a', 'b', 'c', 'a']


def test_no_import_cycle_among_the_library_modules():
  graph = import_graph()
  assert len(graph) > 50
  cycle = find_cycle(graph)
  assert cycle is None, ' -> '.join(cycle)


def test_no_library_module_imports_experiments():
  offenders = {name: sorted(m for m in deps if m.split('.')[0] == 'experiments')
               for name, deps in import_graph().items()}
  assert not {k: v for k, v in offenders.items() if v}


def test_the_core_imports_nothing_above_it():
  """``autoseed_jax.core`` is the bottom layer: it imports neither the engine, the methods,
  the streams, the reports nor the tools."""
  above = ('autoseed_jax.continual', 'autoseed_jax.methods', 'autoseed_jax.streams',
           'autoseed_jax.report', 'autoseed_jax.tools', 'autoseed_jax.runner',
           'autoseed_jax.main', 'autoseed_jax.seed_axis')
  for name, deps in import_graph().items():
    if name.startswith('autoseed_jax.core'):
      assert not [d for d in deps if d.startswith(above)], name


def test_at_most_twelve_entries_at_the_top_of_the_package():
  entries = sorted(p.name for p in PACKAGE.iterdir()
                   if p.name != '__pycache__' and not p.name.endswith('.egg-info'))
  assert len(entries) <= 12, entries
