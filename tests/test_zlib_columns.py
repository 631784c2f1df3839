"""Columns of large zlib streams (frames) are split between the caller and a
helper thread when written and read (`envlogger._zlib`): the same log either
way, errors of the helper's half raised, and a forked child uses a helper of
its own."""

from __future__ import annotations

import hashlib
import multiprocessing

import numpy as np
import pytest
import tree
from dm_env import specs

import envlogger
from envlogger import _zlib
from envlogger.testing import spec_env

# 2304 bytes a step: a zlib leaf that ISA-L inflates (at least _zlib.SMALL).
FRAME = specs.BoundedArray((24, 32, 3), np.uint8, 0, 255, name='frame')


@pytest.fixture
def split_every_column(monkeypatch):
  """Every column of 2 streams or more is split (on any machine); counts the splits."""
  monkeypatch.setattr(_zlib, 'PARALLEL_MIN_BYTES', 1)
  monkeypatch.setattr(_zlib.os, 'cpu_count', lambda: 2)
  splits = []
  two_halves = _zlib._two_halves

  def counting(n, nbytes):
    pool = two_halves(n, nbytes)
    splits.append(pool is not None)
    return pool

  monkeypatch.setattr(_zlib, '_two_halves', counting)
  return splits


def _log(path) -> None:
  env = spec_env.SpecEnv(FRAME, specs.DiscreteArray(3), episode_lengths=(40, 7, 1), seed=3)
  with envlogger.EnvLogger(env, data_directory=str(path)) as logger:
    for _ in range(3):
      ts = logger.reset()
      while not ts.last():
        ts = logger.step(1)


def _read_all(path) -> list:
  with envlogger.Reader(path) as r:
    return [r.episodes[i].as_rlds()['steps'] for i in range(len(r.episodes))]


def _same(a: list, b: list) -> None:
  assert len(a) == len(b)
  for x, y in zip(a, b):
    tree.map_structure(np.testing.assert_array_equal, x, y)


def test_split_columns_write_and_read_the_same_log(tmp_path, split_every_column):
  _log(tmp_path / 'split')
  assert any(split_every_column)  # the write split its columns
  read_split = _read_all(tmp_path / 'split')
  split_every_column.clear()
  _read_all(tmp_path / 'split')
  assert any(split_every_column)  # and so did the read
  _zlib.PARALLEL_MIN_BYTES = 1 << 62  # (restored by monkeypatch) from here on: one thread
  _log(tmp_path / 'whole')
  _same(read_split, _read_all(tmp_path / 'whole'))
  _same(read_split, _read_all(tmp_path / 'split'))


def test_errors_of_the_helpers_half_are_raised(split_every_column):
  size = 3000
  frames = [bytes([i]) * size for i in range(6)]
  streams = _zlib.compress_each(frames)
  ten_bytes = _zlib.compress_each([bytes(10)])[0]
  split_every_column.clear()
  out = bytearray(6 * size)
  _zlib.decompress_into(streams, size, memoryview(out))
  assert bytes(out) == b''.join(frames)
  truncated = [*streams[:5], streams[5][:-3]]  # the last stream: the helper's half
  with pytest.raises(_zlib.error):
    _zlib.decompress_into(truncated, size, memoryview(bytearray(6 * size)))
  short = [*streams[:4], ten_bytes, streams[5]]
  with pytest.raises(ValueError, match=f'not {size}'):
    _zlib.decompress_into(short, size, memoryview(bytearray(6 * size)))
  assert split_every_column == [True] * 3  # each inflate was split


def _digest(path: str, queue) -> None:
  h = hashlib.sha256()
  for steps in _read_all(path):
    h.update(steps['observation'].tobytes())
  queue.put(h.hexdigest())


def test_a_forked_child_splits_columns_with_a_helper_of_its_own(tmp_path, split_every_column):
  _log(tmp_path / 'log')
  mine = multiprocessing.get_context('fork').SimpleQueue()
  _digest(str(tmp_path / 'log'), mine)  # the helper thread now runs in this process
  ctx = multiprocessing.get_context('fork')
  theirs = ctx.SimpleQueue()
  child = ctx.Process(target=_digest, args=(str(tmp_path / 'log'), theirs))
  child.start()
  child.join(60)
  assert child.exitcode == 0  # not hung on the parent's helper, which the child does not have
  assert theirs.get() == mine.get()
