"""Crash safety, recovery, disk full: real subprocesses, real files, real signals."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import envlogger

HERE = os.path.dirname(os.path.abspath(__file__))
CHILD = os.path.join(HERE, 'children', 'log_until_killed.py')
sys.path.insert(0, os.path.join(HERE, 'children'))
import log_until_killed as child  # noqa: E402


def _check_episodes(reader: envlogger.Reader, indexes) -> None:
  """Every episode read is exactly what the child's env produced."""
  for pos, i in enumerate(indexes):
    ep = reader.episodes[pos]
    n = child.episode_length(i)
    assert len(ep) == n, f'episode {i}: {len(ep)} steps, expected {n}'
    assert not ep.cut_short
    for t, step in enumerate(ep):
      np.testing.assert_array_equal(step.timestep.observation, [i, t, i * t])
      if t:
        assert step.action == (i + 1) % 1000
        assert step.timestep.reward == (float(i) if t == n - 1 else 0.5)
    assert ep[-1].timestep.last()


def _recover(data_dir) -> subprocess.CompletedProcess:
  return subprocess.run(
    [sys.executable, '-m', 'envlogger', 'recover', str(data_dir)], capture_output=True, text=True, timeout=120
  )


@pytest.mark.parametrize('seed', [0, 1, 2, 3, 4])
def test_sigkill_at_a_random_moment_loses_no_finished_episode(tmp_path, seed):
  data_dir = tmp_path / 'log'
  proc = subprocess.Popen(
    [sys.executable, CHILD, str(data_dir), str(seed), 'forever'], stdout=subprocess.PIPE, text=True
  )
  rng = random.Random(seed)
  want = rng.randint(1, 120)  # finished episodes to wait for, then a random delay
  finished = -1
  for line in proc.stdout:
    finished = int(line.split()[1])
    if finished + 1 >= want:
      break
  time.sleep(rng.uniform(0, 0.02))
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  for line in proc.stdout.read().splitlines():  # reported before the kill landed
    finished = int(line.split()[1])
  with envlogger.Reader(data_dir) as r:  # at once, without recovery
    n = len(r.episodes)
    # The kill may land between an episode's write and its report.
    assert finished + 1 <= n <= finished + 2
    _check_episodes(r, range(n))
  first = _recover(data_dir)
  assert first.returncode == 0, first.stderr
  again = _recover(data_dir)
  assert again.returncode == 0, again.stderr
  assert 'moved' not in again.stdout and 'recovered' not in again.stdout.replace(' 0 recovered', '')
  with envlogger.Reader(data_dir) as r:
    assert len(r.episodes) == n
    _check_episodes(r, range(n))
    assert r.metadata()['seed'] == seed


def test_exit_without_close_keeps_finished_episodes_and_publishes(tmp_path):
  data_dir = tmp_path / 'log'
  out = subprocess.run(
    [sys.executable, CHILD, str(data_dir), '0', 'exit'], capture_output=True, text=True, timeout=120
  )
  assert out.returncode == 0, out.stderr
  with envlogger.Reader(data_dir) as r:
    _check_episodes(r, range(3))
    assert len(r.episodes) == 4  # the episode in flight, written at exit
    assert r.episodes[3].cut_short and len(r.episodes[3]) == 2
  info = (data_dir / 'envlogger' / '1.0.0' / 'dataset_info.json').read_text()
  assert '"numShards"' in info or '"shardLengths"' in info


