"""Our tf.train.Example wire format against protobuf's own implementation."""

from __future__ import annotations

import numpy as np
import pytest
from tensorflow_datasets.proto import tf_example_pb2 as pb  # noqa: E402 (TFDS is a dependency)

from envlogger.backends import _example_wire as wire


def test_protobuf_parses_what_we_write():
  col = np.arange(12, dtype=np.float64).reshape(4, 3)
  data = wire.example(
    {
      'steps/x': wire.bytes_feature_fixed(col, 4),
      'steps/flag': wire.bool_feature(np.array([True, False, True, True])),
      'name': wire.bytes_feature([b'abc', b'', 'é'.encode()]),
      'empty': wire.bytes_feature_fixed(np.zeros((2, 0), np.int32), 2),
      'big': wire.bytes_feature([bytes(300)]),
    }
  )
  ex = pb.Example()
  ex.ParseFromString(data)
  f = ex.features.feature
  assert [np.frombuffer(v, np.float64).tolist() for v in f['steps/x'].bytes_list.value] == col.tolist()
  assert list(f['steps/flag'].int64_list.value) == [1, 0, 1, 1]
  assert list(f['name'].bytes_list.value) == [b'abc', b'', 'é'.encode()]
  assert list(f['empty'].bytes_list.value) == [b'', b'']
  assert list(f['big'].bytes_list.value) == [bytes(300)]


def test_we_parse_what_protobuf_writes():
  ex = pb.Example()
  f = ex.features.feature
  f['z'].int64_list.value.extend([0, 1, 300, -5, 2**40])
  f['a'].bytes_list.value.extend([b'\x00' * 8, b'\x01' * 8])
  f['m'].float_list.value.extend([1.5])
  f['e'].bytes_list.value.extend([])
  parsed = wire.parse_example(ex.SerializeToString())
  assert wire.int64_values(parsed['z'][1]).tolist() == [0, 1, 300, -5, 2**40]
  rows = wire.fixed_entries(parsed['a'][1], 2, 8)
  assert rows.tolist() == [[0] * 8, [1] * 8]
  assert wire.fixed_entries(parsed['a'][1], 2, 4) is None  # wrong layout is detected
  assert [bytes(e) for e in wire.bytes_entries(parsed['a'][1])] == [b'\x00' * 8, b'\x01' * 8]
  assert parsed['m'][0] == 2
  assert parsed['e'][0] == 1 and len(parsed['e'][1]) == 0


def test_truncated_input_is_an_error():
  data = wire.example({'k': wire.bytes_feature([b'hello'])})
  for cut in range(1, len(data)):
    with pytest.raises(wire.WireError):
      wire.parse_example(data[:cut])


def test_varints_round_trip_and_match_protobuf():
  rng = np.random.default_rng(0)
  values = np.concatenate(
    [
      np.array([0, 1, 127, 128, 300, -1, -(2**63), 2**63 - 1], dtype=np.int64),
      rng.integers(-(2**62), 2**62, size=200, dtype=np.int64),
    ]
  )
  data = wire.example({'v': wire.int64_feature(values), 'small': wire.int64_feature(np.arange(5))})
  ex = pb.Example()
  ex.ParseFromString(data)
  assert list(ex.features.feature['v'].int64_list.value) == values.tolist()
  assert list(ex.features.feature['small'].int64_list.value) == [0, 1, 2, 3, 4]
  parsed = wire.parse_example(data)
  np.testing.assert_array_equal(wire.int64_values(parsed['v'][1]), values)
  u = np.array([0, 2**64 - 1, 2**63], dtype=np.uint64)
  got = wire.int64_values(
    wire.parse_example(wire.example({'u': wire.int64_feature(u.view(np.int64))}))['u'][1]
  )
  np.testing.assert_array_equal(got.view(np.uint64), u)
  # Short columns (up to 64 values, an episode's actions) of every integer
  # dtype: one byte each when all are in [0, 127], else the general path.
  for column in (
    np.array([3, 127, 0], np.uint8),
    np.array([[1, 2], [0, 126]], np.int32),
    np.array([5, 128, 1], np.int16),
    np.array([4, -1], np.int8),
    np.arange(64, dtype=np.int64) * 2,
    np.zeros(0, np.int64),
  ):
    ex.ParseFromString(wire.example({'c': wire.int64_feature(column)}))
    assert list(ex.features.feature['c'].int64_list.value) == column.ravel().tolist()


def _as_bytes(parsed):
  return {k: (kind, bytes(p)) for k, (kind, p) in parsed.items()}


def test_parse_like_agrees_with_parse_example_or_declines():
  def features(n, name=b'ep'):
    return {
      'steps/observation': wire.bytes_feature(
        [bytes([i]) * (5 + 40 * i) for i in range(n)]
      ),  # lengths >= 128
      'steps/is_first': wire.bool_feature(np.arange(n) == 0),
      'episode_id': wire.bytes_feature([name]),
      'empty': wire.bytes_feature([]),
    }

  first = wire.example(features(3))
  layout = wire.layout_of(wire.parse_example(first))
  for data in (first, wire.example(features(1)), wire.example(features(7, b'x' * 200))):  # other lengths
    assert _as_bytes(wire.parse_like(data, layout)) == _as_bytes(wire.parse_example(data))
  # Laid out otherwise: declined, never misread.
  reordered = wire.example(dict(reversed(list(features(3).items()))))
  others = [
    wire.example({'steps/observation': wire.bytes_feature([b'a'])}),  # fewer keys
    *(first[:cut] for cut in range(len(first))),  # truncated
  ]
  ex = pb.Example()
  for key, _ in layout:
    ex.features.feature[key].bytes_list.value.append(b'v')
  others.append(ex.SerializeToString())  # protobuf orders map entries its own way
  for data in others:
    got = wire.parse_like(data, layout)
    if got is not None:
      assert _as_bytes(got) == _as_bytes(wire.parse_example(data))
  assert wire.parse_like(reordered, layout) is None
  assert all(wire.parse_like(first[:cut], layout) is None for cut in range(len(first)))
  # An entry more than the layout has: declined.
  assert wire.parse_like(wire.example({**features(3), 'extra': wire.bytes_feature([b'a'])}), layout) is None
