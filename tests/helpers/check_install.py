"""Installs the checkout with pip into a fresh virtual environment and runs docs/LIBRARY.md's
"compose with your own model" program from outside the checkout, offline.

  python tests/helpers/check_install.py [--keep DIR]

Steps (each failure exits 1 naming the step):
  1. copies the checkout's files (what git tracks or would track; no .venv, runs, build
     outputs) into a scratch directory, so that building leaves the checkout untouched;
  2. creates a virtual environment without packages and makes the dependencies visible
     through a ``.pth`` file naming the site-packages of the interpreter running this
     script (the project's pinned environment) - nothing is downloaded, and pip checks the
     package's declared dependencies against those installed versions;
  3. ``pip install --no-index --no-build-isolation <copy>`` into that environment (a wheel
     built from pyproject.toml, as ``pip install <checkout>`` would);
  4. from a directory outside the checkout, with no PYTHONPATH: imports the installed
     package (it must come from the new environment), loads the packaged assets (the
     offline backbone's LiT checkpoint, with MiniLM, and the CLIP BPE vocabulary) and
     runs docs/LIBRARY.md's composition program, which must print its result line.

Prints ``install check passed`` at the end. Used by tests/test_packaging.py.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
# Not part of a checkout's source (also when it is no git checkout).
_NOT_SOURCE = ('.git', '.venv', 'runs', 'build', 'dist', '.pytest_cache', '__pycache__',
               '*.egg-info', '.cache')
COMPOSE_MARKER = 'def train_step('
COMPOSE_RESULT = re.compile(r'consistency loss: \S+ at the first step, at most \S+; the old '
                            r'seeds moved by at most \S+')

ASSETS_CHECK = '''
import pathlib, sys
import numpy as np
import autoseed_jax as asj
from autoseed_jax.models import clip_tokenizer, offline_backbone
installed = pathlib.Path(asj.__file__).resolve()
assert installed.is_relative_to(pathlib.Path(sys.prefix).resolve()), installed
backbone = offline_backbone.load_offline_backbone()
image = backbone.encode_image(np.zeros((2, 28, 28, 1), np.uint8))
text = backbone.encode_text(['a black and white silhouette of a cat.'])
tokens = clip_tokenizer.get_tokenizer()(['a photo of a cat.'])
assert image.shape == (2, 384) and text.shape == (1, 384) and tokens[0, 0] == 49406
print('assets loaded from', installed.parent)
'''


LIBRARY_PAGE = ROOT / 'docs' / 'LIBRARY.md'


def docs_python_block(containing: str, page: pathlib.Path = LIBRARY_PAGE) -> str:
  """The one ```python block of the docs page that contains ``containing``."""
  blocks = re.findall(r'```python\n(.*?)```', page.read_text(), re.S)
  found = [b for b in blocks if containing in b]
  if len(found) != 1:
    raise ValueError(f'{page} has {len(found)} python blocks containing {containing!r}, '
                     'expected one.')
  return found[0]


def compose_example() -> str:
  """docs/LIBRARY.md's "compose with your own model" program."""
  return docs_python_block(COMPOSE_MARKER)


def copy_source(dest: pathlib.Path) -> None:
  """The checkout's source files into ``dest``."""
  listed = subprocess.run(['git', 'ls-files', '-co', '--exclude-standard', '-z'], cwd=ROOT,
                          capture_output=True)
  if listed.returncode == 0:
    for name in filter(None, listed.stdout.decode().split('\0')):
      source = ROOT / name
      if source.is_file():
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, dest / name)
  else:  # an unpacked archive: everything but environments and outputs
    shutil.copytree(ROOT, dest, ignore=shutil.ignore_patterns(*_NOT_SOURCE),
                    dirs_exist_ok=True)


def dependency_paths() -> list[str]:
  """The site-packages directories of the running interpreter."""
  paths = [p for p in sys.path if os.path.basename(p) in ('site-packages', 'dist-packages')]
  return list(dict.fromkeys(paths + [sysconfig.get_paths()['purelib']]))


def run(step: str, cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
  start = time.perf_counter()
  proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
  if proc.returncode != 0:
    sys.exit(f'install check failed at: {step}\n$ {" ".join(cmd)}\n'
             f'{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}')
  print(f'{step}: {time.perf_counter() - start:.1f} s', flush=True)
  return proc


def check_install(scratch: pathlib.Path) -> None:
  source, venv, outside = scratch / 'src', scratch / 'venv', scratch / 'elsewhere'
  for d in (source, outside):
    d.mkdir(parents=True)
  copy_source(source)
  run('create the virtual environment',
      [sys.executable, '-m', 'venv', '--without-pip', str(venv)])
  python = str(venv / 'bin' / 'python')
  purelib = run('find its site-packages', [python, '-c', 'import sysconfig; '
                                           'print(sysconfig.get_paths()["purelib"])'])
  site_packages = pathlib.Path(purelib.stdout.strip())
  (site_packages / 'zz_dependencies.pth').write_text('\n'.join(dependency_paths()) + '\n')
  env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'PYTHONHOME')}
  probe = subprocess.run([python, '-c', 'import autoseed_jax'], cwd=outside, env=env,
                         capture_output=True)
  if probe.returncode == 0:
    sys.exit('install check failed: autoseed_jax is importable before it is installed '
             '(an editable or earlier install in the dependencies); the check would prove '
             'nothing.')
  run('pip install the checkout',
      [python, '-m', 'pip', 'install', '--no-index', '--no-build-isolation',
       '--disable-pip-version-check', '-q', str(source)], cwd=outside, env=env)
  print(run('load the packaged assets', [python, '-c', ASSETS_CHECK], cwd=outside,
            env=env).stdout.strip())
  (outside / 'compose_example.py').write_text(compose_example())
  result = run("run docs/LIBRARY.md's composition program", [python, 'compose_example.py'],
               cwd=outside, env=env).stdout
  if not COMPOSE_RESULT.search(result):
    sys.exit(f'install check failed: the composition program printed {result!r}')
  print(result.strip())


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--keep', type=pathlib.Path,
                      help='work in this (new) directory and keep it; default: a temporary '
                      'directory, removed at the end')
  args = parser.parse_args()
  if args.keep is not None:
    check_install(args.keep)
  else:
    with tempfile.TemporaryDirectory(prefix='autoseed_install_check_') as scratch:
      check_install(pathlib.Path(scratch))
  print('install check passed')


if __name__ == '__main__':
  main()
