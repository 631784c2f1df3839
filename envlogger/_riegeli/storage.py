"""EnvLogger 1.3's storage schema (`envlogger.Data` / `envlogger.Datum`) and its value codec, for reading.

The schema is the original's `envlogger/proto/storage.proto` (package `envlogger`, proto3), defined here
at run time as a `FileDescriptorProto` in a private descriptor pool: no protoc step and no generated
`_pb2` module, so nothing couples this package to the protobuf version that generated code would need,
and nothing clashes with another `envlogger.Data` registered in the default pool (e.g. by the original
package). The message classes `Data` and `Datum` are exported for building test messages; reading does
not need them on the fast path.

Decoding follows the 1.3 codec (`envlogger/converters/codec.py`), value for value and type for type:

* a `Datum` whose shape is the single dim -438 (the SCALAR marker) is a scalar: `float_values` ->
  `np.float32`, `double_values` -> `np.float64`, `int32/int64/uint32/uint64_values` -> the numpy scalar
  of that type, `int8/int16/uint8/uint16_values` and `float_values_buffer` (big-endian packed bytes) ->
  `np.int8`, ..., `np.float32`, `bool_values` -> `bool`, `string_values` -> `str`, `bytes_values` ->
  `bytes`, `bigint_values` (signed big-endian, any length) -> `int`;
* any other `Datum` is an `np.ndarray` of those dtypes (native byte order, writable, C order) reshaped to
  the dims (no dim: a 0-d array); strings and bytes give `dtype=object` arrays;
* a `Datum` without values is `None` whatever its shape (the writer stores empty arrays that way);
* `Data.array` -> `list`, `Data.tuple` -> `tuple`, `Data.dict` -> `dict` (the `values` map, then the
  `kvs` pairs, whose keys are decoded values), and an empty `Data` -> `None`.

Where the original would return something arbitrary for input its writer never produces, this module
raises `StorageError` instead: a `Datum` with values in several fields, a value count that does not match
the shape (or a scalar with more than one value), `bigint_values` in a non-scalar, a `kvs` entry that is
not a 2-tuple or has an unhashable key. Dict key order is the order on the wire (the original returns
upb's hash-table order; dicts compare equal either way).

Speed: records are walked directly on their wire bytes (numeric fields via `np.frombuffer`, scalar
`Datum`s memoized by their bytes, since scalars are immutable). Anything the walker does not handle
itself (unknown fields, unpacked or split repeated fields, repeated singular fields, malformed bytes) is
handed to protobuf, which parses the record with the original's merge rules (or rejects it); the
re-serialized canonical message is then walked. `decode_step` also compiles a template per repeated
record structure (see "Step-record templates"), so that a step costs a few byte comparisons plus the
decoding of its leaf Datums (Catch: ~4 us per step, against ~25 us for decoding the parsed message).

API: `decode`, `decode_datum`, `decode_step`, `environment_specs`, `StorageError`, the message classes
`Data` and `Datum`, `file_descriptor_proto()` and `SCALAR_DIM_SIZE`.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from typing import Any

import dm_env
import numpy as np
from dm_env import specs
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf import message as _message

__all__ = [
  'SCALAR_DIM_SIZE',
  'Data',
  'Datum',
  'StorageError',
  'decode',
  'decode_datum',
  'decode_step',
  'environment_specs',
  'file_descriptor_proto',
]

SCALAR_DIM_SIZE = -438
"""The `Datum.Shape.Dim.size` that marks a scalar (minus the sum of the ASCII codes of 'SCALAR')."""

_PROTO_FILE = 'envlogger/proto/storage.proto'


class StorageError(ValueError):
  """Bytes or a message that are not a valid `envlogger.Data`/`Datum` (or not a step record)."""


# -- The schema -----------------------------------------------------------------------------------------

_F = descriptor_pb2.FieldDescriptorProto

# Datum.Values: (name, number, type, repeated). In proto3, repeated numeric fields are packed.
_VALUES_FIELDS = (
  ('float_values', 1, _F.TYPE_FLOAT, True),
  ('double_values', 2, _F.TYPE_DOUBLE, True),
  ('int32_values', 3, _F.TYPE_INT32, True),
  ('int64_values', 4, _F.TYPE_INT64, True),
  ('uint32_values', 5, _F.TYPE_UINT32, True),
  ('uint64_values', 6, _F.TYPE_UINT64, True),
  ('bool_values', 7, _F.TYPE_BOOL, True),
  ('string_values', 8, _F.TYPE_STRING, True),
  ('bytes_values', 9, _F.TYPE_BYTES, True),
  ('bigint_values', 10, _F.TYPE_BYTES, True),
  ('int8_values', 11, _F.TYPE_BYTES, False),
  ('int16_values', 12, _F.TYPE_BYTES, False),
  ('uint8_values', 13, _F.TYPE_BYTES, False),
  ('uint16_values', 14, _F.TYPE_BYTES, False),
  ('float_values_buffer', 15, _F.TYPE_BYTES, False),
)


def _add_field(
  msg: descriptor_pb2.DescriptorProto,
  name: str,
  number: int,
  type_: int,
  *,
  repeated: bool = False,
  type_name: str | None = None,
  oneof_index: int | None = None,
) -> None:
  field = msg.field.add(name=name, number=number, type=type_)
  field.label = _F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL
  if type_name is not None:
    field.type_name = type_name
  if oneof_index is not None:
    field.oneof_index = oneof_index


def file_descriptor_proto() -> descriptor_pb2.FileDescriptorProto:
  """The original's `storage.proto` as a `FileDescriptorProto` (same names, numbers, types and labels)."""
  fdp = descriptor_pb2.FileDescriptorProto(name=_PROTO_FILE, package='envlogger', syntax='proto3')

  datum = fdp.message_type.add(name='Datum')
  shape = datum.nested_type.add(name='Shape')
  dim = shape.nested_type.add(name='Dim')
  _add_field(dim, 'size', 1, _F.TYPE_INT64)
  _add_field(shape, 'dim', 2, _F.TYPE_MESSAGE, repeated=True, type_name='.envlogger.Datum.Shape.Dim')
  values = datum.nested_type.add(name='Values')
  for name, number, type_, repeated in _VALUES_FIELDS:
    _add_field(values, name, number, type_, repeated=repeated)
  _add_field(datum, 'shape', 1, _F.TYPE_MESSAGE, type_name='.envlogger.Datum.Shape')
  _add_field(datum, 'values', 2, _F.TYPE_MESSAGE, type_name='.envlogger.Datum.Values')

  data = fdp.message_type.add(name='Data')
  for name in ('Array', 'Tuple'):
    seq = data.nested_type.add(name=name)
    _add_field(seq, 'values', 1, _F.TYPE_MESSAGE, repeated=True, type_name='.envlogger.Data')
  dict_ = data.nested_type.add(name='Dict')
  entry = dict_.nested_type.add(name='ValuesEntry')  # map<string, Data> values = 1
  entry.options.map_entry = True
  _add_field(entry, 'key', 1, _F.TYPE_STRING)
  _add_field(entry, 'value', 2, _F.TYPE_MESSAGE, type_name='.envlogger.Data')
  _add_field(dict_, 'values', 1, _F.TYPE_MESSAGE, repeated=True, type_name='.envlogger.Data.Dict.ValuesEntry')
  _add_field(dict_, 'kvs', 2, _F.TYPE_MESSAGE, type_name='.envlogger.Data.Array')
  data.oneof_decl.add(name='value')
  for name, number, type_name in (
    ('datum', 1, '.envlogger.Datum'),
    ('array', 2, '.envlogger.Data.Array'),
    ('tuple', 3, '.envlogger.Data.Tuple'),
    ('dict', 4, '.envlogger.Data.Dict'),
  ):
    _add_field(data, name, number, _F.TYPE_MESSAGE, type_name=type_name, oneof_index=0)
  return fdp


