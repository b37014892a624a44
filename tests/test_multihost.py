"""Two CPU processes ("hosts") on loopback give the single-process result."""

import json
import os
import socket
import subprocess
import sys

import numpy as np

from helpers import TEST_XLA_FLAGS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, 'tests/helpers/multihost_run.py')


def _free_port():
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def test_two_process_run_equals_single_process(tmp_path):
  env = dict(os.environ, JAX_PLATFORMS='cpu', XLA_FLAGS=TEST_XLA_FLAGS)  # one device each
  single = tmp_path / 'single.json'
  multi = tmp_path / 'multi.json'
  port = _free_port()
  procs = [subprocess.Popen(
      [sys.executable, SCRIPT, str(multi), '--distributed'], cwd=ROOT,
      env=dict(env, JAX_COORDINATOR_ADDRESS=f'localhost:{port}', JAX_NUM_PROCESSES='2',
               JAX_PROCESS_ID=str(i)),
      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
  outputs = [p.communicate(timeout=600)[0] for p in procs]
  for p, out in zip(procs, outputs):
    assert p.returncode == 0, out[-3000:]
  proc = subprocess.run([sys.executable, SCRIPT, str(single)], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]

  a, b = json.load(open(single)), json.load(open(multi))
  assert (b['processes'], b['devices']) == (2, 2)
  assert (a['processes'], a['devices']) == (1, 1)
  np.testing.assert_allclose(b['acc_matrix'], a['acc_matrix'], atol=1e-4)
  np.testing.assert_allclose(b['memory_v'], a['memory_v'], atol=1e-5)
