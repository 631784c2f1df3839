"""Records walked together (`envlogger.backends._batch_walk`): the same episodes as
decoding each record alone, for the layouts only that path reads at once
(zlib leaves of any stream length, long and short episodes mixed, boards that
repeat), for records it must leave to the per-record parser (another key
order, unpacked integers), and for damage found while decoding.
"""

from __future__ import annotations

import numpy as np
import pytest
import tree
from dm_env import specs

import envlogger
from envlogger import _tfrecord, rlds
from envlogger.backends import _batch_decode, _batch_walk
from envlogger.backends import _example_wire as wire
from envlogger.testing import catch_env, spec_env


def _log(path, env, episodes: int, policy=lambda e, t: 1) -> None:
  with envlogger.EnvLogger(env, data_directory=str(path)) as logger:
    for e in range(episodes):
      ts, t = logger.reset(), 0
      while not ts.last():
        ts = logger.step(policy(e, t))
        t += 1


def _assert_columns_as_episodes(r: envlogger.Reader, idx) -> None:
  """`as_columns(idx)` equals the episodes read one by one, joined."""
  got = r.as_columns(idx)
  eps = [r.episodes[int(i)].as_rlds() for i in idx]
  want = tree.map_structure(lambda *c: np.concatenate(c), *[e['steps'] for e in eps])
  tree.assert_same_structure(got['steps'], want)
  for g, w in zip(tree.flatten(got['steps']), tree.flatten(want)):
    assert g.dtype == w.dtype and g.shape == w.shape
    np.testing.assert_array_equal(g, w)
  assert got['episode_id'] == [e['episode_id'] for e in eps]
  np.testing.assert_array_equal(got['episode_lengths'], [len(r.episodes[int(i)]) for i in idx])


def test_frames_of_long_and_short_episodes(tmp_path, walked):
  """Incompressible 16 KiB frames (zlib streams with three-byte lengths) and
  compressible ones (two-byte lengths); one long episode among short ones: its
  steps past the others' are read record by record."""
  obs = {'noise': specs.Array((128, 128), np.uint8), 'flat': specs.Array((64, 64), np.uint8)}
  env = spec_env.SpecEnv(
    obs, specs.DiscreteArray(3), episode_lengths=(40, 2, 3, 2, 2, 3, 2, 2, 2, 3, 2), seed=3
  )
  _log(tmp_path / 'log', env, 11)
  with envlogger.Reader(tmp_path / 'log') as r:
    _assert_columns_as_episodes(r, range(11))
    _assert_columns_as_episodes(r, [10, 0, 3, 3, 7, 1, 2, 9, 8, 5])
  assert max(walked) >= 10


def test_boards_that_repeat_are_inflated_once_and_read_exactly(tmp_path, walked, monkeypatch):
  """Catch boards repeat across a batch; every stream hashing alike (a collision
  on every pair) must still give each step its own board."""
  _log(tmp_path / 'log', catch_env.Catch(seed=1), 60, policy=lambda e, t: (e + t) % 3)
  with envlogger.Reader(tmp_path / 'log') as r:
    _assert_columns_as_episodes(r, range(60))
    inflated = []
    inflate_column = _batch_walk.C.inflate_column
    monkeypatch.setattr(
      _batch_walk.C, 'inflate_column', lambda lf, e: inflated.append(len(e)) or inflate_column(lf, e)
    )
    cols = r.as_columns()
    assert 0 < inflated[0] < len(cols['steps']['observation'])  # each distinct board once
    monkeypatch.setattr(_batch_walk, '_hash', lambda words, lengths: np.zeros(len(words), np.uint64))
    _assert_columns_as_episodes(r, range(60))
  assert min(n for n in walked if n) >= 60


def _assert_batches_equal(got: rlds.EpisodeBatch, want: rlds.EpisodeBatch) -> None:
  for field, leaves in want.columns.items():
    for g, w in zip(got.columns[field], leaves):
      assert g.dtype == w.dtype
      np.testing.assert_array_equal(g, w)
  for name in ('is_first', 'is_last', 'is_terminal', 'lengths', 'cut_short', 'invalid'):
    np.testing.assert_array_equal(getattr(got, name), getattr(want, name))
  assert got.episode_id == want.episode_id and got.run_id == want.run_id


def _example(feats: dict) -> bytes:
  """An Example of parsed features {key: (list kind, payload)}, in their order."""
  return wire.example(
    {k: bytes([kind << 3 | 2]) + wire.varint(len(p)) + bytes(p) for k, (kind, p) in feats.items()}
  )


