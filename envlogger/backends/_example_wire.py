"""The `tf.train.Example` wire format, written and read with numpy.

Why by hand: building an Example with the protobuf API copies every value
through Python objects (a bytes object per step and field, or element-by-
element float lists: ~10 us per step, stack.md §9), and the only Example
classes available without TensorFlow live in `tensorflow_datasets`, whose
import costs ~0.6 s and hundreds of modules in every actor process. The
format is small and stable (Example > Features > map<string, Feature> >
BytesList/Int64List), so we write whole columns at once: a column of n
fixed-size steps becomes one numpy array of n `(tag, length, bytes)` entries.
Tests check that protobuf parses what we write and that we parse what
protobuf writes.

Message layout (field numbers from tensorflow/core/example/*.proto):
  Example  { Features features = 1; }
  Features { map<string, Feature> feature = 1; }   entry { key = 1; value = 2; }
  Feature  { BytesList bytes_list = 1; FloatList float_list = 2; Int64List int64_list = 3; }
  BytesList{ repeated bytes value = 1; }  Int64List { repeated int64 value = 1 [packed]; }
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_LEN1 = 0x0A  # field 1, length-delimited
_LEN2 = 0x12  # field 2, length-delimited
_LEN3 = 0x1A  # field 3, length-delimited


_ONE_BYTE = [bytes((i,)) for i in range(0x80)]
_ENTRY_HEAD = [bytes((_LEN1, i)) for i in range(0x80)]  # a BytesList entry's tag and length


def varint(n: int) -> bytes:
  if 0 <= n < 0x80:  # the common case (lengths of small fields), without a loop
    return _ONE_BYTE[n]
  out = bytearray()
  while n > 0x7F:
    out.append((n & 0x7F) | 0x80)
    n >>= 7
  out.append(n)
  return bytes(out)


def _len_field(tag: int, payload_len: int) -> bytes:
  if payload_len < 0x80:
    return bytes((tag, payload_len))
  return bytes((tag,)) + varint(payload_len)


# -- Feature payloads -----------------------------------------------------------


def bytes_feature_fixed(column: np.ndarray, n: int) -> bytes:
  """A BytesList Feature holding n entries of equal size: the rows of `column`."""
  flat = np.ascontiguousarray(column).view(np.uint8).reshape(n, -1) if n else np.zeros((0, 0), np.uint8)
  size = flat.shape[1]
  head = _len_field(_LEN1, size)
  rows = np.empty((n, len(head) + size), dtype=np.uint8)
  rows[:, : len(head)] = np.frombuffer(head, dtype=np.uint8)
  rows[:, len(head) :] = flat
  body = rows.tobytes()
  return _len_field(_LEN1, len(body)) + body


def bytes_feature(values: Sequence[bytes]) -> bytes:
  """A BytesList Feature with arbitrary entries."""
  parts = []
  for v in values:
    n = len(v)
    parts.append(_ENTRY_HEAD[n] if n < 0x80 else _len_field(_LEN1, n))
    parts.append(v)
  return bytes_feature_of_entries(parts)


def bytes_entry(value: bytes) -> bytes:
  """One BytesList entry (its tag, length and bytes), for `bytes_feature_of_entries`."""
  n = len(value)
  return (_ENTRY_HEAD[n] if n < 0x80 else _len_field(_LEN1, n)) + value


def bytes_feature_of_entries(entries: Sequence[bytes]) -> bytes:
  """A BytesList Feature from its entries (`bytes_entry`), joined as they are."""
  body = b''.join(entries)
  return _len_field(_LEN1, len(body)) + body


def encode_varints(values: np.ndarray) -> bytes:
  """Protobuf varints of int64 values (two's complement, as Int64List stores them)."""
  if values.size <= 64:
    # A short column (an episode's actions): Python ints cost less than the
    # numpy calls below (1.0 against 2.6 us for 10 actions).
    ints = values.ravel().tolist()
    if ints and min(ints) >= 0 and max(ints) < 0x80:
      return bytes(ints)
  v = np.ascontiguousarray(values).astype(np.int64, copy=False).view(np.uint64).ravel()
  if not v.size:
    return b''
  if int(v.max()) < 0x80:
    return v.astype(np.uint8).tobytes()
  nbytes = np.ones(v.shape, dtype=np.int64)
  for j in range(1, 10):
    nbytes += v >= (np.uint64(1) << np.uint64(7 * j))
  out = np.zeros((v.size, 10), dtype=np.uint8)
  for j in range(10):
    byte = (v >> np.uint64(7 * j)) & np.uint64(0x7F)
    more = nbytes > j + 1
    out[:, j] = byte.astype(np.uint8) | (more.astype(np.uint8) << 7)
  keep = np.arange(10)[None, :] < nbytes[:, None]
  return out[keep].tobytes()


def decode_varints(raw: np.ndarray) -> np.ndarray:
  """Inverse of `encode_varints` on a uint8 array; returns int64 values."""
  if not raw.size:
    return np.zeros(0, np.int64)
  ends = raw < 0x80
  if ends.all():
    return raw.astype(np.int64)
  if not ends[-1]:
    raise WireError('truncated varint')
  starts = np.flatnonzero(np.concatenate(([True], ends[:-1])))
  group = np.cumsum(np.concatenate(([0], ends[:-1].astype(np.int64))))
  shift = (np.arange(raw.size) - starts[group]) * 7
  if shift.max() > 63:
    raise WireError('varint too long')
  parts = (raw.astype(np.uint64) & np.uint64(0x7F)) << shift.astype(np.uint64)
  return np.add.reduceat(parts, starts).view(np.int64)


def int64_feature(values: np.ndarray) -> bytes:
  """An Int64List Feature (packed varints)."""
  packed = encode_varints(values)
  inner = _len_field(_LEN1, len(packed)) + packed if packed else b''
  return _len_field(_LEN3, len(inner)) + inner


def bool_feature(flags: np.ndarray) -> bytes:
  """An Int64List Feature of 0/1 values (packed; one byte each)."""
  if type(flags) is not np.ndarray or flags.dtype != np.bool_:
    flags = np.asarray(flags, dtype=bool)
  return packed_flags_feature(flags.tobytes())  # bools are the bytes 0 and 1


def packed_flags_feature(packed: bytes) -> bytes:
  """An Int64List Feature of values 0..127 given as one byte each."""
  inner = _len_field(_LEN1, len(packed)) + packed if packed else b''
  return _len_field(_LEN3, len(inner)) + inner


def key_head(key: str) -> bytes:
  """The bytes of a feature map entry before its Feature's length: the key
  field and the Feature's tag (for `map_entry`)."""
  k = key.encode()
  return _len_field(_LEN1, len(k)) + k + bytes((_LEN2,))


def example(features: dict[str, bytes]) -> bytes:
  """Serializes an Example from {key: serialized Feature}."""
  return example_from_entries([map_entry(key_head(k), f) for k, f in features.items()])


def map_entry(head: bytes, feature: bytes) -> bytes:
  """A feature map entry from `key_head(key)` and a serialized Feature
  (callers writing many Examples compute the heads once, and may keep entries
  that repeat)."""
  n = len(feature)
  flen = _ONE_BYTE[n] if n < 0x80 else varint(n)
  return _len_field(_LEN1, len(head) + len(flen) + n) + head + flen + feature


def example_from_entries(entries: Sequence[bytes]) -> bytes:
  """Serializes an Example from its feature map entries (`map_entry`)."""
  body = b''.join(entries)
  return _len_field(_LEN1, len(body)) + body


# -- Parsing ------------------------------------------------------------------


class WireError(ValueError):
  """The bytes are not a well-formed Example."""


def _read_varint(buf: memoryview, pos: int) -> tuple[int, int]:
  result = shift = 0
  while True:
    if pos >= len(buf):
      raise WireError('truncated varint')
    b = buf[pos]
    pos += 1
    result |= (b & 0x7F) << shift
    if b < 0x80:
      return result, pos
    shift += 7
    if shift > 63:
      raise WireError('varint too long')


def _fields(buf: memoryview, start: int, end: int):
  """Yields (field number, wire type, value) of a message; LEN values as (start, end)."""
  pos = start
  while pos < end:
    key, pos = _read_varint(buf, pos)
    num, wt = key >> 3, key & 7
    if wt == 2:
      n, pos = _read_varint(buf, pos)
      if pos + n > end:
        raise WireError('field runs past its message')
      yield num, wt, (pos, pos + n)
      pos += n
    elif wt == 0:
      v, pos = _read_varint(buf, pos)
      yield num, wt, v
    elif wt == 5:
      yield num, wt, (pos, pos + 4)
      pos += 4
    elif wt == 1:
      yield num, wt, (pos, pos + 8)
      pos += 8
    else:
      raise WireError(f'unsupported wire type {wt}')
  if pos != end:
    raise WireError('message overruns its length')


def parse_example(data: bytes) -> dict[str, tuple[int, memoryview]]:
  """Maps each feature key to (kind, payload): kind 1 bytes, 2 float, 3 int64 list.

  Written as one flat loop with lengths below 128 (one varint byte) read
  inline: this runs once per episode read, and Python function calls would
  be most of its cost. Payloads are zero-copy views of `data`.
  """
  buf = memoryview(data)
  if not isinstance(data, bytes):
    data = bytes(data)
  end = len(data)
  out = {}
  pos = 0
  while pos < end:  # Example: field 1 = Features
    tag = data[pos]
    length = data[pos + 1] if pos + 1 < end else 0x80
    if length < 0x80:
      pos += 2
    else:
      length, pos = _read_varint(buf, pos + 1)
    if tag != _LEN1:
      if tag & 7 != 2:
        raise WireError(f'unexpected field tag {tag} in Example')
      pos += length
      continue
    fend = pos + length
    if fend > end:
      raise WireError('Features runs past the Example')
    while pos < fend:  # Features: field 1 = map entry
      tag = data[pos]
      length = data[pos + 1] if pos + 1 < fend else 0x80
      if length < 0x80:
        pos += 2
      else:
        length, pos = _read_varint(buf, pos + 1)
      eend = pos + length
      if eend > fend:
        raise WireError('feature entry runs past Features')
      if tag != _LEN1:
        pos = eend
        continue
      key = None
      kind, payload = 0, buf[0:0]
      while pos < eend:  # entry: 1 = key, 2 = Feature
        tag = data[pos]
        length = data[pos + 1] if pos + 1 < eend else 0x80
        if length < 0x80:
          pos += 2
        else:
          length, pos = _read_varint(buf, pos + 1)
        if pos + length > eend:
          raise WireError('field runs past its feature entry')
        if tag == _LEN1:
          key = data[pos : pos + length].decode()
        elif tag == _LEN2:
          f, fe = pos, pos + length
          while f < fe:  # Feature: 1 bytes_list, 2 float_list, 3 int64_list
            ktag = data[f]
            klen = data[f + 1] if f + 1 < fe else 0x80
            if klen < 0x80:
              f += 2
            else:
              klen, f = _read_varint(buf, f + 1)
            if f + klen > fe or ktag & 7 != 2:
              raise WireError('malformed Feature')
            kind, payload = ktag >> 3, buf[f : f + klen]
            f += klen
        pos += length
      if key is None:
        raise WireError('feature entry without a key')
      out[key] = (kind, payload)
    if pos != fend:
      raise WireError('Features overruns its length')
  if pos != end:
    raise WireError('Example overruns its length')
  return out


def layout_of(features: dict[str, tuple[int, memoryview]]) -> tuple[tuple[str, bytes], ...]:
  """The key order of a parsed Example, for `parse_like`."""
  return tuple((k, key_head(k)) for k in features)


def parse_like(
  data: bytes, layout: tuple[tuple[str, bytes], ...]
) -> dict[str, tuple[int, memoryview]] | None:
  """`parse_example` of an Example whose features come in `layout`'s order
  (as this package writes every episode of a log), or None if the bytes are
  laid out any other way (then call `parse_example`).

  Each entry is checked against the serialized key expected there instead of
  being parsed field by field: 5 instead of 10 us for a Catch episode. It
  returns what `parse_example` would, or None; never a different result.
  """
  if not isinstance(data, bytes):
    return None
  buf = memoryview(data)
  end = len(data)
  out = {}
  try:
    if data[0] != _LEN1:
      return None
    length = data[1]
    if length < 0x80:
      pos = 2
    else:
      length, pos = _read_varint(buf, 1)
    if pos + length != end:
      return None
    for key, head in layout:
      if data[pos] != _LEN1:
        return None
      length = data[pos + 1]
      if length < 0x80:
        pos += 2
      elif data[pos + 2] < 0x80:  # two-byte lengths inline (a call costs about 0.4 us)
        length = (length & 0x7F) | (data[pos + 2] << 7)
        pos += 3
      else:
        length, pos = _read_varint(buf, pos + 1)
      eend = pos + length
      if not data.startswith(head, pos):
        return None
      f = pos + len(head)
      flen = data[f]
      if flen < 0x80:
        f += 1
      elif data[f + 1] < 0x80:
        flen = (flen & 0x7F) | (data[f + 1] << 7)
        f += 2
      else:
        flen, f = _read_varint(buf, f)
      if f + flen != eend:
        return None
      ktag = data[f]
      klen = data[f + 1]
      if klen < 0x80:
        f += 2
      elif data[f + 2] < 0x80:
        klen = (klen & 0x7F) | (data[f + 2] << 7)
        f += 3
      else:
        klen, f = _read_varint(buf, f + 1)
      if f + klen != eend or ktag & 7 != 2:
        return None
      out[key] = (ktag >> 3, buf[f:eend])
      pos = eend
  except (IndexError, WireError):
    return None
  return out if pos == end else None


def bytes_entries(payload: memoryview) -> list[memoryview]:
  """The entries of a BytesList payload (zero-copy views)."""
  out = []
  pos, end = 0, len(payload)
  while pos < end:
    tag = payload[pos]
    length = payload[pos + 1] if pos + 1 < end else 0x80
    if length < 0x80:  # one-byte length, read inline (the common case)
      pos += 2
    elif pos + 2 < end and payload[pos + 2] < 0x80:  # two bytes (compressed frames), inline too
      length = (length & 0x7F) | (payload[pos + 2] << 7)
      pos += 3
    else:
      length, pos = _read_varint(payload, pos + 1)
    if pos + length > end or tag & 7 != 2:
      raise WireError('malformed BytesList')
    if tag == _LEN1:
      out.append(payload[pos : pos + length])
    pos += length
  return out


def fixed_entries(payload: memoryview, n: int, size: int) -> np.ndarray | None:
  """The entries of a BytesList of n entries of `size` bytes, as an (n, size) uint8 view.

  Returns None if the payload is not laid out that way (then use bytes_entries).
  """
  head = _len_field(_LEN1, size)
  row = len(head) + size
  if len(payload) != n * row:
    return None
  # Every entry starts with the same tag and length: the heads, gathered by a
  # strided view in one C copy, are compared at once (2 us for 1000 entries).
  if not n or not size:  # no bytes to view: the heads are the payload
    return np.zeros((n, size), dtype=np.uint8) if payload == head * n else None
  if np.ndarray((n,), f'V{len(head)}', payload, 0, (row,)).tobytes() != head * n:
    return None
  return np.ndarray((n, size), np.uint8, payload, len(head), (row, 1))


def packed_body(payload: memoryview) -> memoryview | None:
  """The varints of an Int64List payload that is one packed field (as we write
  them), else None."""
  if len(payload) < 2 or payload[0] != _LEN1:
    return None
  length = payload[1]
  if length < 0x80:
    pos = 2
  else:
    try:
      length, pos = _read_varint(payload, 1)
    except WireError:
      return None
  return payload[pos:] if pos + length == len(payload) else None


def bool_values(payload: memoryview) -> np.ndarray:
  """The values of an Int64List payload as a bool array (nonzero -> True; may be read-only)."""
  body = packed_body(payload)
  if body is not None:
    packed = bytes(body)
    if not packed.translate(None, b'\x00\x01'):  # 0/1 bytes, as bool_feature writes them
      return np.frombuffer(packed, dtype=np.bool_)  # read-only
  return int64_values(payload).astype(bool)


def int64_values(payload: memoryview) -> np.ndarray:
  """The values of an Int64List payload (packed or not)."""
  body = packed_body(payload)
  if body is not None:  # the common case, as we write it: one packed field
    packed = bytes(body)
    if packed.isascii():  # every value is one byte (0..127): flags, small actions
      return np.frombuffer(packed, dtype=np.uint8).astype(np.int64)
    return decode_varints(np.frombuffer(packed, dtype=np.uint8))
  chunks = []
  for num, wt, v in _fields(payload, 0, len(payload)):
    if num != 1:
      continue
    if wt == 0:
      chunks.append(np.asarray([v], dtype=np.uint64).view(np.int64))
    elif wt == 2:
      s, e = v
      chunks.append(decode_varints(np.frombuffer(payload[s:e], dtype=np.uint8)))
  if not chunks:
    return np.zeros(0, np.int64)
  return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)
