"""The examples run as users run them (subprocesses) and do what they say."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import REPO

import envlogger


def test_multiprocess_actors_example(tmp_path):
  d = str(tmp_path / 'log')
  out = subprocess.run(
    [sys.executable, os.path.join(REPO, 'examples', 'multiprocess_actors.py'), '--data_directory', d,
     '--actors', '4', '--episodes', '12'],
    capture_output=True, text=True, timeout=300, cwd=REPO,
  )  # fmt: skip
  assert out.returncode == 0, out.stderr[-3000:]
  for a in range(4):
    assert f'actor {a}: 12 episodes' in out.stdout
  with envlogger.Reader(d) as r:
    assert len(r.episodes) == 48 and len(r.runs()) == 4 and not r.problems
