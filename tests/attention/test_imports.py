"""The attention package imports nothing else of the project and its modules form no import cycle.

Imports are read from the source (every `import` statement, also those inside functions, which would
otherwise hide a cycle until call time).
"""

import ast
import pathlib

import attention_research.attention as package

PACKAGE = 'attention_research.attention'
ROOT = pathlib.Path(package.__file__).parent
MODULES = {p.stem: p for p in ROOT.glob('*.py')}  # '__init__' stands for the package itself


def _imported(path):
  """Modules of the package that `path` imports (submodule stems, or '__init__' for the package)."""
  found = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
      names = [f'{node.module}.{a.name}' for a in node.names]
    else:
      continue
    for name in names:
      assert not name.startswith('attention_research.') or name.startswith(PACKAGE) \
          or name == 'attention_research.attention', f'{path.name} imports {name} from outside the package'
      if name == PACKAGE:
        found.add('__init__')
      elif name.startswith(PACKAGE + '.'):
        stem = name[len(PACKAGE) + 1:].split('.')[0]
        found.add(stem if stem in MODULES else '__init__')  # `from package import fn` runs the package
  return found


def test_attention_modules_form_no_import_cycle():
  graph = {stem: _imported(path) - {stem} for stem, path in MODULES.items()}
  state = {}

  def visit(stem, path):
    state[stem] = 'open'
    for dep in sorted(graph[stem]):
      assert state.get(dep) != 'open', f'import cycle: {" -> ".join(path + [dep])}'
      if dep not in state:
        visit(dep, path + [dep])
    state[stem] = 'done'

  for stem in sorted(graph):
    if stem not in state:
      visit(stem, [stem])
  assert graph['flash'] and 'dot_product' not in graph['flash'] and '__init__' not in graph['flax_adapter']


def test_the_cycle_check_sees_imports_inside_functions(tmp_path):
  source = tmp_path / 'late.py'
  source.write_text('def f():\n  from attention_research import attention\n')
  assert _imported(source) == {'__init__'}