_POOL = descriptor_pool.DescriptorPool()
_POOL.AddSerializedFile(file_descriptor_proto().SerializeToString())


def _message_class(full_name: str) -> type[_message.Message]:
  descriptor = _POOL.FindMessageTypeByName(full_name)
  get_class = getattr(message_factory, 'GetMessageClass', None)
  if get_class is not None:
    return get_class(descriptor)
  return message_factory.MessageFactory(_POOL).GetPrototype(descriptor)  # protobuf < 4.22


Datum = _message_class('envlogger.Datum')
Data = _message_class('envlogger.Data')


# -- The wire walker ------------------------------------------------------------------------------------


class _Slow(Exception):
  """The walker does not handle these bytes itself: protobuf re-reads them (see `_decode_bytes`)."""


_SIGN64 = 1 << 63

# Tags (field number << 3 | wire type); every field the walker takes is length-delimited (wire type 2).
_T1, _T2, _T3, _T4 = 0x0A, 0x12, 0x1A, 0x22
_DIM_SIZE_TAG = 0x08  # Dim.size, varint

# Values field number -> (numpy dtype of the wire data, native dtype of the result, itemsize) for the
# fields stored as raw little-endian (packed fixed-size) or big-endian (bytes) numbers.
_FIXED = {
  1: (np.dtype('<f4'), np.dtype(np.float32), 4),
  2: (np.dtype('<f8'), np.dtype(np.float64), 8),
  11: (np.dtype('>i1'), np.dtype(np.int8), 1),
  12: (np.dtype('>i2'), np.dtype(np.int16), 2),
  13: (np.dtype('>u1'), np.dtype(np.uint8), 1),
  14: (np.dtype('>u2'), np.dtype(np.uint16), 2),
  15: (np.dtype('>f4'), np.dtype(np.float32), 4),
}
_FIXED_BY_TAG = {number << 3 | 2: fixed for number, fixed in _FIXED.items()}
# Packed varint fields -> result dtype (the low 64 bits of each varint, viewed as this type).
_VARINT = {
  3: np.dtype(np.int32),
  4: np.dtype(np.int64),
  5: np.dtype(np.uint32),
  6: np.dtype(np.uint64),
  7: np.dtype(np.bool_),
}
_VARINT_SCALAR = {3: np.int32, 4: np.int64, 5: np.uint32, 6: np.uint64}
_FIELD_NAMES = {number: name for name, number, _, _ in _VALUES_FIELDS}

