"""Memos of derived bytes (`envlogger._memo`): zlib streams of small values and
map entries of small columns are remembered while logging, and the records
written are byte for byte those written without them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import Recorder, assert_step_equal
from dm_env import specs

import envlogger
from envlogger import _memo, _schema
from envlogger.backends import _tfds_codec
from envlogger.testing import spec_env

OBS = {
  'board': specs.BoundedArray((4, 8), np.float32, 0.0, 1.0),  # 128 bytes: zlib, memo
  'empty': specs.Array((0, 3), np.float32),  # zero-size: no memo (its bytes do not give the length)
  'small': specs.Array((2,), np.float64),
}


class BoardsEnv(spec_env.SpecEnv):
  """SpecEnv whose boards repeat (8 values) and whose rewards are sparse."""

  def __init__(self, **kwargs):
    super().__init__(OBS, specs.DiscreteArray(3), **kwargs)
    self._rng = np.random.default_rng(3)
    self._boards = np.eye(8, dtype=np.float32)[:, None, :].repeat(4, axis=1)

  def _fix(self, ts):
    obs = dict(ts.observation, board=self._boards[self._rng.integers(8)])
    return ts._replace(observation=obs, reward=np.float64(1.0 if ts.last() else 0.0))

  def reset(self):
    return self._fix(super().reset())

  def step(self, action):
    return self._fix(super().step(action))


def test_records_are_the_bytes_written_without_memos(tmp_path, monkeypatch):
  # Small memos, so that they fill up, and are emptied or turned off on the way.
  monkeypatch.setattr(_tfds_codec, 'ZLIB_MEMO_MAX_BYTES', 1500)
  monkeypatch.setattr(_tfds_codec, 'ENTRY_MEMO_MAX_BYTES', 3000)
  full = []
  check = _memo.Memo.check

  def counting_check(memo):
    was_full = memo.nbytes >= memo.max_bytes
    check(memo)
    if was_full:
      full.append(memo.enabled)

  monkeypatch.setattr(_memo.Memo, 'check', counting_check)
  lengths = (5, 1, 9, 5, 2, 5, 7, 1, 5, 5)
  env = BoardsEnv(episode_lengths=lengths, terminations=(True, True, False), seed=0)
  rec = Recorder(envlogger.EnvLogger(env, data_directory=str(tmp_path)))
  for k in range(60):
    ts = rec.reset()
    while not ts.last():
      ts = rec.step(k % 3 if k % 4 else 1)
  rec.close()
  assert True in full and False in full  # memos were emptied, and others turned off
  with envlogger.Reader(tmp_path) as r:
    assert len(r.steps) == len(rec.truth.steps)
    for actual, expected in zip(r.steps, rec.truth.steps):  # what the env gave
      assert_step_equal(actual, expected, r)
    for ep, truth in zip(r.episodes, rec.truth.episodes):  # and the RLDS flags
      flags = ep.as_rlds()['steps']
      n = len(truth)
      np.testing.assert_array_equal(flags['is_first'], np.arange(n) == 0)
      np.testing.assert_array_equal(flags['is_last'], np.arange(n) == n - 1)
      terminal = truth[-1].timestep.discount == 0
      np.testing.assert_array_equal(flags['is_terminal'], (np.arange(n) == n - 1) & terminal)
    source = r._source
    # A codec of the log without memos re-encodes every decoded episode.
    monkeypatch.setattr(_tfds_codec, 'MEMO_MAX_STEP_BYTES', -1)
    monkeypatch.setattr(_tfds_codec, 'ENTRY_MEMO_MAX_COLUMN_BYTES', -1)
    plain = _tfds_codec.Codec(source.schema, source.log_info['encodings'])
    assert all(leaf.memo is None for leaf in plain.step_leaves['observation'])
    for i in range(len(r.episodes)):
      assert plain.encode(source.read_episode(i)) == source._read_record(i), f'episode {i}'


@pytest.mark.parametrize('repeat', [True, False])
def test_memo_turns_off_when_lookups_rarely_find_a_value(repeat):
  memo = _memo.Memo(max_bytes=10_000)
  rng = np.random.default_rng(0)
  for _ in range(500):
    key = bytes([int(rng.integers(4))]) if repeat else rng.bytes(16)
    if memo.enabled:
      assert memo.derive(key, lambda k: k * 2, key) == key * 2
    assert memo.nbytes <= memo.max_bytes
  assert memo.enabled == repeat


def test_the_memos_of_a_codec_share_a_bounded_budget():
  many = {f'board{i}': specs.Array((4, 8), np.float32) for i in range(40)}  # 40 compressed leaves
  many.update({f'x{i}': specs.Array((), np.float64) for i in range(40)})  # 40 small raw leaves
  schema = _schema.Schema(
    observation_spec=many,
    action_spec=specs.DiscreteArray(3),
    reward_spec=specs.Array((), np.float64),
    discount_spec=specs.Array((), np.float64),
  )
  codec = _tfds_codec.Codec(schema)
  leaves = codec.step_leaves['observation']
  zlib_memos = [lf.memo.memo for lf in leaves if lf.memo is not None]
  entry_memos = [lf.entries for lfs in codec.step_leaves.values() for lf in lfs if lf.entries is not None]
  assert len(zlib_memos) == 40 and len(entry_memos) == 43  # 40 x, action, reward, discount
  assert sum(m.max_bytes for m in zlib_memos) <= _tfds_codec.ZLIB_MEMOS_MAX_BYTES
  assert sum(m.max_bytes for m in entry_memos) <= _tfds_codec.ENTRY_MEMOS_MAX_BYTES
  # One leaf alone keeps the per-leaf cap.
  one = _tfds_codec.Codec(dataclasses.replace(schema, observation_spec=many['board0']))
  assert one.step_leaves['observation'][0].memo.memo.max_bytes == _tfds_codec.ZLIB_MEMO_MAX_BYTES


def test_reads_with_the_inflate_memo_equal_reads_without(tmp_path, monkeypatch):
  env = BoardsEnv(episode_lengths=(5, 1, 9, 5, 2), seed=1)
  with envlogger.EnvLogger(env, data_directory=str(tmp_path)) as logger:
    for _ in range(40):
      ts = logger.reset()
      while not ts.last():
        ts = logger.step(1)

  def read_all():
    with envlogger.Reader(tmp_path) as r:
      leaf = r._source._codec.step_leaves['observation'][0]
      episodes = [r.episodes[i].as_rlds()['steps']['observation']['board'] for i in range(len(r.episodes))]
      columns = r.as_columns()['steps']['observation']['board']
      return leaf, episodes, columns

  leaf, remembered, columns = read_all()
  assert leaf.inflated is not None and leaf.inflated.memo.hits > 0  # boards were found in it
  monkeypatch.setattr(_tfds_codec, 'MEMO_MAX_STEP_BYTES', -1)
  leaf, plain, plain_columns = read_all()
  assert leaf.inflated is None
  assert len(remembered) == len(plain) == 40
  for a, b in zip(remembered, plain):
    np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(columns, plain_columns)
