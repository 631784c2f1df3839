"""envlogger._riegeli.storage: EnvLogger 1.3's Data/Datum schema and value codec.

Ground truth: `tests/fixtures/envlogger13/catch_riegeli/expected.json` (records written by the original
and the values its Reader decoded from them). Other encodings are built here with `encode13`, the 1.3
codec's encoding rules restated in our own code (checked to reproduce the fixture records byte for byte), and
compared with `reference_decode`, a straightforward decoder over protobuf message objects that states
the module's rules (so the wire walker is checked against protobuf's own parsing, merge rules included).
"""

from __future__ import annotations

import base64
import enum
import json
import math
import pathlib
import random
import subprocess
import sys
from typing import Any

import dm_env
import numpy as np
import pytest
from dm_env import specs
from envlogger13 import assert_same, assert_same_spec, from_typed
from google.protobuf import descriptor_pb2, descriptor_pool

from envlogger._riegeli import storage
from envlogger._riegeli.storage import Data, Datum, StorageError

FIXTURE = pathlib.Path(__file__).parent / 'fixtures' / 'envlogger13' / 'catch_riegeli' / 'expected.json'


@pytest.fixture(scope='module')
def expected() -> dict[str, Any]:
  return json.loads(FIXTURE.read_text())


@pytest.fixture(scope='module')
def records(expected) -> list[bytes]:
  return [base64.b64decode(step['raw_record_b64']) for step in expected['steps']]


def test_from_typed_helper():
  assert from_typed({'$int': 3}) == 3 and type(from_typed({'$int': 3})) is int
  assert type(from_typed({'$float': 1.5})) is float
  x = from_typed({'$scalar': {'dtype': 'float64', 'value': 1.0}})
  assert type(x) is np.float64 and x == 1.0
  a = from_typed({'$ndarray': {'dtype': 'float32', 'shape': [2, 1], 'data': [1.0, 2.0]}})
  assert a.dtype == np.float32 and a.shape == (2, 1)
  assert from_typed({'$tuple': [1, {'$bytes': 'AAE='}]}) == (1, b'\x00\x01')
  assert from_typed({'$dict_kvs': [[{'$int': 1}, 'a']]}) == {1: 'a'}


# -- the 1.3 codec's encoding rules, restated here for tests (our code, from the format notes) -----------

_ARRAY_FIELDS = (  # np.issubdtype order of codec._set_datum_values_from_array
  (np.float32, 'float_values'),
  (np.float64, 'double_values'),
  (np.int32, 'int32_values'),
  (np.int64, 'int64_values'),
  (np.uint32, 'uint32_values'),
  (np.uint64, 'uint64_values'),
  (np.bool_, 'bool_values'),
  (np.str_, 'string_values'),
  (np.bytes_, 'bytes_values'),
)
_PACKED_FIELDS = {
  np.dtype(np.int8): ('int8_values', '>i1'),
  np.dtype(np.int16): ('int16_values', '>i2'),
  np.dtype(np.uint8): ('uint8_values', '>u1'),
  np.dtype(np.uint16): ('uint16_values', '>u2'),
}