# Scalar Datum payload bytes -> decoded value. Scalars are immutable, so sharing them is invisible.
_SCALAR_MEMO: dict[bytes, Any] = {}
_SCALAR_MEMO_MAX_BYTES = 64
_SCALAR_MEMO_MAX_ENTRIES = 1 << 14
# Shape payload bytes -> (dim sizes, value count).
_SHAPE_MEMO: dict[bytes, tuple[tuple[int, ...], int]] = {}
_SHAPE_MEMO_MAX_ENTRIES = 1 << 12


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
  """Reads the varint at `pos`: (its low 64 bits as an unsigned int, position after it)."""
  b = buf[pos]
  if b < 0x80:
    return b, pos + 1
  result = b & 0x7F
  shift = 7
  pos += 1
  while True:
    b = buf[pos]
    pos += 1
    if shift == 63:  # the 10th byte: one payload bit left; protobuf decides about anything else
      if b > 1:
        raise _Slow('overlong varint')
      return result | (b << 63), pos
    result |= (b & 0x7F) << shift
    if b < 0x80:
      return result, pos
    shift += 7


def _length_delimited(buf: bytes, pos: int, end: int) -> tuple[int, int]:
  """For the length prefix at `pos`: (start, stop) of the payload, which must end by `end`."""
  n = buf[pos]
  if n < 0x80:
    start = pos + 1
  else:
    n, start = _varint(buf, pos)
  stop = start + n
  if stop > end:
    raise _Slow('truncated')
  return start, stop


def _data(buf: bytes, pos: int, end: int) -> Any:
  """Decodes the `Data` message in buf[pos:end]."""
  if pos == end:
    return None
  tag = buf[pos]
  n = buf[pos + 1]
  if n < 0x80:
    start = pos + 2
  else:
    n, start = _varint(buf, pos + 1)
  if start + n != end:  # a second field (a oneof member replaced or merged, unknown fields), or truncated
    raise _Slow('several Data fields')
  if tag == _T1:
    return _datum(buf, start, end)
  if tag == _T3:
    return tuple(_sequence(buf, start, end))
  if tag == _T2:
    return _sequence(buf, start, end)
  if tag == _T4:
    return _dict(buf, start, end)
  raise _Slow('unexpected Data field')


def _sequence(buf: bytes, pos: int, end: int) -> list[Any]:
  """Decodes an `Array` or `Tuple` message (`repeated Data values = 1`)."""
  out = []
  append = out.append
  while pos < end:
    if buf[pos] != _T1:
      raise _Slow('unexpected Array/Tuple field')
    n = buf[pos + 1]
    if n < 0x80:
      pos += 2
    else:
      n, pos = _varint(buf, pos + 1)
    stop = pos + n
    if stop > end:
      raise _Slow('truncated')
    if pos == stop:
      append(None)
    else:  # _data(buf, pos, stop), inlined for the common elements
      tag = buf[pos]
      n = buf[pos + 1]
      if n < 0x80:
        start = pos + 2
      else:
        n, start = _varint(buf, pos + 1)
      if start + n != stop:
        raise _Slow('several Data fields')
      if tag == _T1:
        append(_datum(buf, start, stop))
      elif tag == _T3:
        append(tuple(_sequence(buf, start, stop)))
      else:
        append(_data(buf, pos, stop))
    pos = stop
  return out


def _dict(buf: bytes, pos: int, end: int) -> dict[Any, Any]:
  """Decodes a `Dict`: the `values` map (str keys), then the `kvs` pairs (decoded keys)."""
  out: dict[Any, Any] = {}
  kvs = None
  while pos < end:
    tag = buf[pos]
    start, pos = _length_delimited(buf, pos + 1, end)
    if tag == _T1:
      key, value = _map_entry(buf, start, pos)
      if key in out:
        raise _Slow('repeated map key')  # protobuf keeps the last one
      out[key] = value
    elif tag == _T2 and kvs is None:
      kvs = _sequence(buf, start, pos)
    else:
      raise _Slow('unexpected Dict field')
  if kvs:
    for pair in kvs:
      if type(pair) is not tuple or len(pair) != 2:
        raise StorageError(f'a Dict.kvs entry must be a (key, value) tuple, got {_short(pair)}')
      try:
        out[pair[0]] = pair[1]
      except TypeError as e:
        raise StorageError(f'a Dict.kvs key is not hashable: {_short(pair[0])}') from e
  return out