def test_records_of_another_layout_are_parsed_alone(tmp_path, walked, monkeypatch):
  """Records in another key order, and one with unpacked integers, are left to
  the per-record parser; the others are walked; the result is the same."""
  _log(tmp_path / 'log', catch_env.Catch(seed=2), 12, policy=lambda e, t: t % 3)
  with envlogger.Reader(tmp_path / 'log') as r:
    source = r._source
    codec = source._codec
    records = list(source._read_records(np.arange(12)))
  feats = [wire.parse_example(rec) for rec in records]
  reordered = {3, 7}
  for i in reordered:  # the same features, serialized in reverse order
    records[i] = _example(dict(reversed(feats[i].items())))
  # Episode 9's actions as unpacked varints (field 1, wire type 0, one per value): valid protobuf.
  kind, payload = feats[9]['steps/action']
  unpacked = b''.join(b'\x08' + wire.varint(int(v)) for v in wire.int64_values(payload))
  feats[9]['steps/action'] = (kind, memoryview(unpacked))
  records[9] = _example(feats[9])
  parsed = []
  decode_parsed = _batch_decode._decode_parsed
  monkeypatch.setattr(
    _batch_decode,
    '_decode_parsed',
    lambda c, recs, fields=None: parsed.append(len(recs)) or decode_parsed(c, recs, fields),
  )
  got = _batch_decode.decode_many(codec, records)
  want = rlds.concat_episodes([codec.decode(rec) for rec in records], codec.casters)
  assert parsed == [3]
  _assert_batches_equal(got, want)


def test_a_bad_zlib_stream_names_its_episode(tmp_path, walked):
  """A stream that does not inflate, in a record whose checksums are intact: the
  columnar read raises DamagedEpisodeError naming that episode."""
  _log(tmp_path / 'log', catch_env.Catch(seed=3), 20)
  shard = next((tmp_path / 'log').glob('*/*/*.tfrecord-00000'))
  with envlogger.Reader(tmp_path / 'log') as r:
    offset = int(r._source._state['offset'][13])
    length = int(r._source._state['length'][13])
  data = bytearray(shard.read_bytes())
  record = bytes(data[offset + 12 : offset + 12 + length])
  at = record.index(b'x') + 3  # inside the first zlib stream (after its 0x78 header)
  bad = record[:at] + bytes([record[at] ^ 0xFF]) + record[at + 1 :]
  data[offset : offset + 16 + length] = _tfrecord.frame(bad)
  shard.write_bytes(bytes(data))
  with envlogger.Reader(tmp_path / 'log') as r:
    _assert_columns_as_episodes(r, range(13))
    with pytest.raises(envlogger.DamagedEpisodeError, match='episode 13'):
      r.as_columns()
  assert max(walked) >= 13


def test_small_batches_are_parsed_record_by_record(tmp_path, monkeypatch):
  """Under MIN_WALK records, a walk's fixed cost is more than parsing each."""
  _log(tmp_path / 'log', catch_env.Catch(seed=4), 50)
  walks = []
  monkeypatch.setattr(_batch_walk, 'decode', lambda codec, records, fields=None: walks.append(len(records)))
  with envlogger.Reader(tmp_path / 'log') as r:
    _assert_columns_as_episodes(r, range(_batch_decode.MIN_WALK - 1))
    assert walks == []


def test_damaged_records_never_decode_to_other_values(tmp_path, walked):
  """Records with random bytes changed (checksums aside: as if written so):
  decoding them together either raises, or gives what decoding each gives; it
  never returns other values. (The Reader falls back to decoding each when a
  batch raises.)"""
  _log(tmp_path / 'log', catch_env.Catch(seed=5), 40, policy=lambda e, t: (e * t) % 3)
  with envlogger.Reader(tmp_path / 'log') as r:
    codec = r._source._codec
    base = list(r._source._read_records(np.arange(40)))
  rng = np.random.default_rng(7)
  outcomes = {'equal': 0, 'raised': 0}
  for _ in range(150):
    records = list(base)
    for _ in range(int(rng.integers(1, 4))):
      i = int(rng.integers(len(records)))
      damaged = bytearray(records[i])
      damaged[int(rng.integers(len(damaged)))] = int(rng.integers(256))
      records[i] = bytes(damaged)
    try:
      got = _batch_decode.decode_many(codec, records)
    except ValueError:  # WireError included
      outcomes['raised'] += 1
      continue
    want = rlds.concat_episodes([codec.decode(rec) for rec in records], codec.casters)
    _assert_batches_equal(got, want)
    outcomes['equal'] += 1
  assert outcomes['equal'] > 10 and outcomes['raised'] > 10  # both cases were exercised
  assert max(walked) >= 30  # and the walk decoded the batches that fit it
