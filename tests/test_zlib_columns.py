"""zlib columns (`envlogger._zlib`).

Columns of large streams (frames) are split between the caller and a helper
thread when written and read: the same log either way, errors of the helper's
half raised, and a forked child uses a helper of its own. Small values that
repeat (boards) are compressed once (`Memo`): the same streams, in bounded
memory.
"""

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


class _CountingImpl:
  """Stands for the zlib implementation: counts the streams compressed."""

  def __init__(self, impl):
    self.impl = impl
    self.calls = 0

  def compress(self, data, level):
    self.calls += 1
    return self.impl.compress(data, level)


@pytest.fixture
def counted(monkeypatch):
  impl = _CountingImpl(_zlib._impl)
  monkeypatch.setattr(_zlib, '_impl', impl)
  return impl


def _rows(values: np.ndarray, picks) -> np.ndarray:
  return np.ascontiguousarray(values[np.asarray(picks)])


def test_memo_gives_the_streams_of_compress_each_compressing_each_value_once(counted):
  rng = np.random.default_rng(0)
  values = rng.integers(0, 4, size=(12, 200), dtype=np.uint8)  # 12 distinct "boards"
  memo = _zlib.Memo(200)
  calls = []
  for picks in ([0, 1, 1, 2, 0], [3, 3, 3], [2, 4, 0, 5, 5, 11], list(range(12)), [7]):
    rows = _rows(values, picks)
    before = counted.calls
    out = memo.compress_each(rows)
    calls.append(counted.calls - before)
    assert out == _zlib.compress_each(list(rows))  # the same bytes as without the memo
    assert [_zlib.decompress(s) for s in out] == [r.tobytes() for r in rows]
  # each distinct value was compressed once, at its first sight
  assert calls == [3, 1, 3, 5, 0]
  assert memo.memo.enabled


def test_memo_stays_bounded_and_turns_off_when_values_do_not_repeat(counted):
  rng = np.random.default_rng(1)
  memo = _zlib.Memo(200, max_bytes=20_000)
  for _ in range(20):  # noise: every value new
    rows = rng.integers(0, 256, size=(10, 200), dtype=np.uint8)
    assert memo.compress_each(rows) == _zlib.compress_each(list(rows))
    assert memo.memo.nbytes <= memo.memo.max_bytes
  assert not memo.memo.enabled and not memo.memo.values  # turned off, its memory freed
  rows = rng.integers(0, 256, size=(10, 200), dtype=np.uint8)
  before = counted.calls
  assert memo.compress_each(rows) == _zlib.compress_each(list(rows))
  assert counted.calls - before == 2 * 10  # compressed once here, once for the comparison


def test_memo_is_emptied_when_full_of_values_that_repeat(counted):
  rng = np.random.default_rng(2)
  hot = rng.integers(0, 256, size=(10, 200), dtype=np.uint8)
  memo = _zlib.Memo(200, max_bytes=20_000)  # room for ~40 values
  emptied = 0
  for _ in range(200):
    # 9 of 10 values are among 10 that repeat, 1 is seen once
    rows = np.concatenate(
      [hot[rng.integers(0, 10, size=9)], rng.integers(0, 256, size=(1, 200), dtype=np.uint8)]
    )
    size_before = len(memo.memo.values)
    assert memo.compress_each(rows) == _zlib.compress_each(list(rows))
    emptied += len(memo.memo.values) < size_before
    assert memo.memo.nbytes <= memo.memo.max_bytes
  assert emptied >= 3  # it filled up, and was emptied rather than turned off ...
  assert memo.memo.enabled  # ... because most of its lookups had found a stream