def encode13(value: Any, *, float32_buffer: bool = False) -> Any:
  """A `Data` message as EnvLogger 1.3's `codec.encode` builds it (1.2's float32 arrays if asked)."""
  out = Data()
  if value is None:
    return out
  if isinstance(value, list):
    for x in value:
      out.array.values.append(encode13(x, float32_buffer=float32_buffer))
  elif isinstance(value, tuple):
    for x in value:
      out.tuple.values.append(encode13(x, float32_buffer=float32_buffer))
  elif isinstance(value, dict):
    for k, v in value.items():
      if isinstance(k, str):
        out.dict.values[k].CopyFrom(encode13(v, float32_buffer=float32_buffer))
      else:
        pair = out.dict.kvs.values.add().tuple
        pair.values.append(encode13(k, float32_buffer=float32_buffer))
        pair.values.append(encode13(v, float32_buffer=float32_buffer))
  elif isinstance(value, np.ndarray):
    datum = out.datum
    for d in value.shape:
      if d > 0:
        datum.shape.dim.add().size = d
    values = datum.values
    if value.size == 0:
      return out
    if float32_buffer and value.dtype == np.float32:
      values.float_values_buffer = value.astype('>f4').tobytes()
      return out
    for dtype, name in _ARRAY_FIELDS:
      if np.issubdtype(value.dtype, dtype):
        getattr(values, name).extend(x.item() for x in value.ravel())
        return out
    name, code = _PACKED_FIELDS[value.dtype]
    setattr(values, name, value.astype(code).tobytes())
  else:
    datum = out.datum
    datum.shape.dim.add().size = storage.SCALAR_DIM_SIZE
    values = datum.values
    if isinstance(value, str):
      values.string_values.append(value)
    elif isinstance(value, bytes):
      values.bytes_values.append(value)
    elif isinstance(value, (bool, np.bool_)):
      values.bool_values.append(bool(value))
    elif isinstance(value, int):
      values.bigint_values.append(value.to_bytes(value.bit_length() // 8 + 1, 'big', signed=True))
    else:
      dtype = np.result_type(value)
      if dtype in _PACKED_FIELDS:
        name, code = _PACKED_FIELDS[dtype]
        setattr(values, name, np.array(value, dtype=code).tobytes())
      elif dtype == np.float32:
        values.float_values.append(float(value))
      elif dtype == np.float64:
        values.double_values.append(float(value))
      else:
        getattr(values, f'{dtype.name}_values').append(value)
  return out


# -- a message-based statement of the decoding rules ---------------------------------------------------

_REF_NUMERIC = {
  'float_values': np.float32,
  'double_values': np.float64,
  'int32_values': np.int32,
  'int64_values': np.int64,
  'uint32_values': np.uint32,
  'uint64_values': np.uint64,
  'bool_values': np.bool_,
}
_REF_PACKED = {
  'int8_values': '>i1',
  'int16_values': '>i2',
  'uint8_values': '>u1',
  'uint16_values': '>u2',
  'float_values_buffer': '>f4',
}


def reference_datum(datum: Any) -> Any:
  dims = tuple(d.size for d in datum.shape.dim)
  fields = datum.values.ListFields()
  if not fields:
    return None
  if len(fields) != 1:
    raise StorageError('several value fields')
  field, raw = fields[0]
  name = field.name
  scalar = dims == (storage.SCALAR_DIM_SIZE,)
  if name in _REF_NUMERIC:
    values = np.array(list(raw), dtype=_REF_NUMERIC[name])
  elif name in _REF_PACKED:
    wire = np.dtype(_REF_PACKED[name])
    if len(raw) % wire.itemsize:
      raise StorageError('partial value')
    values = np.frombuffer(raw, wire).astype(wire.newbyteorder('='))
  else:
    values = list(raw)
  if scalar:
    if len(values) != 1:
      raise StorageError('scalar count')
    if name == 'bigint_values':
      return int.from_bytes(values[0], 'big', signed=True)
    if name == 'bool_values':
      return bool(values[0])
    return values[0]
  if name == 'bigint_values':
    raise StorageError('bigint array')
  if any(d <= 0 for d in dims) or math.prod(dims) != len(values):
    raise StorageError('count')
  if isinstance(values, list):
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array.reshape(dims)
  return values.reshape(dims)


def reference_decode(data: Any) -> Any:
  kind = data.WhichOneof('value')
  if kind is None:
    return None
  if kind == 'datum':
    return reference_datum(data.datum)
  if kind == 'array':
    return [reference_decode(x) for x in data.array.values]
  if kind == 'tuple':
    return tuple(reference_decode(x) for x in data.tuple.values)
  out = {k: reference_decode(v) for k, v in data.dict.values.items()}
  for entry in data.dict.kvs.values:
    pair = reference_decode(entry)
    if type(pair) is not tuple or len(pair) != 2:
      raise StorageError('kvs entry')
    try:
      out[pair[0]] = pair[1]
    except TypeError as e:
      raise StorageError('kvs key') from e
  return out


def reference_from_bytes(buf: bytes) -> Any:
  try:
    msg = Data.FromString(buf)
  except Exception as e:
    raise StorageError('parse') from e
  return reference_decode(msg)


def outcome(fn, *args) -> tuple[str, Any]:
  try:
    return 'ok', fn(*args)
  except StorageError as e:
    return 'error', e


# -- the schema ---------------------------------------------------------------------------------------

_F = descriptor_pb2.FieldDescriptorProto

# storage.proto of deepmind/envlogger: (message, field, number, type, repeated, packed).
_ORIGINAL_SCHEMA = [
  ('envlogger.Datum', 'shape', 1, _F.TYPE_MESSAGE, False, False),
  ('envlogger.Datum', 'values', 2, _F.TYPE_MESSAGE, False, False),
  ('envlogger.Datum.Shape', 'dim', 2, _F.TYPE_MESSAGE, True, False),
  ('envlogger.Datum.Shape.Dim', 'size', 1, _F.TYPE_INT64, False, False),
  ('envlogger.Datum.Values', 'float_values', 1, _F.TYPE_FLOAT, True, True),
  ('envlogger.Datum.Values', 'double_values', 2, _F.TYPE_DOUBLE, True, True),
  ('envlogger.Datum.Values', 'int32_values', 3, _F.TYPE_INT32, True, True),
  ('envlogger.Datum.Values', 'int64_values', 4, _F.TYPE_INT64, True, True),
  ('envlogger.Datum.Values', 'uint32_values', 5, _F.TYPE_UINT32, True, True),
  ('envlogger.Datum.Values', 'uint64_values', 6, _F.TYPE_UINT64, True, True),
  ('envlogger.Datum.Values', 'bool_values', 7, _F.TYPE_BOOL, True, True),
  ('envlogger.Datum.Values', 'string_values', 8, _F.TYPE_STRING, True, False),
  ('envlogger.Datum.Values', 'bytes_values', 9, _F.TYPE_BYTES, True, False),
  ('envlogger.Datum.Values', 'bigint_values', 10, _F.TYPE_BYTES, True, False),
  ('envlogger.Datum.Values', 'int8_values', 11, _F.TYPE_BYTES, False, False),
  ('envlogger.Datum.Values', 'int16_values', 12, _F.TYPE_BYTES, False, False),
  ('envlogger.Datum.Values', 'uint8_values', 13, _F.TYPE_BYTES, False, False),
  ('envlogger.Datum.Values', 'uint16_values', 14, _F.TYPE_BYTES, False, False),
  ('envlogger.Datum.Values', 'float_values_buffer', 15, _F.TYPE_BYTES, False, False),
  ('envlogger.Data', 'datum', 1, _F.TYPE_MESSAGE, False, False),
  ('envlogger.Data', 'array', 2, _F.TYPE_MESSAGE, False, False),
  ('envlogger.Data', 'tuple', 3, _F.TYPE_MESSAGE, False, False),
  ('envlogger.Data', 'dict', 4, _F.TYPE_MESSAGE, False, False),
  ('envlogger.Data.Array', 'values', 1, _F.TYPE_MESSAGE, True, False),
  ('envlogger.Data.Tuple', 'values', 1, _F.TYPE_MESSAGE, True, False),
  ('envlogger.Data.Dict', 'values', 1, _F.TYPE_MESSAGE, True, False),
  ('envlogger.Data.Dict', 'kvs', 2, _F.TYPE_MESSAGE, False, False),
]


def test_schema_matches_the_original_storage_proto():
  fdp = descriptor_pb2.FileDescriptorProto()
  Data.DESCRIPTOR.file.CopyToProto(fdp)
  assert (fdp.name, fdp.package, fdp.syntax) == ('envlogger/proto/storage.proto', 'envlogger', 'proto3')
  protos = {}

  def collect(prefix: str, messages: Any) -> None:
    for m in messages:
      for f in m.field:
        protos[f'{prefix}.{m.name}', f.name] = f
      collect(f'{prefix}.{m.name}', m.nested_type)

  collect('envlogger', fdp.message_type)
  pool = Data.DESCRIPTOR.file.pool
  for message, name, number, type_, repeated, packed in _ORIGINAL_SCHEMA:
    proto = protos.pop((message, name))
    assert (proto.number, proto.type) == (number, type_), (message, name)
    assert proto.label == (_F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL), (message, name)
    field = pool.FindMessageTypeByName(message).fields_by_name[name]
    if repeated and type_ not in (_F.TYPE_MESSAGE, _F.TYPE_STRING, _F.TYPE_BYTES):
      assert field.is_packed == packed, (message, name)
  assert sorted(protos) == [
    ('envlogger.Data.Dict.ValuesEntry', 'key'),
    ('envlogger.Data.Dict.ValuesEntry', 'value'),
  ]
  assert [f.name for f in Data.DESCRIPTOR.oneofs_by_name['value'].fields] == [
    'datum',
    'array',
    'tuple',
    'dict',
  ]
  entry = pool.FindMessageTypeByName('envlogger.Data.Dict').fields_by_name['values'].message_type
  assert entry.GetOptions().map_entry
  assert entry.fields_by_name['key'].type == _F.TYPE_STRING
  assert entry.fields_by_name['value'].message_type is Data.DESCRIPTOR
  kvs = pool.FindMessageTypeByName('envlogger.Data.Dict').fields_by_name['kvs']
  assert kvs.message_type.full_name == 'envlogger.Data.Array'


def test_schema_lives_in_a_private_pool():
  assert Data.DESCRIPTOR.file.pool is not descriptor_pool.Default()
  with pytest.raises(KeyError):
    descriptor_pool.Default().FindMessageTypeByName('envlogger.Data')


def test_packed_floats_on_the_wire():
  # proto3 packs float_values: tag 0x0a, length, little-endian floats.
  values = Datum.Values(float_values=[1.0, 2.0])
  assert values.SerializeToString() == b'\x0a\x08' + np.array([1, 2], '<f4').tobytes()


def test_importing_storage_does_not_import_tensorflow():
  code = (
    'import sys, envlogger, envlogger._riegeli.storage\n'
    "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tensorflow_datasets')]\n"
    'assert not bad, bad\n'
  )
  subprocess.run([sys.executable, '-c', code], check=True, timeout=60)


# -- the fixture: records written by envlogger 1.3 -----------------------------------------------------


def test_fixture_steps_decode_exactly(expected, records):
  assert len(records) == expected['len_steps'] == 50
  for i, (step, record) in enumerate(zip(expected['steps'], records)):
    timestep, action, custom_data = storage.decode_step(record)
    assert type(timestep) is dm_env.TimeStep
    assert type(timestep.step_type) is dm_env.StepType and timestep.step_type == step['step_type'], i
    assert_same(timestep.reward, from_typed(step['reward']), f'steps[{i}].reward')
    assert_same(timestep.discount, from_typed(step['discount']), f'steps[{i}].discount')
    assert_same(timestep.observation, from_typed(step['observation']), f'steps[{i}].observation')
    assert_same(action, from_typed(step['action']), f'steps[{i}].action')
    assert_same(custom_data, from_typed(step['custom_data']), f'steps[{i}].custom_data')


def test_fixture_step_types(expected, records):
  kinds = [storage.decode_step(r)[0].step_type for r in records]
  assert kinds == [dm_env.StepType(s['step_type']) for s in expected['steps']]
  assert kinds[0] is dm_env.StepType.FIRST and kinds[9] is dm_env.StepType.LAST
  first, _, _ = storage.decode_step(records[0])
  assert first.reward is None and first.discount is None


def test_fixture_step_values_are_writable_owned_arrays(records):
  (ts1, _, _), (ts2, _, _) = storage.decode_step(records[3]), storage.decode_step(records[3])
  obs = ts1.observation
  assert obs.flags.writeable and obs.flags.c_contiguous and obs.dtype.isnative
  obs[:] = 7
  assert not (ts2.observation == 7).any()  # nothing shared between decodes


def test_fixture_records_are_what_the_codec_encodes(expected, records):
  """encode13 (and these message classes) write the original's records byte for byte."""
  for step, record in zip(expected['steps'], records):
    timestep = (step['step_type'], from_typed(step['reward']), from_typed(step['discount']))
    value = (timestep + (from_typed(step['observation']),), from_typed(step['action']))
    value += (from_typed(step['custom_data']),)
    assert encode13(value).SerializeToString() == record


def test_fixture_records_decode_as_message_and_reference(records):
  for record in records:
    want = reference_from_bytes(record)
    assert_same(storage.decode(record), want)
    assert_same(storage.decode(Data.FromString(record)), want)
    assert_same(storage.decode(bytearray(record)), want)
    assert_same(storage.decode(memoryview(record)), want)


def test_fixture_specs(expected):
  metadata = from_typed(expected['metadata'])
  got = storage.environment_specs(metadata)
  names = ('observation_spec', 'action_spec', 'reward_spec', 'discount_spec')
  for name, spec in zip(names, got):
    assert_same_spec(spec, from_typed(expected['specs'][name]), name)
  assert type(got[1]) is specs.DiscreteArray and type(got[1].num_values) is int
  assert got[2].shape == () and got[0].shape == (10, 5)


def test_fixture_metadata_round_trip(expected):
  metadata = from_typed(expected['metadata'])
  assert metadata['environment_specs']['action_spec']['shape'] is None
  assert_same(storage.decode(encode13(metadata).SerializeToString()), metadata)


def test_fixture_episode_metadata_round_trip(expected):
  for episode in expected['episodes']:
    value = from_typed(episode['metadata'])
    assert type(value) is np.float64
    assert_same(storage.decode(encode13(value)), value)
    # episode_fn returned a Python float: it is written as a double and read as np.float64.
    assert_same(storage.decode(encode13(float(value))), value)


# -- every encoding -------------------------------------------------------------------------------------


class Color(enum.IntEnum):
  RED = 1


_SAME = object()  # the decoded value is the encoded one, type included

CASES = [
  # scalars
  (np.float32(1.5), _SAME),
  (np.float32(-0.0), _SAME),
  (np.float32('nan'), _SAME),
  (np.float64(2.25), _SAME),
  (2.25, np.float64(2.25)),
  (np.int32(-7), _SAME),
  (np.int64(-(2**63)), _SAME),
  (np.uint32(2**32 - 1), _SAME),
  (np.uint64(2**64 - 1), _SAME),
  (np.int8(-128), _SAME),
  (np.int16(-300), _SAME),
  (np.uint8(255), _SAME),
  (np.uint16(65535), _SAME),
  (True, _SAME),
  (False, _SAME),
  (np.bool_(True), True),
  ('héllo', _SAME),
  ('', _SAME),
  (b'\x00\xff', _SAME),
  (b'', _SAME),
  (0, _SAME),
  (1, _SAME),
  (-1, _SAME),
  (127, _SAME),
  (128, _SAME),
  (-128, _SAME),
  (-129, _SAME),
  (2**64 + 5, _SAME),
  (-(2**100) - 3, _SAME),
  (Color.RED, 1),
  # arrays of every dtype, including 0-d
  (np.arange(6, dtype=np.float32).reshape(2, 3) / 7, _SAME),
  (np.array([np.inf, -np.inf, np.nan], np.float32), _SAME),
  (np.arange(4, dtype=np.float64) - 1.5, _SAME),
  (np.array([-(2**31), 2**31 - 1], np.int32), _SAME),
  (np.array([[-(2**63)], [2**63 - 1]], np.int64), _SAME),
  (np.array([0, 2**32 - 1], np.uint32), _SAME),
  (np.array([0, 2**64 - 1, 300], np.uint64), _SAME),
  (np.array([[True, False], [False, True]]), _SAME),
  (np.array([-128, 0, 127], np.int8), _SAME),
  (np.array([-32768, 1, 32767], np.int16), _SAME),
  (np.arange(24, dtype=np.uint8).reshape(2, 3, 4), _SAME),
  (np.array([0, 65535], np.uint16), _SAME),
  (np.array(3.5, np.float32), _SAME),
  (np.array(-4, np.int64), _SAME),
  (np.array(7, np.uint8), _SAME),
  (np.array(True), _SAME),
  (np.array(['a', 'bc', ''])[None], np.array([['a', 'bc', '']], dtype=object)),
  (np.array('only'), np.array('only', dtype=object)),
  (np.array([b'x', b'\x00y']), np.array([b'x', b'\x00y'], dtype=object)),
  (np.arange(200, dtype=np.int64) * 10**15 - 10**17, _SAME),  # long packed varints (vectorized path)
  (np.arange(40, dtype=np.int32) - 20, _SAME),
  (np.arange(40, dtype=np.uint64) * 2**57, _SAME),
  (np.array([True, False] * 20), _SAME),
  # empty values
  (None, None),
  ([], None),
  ((), None),
  ({}, None),
  (np.zeros((0,), np.float32), None),
  (np.zeros((0, 3), np.int64), None),  # keeps dim 3 but has no values
  (np.array([], dtype=str), None),
  # nests
  ([1, 2, 3], _SAME),
  ([np.float32(1), np.float32(2)], _SAME),
  ((1, 'a', (b'b', [np.int8(3)]), None), _SAME),
  ([[1], [2, 3]], _SAME),
  ([[]], [None]),
  ((None, (), [None]), (None, None, [None])),
  ({'a': 1, 'b': {'c': (2.5, np.array([1, 2], np.int32))}}, {'a': 1, 'b': {'c': (np.float64(2.5), _SAME)}}),
  ({1: 'one', (2, 'x'): [3], 'key': b'v'}, _SAME),
  ({np.int64(4): True}, _SAME),
  ({'e': None, 'f': {}}, {'e': None, 'f': None}),
]


def _resolve(value: Any, want: Any) -> Any:
  if want is _SAME:
    return value
  if isinstance(want, dict) and isinstance(value, dict):
    return {k: _resolve(value[k], w) for k, w in want.items()}
  if isinstance(want, tuple) and isinstance(value, tuple) and len(want) == len(value):
    return tuple(_resolve(v, w) for v, w in zip(value, want))
  return want


@pytest.mark.parametrize(
  'value, want', CASES, ids=[f'{i}-{type(v).__name__}' for i, (v, _) in enumerate(CASES)]
)
def test_encodings(value, want):
  want = _resolve(value, want)
  record = encode13(value).SerializeToString()
  got = storage.decode(record)
  assert_same(got, want)
  assert_same(reference_from_bytes(record), want)
  if isinstance(got, np.ndarray):
    assert got.flags.writeable and got.flags.c_contiguous and got.dtype.isnative


@pytest.mark.parametrize(
  'value',
  [
    np.arange(12, dtype=np.float32).reshape(3, 4) / 3,
    np.array([np.nan, -0.0, 1e-40], np.float32),
    np.float32(0.1),
  ],
)
def test_float32_both_encodings(value):
  """1.3 writes float_values (packed little-endian), 1.2 wrote float_values_buffer (big-endian bytes)."""
  v13 = encode13(value)
  v12 = encode13(value, float32_buffer=True)
  if isinstance(value, np.ndarray):
    assert v13.datum.values.float_values and not v13.datum.values.float_values_buffer
    assert v12.datum.values.float_values_buffer == value.astype('>f4').tobytes()
  else:  # a float32 scalar is float_values in both versions
    v12 = Data()
    v12.datum.shape.dim.add().size = storage.SCALAR_DIM_SIZE
    v12.datum.values.float_values_buffer = np.array(value, '>f4').tobytes()
  for message in (v13, v12):
    got = storage.decode(message.SerializeToString())
    assert_same(got, value)
    if isinstance(got, np.ndarray):  # bit-exact, NaN payloads included
      assert got.tobytes() == value.tobytes()


def test_scalar_marker_is_the_sum_of_negative_ascii_codes():
  assert storage.SCALAR_DIM_SIZE == -sum(map(ord, 'SCALAR')) == -438


def test_decode_none_and_types():
  assert storage.decode(None) is None
  assert storage.decode(b'') is None
  with pytest.raises(TypeError, match='envlogger.Data'):
    storage.decode('not bytes')
  with pytest.raises(TypeError, match='envlogger.Datum'):
    storage.decode(Datum())
  with pytest.raises(TypeError):
    storage.decode_datum(None)


def test_decode_datum_offsets_and_index():
  """step_offsets.riegeli / episode_index.riegeli hold Datum records of int64 arrays."""
  offsets = np.array([64, 65, 66, 10**12 + 3], np.int64)
  index = np.array([[0, 4096], [10, -1]], np.int64)
  for value in (offsets, index, np.arange(5000, dtype=np.int64) * 977):
    datum = encode13(value).datum
    assert_same(storage.decode_datum(datum.SerializeToString()), value)
    assert_same(storage.decode_datum(datum), value)
  assert storage.decode_datum(b'') is None
  assert_same(storage.decode_datum(encode13(np.int64(5)).datum), np.int64(5))


def test_decode_step_built_here():
  obs = {'pixels': np.arange(6, dtype=np.uint8).reshape(1, 2, 3), 'pos': np.float32(0.5)}
  record = encode13(((2, np.float64(1.0), np.float64(0.0), obs), np.array([1, 2], np.int32), None))
  timestep, action, custom = storage.decode_step(record.SerializeToString())
  assert timestep.step_type is dm_env.StepType.LAST and timestep.last()
  assert_same(timestep.observation, obs)
  assert_same(timestep.reward, np.float64(1.0))
  assert_same(action, np.array([1, 2], np.int32))
  assert custom is None


# -- non-canonical wire forms: protobuf's merge rules apply ----------------------------------------


def _varint(n: int) -> bytes:
  n &= (1 << 64) - 1
  out = bytearray()
  while n > 0x7F:
    out.append(n & 0x7F | 0x80)
    n >>= 7
  out.append(n)
  return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
  return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _shape(*dims: int) -> bytes:
  return _field(1, b''.join(_field(2, b'\x08' + _varint(d)) for d in dims))


def _datum_data(*parts: bytes) -> bytes:
  return _field(1, b''.join(parts))


def _bigint(n: int) -> bytes:
  """A Data payload: the scalar Python int n."""
  return _datum_data(
    _shape(-438), _field(2, _field(10, n.to_bytes(n.bit_length() // 8 + 1, 'big', signed=True)))
  )


def _kv(key: bytes, value: bytes) -> bytes:
  """An Array payload with one element: the tuple (key, value) of Data payloads."""
  return _field(1, _field(3, _field(1, key) + _field(1, value)))


NON_CANONICAL = {
  'unpacked floats': _datum_data(
    _shape(2), _field(2, b'\x0d' + np.float32(1).tobytes() + b'\x0d' + np.float32(2).tobytes())
  ),
  'unpacked int64': _datum_data(_shape(-438), _field(2, b'\x20\x07')),
  'two packed runs': _datum_data(
    _shape(3), _field(2, _field(1, np.ones(1, '<f4').tobytes()) + _field(1, np.zeros(2, '<f4').tobytes()))
  ),
  'values before shape': _datum_data(_field(2, _field(2, np.ones(2, '<f8').tobytes())), _shape(2)),
  'shape twice (dims concatenate)': _datum_data(_shape(2), _shape(3), _field(2, _field(4, bytes(6)))),
  'unknown fields': _datum_data(_shape(2), b'\x28\x01', _field(2, _field(4, b'\x01\x02') + b'\xf8\x01\x05'))
  + b'\x30\x09',
  'oneof replaced (last wins)': _field(3, b'') + _datum_data(_shape(-438), _field(2, _field(10, b'\x05'))),
  'oneof merged': _field(3, _field(1, b''))
  + _field(3, _field(1, _datum_data(_shape(-438), _field(2, _field(8, b'x'))))),
  'duplicate map key (last wins)': _field(
    4,
    _field(1, _field(1, b'k') + _field(2, b''))
    + _field(1, _field(1, b'k') + _field(2, _datum_data(_shape(-438), _field(2, _field(9, b'v'))))),
  ),
  'map entry value before key': _field(4, _field(1, _field(2, b'') + _field(1, b'k'))),
  'bytes field twice (last wins)': _datum_data(
    _shape(2), _field(2, _field(13, b'\x01') + _field(13, b'\x02\x03'))
  ),
  'empty packed field next to another': _datum_data(
    _shape(2), _field(2, _field(1, b'') + _field(13, b'\x02\x03'))
  ),
  'empty values submessage': _datum_data(_shape(-438), _field(2, b'')),
  'empty dim': _datum_data(_field(1, _field(2, b'') + _field(2, b'\x08\x02')), _field(2, _field(4, b''))),
  'bool varint 2': _datum_data(_shape(-438), _field(2, _field(7, b'\x02'))),
  'int32 as 10-byte varint': _datum_data(_shape(-438), _field(2, _field(3, _varint(-5)))),
  'uint32 truncated from 64 bits': _datum_data(_shape(-438), _field(2, _field(5, _varint(2**40 + 9)))),
  'kvs twice (merged)': _field(4, _field(2, _kv(_bigint(1), b'')) + _field(2, _kv(_bigint(2), b''))),
}


@pytest.mark.parametrize('name', sorted(NON_CANONICAL))
def test_non_canonical_wire_forms_follow_protobuf(name):
  record = NON_CANONICAL[name]
  want = outcome(reference_from_bytes, record)
  got = outcome(storage.decode, record)
  assert got[0] == want[0] == 'ok', (got, want)
  assert_same(got[1], want[1])


def test_non_canonical_examples():
  assert_same(storage.decode(NON_CANONICAL['oneof replaced (last wins)']), 5)
  assert_same(storage.decode(NON_CANONICAL['oneof merged']), (None, 'x'))
  assert_same(storage.decode(NON_CANONICAL['duplicate map key (last wins)']), {'k': b'v'})
  assert_same(storage.decode(NON_CANONICAL['shape twice (dims concatenate)']), np.zeros((2, 3), np.int64))
  assert_same(storage.decode(NON_CANONICAL['bytes field twice (last wins)']), np.array([2, 3], np.uint8))
  assert_same(storage.decode(NON_CANONICAL['int32 as 10-byte varint']), np.int32(-5))
  assert_same(storage.decode(NON_CANONICAL['uint32 truncated from 64 bits']), np.uint32(9))
  assert_same(storage.decode(NON_CANONICAL['empty values submessage']), None)
  assert_same(storage.decode(NON_CANONICAL['kvs twice (merged)']), {1: None, 2: None})


# -- bad input --------------------------------------------------------------------------------------


BAD = {
  'garbage': (b'\xff\xff\xff', 'do not parse as an envlogger.Data'),
  'truncated': (None, 'do not parse'),
  'wire type 7': (b'\x0f', 'do not parse'),
  'invalid utf-8 string': (_datum_data(_shape(-438), _field(2, _field(8, b'\xff'))), 'do not parse'),
  'invalid utf-8 map key': (_field(4, _field(1, _field(1, b'\xc3'))), 'do not parse'),
  'count does not match shape': (
    _datum_data(_shape(2, 3), _field(2, _field(2, bytes(8 * 5)))),
    r'shape \[2, 3\] holds 5',
  ),
  'scalar with two values': (
    _datum_data(_shape(-438), _field(2, _field(4, b'\x01\x02'))),
    'scalar Datum holds 2',
  ),
  'scalar with two strings': (
    _datum_data(_shape(-438), _field(2, _field(8, b'a') + _field(8, b'b'))),
    'scalar',
  ),
  'zero dim with values': (_datum_data(_shape(0), _field(2, _field(4, b'\x01'))), r'shape \[0\]'),
  'negative dims': (_datum_data(_shape(-1, -2), _field(2, _field(4, b'\x01\x02'))), 'shape'),
  'marker among dims': (_datum_data(_shape(-438, 1), _field(2, _field(4, b'\x01'))), 'shape'),
  'bigint array': (
    _datum_data(_shape(2), _field(2, _field(10, b'\x01') + _field(10, b'\x02'))),
    'only stored for scalars',
  ),
  'several value fields': (
    _datum_data(_shape(-438), _field(2, _field(4, b'\x01') + _field(2, bytes(8)))),
    'holds both double_values and int64_values',
  ),
  'partial int16': (_datum_data(_shape(-438), _field(2, _field(12, b'\x01'))), 'int16_values holds 1 bytes'),
  'partial packed float': (_datum_data(_shape(1), _field(2, _field(1, b'\x00\x00\x80'))), 'do not parse'),
  'kvs entry not a pair': (_field(4, _field(2, _field(1, _field(3, _field(1, b''))))), 'kvs entry'),
  'kvs key unhashable': (
    _field(4, _field(2, _field(1, _field(3, _field(1, _field(2, b'')) + _field(1, b''))))),
    'not hashable',
  ),
}


@pytest.mark.parametrize('name', sorted(BAD))
def test_bad_input_raises_storage_error(name, records):
  record, message = BAD[name]
  if record is None:
    record = records[5][:-7]
  with pytest.raises(StorageError, match=message):
    storage.decode(record)
  assert issubclass(StorageError, ValueError)


def test_bad_datum_records():
  with pytest.raises(StorageError, match='envlogger.Datum'):
    storage.decode_datum(b'\x12\x05\x0a')
  with pytest.raises(StorageError, match='holds 3'):
    storage.decode_datum(_shape(2) + _field(2, _field(4, b'\x01\x02\x03')))


def test_bad_step_records(records):
  with pytest.raises(StorageError, match='step record'):
    storage.decode_step(encode13((1, 2, 3)).SerializeToString())
  with pytest.raises(StorageError, match='step record'):
    storage.decode_step(b'')
  with pytest.raises(StorageError, match='not a dm_env.StepType'):
    storage.decode_step(encode13(((7, None, None, None), None, None)).SerializeToString())
  with pytest.raises(StorageError, match='do not parse'):
    storage.decode_step(records[1][:100])


# -- fuzz: the wire walker against protobuf's parse ------------------------------------------------


def test_mutated_records_agree_with_protobuf(records):
  """Random byte edits of real records: decode and the message-based rules give the same value or both fail."""
  rng = random.Random(1234)
  for _ in range(3000):
    buf = bytearray(rng.choice(records))
    for _ in range(rng.randint(1, 3)):
      op = rng.random()
      i = rng.randrange(len(buf))
      if op < 0.6:
        buf[i] = rng.randrange(256)
      elif op < 0.8:
        del buf[i]
      else:
        buf.insert(i, rng.randrange(256))
    record = bytes(buf)
    want = outcome(reference_from_bytes, record)
    got = outcome(storage.decode, record)
    assert got[0] == want[0], (record.hex(), got, want)
    if got[0] == 'ok':
      assert_same(got[1], want[1])


def _random_value(rng: random.Random, depth: int = 0) -> Any:
  kind = rng.randrange(10 if depth < 3 else 6)
  if kind == 0:
    dtype = np.dtype(rng.choice(['f4', 'f8', 'i1', 'i2', 'i4', 'i8', 'u1', 'u2', 'u4', 'u8', '?']))
    shape = tuple(rng.randint(1, 4) for _ in range(rng.randint(0, 3)))
    n = math.prod(shape)
    if dtype.kind in 'iu':
      info = np.iinfo(dtype)
      flat = np.array([rng.randint(int(info.min), int(info.max)) for _ in range(n)], dtype)
    elif dtype.kind == 'b':
      flat = np.array([rng.random() < 0.5 for _ in range(n)])
    else:
      flat = np.array([rng.uniform(-1e6, 1e6) for _ in range(n)], dtype)
    return flat.reshape(shape)
  if kind == 1:
    return rng.choice([np.float32, np.float64, np.int8, np.uint16, np.int64, np.uint64])(rng.randint(0, 100))
  if kind == 2:
    return rng.randint(-(2**70), 2**70)
  if kind == 3:
    return rng.choice(['', 'x', 'héllo', b'', b'\x00\x01', True, False, None])
  if kind == 4:
    return rng.uniform(-1, 1)
  if kind == 5:
    return np.array([rng.choice(['a', 'bb', 'ccc']) for _ in range(rng.randint(1, 4))])
  if kind == 6:
    return tuple(_random_value(rng, depth + 1) for _ in range(rng.randint(0, 4)))
  if kind == 7:
    n = rng.randint(0, 3)
    return [rng.randint(-5, 5) for _ in range(n)]
  if kind == 8:
    return {f'k{i}': _random_value(rng, depth + 1) for i in range(rng.randint(0, 3))}
  return {i: _random_value(rng, depth + 1) for i in range(rng.randint(0, 3))}


def test_random_nests_decode_like_the_message_rules():
  rng = random.Random(99)
  for _ in range(400):
    value = _random_value(rng)
    message = encode13(value, float32_buffer=rng.random() < 0.5)
    record = message.SerializeToString()
    assert_same(storage.decode(record), reference_decode(message))


def test_scalar_memo_is_bounded(monkeypatch):
  monkeypatch.setattr(storage, '_SCALAR_MEMO_MAX_ENTRIES', 8)
  for i in range(100):
    assert storage.decode(encode13(i).SerializeToString()) == i
  assert len(storage._SCALAR_MEMO) <= 8


# -- step-record templates (decode_step's fast path) --------------------------------------------------


@pytest.fixture
def fresh_templates(monkeypatch):
  monkeypatch.setattr(storage, '_TEMPLATES', {})
  monkeypatch.setattr(storage, '_template_counts', [0, 0])


def _step(observation: Any, action: Any = None, custom: Any = None, step_type: int = 1) -> bytes:
  return encode13(
    ((step_type, np.float64(0.5), np.float64(1.0), observation), action, custom)
  ).SerializeToString()


def test_templates_read_the_fixture_like_the_generic_path(records, fresh_templates):
  for _ in range(3):
    for record in records:
      timestep, action, custom = storage.decode_step(record)
      assert_same(((int(timestep.step_type),) + tuple(timestep)[1:], action, custom), storage.decode(record))
  built, hits = storage._template_counts
  assert built == 2 and hits == 3 * len(records) - 2  # a FIRST and a MID layout


def test_template_checks_the_structure(fresh_templates):
  a = _step(np.float32(1), custom={'k': 1})
  b = _step(np.float32(1), custom={'j': 1})  # same length, another dict key
  c = encode13(((1, np.float64(0.5), np.float64(1.0), np.float32(1)), None, [1])).SerializeToString()
  assert len(a) == len(b)
  assert storage.decode_step(a)[2] == {'k': 1}
  assert storage.decode_step(a)[2] == {'k': 1}
  assert storage.decode_step(b)[2] == {'j': 1}
  assert storage.decode_step(c)[2] == [1]
  assert storage.decode_step(a)[2] == {'k': 1} and storage.decode_step(b)[2] == {'j': 1}


def test_template_leaf_errors_go_through_the_generic_path(fresh_templates):
  good = _step(np.zeros((10, 5), np.float32))
  storage.decode_step(good)
  storage.decode_step(good)
  assert storage._template_counts[1] == 1
  bad = good.replace(b'\x12\x02\x08\x05', b'\x12\x02\x08\x06')  # dims (10, 6), 50 values
  assert len(bad) == len(good)
  with pytest.raises(StorageError, match=r'shape \[10, 6\] holds 50'):
    storage.decode_step(bad)
  # A valid leaf the walker leaves to protobuf (values before shape), in a known structure.
  storage.decode_step(_step(np.float32(3)))
  storage.decode_step(_step(np.float32(3)))
  shape, values = storage._SCALAR_SHAPE, b'\x12\x06\x0a\x04' + np.float32(2).tobytes()
  swapped = _step(np.float32(2)).replace(shape + values, values + shape)
  assert swapped != _step(np.float32(2)) and len(swapped) == len(_step(np.float32(2)))
  assert_same(storage.decode_step(swapped)[0].observation, np.float32(2))


def test_template_learning_stops_when_structures_keep_changing(fresh_templates):
  for n in range(1, 80):
    record = _step(np.zeros(n, np.float64))
    timestep, _, _ = storage.decode_step(record)
    assert_same(timestep.observation, np.zeros(n, np.float64))
  assert storage._template_counts[0] == 32


def test_templates_on_random_step_records(fresh_templates):
  rng = random.Random(7)
  records = []
  for i in range(300):
    value = (
      (rng.randrange(3), rng.uniform(0, 1), np.float64(1), _random_value(rng)),
      _random_value(rng),
      {'i': i % 3},
    )
    records.append(encode13(value).SerializeToString())
  for record in records * 2:
    timestep, action, custom = storage.decode_step(record)
    assert_same(((int(timestep.step_type),) + tuple(timestep)[1:], action, custom), storage.decode(record))
  assert storage._template_counts[1] > 0


# -- environment specs ---------------------------------------------------------------------------------


def _encode_spec(spec: Any) -> Any:
  """EnvLogger 1.3's spec_codec.encode (its rules restated for tests)."""
  if isinstance(spec, specs.Array):
    out = {'shape': np.array(spec.shape, dtype=np.int64), 'dtype': str(spec.dtype), 'name': spec.name}
    if isinstance(spec, specs.BoundedArray):
      out.update(minimum=spec.minimum, maximum=spec.maximum)
      if isinstance(spec, specs.DiscreteArray):
        out['num_values'] = spec.num_values
    return out
  if isinstance(spec, list):
    return [_encode_spec(x) for x in spec]
  if isinstance(spec, tuple):
    return tuple(_encode_spec(x) for x in spec)
  return {k: _encode_spec(v) for k, v in spec.items()}


def test_environment_specs_round_trip():
  observation = {
    'pixels': specs.BoundedArray((4, 4, 3), np.uint8, 0, 255, name='pixels'),
    'state': (specs.Array((2,), np.float64, name='xy'), [specs.Array((), np.int32, name='n')]),
    'limits': specs.BoundedArray(
      (2,), np.float32, np.array([0, -1], np.float32), np.array([1, 1], np.float32), 'lim'
    ),
  }
  env_specs = (
    observation,
    specs.DiscreteArray(5, dtype=np.int32, name='a'),
    specs.Array((), np.float64, name='reward'),
    specs.BoundedArray((), np.float64, 0.0, 1.0, name='discount'),
  )
  names = ('observation_spec', 'action_spec', 'reward_spec', 'discount_spec')
  metadata = {'environment_specs': dict(zip(names, map(_encode_spec, env_specs))), 'other': 1}
  decoded = storage.decode(encode13(metadata).SerializeToString())
  assert decoded['environment_specs']['reward_spec']['shape'] is None  # () encodes to nothing
  for got, want in zip(storage.environment_specs(decoded), env_specs):
    assert_same_spec(got, want)


def test_environment_specs_absent():
  assert storage.environment_specs(None) == (None,) * 4
  assert storage.environment_specs({}) == (None,) * 4
  assert storage.environment_specs({'environment_specs': None}) == (None,) * 4
  assert storage.environment_specs({'environment_specs': {}}) == (None,) * 4


def test_environment_specs_bad():
  with pytest.raises(StorageError, match='lacks reward_spec, discount_spec'):
    storage.environment_specs({'environment_specs': {'observation_spec': {}, 'action_spec': {}}})
  with pytest.raises(StorageError, match='is a dict'):
    storage.environment_specs([1])
  bad = {'shape': None, 'dtype': 'float32', 'name': 'x'}
  with pytest.raises(StorageError, match='encoded spec'):
    storage.environment_specs(
      {'environment_specs': dict(observation_spec=7, action_spec=bad, reward_spec=bad, discount_spec=bad)}
    )
  with pytest.raises(StorageError, match='invalid environment spec'):
    spec = {
      'shape': np.array([2]),
      'dtype': 'float32',
      'name': 'x',
      'minimum': np.zeros(3),
      'maximum': np.ones(3),
    }
    storage.environment_specs(
      {'environment_specs': dict(observation_spec=spec, action_spec=bad, reward_spec=bad, discount_spec=bad)}
    )