def _map_entry(buf: bytes, pos: int, end: int) -> tuple[str, Any]:
  key = ''
  value = None
  seen = 0
  while pos < end:
    tag = buf[pos]
    start, pos = _length_delimited(buf, pos + 1, end)
    if tag == _T1 and not seen & 1:
      key = buf[start:pos].decode('utf-8')
      seen |= 1
    elif tag == _T2 and not seen & 2:
      value = _data(buf, start, pos)
      seen |= 2
    else:
      raise _Slow('unexpected map entry field')
  return key, value


def _shape(buf: bytes, pos: int, end: int) -> tuple[tuple[int, ...], int]:
  """Decodes a `Datum.Shape` payload: (dim sizes, value count they call for).

  The count is -1 for the SCALAR marker and -2 for dims no array can have (a size <= 0: the writer
  drops those).
  """
  key = buf[pos:end]
  shape = _SHAPE_MEMO.get(key)
  if shape is not None:
    return shape
  sizes = []
  while pos < end:
    if buf[pos] != _T2:
      raise _Slow('unexpected Shape field')
    start, pos = _length_delimited(buf, pos + 1, end)
    if start == pos:
      sizes.append(0)
      continue
    if buf[start] != _DIM_SIZE_TAG:
      raise _Slow('unexpected Dim field')
    size, after = _varint(buf, start + 1)
    if after != pos:
      raise _Slow('unexpected Dim field')
    sizes.append(size - (1 << 64) if size & _SIGN64 else size)
  dims = tuple(sizes)
  if dims == _SCALAR_DIMS:
    count = -1
  elif all(d > 0 for d in dims):
    count = math.prod(dims)
  else:
    count = -2
  if len(_SHAPE_MEMO) >= _SHAPE_MEMO_MAX_ENTRIES:
    _SHAPE_MEMO.clear()
  _SHAPE_MEMO[key] = shape = (dims, count)
  return shape


_SCALAR_DIMS = (SCALAR_DIM_SIZE,)
# A Datum's `shape` field holding the one dim SCALAR_DIM_SIZE, as protobuf writes it.
_SCALAR_SHAPE = bytes((_T1, 13, _T2, 11, _DIM_SIZE_TAG)) + b'\xca\xfc' + b'\xff' * 7 + b'\x01'


def _datum(buf: bytes, pos: int, end: int) -> Any:
  """Decodes the `Datum` message in buf[pos:end] (see the module docstring for the rules)."""
  small = end - pos <= _SCALAR_MEMO_MAX_BYTES
  if small:
    key = buf[pos:end]
    value = _SCALAR_MEMO.get(key, _SCALAR_MEMO)
    if value is not _SCALAR_MEMO:
      return value
    if buf.startswith(_SCALAR_SHAPE, pos):  # the common scalar: shape, then values
      vpos = pos + 15
      if vpos == end:
        return None
      n = buf[vpos + 1]
      if buf[vpos] == _T2 and n and vpos + 2 + n == end:
        value = _scalar(buf, vpos + 2, end)
        if len(_SCALAR_MEMO) >= _SCALAR_MEMO_MAX_ENTRIES:
          _SCALAR_MEMO.clear()
        _SCALAR_MEMO[key] = value
        return value
  shape = _NO_DIMS
  values = None
  while pos < end:
    tag = buf[pos]
    n = buf[pos + 1]
    if n < 0x80:
      start = pos + 2
    else:
      n, start = _varint(buf, pos + 1)
    pos = start + n
    if pos > end:
      raise _Slow('truncated')
    if tag == _T1 and shape is _NO_DIMS and values is None:
      shape = _shape(buf, start, pos)
    elif tag == _T2 and values is None:
      values = start
    else:
      raise _Slow('unexpected Datum field')  # repeated fields merge: protobuf does that
  if values is None:
    return None
  dims, count = shape
  if count > 0 and values < pos:  # an array of fixed-size numbers: the common observation
    fixed = _FIXED_BY_TAG.get(buf[values])
    if fixed is not None:
      wire, native, itemsize = fixed
      n = buf[values + 1]
      if n < 0x80:
        start = values + 2
      else:
        n, start = _varint(buf, values + 1)
      if start + n == pos and n == count * itemsize:
        return np.frombuffer(buf, wire, count, start).astype(native).reshape(dims)
  value = _values(buf, values, pos, dims, count)
  if count == -1 and small:
    if len(_SCALAR_MEMO) >= _SCALAR_MEMO_MAX_ENTRIES:
      _SCALAR_MEMO.clear()
    _SCALAR_MEMO[key] = value
  return value


