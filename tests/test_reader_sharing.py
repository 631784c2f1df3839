"""One Reader used by several threads, and Readers pickled into other processes."""

from __future__ import annotations

import multiprocessing
import pickle
import shutil
import sys
import threading

import numpy as np
import pytest
from conftest import assert_step_equal
from envlogger13 import FIXTURES

import envlogger
from envlogger.testing import catch_env


def _log(directory, episodes: int, rows: int = 5, seed: int = 0) -> None:
  rng = np.random.default_rng(seed)
  with envlogger.EnvLogger(
    catch_env.Catch(rows=rows, seed=seed),
    data_directory=str(directory),
    step_fn=lambda ts, a, e: {'k': np.int64(rng.integers(1 << 40))},
  ) as env:
    for _ in range(episodes):
      ts = env.reset()
      while not ts.last():
        ts = env.step(int(rng.integers(3)))


def _steps(reader: envlogger.Reader, indexes) -> list:
  return [reader.steps[int(i)] for i in indexes]


def test_threads_share_one_reader(tmp_path):
  """Random episodes and steps from 4 threads through one Reader (its episode cache holds 8 of 40
  episodes, so the threads evict each other's entries) equal what one thread reads."""
  _log(tmp_path / 'log', episodes=40)
  with envlogger.Reader(tmp_path / 'log') as reader:
    expected_steps = list(reader.steps)
    expected_episodes = [list(ep) for ep in reader.episodes]
    errors = []

    def work(seed: int) -> None:
      rng = np.random.default_rng(seed)
      try:
        for _ in range(300):
          e = int(rng.integers(len(expected_episodes)))
          k = int(rng.integers(len(expected_episodes[e])))
          assert_step_equal(reader.episodes[e][k], expected_episodes[e][k], reader)
          i = int(rng.integers(len(expected_steps)))
          assert_step_equal(reader.steps[i], expected_steps[i], reader)
      except Exception as e:  # reported by the main thread  # noqa: BLE001
        errors.append(e)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
      threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
      for t in threads:
        t.start()
      for t in threads:
        t.join()
    finally:
      sys.setswitchinterval(interval)
    assert not errors, errors[:3]


def test_pickled_reader_reopens_the_directory(tmp_path):
  _log(tmp_path / 'log', episodes=6)
  with envlogger.Reader(tmp_path / 'log') as reader:
    data = pickle.dumps(reader)
    assert b'StepData' not in data and len(data) < 2000  # the directory and the index, not the steps
    with pickle.loads(data) as copy:
      assert len(copy.steps) == len(reader.steps)
      for got, want in zip(copy.steps, reader.steps, strict=True):
        assert_step_equal(got, want, reader)
      assert copy.metadata().keys() == reader.metadata().keys()
    # A copy() pickles too.
    with pickle.loads(pickle.dumps(reader.copy())) as copy:
      assert_step_equal(copy.steps[-1], reader.steps[-1], reader)


def test_pickled_reader_sees_appended_episodes_and_refuses_a_rewritten_log(tmp_path):
  _log(tmp_path / 'log', episodes=3)
  with envlogger.Reader(tmp_path / 'log') as reader:
    first = list(reader.steps)
    data = pickle.dumps(reader)
  _log(tmp_path / 'log', episodes=2, seed=1)  # appended by a second logger
  with pickle.loads(data) as copy:
    assert len(copy.episodes) == 5
    for got, want in zip(copy.steps, first, strict=False):
      assert_step_equal(got, want, copy)
  shutil.rmtree(tmp_path / 'log')
  _log(tmp_path / 'log', episodes=3, rows=4)  # another log: shorter episodes at the same indexes
  with pytest.raises(RuntimeError, match='no longer holds the episodes'):
    pickle.loads(data)


def test_reader_of_an_in_memory_log_does_not_pickle():
  env = envlogger.EnvLogger(catch_env.Catch(rows=3), backend='in_memory')
  env.reset()
  env.step(0)
  env.step(0)
  reader = envlogger.Reader(backend=env.backend)
  with pytest.raises(TypeError, match='in-memory'):
    pickle.dumps(reader)
  env.close()


def _read_in_worker(args) -> list:
  reader, indexes = args
  return [(s.action, s.timestep.reward, s.custom_data) for s in _steps(reader, indexes)]


@pytest.mark.parametrize('log', ['ours', 'riegeli'])
def test_readers_sent_to_worker_processes(tmp_path, log):
  """A multiprocessing Pool (spawn: nothing inherited) reads the same steps as the parent."""
  if log == 'ours':
    _log(tmp_path / 'log', episodes=5)
    directory = tmp_path / 'log'
  else:  # a log of DeepMind's envlogger 1.3
    directory = FIXTURES / 'catch_riegeli' / 'data'
  with envlogger.Reader(directory) as reader:
    n = len(reader.steps)
    chunks = [np.arange(k, n, 3) for k in range(3)]
    expected = [_read_in_worker((reader, c)) for c in chunks]
    with multiprocessing.get_context('spawn').Pool(2) as pool:
      got = pool.map(_read_in_worker, [(reader, c) for c in chunks])
  assert len(got) == 3
  for g, e in zip(got, expected, strict=True):
    assert len(g) == len(e) > 0
    for (ga, gr, gc), (ea, er, ec) in zip(g, e, strict=True):
      np.testing.assert_array_equal(ga, ea)
      np.testing.assert_array_equal(gr, er)
      assert pickle.dumps(gc) == pickle.dumps(ec)
