"""Writes logs in the layout of DeepMind's envlogger 1.3 Riegeli backend, for benchmarks.

`write_catch_log(directory, episodes)` records a Catch-like env (10x5 float32
board, 3 actions, 10-step episodes) and writes what envlogger 1.3's
`RiegeliBackendWriter` writes for it (see `/work/shared/research/envlogger_format.md`
and `tests/fixtures/envlogger13/README.md`):

  <directory>/metadata.riegeli          one Data record: user metadata + 'environment_specs'
  <directory>/<UTC timestamp>/          one shard per `max_episodes_per_file` episodes
    steps.riegeli                       one Data record per timestep (StepData), in
                                        transposed brotli chunks of ~3050 records
    step_offsets.riegeli                Datum records: step record positions, one per flush
    episode_index.riegeli               Datum (k, 2) records: [local start step, metadata
                                        record position or -1]
    episode_metadata.riegeli            Data records: each episode's last episode_fn value

Step records are byte for byte what 1.3's codec writes (checked against the
fixture's `raw_record_b64`, see `--selftest`). Flushes follow the original:
with probability 1/5000 after each step (seeded here), before a new shard and
at close; a flush closes the current chunk of every file, writes the step
positions added since the last flush and the index rows of the finished
episodes.

The Riegeli files are written by this module's own code: the block/chunk
framing from riegeli's `doc/riegeli_records_file_format.md`, and a
*transposed* chunk encoder written from our reading of riegeli's C++
`transpose_decoder.cc` (and, for its conventions, `transpose_encoder.cc`),
read for understanding only. The encoding is a simple one (one state per tag
path and value kind, implicit moves for single-successor states, no-op states
only where a state's successors span more than 64 states, one bucket per
buffer type); `envlogger`'s reader decodes it, and as far as we can tell from
riegeli's decoder it accepts it too, but it is NOT a validated replacement for
riegeli's writer: nothing here was checked against riegeli's own C++ code.
Map fields (dicts) are written in the dict's order, where the original writes
upb's hash-table order (the decoded values are equal).

Usage:

  python benchmarks/riegeli_log.py OUT_DIR --episodes 2000 [--seed 0] [--check]
  python benchmarks/riegeli_log.py --selftest
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import datetime
import json
import os
import struct
import sys
import time
from collections.abc import Iterable, Sequence
from typing import Any

import brotli
import dm_env
import numpy as np
from dm_env import specs

from envlogger._riegeli.highwayhash import riegeli_hash
from envlogger.step_data import StepData
from envlogger.testing.catch_env import Catch

__all__ = [
  'CatchLog',
  'RiegeliFileWriter',
  'ShardWriter',
  'check_log',
  'encode_data',
  'encode_datum',
  'encode_environment_specs',
  'encode_transposed_chunk',
  'write_catch_log',
]

STEPS_PER_CHUNK = 3050  # what the original's default 'chunk_size:1M' gives for Catch steps (measured)
FLUSH_PROBABILITY = 1 / 5000  # the original's default flush scheduler: BernoulliStepScheduler(1/5000)
MAX_EPISODES_PER_FILE = 10_000  # RiegeliBackendWriter's default shard size
BROTLI_LEVEL = 6  # 'brotli:6'
BROTLI_WINDOW_LOG = 22  # riegeli's default brotli window

_M64 = (1 << 64) - 1

# -- Protocol buffer wire format -------------------------------------------------------------------------


def _varint(value: int) -> bytes:
  """The varint encoding of a non-negative int (callers mask negatives to 64 bits)."""
  if value < 0x80:
    return bytes((value,))
  out = bytearray()
  while value >= 0x80:
    out.append((value & 0x7F) | 0x80)
    value >>= 7
  out.append(value)
  return bytes(out)


def _ld(field: int, payload: bytes) -> bytes:
  """A length-delimited field (wire type 2)."""
  return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def _packed_varints(values: Iterable[int]) -> bytes:
  return b''.join(_varint(int(v) & _M64) for v in values)


# -- EnvLogger 1.3's value codec (envlogger/converters/codec.py), encoding side ----------------------------

SCALAR_DIM_SIZE = -438
# Datum.shape = Shape{dim{size: -438}}: the scalar marker.
_SCALAR_SHAPE = _ld(1, _ld(2, b'\x08' + _varint(SCALAR_DIM_SIZE & _M64)))

# Datum.Values fields of numpy arrays stored as packed little-endian numbers / packed varints / big-endian bytes.
_LE_FIELDS = {np.dtype(np.float32): (1, '<f4'), np.dtype(np.float64): (2, '<f8')}
_VARINT_FIELDS = {
  np.dtype(np.int32): 3,
  np.dtype(np.int64): 4,
  np.dtype(np.uint32): 5,
  np.dtype(np.uint64): 6,
  np.dtype(np.bool_): 7,
}
_BE_FIELDS = {
  np.dtype(np.int8): (11, '>i1'),
  np.dtype(np.int16): (12, '>i2'),
  np.dtype(np.uint8): (13, '>u1'),
  np.dtype(np.uint16): (14, '>u2'),
}


def _array_values(array: np.ndarray) -> bytes:
  """The `Datum.Values` payload of a numpy array, as 1.3 encodes it (float32 arrays: `float_values`)."""
  dtype = array.dtype
  flat = array.ravel(order='C')
  if dtype in _LE_FIELDS:
    field, wire = _LE_FIELDS[dtype]
    return _ld(field, flat.astype(wire).tobytes()) if flat.size else b''
  if dtype in _VARINT_FIELDS:
    return _ld(_VARINT_FIELDS[dtype], _packed_varints(flat.tolist())) if flat.size else b''
  if dtype in _BE_FIELDS:
    field, wire = _BE_FIELDS[dtype]
    return _ld(field, flat.astype(wire).tobytes())
  if dtype.kind == 'U':
    return b''.join(_ld(8, str(x).encode('utf-8')) for x in flat)
  if dtype.kind == 'S':
    return b''.join(_ld(9, bytes(x)) for x in flat)
  raise TypeError(f'unsupported array dtype {dtype}')


_PACK_F64 = struct.Struct('<d').pack
_PACK_F32 = struct.Struct('<f').pack


def _scalar_values(value: Any) -> bytes:
  """The `Datum.Values` payload of a scalar (codec's `_set_datum_values_from_scalar`)."""
  t = type(value)
  if t is float or t is np.float64:  # the common cases first (rewards, discounts, returns)
    return b'\x12\x08' + _PACK_F64(value)
  if t is np.int64:
    return b'\x22' + _varint(len(_varint(int(value) & _M64))) + _varint(int(value) & _M64)
  if isinstance(value, str):
    return _ld(8, value.encode('utf-8'))
  if isinstance(value, bytes):
    return _ld(9, value)
  if isinstance(value, (bool, np.bool_)):
    return _ld(7, b'\x01' if value else b'\x00')
  if isinstance(value, int):  # Python ints (and IntEnums): signed big-endian bytes
    return _ld(10, value.to_bytes(value.bit_length() // 8 + 1, 'big', signed=True))
  if t is np.float32:
    return b'\x0a\x04' + _PACK_F32(value)
  dtype = np.result_type(value)
  if dtype in _BE_FIELDS:
    field, wire = _BE_FIELDS[dtype]
    return _ld(field, np.asarray(value).astype(wire).tobytes())
  if dtype in _LE_FIELDS:
    field, wire = _LE_FIELDS[dtype]
    return _ld(field, np.asarray(value).astype(wire).tobytes())
  if dtype in _VARINT_FIELDS:
    return _ld(_VARINT_FIELDS[dtype], _varint(int(value) & _M64))
  raise TypeError(f'unknown type {type(value)}, value {value!r}')


def encode_datum(array: np.ndarray) -> bytes:
  """A serialized `envlogger.Datum` of a numpy array: dims > 0, then its values."""
  dims = b''.join(_ld(2, b'\x08' + _varint(d)) for d in array.shape if d > 0)
  values = _array_values(array)
  return (_ld(1, dims) if dims else b'') + (_ld(2, values) if values else b'')


def encode_data(value: Any) -> bytes:
  """A serialized `envlogger.Data` of a Python value, as envlogger 1.3's `codec.encode` writes it.

  None and empty lists/tuples/dicts give an empty message; lists are `array`s
  (elements of one type), tuples (namedtuples too) `tuple`s, dicts `dict`s
  (str keys in the `values` map, in the dict's order; other keys in `kvs`),
  numpy arrays and scalars `datum`s. Fields are written in field-number order,
  as protobuf does.

  Raises:
    TypeError: a value the codec cannot encode (or a list of mixed types).
  """
  if value is None:
    return b''
  if isinstance(value, list):
    if not value:
      return b''
    first = type(value[0])
    for x in value:
      if not isinstance(x, first):
        raise TypeError(f'a list must be homogeneous: {value!r}')
    return _ld(2, b''.join(_ld(1, encode_data(x)) for x in value))
  if isinstance(value, tuple):
    if not value:
      return b''
    return _ld(3, b''.join(_ld(1, encode_data(x)) for x in value))
  if isinstance(value, dict):
    if not value:
      return b''
    entries = []
    kvs = []
    for k, v in value.items():
      if isinstance(k, str):
        entries.append(_ld(1, _ld(1, k.encode('utf-8')) + _ld(2, encode_data(v))))
      else:
        kvs.append(_ld(1, _ld(3, _ld(1, encode_data(k)) + _ld(1, encode_data(v)))))
    body = b''.join(entries) + (_ld(2, b''.join(kvs)) if kvs else b'')
    return _ld(4, body)
  if isinstance(value, np.ndarray):
    datum = encode_datum(value)
    return _ld(1, datum) if datum else b''  # no dims > 0 and no values: nothing set, an empty Data
  return _ld(1, _SCALAR_SHAPE + _ld(2, _scalar_values(value)))


def _encode_spec(spec: specs.Array) -> dict[str, Any]:
  """One spec as envlogger 1.3's `spec_codec` stores it."""
  out: dict[str, Any] = {
    'shape': np.asarray(spec.shape, dtype=np.int64),
    'dtype': str(spec.dtype),
    'name': spec.name,
  }
  if isinstance(spec, specs.BoundedArray):
    out['minimum'] = spec.minimum
    out['maximum'] = spec.maximum
  if isinstance(spec, specs.DiscreteArray):
    out['num_values'] = int(spec.num_values)
  return out


def _encode_spec_nest(nest: Any) -> Any:
  if isinstance(nest, specs.Array):
    return _encode_spec(nest)
  if isinstance(nest, dict):
    return {k: _encode_spec_nest(v) for k, v in nest.items()}
  if isinstance(nest, (list, tuple)):
    return type(nest)(_encode_spec_nest(v) for v in nest)
  raise TypeError(f'not a spec nest: {nest!r}')


def encode_environment_specs(env: dm_env.Environment) -> dict[str, Any]:
  """`metadata['environment_specs']` as envlogger 1.3's `spec_codec.encode_environment_specs` builds it."""
  return {
    'observation_spec': _encode_spec_nest(env.observation_spec()),
    'action_spec': _encode_spec_nest(env.action_spec()),
    'reward_spec': _encode_spec_nest(env.reward_spec()),
    'discount_spec': _encode_spec_nest(env.discount_spec()),
  }


def encode_step(step: StepData) -> bytes:
  """A `steps.riegeli` record: `codec.encode(StepData)` = ((step_type, reward, discount, obs), action, custom)."""
  return encode_data((tuple(step.timestep), step.action, step.custom_data))


# -- Riegeli transposed chunks ('t') ----------------------------------------------------------------------
#
# Layout (what riegeli's TransposeDecoder reads): compression type byte; varint
# size of the compressed header block; the header block; the compressed bucket
# blocks; the compressed transitions block (to the end of the data). A
# compressed block is varint(decompressed size) + stream (the bare data for
# compression type 0). The header holds: num_buckets, num_buffers, the stored
# size of each bucket block, the length of each buffer (the decompressed buckets
# cut in order), num_states, one tag per state, one "next node" per state (the
# base of its transitions, + num_states if the move is implicit), one subtype
# byte per state whose tag has varint wire type, a buffer index per state that
# reads a buffer (in state order), and the first state.
#
# The decoder rebuilds records backwards, from the last field of the last
# record, visiting one state per field (a submessage: its end state, its
# fields, then its start state) and a start-of-message state at the start of
# each record. So the encoder lists each record's events in forward order and
# reverses the whole chunk's list; buffers hold the values in that reversed
# order. Each move from a non-implicit state reads a transition byte:
# (destination - base) << 2, whose low two bits count following non-implicit
# moves that go to their base itself (offset 0) without a byte of their own.

_NOOP, _NONPROTO, _SUB_START, _MSG_START = 0, 1, 2, 3  # reserved state tags (riegeli's MessageId)
_MAX_TRANSITION = 63
_MAX_DEPTH = 100  # submessages nested deeper are kept as strings (riegeli's kMaxRecursionDepth)
_MAX_VARINT_INLINE = 3  # varints 0..3 are stored in the state's subtype (riegeli's kMaxVarintInline)
_VARINT_INLINE0 = 10  # subtype of inline value 0
_BUCKET_SIZE = 1 << 20  # riegeli's default: bucket_fraction 1.0 of the 1M chunk size

_COMPRESSION_TYPES = {'none': 0, 'brotli': 0x62}


def _read_varint(buf: bytes, pos: int, end: int, max_len: int) -> tuple[int, int] | None:
  """A canonical varint (no superfluous trailing byte, at most max_len bytes) at pos, or None."""
  value = 0
  shift = 0
  start = pos
  while pos < end and pos - start < max_len:
    b = buf[pos]
    pos += 1
    value |= (b & 0x7F) << shift
    if b < 0x80:
      if b == 0 and pos - start > 1:
        return None  # overlong
      if value > _M64:
        return None
      return value, pos
    shift += 7
  return None


def _parse_message(buf: bytes) -> list[tuple[int, int, int, int]] | None:
  """The fields of `buf` if it is a canonically encoded proto message, else None.

  A field is (tag, wire type, start, stop): for varints and fixed values the
  value bytes, for length-delimited fields the length prefix and payload.
  Groups are not taken (their bytes stay a string or a non-proto record: also
  a valid encoding).
  """
  fields = []
  pos = 0
  end = len(buf)
  while pos < end:
    tag = buf[pos]
    if tag < 0x80:
      start = pos + 1
    else:
      r = _read_varint(buf, pos, end, 5)
      if r is None:
        return None
      tag, start = r
    wire = tag & 7
    if tag >> 3 == 0 or tag > 0xFFFFFFFF:
      return None
    if wire == 0:
      if start < end and buf[start] < 0x80:
        pos = start + 1
      else:
        r = _read_varint(buf, start, end, 10)
        if r is None or (r[1] - start == 10 and buf[r[1] - 1] > 1):
          return None
        pos = r[1]
    elif wire == 1 or wire == 5:
      pos = start + (8 if wire == 1 else 4)
      if pos > end:
        return None
    elif wire == 2:
      if start < end and buf[start] < 0x80:
        pos = start + 1 + buf[start]
      else:
        r = _read_varint(buf, start, end, 5)
        if r is None or r[0] > 0xFFFFFFFF:
          return None
        pos = r[1] + r[0]
      if pos > end:
        return None
    else:
      return None
    fields.append((tag, wire, start, pos))
  return fields


_STRING = object()  # a length-delimited payload kept as a string


class _ChunkEncoding:
  """The states visited by a chunk's records and the values they read, in forward (record) order.

  A state is numbered by its key: ('M',) start of a record, ('N',) a non-proto
  record, ('S', node) / ('E', node) start / end of a submessage, ('i', node,
  value) an inline varint, ('v', node, length) a varint read from a buffer,
  ('f', node) a fixed32/64 value, ('s', node) a string; a node is a numbered
  (parent node, tag) path (riegeli keys its states the same way).
  """

  def __init__(self) -> None:
    self.node_ids: dict[tuple[int, int], int] = {}  # (parent node, tag) -> node
    self.node_tags: list[int] = [0]  # node 0 is the root message
    self.state_ids: dict[tuple, int] = {}
    self.walk: list[int] = []  # the state of each event
    self.valued: list[tuple[int, bytes]] = []  # (state, bytes read from its buffer) of the events that read
    # (node, payload) -> the (walk, valued) of that submessage, or _STRING:
    # records repeat most of their submessages (shapes, scalars, dict keys).
    self.memo: dict[tuple[int, bytes], Any] = {}

  def state(self, key: tuple) -> int:
    s = self.state_ids.get(key)
    if s is None:
      s = self.state_ids[key] = len(self.state_ids)
    return s

  def node(self, parent: int, tag: int) -> int:
    n = self.node_ids.get((parent, tag))
    if n is None:
      n = self.node_ids[(parent, tag)] = len(self.node_tags)
      self.node_tags.append(tag)
    return n

  def add_record(self, record: bytes) -> None:
    fields = _parse_message(record)
    if fields is None:
      s = self.state(('N',))
      self.walk.append(s)
      self.valued.append((s, record))
      return
    self.walk.append(self.state(('M',)))
    self._add_fields(record, fields, 0, 0, self.walk, self.valued)

  def _submessage(self, node: int, payload: bytes, depth: int) -> Any:
    found = self.memo.get((node, payload))
    if found is not None:
      return found
    fields = _parse_message(payload) if payload and depth <= _MAX_DEPTH else None
    if fields is None:
      found = _STRING
    else:
      walk = [self.state(('S', node))]
      valued: list[tuple[int, bytes]] = []
      self._add_fields(payload, fields, node, depth, walk, valued)
      walk.append(self.state(('E', node)))
      found = (walk, valued)
    self.memo[(node, payload)] = found
    return found

  def _add_fields(
    self,
    buf: bytes,
    fields: list[tuple[int, int, int, int]],
    parent: int,
    depth: int,
    walk: list[int],
    valued: list[tuple[int, bytes]],
  ) -> None:
    for tag, wire, start, stop in fields:
      node = self.node(parent, tag)
      if wire == 0:
        if stop - start == 1 and buf[start] <= _MAX_VARINT_INLINE:
          walk.append(self.state(('i', node, buf[start])))
        else:
          s = self.state(('v', node, stop - start))
          walk.append(s)
          valued.append((s, bytes(b & 0x7F for b in buf[start:stop])))
      elif wire == 2:
        payload_start = start + 1 if buf[start] < 0x80 else _read_varint(buf, start, stop, 5)[1]  # type: ignore[index]
        found = self._submessage(node, buf[payload_start:stop], depth + 1)
        if found is _STRING:
          s = self.state(('s', node))
          walk.append(s)
          valued.append((s, buf[start:stop]))
        else:
          walk += found[0]
          valued += found[1]
      else:
        s = self.state(('f', node))
        walk.append(s)
        valued.append((s, buf[start:stop]))


def _compress(compression: str, data: bytes, level: int) -> bytes:
  if compression == 'none':
    return data
  return _varint(len(data)) + brotli.compress(data, quality=level, lgwin=BROTLI_WINDOW_LOG)


def encode_transposed_chunk(
  records: Sequence[bytes], compression: str = 'brotli', level: int = BROTLI_LEVEL
) -> bytes:
  """The data of a transposed chunk ('t') holding `records` (at least one).

  Args:
    records: the records; those that are canonical proto messages are split
      into fields (length-delimited fields that parse as messages become
      submessages), the others are stored whole as non-proto records.
    compression: 'brotli' or 'none'.
    level: the brotli quality.

  Returns:
    The chunk data (to go after a chunk header with type 't', the number of
    records and the sum of their sizes).
  """
  if not records:
    raise ValueError('a transposed chunk needs at least one record')
  enc = _ChunkEncoding()
  for record in records:
    enc.add_record(record)
  walk = enc.walk[::-1]  # the order the decoder visits states in
  valued = enc.valued[::-1]
  state_keys = list(enc.state_ids)
  n = len(state_keys)

  # Buffers: one per (node, value kind), values in visit order.
  buffer_of: dict[tuple, int] = {}
  buffer_kind: list[str] = []
  state_buffer = [-1] * n
  for s, key in enumerate(state_keys):
    kind = key[0]
    if kind in 'vfsN':
      if kind == 'v':
        bkey = ('varint', key[1])
      elif kind == 'f':
        bkey = ('fixed64' if enc.node_tags[key[1]] & 7 == 1 else 'fixed32', key[1])
      elif kind == 's':
        bkey = ('string', key[1])
      else:
        bkey = ('nonproto', 0)
      b = buffer_of.get(bkey)
      if b is None:
        b = buffer_of[bkey] = len(buffer_kind)
        buffer_kind.append(bkey[0])
      state_buffer[s] = b
  parts: list[list[bytes]] = [[] for _ in buffer_kind]
  for s, value in valued:
    parts[state_buffer[s]].append(value)
  buffers = [b''.join(p) for p in parts]
  nonproto = enc.state_ids.get(('N',))
  nonproto_lengths = (
    b''.join(_varint(len(v)) for s, v in valued if s == nonproto) if nonproto is not None else b''
  )

  # Buffer order and buckets: grouped by kind (one bucket per kind, split at
  # _BUCKET_SIZE), longest first, as riegeli does; the lengths of non-proto
  # records (in visit order too) are the last buffer.
  kinds = ('varint', 'fixed32', 'fixed64', 'string', 'nonproto')
  order = sorted(range(len(buffers)), key=lambda b: (kinds.index(buffer_kind[b]), -len(buffers[b]), b))
  position = {b: i for i, b in enumerate(order)}
  groups: list[list[bytes]] = []
  previous_kind = None
  for b in order:
    data = buffers[b]
    if buffer_kind[b] != previous_kind or sum(map(len, groups[-1])) + len(data) > _BUCKET_SIZE:
      groups.append([])
    groups[-1].append(data)
    previous_kind = buffer_kind[b]
  ordered = [buffers[b] for b in order]
  if nonproto_lengths:
    ordered.append(nonproto_lengths)
    groups.append([nonproto_lengths])
  buckets = [_compress(compression, b''.join(g), level) for g in groups]

  # Successors, implicit states, bases; no-op states where successors spread too far.
  successors: list[list[int]] = [[] for _ in range(n)]
  for a, b in set(zip(walk, walk[1:])):
    successors[a].append(b)
  last = walk[-1]  # the first record's start: its move must not be implicit (decoding stops there)
  implicit = [len(successors[s]) == 1 and s != last for s in range(n)]
  base = [0] * n
  routes: list[dict[int, list[tuple[int, int]]]] = [{} for _ in range(n)]  # a -> b -> hops (src, dst)
  noop_base: list[int] = []  # base of each no-op state (numbered n, n + 1, ...)
  noop_succ: list[list[int]] = []
  for s in range(n):
    succ = sorted(successors[s])
    if not succ:
      continue
    if implicit[s] or succ[-1] - succ[0] <= _MAX_TRANSITION:
      base[s] = succ[0]
      for d in succ:
        routes[s][d] = [(s, d)]
      continue
    # Windows of 64 consecutive states, each reached through its own no-op.
    windows: list[list[int]] = []
    for d in succ:
      if windows and d - windows[-1][0] <= _MAX_TRANSITION:
        windows[-1].append(d)
      else:
        windows.append([d])
    if len(windows) > _MAX_TRANSITION + 1:
      raise ValueError(f'state {s} has successors too spread out for one level of no-op states')
    base[s] = n + len(noop_base)
    for w in windows:
      noop = n + len(noop_base)
      noop_base.append(w[0])
      noop_succ.append(w)
      for d in w:
        routes[s][d] = [(s, noop), (noop, d)]
  total = n + len(noop_base)
  base += noop_base
  implicit += [len(w) == 1 for w in noop_succ]
  nexts = []
  for s in range(total):
    if implicit[s]:  # the one successor, + total
      nexts.append((successors[s][0] if s < n else noop_succ[s - n][0]) + total)
    elif s < n and not successors[s]:
      nexts.append(0)
    else:
      nexts.append(base[s])

  # Tags, subtypes and buffer indices of the states.
  tags = [0] * total  # no-op states: 0
  subtypes = bytearray()
  buffer_indices = []
  for s, key in enumerate(state_keys):
    kind = key[0]
    if kind == 'M':
      tags[s] = _MSG_START
    elif kind == 'N':
      tags[s] = _NONPROTO
    elif kind == 'S':
      tags[s] = _SUB_START
    elif kind == 'E':
      tags[s] = enc.node_tags[key[1]] + 4  # wire type 6: end of the submessage
    else:
      tags[s] = enc.node_tags[key[1]]
      if kind == 'i':
        subtypes.append(_VARINT_INLINE0 + key[2])
      elif kind == 'v':
        subtypes.append(key[2] - 1)
    if state_buffer[s] >= 0:
      buffer_indices.append(position[state_buffer[s]])

  # Transitions: a byte per move from a non-implicit state (through no-ops if
  # needed), zero offsets folded into the previous byte's count (at most 3).
  moves: list[dict[int, list[int]] | None] = [None] * n
  for a in range(n):
    if routes[a] and not all(implicit[src] for hops in routes[a].values() for src, _ in hops):
      moves[a] = {
        b: [dst - base[src] for src, dst in hops if not implicit[src]] for b, hops in routes[a].items()
      }
  transitions = bytearray()
  a = walk[0]
  for b in walk[1:]:
    offsets = moves[a]
    a = b
    if offsets is None:
      continue
    for offset in offsets[b]:
      if offset == 0 and transitions and transitions[-1] & 3 < 3:
        transitions[-1] += 1
      else:
        transitions.append(offset << 2)

  header = b''.join(
    [
      _varint(len(buckets)),
      _varint(len(ordered)),
      *(_varint(len(b)) for b in buckets),
      *(_varint(len(b)) for b in ordered),
      _varint(total),
      *(_varint(t) for t in tags),
      *(_varint(x) for x in nexts),
      bytes(subtypes),
      *(_varint(i) for i in buffer_indices),
      _varint(walk[0]),
    ]
  )
  header_block = _compress(compression, header, level)
  return b''.join(
    [
      bytes((_COMPRESSION_TYPES[compression],)),
      _varint(len(header_block)),
      header_block,
      *buckets,
      _compress(compression, bytes(transitions), level),
    ]
  )


# -- Riegeli/records files -----------------------------------------------------------------------------

BLOCK_SIZE = 1 << 16
BLOCK_HEADER_SIZE = 24
USABLE_BLOCK_SIZE = BLOCK_SIZE - BLOCK_HEADER_SIZE
CHUNK_HEADER_SIZE = 40
_FILE_SIGNATURE_TYPE = 0x73
_TRANSPOSED = 0x74


def _chunk_end(begin: int, data_size: int, num_records: int) -> int:
  """Where a chunk ends, padding included (the format document's "Implementation notes")."""
  size = CHUNK_HEADER_SIZE + data_size
  overhead = (size + (begin + USABLE_BLOCK_SIZE - 1) % BLOCK_SIZE) // USABLE_BLOCK_SIZE
  end = begin + size + overhead * BLOCK_HEADER_SIZE
  pos = begin + num_records
  remaining = (BLOCK_SIZE - 1) - (pos + BLOCK_SIZE - 1) % BLOCK_SIZE
  return max(end, pos + max(0, remaining - (USABLE_BLOCK_SIZE - 1)))


def _with_hash(body: bytes) -> bytes:
  return struct.pack('<Q', riegeli_hash(body)) + body


class RiegeliFileWriter:
  """Writes a Riegeli/records file of transposed chunks.

  `write(record)` returns the record's numeric position (its chunk's begin
  offset + its index in the chunk): the pending chunk begins where the file
  ends. A chunk is closed when it holds `chunk_records` records or
  `chunk_bytes` bytes of records, at `flush()` and at `close()`.

  Args:
    path: the file to create.
    chunk_records: close a chunk when it holds this many records (None: no limit).
    chunk_bytes: close a chunk when its records add up to this many bytes (None: no limit).
    compression: 'brotli' or 'none'.
    level: brotli quality.
  """

  def __init__(
    self,
    path: str,
    *,
    chunk_records: int | None = None,
    chunk_bytes: int | None = 1 << 20,
    compression: str = 'brotli',
    level: int = BROTLI_LEVEL,
  ) -> None:
    self.path = path
    self.chunk_records = chunk_records
    self.chunk_bytes = chunk_bytes
    self.compression = compression
    self.level = level
    self._file = open(path, 'wb')  # noqa: SIM115 (closed by close())
    self._pos = 0
    self._pending: list[bytes] = []
    self._pending_bytes = 0
    self.chunks: list[tuple[int, int]] = []  # (begin, number of records) of each records chunk
    self._write_chunk(_FILE_SIGNATURE_TYPE, b'', 0, 0)

  def write(self, record: bytes) -> int:
    """Adds a record; returns its numeric position."""
    position = self._pos + len(self._pending)
    self._pending.append(record)
    self._pending_bytes += len(record)
    if (self.chunk_records is not None and len(self._pending) >= self.chunk_records) or (
      self.chunk_bytes is not None and self._pending_bytes >= self.chunk_bytes
    ):
      self.flush()
    return position

  def flush(self) -> None:
    """Closes the pending chunk (nothing if it is empty)."""
    if not self._pending:
      return
    records = self._pending
    data = encode_transposed_chunk(records, self.compression, self.level)
    self.chunks.append((self._pos, len(records)))
    self._write_chunk(_TRANSPOSED, data, len(records), self._pending_bytes)
    self._pending = []
    self._pending_bytes = 0

  def close(self) -> None:
    if self._file.closed:
      return
    self.flush()
    self._file.close()

  def _write_chunk(self, chunk_type: int, data: bytes, num_records: int, decoded_data_size: int) -> None:
    """Writes a chunk at the end of the file: header, data, zero padding, block headers where they fall."""
    begin = self._pos
    header = _with_hash(
      struct.pack('<QQQQ', len(data), riegeli_hash(data), chunk_type | num_records << 8, decoded_data_size)
    )
    logical = header + data
    end = _chunk_end(begin, len(data), num_records)
    out = bytearray()
    pos = begin
    i = 0
    while pos < end:
      if pos % BLOCK_SIZE == 0:
        out += _with_hash(struct.pack('<QQ', pos - begin, end - pos))
        pos += BLOCK_HEADER_SIZE
        continue
      take = min(BLOCK_SIZE - pos % BLOCK_SIZE, end - pos)
      piece = logical[i : i + take]
      out += piece
      out += bytes(take - len(piece))
      i += len(piece)
      pos += take
    if i != len(logical) or pos != end:
      raise AssertionError('chunk layout arithmetic is off')
    self._file.write(out)
    self._pos = end


# -- The envlogger 1.3 shard layout --------------------------------------------------------------------


class ShardWriter:
  """One shard directory, written as envlogger 1.3's `RiegeliShardWriter` writes it.

  Args:
    path: the shard directory to create.
    steps_per_chunk: records per `steps.riegeli` chunk.
    compression, level: of every chunk.
  """

  def __init__(
    self,
    path: str,
    *,
    steps_per_chunk: int = STEPS_PER_CHUNK,
    compression: str = 'brotli',
    level: int = BROTLI_LEVEL,
  ) -> None:
    os.makedirs(path)
    self.path = path
    options = {'compression': compression, 'level': level}
    # The original closes steps chunks at ~1 MB by its own size estimate: for Catch, every ~3050 records.
    self.steps = RiegeliFileWriter(
      os.path.join(path, 'steps.riegeli'), chunk_records=steps_per_chunk, chunk_bytes=None, **options
    )
    self.offsets = RiegeliFileWriter(os.path.join(path, 'step_offsets.riegeli'), **options)
    self.index = RiegeliFileWriter(os.path.join(path, 'episode_index.riegeli'), **options)
    self.metadata = RiegeliFileWriter(os.path.join(path, 'episode_metadata.riegeli'), **options)
    self.num_steps = 0
    self._unflushed_positions: list[int] = []
    self._unindexed: list[tuple[int, int]] = []  # finished episodes: (start step, metadata position or -1)
    self._current: list[Any] | None = None  # [start step, metadata record or None]
    self.step_positions: list[int] = []

  def add_step(self, record: bytes, new_episode: bool) -> None:
    if new_episode:
      self._end_episode()
      self._current = [self.num_steps, None]
    position = self.steps.write(record)
    self._unflushed_positions.append(position)
    self.step_positions.append(position)
    self.num_steps += 1

  def set_episode_metadata(self, record: bytes) -> None:
    """The current episode's metadata record (the last one set is kept)."""
    if self._current is None:
      raise ValueError('no episode in progress')
    self._current[1] = record

  def _end_episode(self) -> None:
    if self._current is None:
      return
    start, record = self._current
    position = self.metadata.write(record) if record is not None else -1
    self._unindexed.append((start, position))
    self._current = None

  def flush(self) -> None:
    """What the original's flush writes: the steps chunk, step positions, index rows; chunks closed."""
    self.steps.flush()
    if self._unflushed_positions:
      self.offsets.write(encode_datum(np.asarray(self._unflushed_positions, dtype=np.int64)))
      self._unflushed_positions = []
    self.offsets.flush()
    self._write_index()
    self.metadata.flush()

  def _write_index(self) -> None:
    if self._unindexed:
      self.index.write(encode_datum(np.asarray(self._unindexed, dtype=np.int64)))
      self._unindexed = []
    self.index.flush()

  def close(self) -> None:
    """Flushes, then writes the last episode's metadata and its index row, and closes the files."""
    self.flush()
    self._end_episode()
    self._write_index()
    for f in (self.steps, self.offsets, self.index, self.metadata):
      f.close()


def write_metadata_file(directory: str, metadata: dict[str, Any], level: int = BROTLI_LEVEL) -> None:
  """`metadata.riegeli`: one transposed brotli chunk with the encoded metadata dict."""
  writer = RiegeliFileWriter(os.path.join(directory, 'metadata.riegeli'), level=level)
  writer.write(encode_data(metadata))
  writer.close()


# -- A Catch log ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class CatchLog:
  """What `write_catch_log` wrote.

  Attributes:
    directory: the log directory.
    steps: every recorded step, in order.
    episode_starts: global index of each episode's first step.
    episode_metadata: each episode's metadata (its return, a Python float).
    metadata: the dataset metadata record's value (user keys + 'environment_specs').
    step_records: the serialized step records, in order.
    shards: the shard directories.
    step_chunks: per shard, (begin offset, number of records) of each steps.riegeli chunk.
    flushes: the random flushes made (beyond those before a new shard and at close).
  """

  directory: str
  steps: list[StepData]
  episode_starts: list[int]
  episode_metadata: list[float]
  metadata: dict[str, Any]
  step_records: list[bytes]
  shards: list[str]
  step_chunks: list[list[tuple[int, int]]]
  flushes: int


_BASE_TIME = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)


def write_catch_log(
  directory: str,
  episodes: int,
  seed: int = 0,
  *,
  steps_per_chunk: int = STEPS_PER_CHUNK,
  flush_probability: float = FLUSH_PROBABILITY,
  max_episodes_per_file: int = MAX_EPISODES_PER_FILE,
  level: int = BROTLI_LEVEL,
  metadata: dict[str, Any] | None = None,
) -> CatchLog:
  """Records `episodes` episodes of Catch and writes them in envlogger 1.3's Riegeli layout.

  As the fixture `tests/fixtures/envlogger13/catch_riegeli` was made: the env is
  `Catch(seed=seed + 1)`, the agent draws `np.int64(RandomState(seed).randint(3))`
  actions, `step_fn` returns `{'step_index': i}` (i the global 0-based step
  index, a Python int) and `episode_fn` the running episode return (a Python
  float; the last value is kept). `seed=0` gives the fixture's trajectories.

  Args:
    directory: where to write (created if missing; must not hold a log).
    episodes: number of episodes (10 steps each).
    seed: see above.
    steps_per_chunk: records per steps.riegeli chunk (the original's 1M chunks hold ~3050 Catch steps).
    flush_probability: chance of a flush after each step (the original: 1/5000; seeded by `seed`).
    max_episodes_per_file: episodes per shard directory.
    level: brotli quality.
    metadata: the user metadata (default: the fixture's).

  Returns:
    What was written (the steps, to compare with what a reader returns).
  """
  os.makedirs(directory, exist_ok=True)
  if os.path.exists(os.path.join(directory, 'metadata.riegeli')):
    raise FileExistsError(f'{directory} already holds a log')
  env = Catch(seed=seed + 1)
  agent = np.random.RandomState(seed)
  flush_rng = np.random.RandomState(seed + 1_000_003)
  user = dict(metadata) if metadata is not None else {'agent_type': 'random', 'environment_type': 'catch'}
  dataset_metadata = {**user, 'environment_specs': encode_environment_specs(env)}
  write_metadata_file(directory, dataset_metadata, level)

  steps: list[StepData] = []
  records: list[bytes] = []
  starts: list[int] = []
  returns: list[float] = []
  shards: list[str] = []
  chunks: list[list[tuple[int, int]]] = []
  flushes = 0
  shard: ShardWriter | None = None

  def close_shard() -> None:
    if shard is not None:
      shard.close()
      chunks.append(list(shard.steps.chunks))

  for e in range(episodes):
    if shard is None or (max_episodes_per_file > 0 and e % max_episodes_per_file == 0):
      close_shard()
      name = (_BASE_TIME + datetime.timedelta(seconds=len(shards))).strftime('%Y%m%dT%H%M%S%f')
      shard = ShardWriter(os.path.join(directory, name), steps_per_chunk=steps_per_chunk, level=level)
      shards.append(shard.path)
    starts.append(len(steps))
    timestep = env.reset()
    action = None
    episode_return = 0.0
    while True:
      step = StepData(timestep, action, {'step_index': len(steps)})
      record = encode_step(step)
      shard.add_step(record, new_episode=action is None)
      if timestep.reward is not None:
        episode_return += timestep.reward
      steps.append(step)
      records.append(record)
      if flush_probability and flush_rng.random_sample() < flush_probability:
        shard.flush()
        flushes += 1
      if timestep.last():
        break
      action = np.int64(agent.randint(3))
      timestep = env.step(action)
    # episode_fn's last value (the original keeps the last non-None one of the episode).
    shard.set_episode_metadata(encode_data(float(episode_return)))
    returns.append(float(episode_return))
  close_shard()
  return CatchLog(directory, steps, starts, returns, dataset_metadata, records, shards, chunks, flushes)


# -- Checking a log against what was written -----------------------------------------------------------


def same_value(a: Any, b: Any) -> bool:
  """Equal values: arrays by dtype, shape and contents; numbers by value; nests element by element."""
  if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
    return (
      isinstance(a, np.ndarray)
      and isinstance(b, np.ndarray)
      and a.dtype == b.dtype
      and a.shape == b.shape
      and bool(np.array_equal(a, b))
    )
  if isinstance(a, dict) or isinstance(b, dict):
    return (
      isinstance(a, dict)
      and isinstance(b, dict)
      and a.keys() == b.keys()
      and all(same_value(a[k], b[k]) for k in a)
    )
  if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
    return (
      isinstance(a, (list, tuple))
      and isinstance(b, (list, tuple))
      and len(a) == len(b)
      and all(same_value(x, y) for x, y in zip(a, b))
    )
  if a is None or b is None:
    return a is None and b is None
  return bool(a == b)


def _as_decoded(value: Any) -> Any:
  """`value` as the codec decodes it where that differs: arrays without dims > 0 nor values are None."""
  if isinstance(value, np.ndarray) and not encode_datum(value):
    return None
  if isinstance(value, dict):
    return {k: _as_decoded(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return type(value)(_as_decoded(v) for v in value)
  return value


def _check_step_types(step: StepData, where: str) -> None:
  """The decoded types envlogger 1.3's reader gives Catch steps (see the fixture README)."""
  ts = step.timestep
  first = ts.first()
  ok = (
    type(ts.observation) is np.ndarray
    and ts.observation.dtype == np.float32
    and (ts.reward is None if first else type(ts.reward) is np.float64)
    and (ts.discount is None if first else type(ts.discount) is np.float64)
    and (step.action is None if first else type(step.action) is np.int64)
    and type(step.custom_data) is dict
    and type(step.custom_data['step_index']) is int
  )
  if not ok:
    raise AssertionError(f'{where}: unexpected decoded types: {step!r}')


def check_log(log: CatchLog) -> None:
  """Reads the log with `envlogger.Reader` and checks it returns exactly what was written.

  Raises:
    AssertionError: a difference (problems reported, step, metadata, specs).
  """
  import envlogger  # noqa: PLC0415

  with envlogger.Reader(log.directory) as r:
    if r.problems:
      raise AssertionError(f'reader.problems: {r.problems}')
    if len(r.steps) != len(log.steps) or len(r.episodes) != len(log.episode_starts):
      raise AssertionError(
        f'{len(r.steps)} steps / {len(r.episodes)} episodes read, expected {len(log.steps)}'
      )
    for i, (got, want) in enumerate(zip(r.steps, log.steps, strict=True)):
      if not same_value(tuple(got), tuple(want)):
        raise AssertionError(f'step {i}: read {got!r}, wrote {want!r}')
      _check_step_types(got, f'step {i}')
    lengths = np.diff(np.append(log.episode_starts, len(log.steps)))
    if not np.array_equal(r.episode_lengths(), lengths):
      raise AssertionError('episode lengths differ')
    got_meta = list(r.episode_metadata())
    if not same_value(got_meta, log.episode_metadata) or not all(type(m) is np.float64 for m in got_meta):
      raise AssertionError(f'episode metadata: read {got_meta[:5]}..., wrote {log.episode_metadata[:5]}...')
    if not same_value(r.metadata(), _as_decoded(log.metadata)):
      raise AssertionError(f'metadata: read {r.metadata()!r}')
    env = Catch()
    want_specs = (env.observation_spec(), env.action_spec(), env.reward_spec(), env.discount_spec())
    got_specs = (r.observation_spec(), r.action_spec(), r.reward_spec(), r.discount_spec())
    for got, want in zip(got_specs, want_specs, strict=True):
      if type(got) is not type(want) or repr(got) != repr(want):
        raise AssertionError(f'spec: read {got!r}, expected {want!r}')


# -- Self test -----------------------------------------------------------------------------------------

_FIXTURE = os.path.join(os.path.dirname(__file__), '..', 'tests', 'fixtures', 'envlogger13', 'catch_riegeli')


def _random_value(rng: np.random.RandomState, depth: int = 0) -> Any:
  kind = rng.randint(12 if depth < 3 else 7)
  if kind == 0:
    return None
  if kind == 1:
    return int(rng.randint(-(1 << 40), 1 << 40)) * int(rng.choice([1, 1 << 30]))
  if kind == 2:
    return float(rng.randn())
  if kind == 3:
    return np.float32(rng.randn())
  if kind == 4:
    dtype = rng.choice(['float32', 'float64', 'int32', 'int64', 'uint8', 'int16', 'uint64', 'bool'])
    shape = tuple(int(d) for d in rng.randint(1, 5, size=rng.randint(0, 3)))
    if dtype.startswith('float'):
      return np.asarray(rng.randn(*shape) * 300).astype(dtype)
    low = 0 if dtype[0] in 'ub' else -3000
    return rng.randint(low, 3000, size=shape).astype(dtype)
  if kind == 5:
    return ''.join(chr(c) for c in rng.randint(32, 127, size=rng.randint(0, 12)))
  if kind == 6:
    return bytes(rng.randint(0, 256, size=rng.randint(0, 40), dtype=np.uint8))
  if kind in (7, 8):
    return tuple(_random_value(rng, depth + 1) for _ in range(rng.randint(1, 4)))
  if kind == 9:
    return [np.int64(v) for v in rng.randint(-5, 1000, size=rng.randint(1, 4))]
  if kind == 10:
    return {f'k{rng.randint(100)}': _random_value(rng, depth + 1) for _ in range(rng.randint(1, 4))}
  return {int(rng.randint(10)): _random_value(rng, depth + 1)}


def _roundtrip(records: list[bytes], compression: str = 'brotli') -> None:
  from envlogger._riegeli import transpose  # noqa: PLC0415

  data = encode_transposed_chunk(records, compression)
  got = transpose.decode_transposed(data, len(records), sum(map(len, records)))
  if got != records:
    raise AssertionError('transposed chunk round trip failed')


def selftest(work: str) -> None:
  """Checks the codec against the 1.3 fixture and the encoder/writer against envlogger's reader."""
  from envlogger._riegeli import records as records_lib  # noqa: PLC0415
  from envlogger._riegeli import storage  # noqa: PLC0415

  # 1. The fixture's trajectories, record for record.
  with open(os.path.join(_FIXTURE, 'expected.json')) as f:
    expected = json.load(f)
  fixture_log = write_catch_log(os.path.join(work, 'fixture_like'), 5, seed=0)
  raw = [base64.b64decode(s['raw_record_b64']) for s in expected['steps']]
  if fixture_log.step_records != raw:
    bad = next(i for i, (a, b) in enumerate(zip(fixture_log.step_records, raw)) if a != b)
    raise AssertionError(f'step record {bad} differs from what envlogger 1.3 wrote')
  check_log(fixture_log)
  with records_lib.RecordReader(os.path.join(_FIXTURE, 'data', 'metadata.riegeli')) as r:
    fixture_meta_record = next(iter(r))
  ours = encode_data(fixture_log.metadata)
  if len(ours) != len(fixture_meta_record) or not same_value(
    storage.decode(fixture_meta_record), storage.decode(ours)
  ):
    raise AssertionError('metadata record differs from the fixture (beyond map order)')
  # The index files hold the same records as the fixture's, positions aside.
  shard = fixture_log.shards[0]
  fixture_shard = next(
    os.path.join(_FIXTURE, 'data', d)
    for d in sorted(os.listdir(os.path.join(_FIXTURE, 'data')))
    if os.path.isdir(os.path.join(_FIXTURE, 'data', d))
  )
  for name in ('step_offsets.riegeli', 'episode_index.riegeli', 'episode_metadata.riegeli'):
    layouts = []
    for d in (shard, fixture_shard):
      with records_lib.RecordReader(os.path.join(d, name)) as r:
        layouts.append([(c.num_records, c.chunk_type) for c in r.chunks()])
        if r.problems:
          raise AssertionError(r.problems)
    if layouts[0] != layouts[1]:
      raise AssertionError(f'{name}: chunks {layouts[0]}, the fixture has {layouts[1]}')
  print('fixture: 50 step records identical to envlogger 1.3, index files of the same chunk layout')

  # 2. Transposed chunks of assorted records: nested messages, strings, every
  # varint length, fixed fields, non-proto records, empty records.
  rng = np.random.RandomState(0)
  for trial in range(200):
    records = [encode_data(_random_value(rng)) for _ in range(rng.randint(1, 30))]
    if trial % 3 == 0:
      records += [bytes(rng.randint(0, 256, size=rng.randint(0, 50), dtype=np.uint8)) for _ in range(3)]
    if trial % 5 == 0:
      fixed = b'\x0d' + bytes(4) + b'\x11' + bytes(range(8)) + b'\x18' + _varint(1 << 63)
      records += [fixed, b'', b'\x08\x80\x01']
    rng.shuffle(records)
    _roundtrip(records, 'brotli' if trial % 2 else 'none')
  # Many distinct fields: successors spread over more than 64 states (no-op states).
  wide = [_varint((f << 3) | 0) + _varint(f) for f in range(1, 400)]
  rng.shuffle(wide)
  _roundtrip([b''.join(wide[i : i + 3]) for i in range(0, len(wide), 3)] * 2)
  _roundtrip([b''.join(rng.permutation(wide)) for _ in range(3)])
  print('transposed chunks: 202 random round trips through envlogger._riegeli.transpose')

  # 3. A log with several shards, random flushes and chunks crossing block boundaries.
  log = write_catch_log(
    os.path.join(work, 'sharded'),
    230,
    seed=3,
    steps_per_chunk=700,
    flush_probability=0.01,
    max_episodes_per_file=100,
  )
  check_log(log)
  print(
    f'sharded log: {len(log.shards)} shards, {log.flushes} random flushes, {len(log.steps)} steps read back'
  )


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
  parser.add_argument('directory', nargs='?', help='where to write the log')
  parser.add_argument('--episodes', type=int, default=2000)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument(
    '--check', action='store_true', help='read the log back with envlogger.Reader and compare'
  )
  parser.add_argument('--selftest', action='store_true', help='check the writer (fixture and round trips)')
  args = parser.parse_args(argv)
  if args.selftest:
    import tempfile  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as work:
      selftest(work)
    if not args.directory:
      return
  if not args.directory:
    parser.error('a directory is needed (or --selftest)')
  t0 = time.perf_counter()
  log = write_catch_log(args.directory, args.episodes, args.seed)
  t1 = time.perf_counter()
  size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(args.directory) for f in fs)
  chunks = [n for shard in log.step_chunks for _, n in shard]
  print(
    f'{args.directory}: {args.episodes} episodes, {len(log.steps)} steps in {len(log.shards)} shard(s), '
    f'{len(chunks)} steps chunks ({min(chunks)}..{max(chunks)} records), {log.flushes} random flushes, '
    f'{size / 1e6:.2f} MB, written in {t1 - t0:.1f} s'
  )
  if args.check:
    check_log(log)
    print(f'checked: envlogger.Reader returns every step as written ({time.perf_counter() - t1:.1f} s)')
  sys.stdout.flush()


if __name__ == '__main__':
  main()