_NO_DIMS: tuple[tuple[int, ...], int] = ((), 1)
_UNPACK_F64 = struct.Struct('<d').unpack_from
_F64 = np.float64
_I64 = np.int64


def _scalar(buf: bytes, pos: int, end: int) -> Any:
  """Decodes the `Values` payload buf[pos:end] of a scalar Datum (fast cases first)."""
  tag = buf[pos]
  n = buf[pos + 1]
  if n < 0x80 and pos + 2 + n == end:  # one field with a short payload
    start = pos + 2
    if tag == 0x52:  # bigint_values (10): a Python int
      return int.from_bytes(buf[start:end], 'big', signed=True)
    if tag == _T2 and n == 8:  # double_values (2)
      return _F64(_UNPACK_F64(buf, start)[0])
    if tag == 0x22 and n == 1 and buf[start] < 0x80:  # int64_values (4), a small one
      return _I64(buf[start])
  return _values(buf, pos, end, _SCALAR_DIMS, -1)


def _values(buf: bytes, pos: int, end: int, dims: tuple[int, ...], size: int) -> Any:
  """Decodes a `Datum.Values` payload for the given dims; `size` is their value count (see `_shape`)."""
  field = 0
  items: list[bytes] | None = None  # the elements of fields 8, 9 and 10 (one tag per element)
  start = stop = 0  # the payload of the other fields
  while pos < end:
    tag = buf[pos]
    number = tag >> 3
    if tag & 7 != 2 or not 1 <= number <= 15:
      raise _Slow('unexpected Values field')  # unpacked numbers, or unknown fields
    s, pos = _length_delimited(buf, pos + 1, end)
    if field != number and field:
      if s == pos and not 8 <= number <= 10:
        raise _Slow('an empty field')  # in proto3, no field at all
      raise StorageError(f'a Datum holds both {_FIELD_NAMES[field]} and {_FIELD_NAMES[number]}')
    if 8 <= number <= 10:
      if not field:
        field = number
        items = []
      items.append(buf[s:pos])
    else:
      if field or s == pos:  # a field repeated (merged: last wins or runs concatenate), or empty
        raise _Slow('several runs of a Values field')
      field = number
      start, stop = s, pos
  if not field:
    return None

  if items is not None:
    count = len(items)
    _check_count(dims, size, count, field)
    if size == -1:
      item = items[0]
      if field == 8:
        return item.decode('utf-8')
      if field == 9:
        return item
      return int.from_bytes(item, 'big', signed=True)
    if field == 10:
      raise StorageError(f'bigint_values are only stored for scalars, got a Datum of shape {list(dims)}')
    if field == 8:
      items = [item.decode('utf-8') for item in items]
    array = np.empty(count, dtype=object)
    array[:] = items
    return array.reshape(dims)

  fixed = _FIXED.get(field)
  if fixed is not None:
    wire, native, itemsize = fixed
    nbytes = stop - start
    if nbytes % itemsize:
      if field <= 2:
        raise _Slow('packed fixed-size field with a partial value')
      raise StorageError(f'{_FIELD_NAMES[field]} holds {nbytes} bytes, not a multiple of {itemsize}')
    count = nbytes // itemsize
    _check_count(dims, size, count, field)
    if size == -1:
      return np.frombuffer(buf, wire, 1, start)[0]  # a numpy scalar of the native type
    return np.frombuffer(buf, wire, count, start).astype(native).reshape(dims)

  if stop - start == 1 and buf[start] < 0x80:  # one small varint: the common scalar (e.g. an action)
    raw = [buf[start]]
  else:
    raw = _varints(buf, start, stop)
  count = len(raw)
  _check_count(dims, size, count, field)
  if size == -1:
    v = int(raw[0])
    if field == 7:
      return v != 0
    if field == 3 or field == 5:
      v &= 0xFFFFFFFF
      if field == 3 and v & 0x80000000:
        v -= 1 << 32
    elif field == 4 and v & _SIGN64:
      v -= 1 << 64
    return _VARINT_SCALAR[field](v)
  return np.asarray(raw, dtype=np.uint64).astype(_VARINT[field]).reshape(dims)