@pytest.mark.parametrize('mode', ['fsize', 'fsize-sync'])
def test_file_size_limit_fails_at_the_step_and_keeps_earlier_episodes(tmp_path, mode):
  data_dir = tmp_path / 'log'
  out = subprocess.run(
    [sys.executable, CHILD, str(data_dir), '0', mode], capture_output=True, text=True, timeout=120
  )
  assert out.returncode == 0, out.stderr
  lines = out.stdout.splitlines()
  assert lines[-1] == 'closed'
  errors = [line for line in lines if line.startswith('error')]
  finished = [int(line.split()[1]) for line in lines if line.startswith('finished')]
  assert len(errors) == 3 and finished
  assert 'File too large' in errors[0] and 'before it are intact' in errors[0]
  if mode == 'fsize-sync':
    assert not any(line.startswith('close-error') for line in lines)
  # Every episode whose last step returned is readable (from the shards or,
  # with the journal, from the journal the logger kept).
  with envlogger.Reader(data_dir) as r:
    assert len(r.episodes) == len(finished)
    _check_episodes(r, finished)
  # The failed writes left no torn frame behind: recovery moves nothing aside,
  # and stores the journaled episodes in shards.
  rec = _recover(data_dir)
  assert rec.returncode == 0 and 'moved' not in rec.stdout, rec.stdout + rec.stderr
  with envlogger.Reader(data_dir) as r:
    assert len(r.episodes) == len(finished)
    _check_episodes(r, finished)
  assert not list((data_dir / 'envlogger' / '1.0.0').glob('envlogger_journal/*'))


def test_recover_on_a_directory_without_a_log_is_one_clear_line(tmp_path):
  out = _recover(tmp_path)
  assert out.returncode == 2
  assert out.stderr.strip().count('\n') == 0 and 'holds no envlogger log' in out.stderr


def _check_run(reader: envlogger.Reader, run_id: str, indexes) -> None:
  eps = [e for e in reader.episodes if e.run_id == run_id]
  eps.sort(key=lambda e: int(e.episode_id.rsplit('/', 1)[1]))
  assert len(eps) == len(indexes)
  for ep, i in zip(eps, indexes):
    n = child.episode_length(i)
    assert len(ep) == n and not ep.cut_short
    for t, step in enumerate(ep):
      np.testing.assert_array_equal(step.timestep.observation, [i, t, i * t])


def test_concurrent_writers_share_one_dataset(tmp_path):
  data_dir = tmp_path / 'log'
  procs = [
    subprocess.Popen(
      [sys.executable, CHILD, str(data_dir), str(w), 'count'], stdout=subprocess.PIPE, text=True
    )
    for w in range(1, 6)
  ]
  for p in procs:
    out, _ = p.communicate(timeout=300)
    assert p.returncode == 0 and out.strip() == 'closed'
  with envlogger.Reader(data_dir) as r:
    assert not r.problems
    assert len(r.episodes) == 5 * 40
    runs = r.runs()
    assert sorted(run['metadata']['seed'] for run in runs) == [1, 2, 3, 4, 5]
    for run in runs:
      first = run['metadata']['seed'] * 1000
      _check_run(r, run['run_id'], range(first, first + 40))
  # The last writer to close published every writer's shards.
  info = json.loads((data_dir / 'envlogger' / '1.0.0' / 'dataset_info.json').read_text())
  assert sum(int(n) for n in info['splits'][0]['shardLengths']) == 200


def test_reader_beside_a_live_writer(tmp_path):
  """While a writer runs, a Reader sees its finished episodes once the
  background writer stored them (within a second, or at `flush()`); a frame
  being written at the end of its shard is not reported as damage."""
  data_dir = tmp_path / 'log'
  env = envlogger.EnvLogger(child.CountingEnv(), data_directory=str(data_dir))
  for i in range(3):
    child.run_episode(env, i)
  env.reset()
  env.step(1)  # an episode in flight
  deadline, seen = time.monotonic() + 30, 0
  while seen < 3 and time.monotonic() < deadline:  # the writer thread takes a batch a second old
    with envlogger.Reader(data_dir) as r:
      seen = len(r.episodes)
    time.sleep(0.1)
  assert seen == 3
  env.backend.flush()  # waits until every finished episode is in a shard
  shard = next((data_dir / 'envlogger' / '1.0.0').glob('envlogger-train.tfrecord-*'))
  with open(shard, 'ab') as f:  # what a frame half-written by the live writer looks like
    f.write(b'\x40\x00\x00\x00\x00\x00\x00\x00half')
  with envlogger.Reader(data_dir) as r:
    assert r.problems == []
    _check_episodes(r, range(3))
  env.close()  # the writer's next write goes at its own offset, over the partial bytes
  with envlogger.Reader(data_dir) as r:
    assert len(r.episodes) == 4 and r.episodes[3].cut_short and r.problems == []