def _varints(buf: bytes, pos: int, end: int) -> list[int] | np.ndarray:
  """The unsigned 64-bit values of the packed varints in buf[pos:end]."""
  if end - pos < 16:
    out = []
    while pos < end:
      v, pos = _varint(buf, pos)
      out.append(v)
    if pos != end:
      raise _Slow('truncated')
    return out
  b = np.frombuffer(buf, np.uint8, end - pos, pos)
  last = np.flatnonzero(b < 0x80)  # the last byte of each varint
  if not last.size or last[-1] != b.size - 1:
    raise _Slow('truncated')
  first = np.empty_like(last)
  first[0] = 0
  first[1:] = last[:-1] + 1
  lengths = last - first + 1
  longest = lengths.max()
  if longest == 1:
    return b.astype(np.uint64)
  if longest > 10 or (longest == 10 and (b[last[lengths == 10]] > 1).any()):
    raise _Slow('overlong varint')
  position = np.arange(b.size) - np.repeat(first, lengths)  # index of each byte inside its varint
  parts = (b & 0x7F).astype(np.uint64) << (7 * position).astype(np.uint64)
  return np.bitwise_or.reduceat(parts, first)


def _check_count(dims: tuple[int, ...], size: int, count: int, field: int) -> None:
  if count != size and not (size == -1 and count == 1):
    if size == -1:
      raise StorageError(f'a scalar Datum holds {count} {_FIELD_NAMES[field]}, not 1')
    raise StorageError(f'a Datum of shape {list(dims)} holds {count} {_FIELD_NAMES[field]}')


def _short(value: Any) -> str:
  text = repr(value)
  return text if len(text) <= 80 else text[:77] + '...'


# -- Step-record templates -------------------------------------------------------------------------------
#
# The records of a log mostly share one structure: the same tags, lengths and dict keys, with only the
# contents of the leaf Datums changing (Catch: a FIRST and a MID layout). A template is a function
# compiled from one record: it checks that another record of the same length has exactly the same bytes
# outside the leaf Datums (hence the same parse tree, under protobuf's rules too) and then decodes just
# those leaves and builds the nest. Any mismatch or leaf problem falls back to the generic walker.


class _NoTemplate(Exception):
  """The record's structure is outside what templates cover (kvs dicts, non-canonical fields, ...)."""


_MISS = object()
_TEMPLATES: dict[int, list[Any]] = {}  # record length -> compiled readers, most recent first
_TEMPLATES_PER_LENGTH = 4
_TEMPLATE_LENGTHS_MAX = 1024
_TEMPLATE_LEAVES_MAX = 512
_template_counts = [0, 0]  # [templates built, records read through a template]


def _plan(buf: bytes, pos: int, end: int, leaves: list[tuple[int, int]]) -> str:
  """Python source of the expression building the `Data` in buf[pos:end]; collects the leaf Datums."""
  if pos == end:
    return 'None'
  tag = buf[pos]
  n, start = _varint(buf, pos + 1)
  if start + n != end:
    raise _NoTemplate
  if tag == _T1:
    leaves.append((start, end))
    if len(leaves) > _TEMPLATE_LEAVES_MAX:
      raise _NoTemplate
    return f'_datum(buf, {start}, {end})'
  if tag in (_T2, _T3):
    items = []
    p = start
    while p < end:
      if buf[p] != _T1:
        raise _NoTemplate
      n, s = _varint(buf, p + 1)
      p = s + n
      if p > end:
        raise _NoTemplate
      items.append(_plan(buf, s, p, leaves))
    return f'[{", ".join(items)}]' if tag == _T2 else f'({"".join(item + ", " for item in items)})'
  if tag == _T4:
    entries = []
    keys = set()
    p = start
    while p < end:
      if buf[p] != _T1:  # kvs
        raise _NoTemplate
      n, s = _varint(buf, p + 1)
      e = s + n
      if e > end or s >= e or buf[s] != _T1:
        raise _NoTemplate
      n, ks = _varint(buf, s + 1)
      ke = ks + n
      if ke >= e or buf[ke] != _T2:
        raise _NoTemplate
      n, vs = _varint(buf, ke + 1)
      if vs + n != e:
        raise _NoTemplate
      key = buf[ks:ke].decode('utf-8')
      if key in keys:
        raise _NoTemplate
      keys.add(key)
      entries.append(f'{key!r}: {_plan(buf, vs, e, leaves)}')
      p = e
    return f'{{{", ".join(entries)}}}'
  raise _NoTemplate


def _compile_template(buf: bytes) -> Any:
  """A reader for records with `buf`'s structure: (record bytes) -> decoded value, or _MISS."""
  leaves: list[tuple[int, int]] = []
  try:
    expression = _plan(buf, 0, len(buf), leaves)
  except (_NoTemplate, _Slow, IndexError, UnicodeDecodeError, RecursionError):
    return None
  checks = []
  previous = 0
  for start, stop in [*leaves, (len(buf), len(buf))]:
    if start > previous:
      checks.append(f'same({buf[previous:start]!r}, {previous})')
    previous = stop
  if not checks:
    return None
  source = (
    'def read(buf):\n'
    '  same = buf.startswith\n'
    f'  if {" and ".join(checks)}:\n'
    f'    return {expression}\n'
    '  return _MISS\n'
  )
  namespace = {'_datum': _datum, '_MISS': _MISS}
  try:
    exec(compile(source, '<envlogger step template>', 'exec'), namespace)
  except (SyntaxError, RecursionError, MemoryError):  # nests too deep for the compiler
    return None
  return namespace['read']


def _learn_template(buf: bytes) -> None:
  built, hits = _template_counts
  if built >= 32 and hits < 16 * built:  # structures keep changing: templates do not pay off
    return
  reader = _compile_template(buf)
  if reader is None:
    return
  _template_counts[0] += 1
  if len(_TEMPLATES) >= _TEMPLATE_LENGTHS_MAX:
    _TEMPLATES.clear()
  readers = _TEMPLATES.setdefault(len(buf), [])
  readers.insert(0, reader)
  del readers[_TEMPLATES_PER_LENGTH:]


def _decode_record(buf: bytes) -> Any:
  """`decode` for records that come in a few repeated structures (steps.riegeli)."""
  learn = True
  readers = _TEMPLATES.get(len(buf))
  if readers:
    for reader in readers:
      try:
        value = reader(buf)
      except (_Slow, StorageError, IndexError, UnicodeDecodeError, RecursionError):
        learn = False  # the structure is known, a leaf is not for the fast path: the generic path decides
        break
      if value is not _MISS:
        _template_counts[1] += 1
        return value
  value = _decode_bytes(buf, _data, Data)
  if learn:
    _learn_template(buf)
  return value


# -- Entry points ---------------------------------------------------------------------------------------


def _as_bytes(data: Any, message_name: str) -> bytes | None:
  if data is None:
    return None
  if isinstance(data, bytes):
    return data
  if isinstance(data, (bytearray, memoryview)):
    return bytes(data)
  if isinstance(data, _message.Message):
    full_name = data.DESCRIPTOR.full_name
    if full_name != message_name:
      raise TypeError(f'expected a {message_name} message, got a {full_name}')
    return data.SerializeToString()
  raise TypeError(f'expected serialized {message_name} bytes or a {message_name} message, got {type(data)}')


def _decode_bytes(buf: bytes, walk: Any, cls: type[_message.Message]) -> Any:
  try:
    return walk(buf, 0, len(buf))
  except (_Slow, IndexError, UnicodeDecodeError, RecursionError, StorageError):
    pass
  # Let protobuf parse it: it rejects what is not a message and applies the merge rules (last oneof
  # member wins, repeated runs concatenate, ...). Its canonical serialization (one packed run per field,
  # no unknown fields) is then walked, and that walk's value or error is the answer.
  name = cls.DESCRIPTOR.full_name
  try:
    msg = cls.FromString(buf)
  except (_message.DecodeError, RecursionError) as e:
    raise StorageError(f'{len(buf)} bytes do not parse as an {name} message: {e}') from e
  msg.DiscardUnknownFields()
  canonical = msg.SerializeToString()
  try:
    return walk(canonical, 0, len(canonical))
  except (_Slow, IndexError, UnicodeDecodeError) as e:  # not expected for a canonical message
    raise StorageError(f'cannot decode this {name} message ({e})') from e
  except RecursionError as e:
    raise StorageError(f'this {name} message is nested too deeply') from e


def decode(data: bytes | bytearray | memoryview | _message.Message | None) -> Any:
  """Decodes an `envlogger.Data` into the Python value EnvLogger 1.3's `codec.decode` returns.

  Args:
    data: a serialized `envlogger.Data`, or a `Data` message (this module's or any other class with
      that full name, e.g. the original's `storage_pb2.Data`), or None.

  Returns:
    None for None or an empty `Data`; otherwise the list/tuple/dict nest of numpy arrays, numpy
    scalars, `int`, `bool`, `str` and `bytes` described in the module docstring.

  Raises:
    StorageError: the bytes are not a `Data` message, or hold a value the codec cannot produce (see the
      module docstring).
    TypeError: `data` is neither bytes nor a `Data` message.
  """
  buf = _as_bytes(data, 'envlogger.Data')
  if buf is None:
    return None
  return _decode_bytes(buf, _data, Data)


def decode_datum(datum: bytes | bytearray | memoryview | _message.Message) -> Any:
  """Decodes an `envlogger.Datum` (e.g. a record of `step_offsets.riegeli` or `episode_index.riegeli`).

  Args:
    datum: a serialized `envlogger.Datum`, or a `Datum` message.

  Returns:
    A numpy array (reshaped to the Datum's dims), a scalar (see the module docstring), or None for a
    Datum without values.

  Raises:
    StorageError: the bytes are not a `Datum`, or its values do not fit its shape.
    TypeError: `datum` is neither bytes nor a `Datum` message.
  """
  buf = _as_bytes(datum, 'envlogger.Datum')
  if buf is None:
    raise TypeError('expected serialized envlogger.Datum bytes or a Datum message, got None')
  return _decode_bytes(buf, _datum, Datum)


_STEP_TYPES = {int(t): t for t in dm_env.StepType}


def decode_step(data: bytes | bytearray | memoryview | _message.Message) -> tuple[dm_env.TimeStep, Any, Any]:
  """Decodes one record of `steps.riegeli` as EnvLogger 1.3's Riegeli reader does.

  The record is `codec.encode(StepData)`: `((step_type, reward, discount, observation), action,
  custom_data)`. The step type is stored as a Python int and comes back as a `dm_env.StepType`; reward
  and discount are None on FIRST steps, and so is the action (a reset has none).

  Args:
    data: a serialized `envlogger.Data` step record (or the message).

  Returns:
    (timestep, action, custom_data), the fields of the original's `StepData`.

  Raises:
    StorageError: the record is not a `Data`, or not a step record of that layout.
  """
  buf = _as_bytes(data, 'envlogger.Data')
  if buf is None:
    raise TypeError('expected serialized envlogger.Data bytes or a Data message, got None')
  value = _decode_record(buf)
  if type(value) is not tuple or len(value) != 3 or type(value[0]) is not tuple or len(value[0]) != 4:
    raise StorageError(
      'a step record is ((step_type, reward, discount, observation), action, custom_data), '
      f'got {_short(value)}'
    )
  (step_type, reward, discount, observation), action, custom_data = value
  try:
    step_type = _STEP_TYPES[step_type]
  except (KeyError, TypeError):
    try:
      step_type = dm_env.StepType(step_type)
    except (ValueError, TypeError) as e:
      raise StorageError(f'not a dm_env.StepType: {_short(step_type)}') from e
  return dm_env.TimeStep(step_type, reward, discount, observation), action, custom_data


_SPEC_NAMES = ('observation_spec', 'action_spec', 'reward_spec', 'discount_spec')


def _decode_spec(encoded: Any) -> Any:
  """Rebuilds a dm_env spec nest from `spec_codec.encode`'s dicts (EnvLogger 1.3's `spec_codec.decode`)."""
  if isinstance(encoded, dict):
    if 'shape' in encoded and 'dtype' in encoded:
      shape = encoded['shape'] if encoded['shape'] is not None else ()
      name = encoded.get('name')
      if 'num_values' in encoded:
        return specs.DiscreteArray(num_values=encoded['num_values'], dtype=encoded['dtype'], name=name)
      if 'minimum' in encoded and 'maximum' in encoded:
        return specs.BoundedArray(
          shape=shape,
          dtype=encoded['dtype'],
          minimum=encoded['minimum'],
          maximum=encoded['maximum'],
          name=name,
        )
      return specs.Array(shape=shape, dtype=encoded['dtype'], name=name)
    return {k: _decode_spec(v) for k, v in encoded.items()}
  if isinstance(encoded, list):
    return [_decode_spec(x) for x in encoded]
  if isinstance(encoded, tuple):
    return tuple(_decode_spec(x) for x in encoded)
  raise StorageError(f'an encoded spec is a dict, list or tuple, got {_short(encoded)}')


def environment_specs(metadata: Mapping[str, Any] | None) -> tuple[Any, Any, Any, Any]:
  """The four dm_env specs of a log, from its decoded dataset metadata.

  As EnvLogger 1.3's `Reader`: `metadata['environment_specs']` holds the spec nests encoded by its
  `spec_codec` (each leaf a dict with 'shape', 'dtype', 'name', plus 'minimum'/'maximum' for a
  `BoundedArray` and 'num_values' for a `DiscreteArray`; a None shape is `()`). Bounds of a
  `DiscreteArray` are not read: dm_env derives them from `num_values`.

  Args:
    metadata: the decoded `metadata.riegeli` record (a dict), or None.

  Returns:
    (observation_spec, action_spec, reward_spec, discount_spec); all None when the metadata has no
    (or empty) 'environment_specs'.

  Raises:
    StorageError: 'environment_specs' lacks one of the four specs or holds something that is not a spec.
  """
  if metadata is None:
    return None, None, None, None
  if not isinstance(metadata, Mapping):
    raise StorageError(f'the dataset metadata is a dict, got {_short(metadata)}')
  encoded = metadata.get('environment_specs')
  if not encoded:
    return None, None, None, None
  if not isinstance(encoded, Mapping):
    raise StorageError(f"metadata['environment_specs'] is a dict, got {_short(encoded)}")
  missing = [name for name in _SPEC_NAMES if name not in encoded]
  if missing:
    raise StorageError(f"metadata['environment_specs'] lacks {', '.join(missing)}")
  try:
    return tuple(_decode_spec(encoded[name]) for name in _SPEC_NAMES)  # type: ignore[return-value]
  except StorageError:
    raise
  except (ValueError, TypeError) as e:
    raise StorageError(f'invalid environment spec: {e}') from e
