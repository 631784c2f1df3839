"""Decoder of Riegeli's transposed chunks (chunk type 't').

Riegeli's format document leaves this chunk type undocumented ("TODO"); the
layout below was learnt by reading riegeli's C++ decoder
(`riegeli/chunk_encoding/transpose_decoder.cc`, `transpose_internal.h`), for
understanding only. This is an independent implementation.

Chunk data layout:

* `compression_type` (byte): 0, 'b', 'z' or 's' (see `compression`), used by
  every compressed block below.
* `header_size` (varint64), then the header: one compressed block of
  `header_size` bytes. Decompressed, it holds (varints unless stated):
  * `num_buckets`, `num_buffers`;
  * `num_buckets` bucket sizes (stored sizes of the compressed bucket blocks);
  * `num_buffers` buffer lengths (decompressed): the decompressed buckets,
    concatenated in bucket order, are cut into consecutive buffers; a bucket
    ends exactly at a buffer boundary;
  * `num_states`, then `num_states` tags, then `num_states` "next node"
    indices, then one subtype byte for each state whose tag is a valid proto
    tag with varint wire type, then, in state order, a buffer index for each
    state that reads a buffer (non-proto records, varints not stored inline,
    fixed32/fixed64 fields and strings);
  * `first_node`, the state decoding starts from.
* the `num_buckets` compressed bucket blocks;
* the transitions: one compressed block up to the end of the chunk data, one
  byte per transition.

A state's tag is either a reserved id (0 no-op, 1 non-proto record, 2 start of
a submessage, 3 start of a message), or a proto tag (field number << 3 | wire
type) whose field value comes from the state's subtype (an inline varint
value 0..127 when the subtype is 10..137, else a varint of subtype + 1 bytes
stored without continuation bits) or from its buffer (fixed32/64 bytes, a
string stored with its varint length), or a tag with wire type 6 that marks
the *end* of the submessage of that field (wire type 2).

Records are rebuilt *backwards*: the state machine walks from the last byte
of the last record to the first byte of the first one. Each state prepends
its bytes; an end-of-submessage state remembers the output position, and the
matching start-of-submessage state prepends the field's tag and the length of
what was written since; a start-of-message state closes a record. After each
state the walk moves to the state's "next node" (the base) plus a transition
offset: if the next-node index is >= num_states, the state is *implicit* and
moves to next node - num_states without reading a transition byte; otherwise
a transition byte is read: the destination is base + (byte >> 2), and the
low two bits say how many of the following non-implicit moves go to the base
itself (offset 0) without reading a byte.
"""

from __future__ import annotations

from envlogger._riegeli import compression
from envlogger._riegeli.compression import CompressionError, read_varint64

__all__ = ['TransposeError', 'decode_transposed']


class TransposeError(ValueError):
  """A transposed chunk is malformed."""


# State kinds.
_NOOP = 0
_COPY = 1  # constant bytes: a tag (start/end group), or a tag and an inline varint value
_VARINT = 2  # tag + varint of `size` bytes from the buffer, continuation bits restored
_FIXED = 3  # tag + `size` bytes from the buffer
_STRING = 4  # tag + varint length + bytes from the buffer
_SUB_END = 5  # remember the output position (the end of a submessage)
_SUB_START = 6  # tag + length since the matching _SUB_END
_MSG_START = 7  # a record begins here
_NONPROTO = 8  # a record that is not a proto: length from the last buffer, bytes from its buffer

# Continuation bits to restore on all but the last byte of an n-byte varint.
_VARINT_MASKS = [0] + [int.from_bytes(b'\x80' * (n - 1) + b'\x00', 'little') for n in range(1, 11)]


def _varint_bytes(value: int) -> bytes:
  out = bytearray()
  while value >= 0x80:
    out.append((value & 0x7F) | 0x80)
    value >>= 7
  out.append(value)
  return bytes(out)


class _Cursor:
  """Reads varints from a decompressed header."""

  __slots__ = ('data', 'pos')

  def __init__(self, data: bytes) -> None:
    self.data = data
    self.pos = 0

  def varint(self, what: str, limit: int = 1 << 64) -> int:
    try:
      value, self.pos = read_varint64(self.data, self.pos)
    except CompressionError as e:
      raise TransposeError(f'reading {what} failed: {e}') from None
    if value >= limit:
      raise TransposeError(f'{what} too large: {value}')
    return value

  def varint32(self, what: str) -> int:
    return self.varint(what, 1 << 32)

  def read(self, n: int, what: str) -> bytes:
    end = self.pos + n
    if end > len(self.data):
      raise TransposeError(f'reading {what} failed: header too short')
    out = self.data[self.pos : end]
    self.pos = end
    return out


def _block(data: bytes, pos: int, size: int, what: str) -> tuple[bytes, int]:
  end = pos + size
  if end > len(data):
    raise TransposeError(f'reading {what} failed: chunk data too short')
  return data[pos:end], end


def _decompress(compression_type: int, block, what: str) -> bytes:
  try:
    return compression.decompress(compression_type, block)
  except CompressionError as e:
    raise TransposeError(f'{what}: {e}') from None


class _Machine:
  """A parsed transposed chunk: state machine, buffers and transitions."""

  __slots__ = (
    'buffers',
    'first_node',
    'kinds',
    'nexts',
    'implicit',
    'sizes',
    'tags',
    'bufidx',
    'transitions',
  )

  def __init__(self, data: bytes) -> None:
    if not data:
      raise TransposeError('empty chunk data')
    ct = data[0]
    try:
      header_size, pos = read_varint64(data, 1)
    except CompressionError as e:
      raise TransposeError(f'reading header size failed: {e}') from None
    block, pos = _block(data, pos, header_size, 'header')
    h = _Cursor(_decompress(ct, block, 'header'))

    # Buckets and buffers.
    num_buckets = h.varint32('number of buckets')
    num_buffers = h.varint32('number of buffers')
    buffers: list[bytes] = []
    if num_buckets == 0:
      if num_buffers:
        raise TransposeError('too few buckets')
    else:
      buckets = []
      for _ in range(num_buckets):
        size = h.varint('bucket length')
        block, pos = _block(data, pos, size, 'bucket')
        buckets.append(block)
      bucket_index = 0
      bucket = _decompress(ct, buckets[0], 'bucket')
      at = 0
      for _ in range(num_buffers):
        length = h.varint('buffer length')
        if at + length > len(bucket):
          raise TransposeError('reading buffer failed: bucket too short')
        buffers.append(bucket[at : at + length])
        at += length
        while at == len(bucket) and bucket_index + 1 < num_buckets:
          bucket_index += 1
          bucket = _decompress(ct, buckets[bucket_index], 'bucket')
          at = 0
      if bucket_index + 1 < num_buckets:
        raise TransposeError('too few buckets')
      if at != len(bucket):
        raise TransposeError('unused data at the end of a bucket')
    self.buffers = buffers

    # The state machine.
    n = h.varint32('state machine size')
    if n > len(h.data):  # each state takes at least two header bytes
      raise TransposeError(f'state machine size {n} exceeds the header')
    tags = [h.varint32('field tag') for _ in range(n)]
    nexts = [h.varint32('next node index') for _ in range(n)]
    num_subtypes = sum(1 for t in tags if t >= 8 and (t & 7) == 0)
    subtypes = h.read(num_subtypes, 'subtypes')
    kinds = [0] * n
    sizes = [0] * n
    consts: list[bytes] = [b''] * n
    bufidx = [0] * n
    implicit = [0] * n
    si = 0
    has_nonproto = False
    for i in range(n):
      tag = tags[i]
      if tag == 0:
        kinds[i] = _NOOP
      elif tag == 1:
        kinds[i] = _NONPROTO
        bufidx[i] = self._buffer_index(h, num_buffers)
        has_nonproto = True
      elif tag == 2:
        kinds[i] = _SUB_START
      elif tag == 3:
        kinds[i] = _MSG_START
      else:
        wire = tag & 7
        end_of_submessage = wire == 6
        if end_of_submessage:
          tag -= 4
          wire = 2
        if tag < 8 or wire > 5:
          raise TransposeError(f'invalid tag {tags[i]} in state {i}')
        tag_bytes = _varint_bytes(tag)
        consts[i] = tag_bytes
        if wire == 0:
          subtype = subtypes[si]
          si += 1
          if subtype >= 10:
            if subtype > 137:
              raise TransposeError(f'invalid varint subtype {subtype} in state {i}')
            kinds[i] = _COPY
            consts[i] = tag_bytes + bytes((subtype - 10,))
          else:
            kinds[i] = _VARINT
            sizes[i] = subtype + 1
            bufidx[i] = self._buffer_index(h, num_buffers)
        elif wire == 1 or wire == 5:
          kinds[i] = _FIXED
          sizes[i] = 8 if wire == 1 else 4
          bufidx[i] = self._buffer_index(h, num_buffers)
        elif wire == 2:
          if end_of_submessage:
            kinds[i] = _SUB_END
          else:
            kinds[i] = _STRING
            bufidx[i] = self._buffer_index(h, num_buffers)
        else:  # start group / end group: the tag alone
          kinds[i] = _COPY
      nxt = nexts[i]
      if nxt >= n:
        nxt -= n
        implicit[i] = 1
      if nxt >= n:
        raise TransposeError(f'next node index too large in state {i}')
      nexts[i] = nxt
    if has_nonproto and not num_buffers:
      raise TransposeError('missing buffer for non-proto records')
    first = h.varint32('first node index')
    if first >= n:
      raise TransposeError('first node index too large')
    if h.pos != len(h.data):
      raise TransposeError('unused data at the end of the header')
    _check_no_implicit_loop(nexts, implicit)
    self.first_node = first
    self.kinds = kinds
    self.nexts = nexts
    self.implicit = implicit
    self.sizes = sizes
    self.tags = consts
    self.bufidx = bufidx
    self.transitions = _decompress(ct, data[pos:], 'transitions')

  @staticmethod
  def _buffer_index(h: _Cursor, num_buffers: int) -> int:
    index = h.varint32('buffer index')
    if index >= num_buffers:
      raise TransposeError('buffer index too large')
    return index


def _check_no_implicit_loop(nexts: list[int], implicit: list[int]) -> None:
  """Rejects state machines where implicit moves alone can cycle forever."""
  seen = [0] * len(nexts)
  for start in range(len(nexts)):
    if seen[start]:
      continue
    mark = start + 1
    i = start
    seen[i] = mark
    while implicit[i]:
      i = nexts[i]
      if seen[i] == mark:
        raise TransposeError('state machine contains an implicit loop')
      if seen[i]:
        break
      seen[i] = mark


def decode_transposed(data: bytes, num_records: int, decoded_data_size: int) -> list[bytes]:
  """Decodes the data of a transposed chunk into its records.

  Args:
    data: the chunk data (after the chunk header, block headers removed).
    num_records: the chunk header's `num_records`.
    decoded_data_size: the chunk header's `decoded_data_size` (sum of record sizes).

  Returns:
    The records, in order.

  Raises:
    TransposeError: the data are malformed or disagree with the header's counts.
    compression.MissingCodecError: the codec package is not installed.
  """
  m = _Machine(bytes(data))
  return _run(m, num_records, decoded_data_size)


def _run(m: _Machine, num_records: int, decoded_data_size: int) -> list[bytes]:
  kinds = m.kinds
  nexts = m.nexts
  implicit = m.implicit
  sizes = m.sizes
  consts = m.tags
  bufidx = m.bufidx
  buffers = m.buffers
  cursors = [0] * len(buffers)
  nonproto_lengths = len(buffers) - 1
  transitions = m.transitions
  num_transitions = len(transitions)
  n = len(kinds)
  masks = _VARINT_MASKS

  records: list[bytes] = []
  pieces: list[bytes] = []  # the current record's pieces, last piece first
  add = pieces.append
  pos = 0  # bytes produced so far (counted from the end of the chunk's records)
  stack: list[tuple[int, bytes]] = []  # open submessages: (position of their end, tag)
  node = m.first_node
  repeats = implicit[node]
  ti = 0
  while True:
    kind = kinds[node]
    if kind == _SUB_END:
      stack.append((pos, consts[node]))
    elif kind == _SUB_START:
      if not stack:
        raise TransposeError('submessage stack underflow')
      end, tag = stack.pop()
      length = pos - end
      if length < 0x80:
        piece = tag + bytes((length,))
      else:
        piece = tag + _varint_bytes(length)
      add(piece)
      pos += len(piece)
    elif kind == _STRING:
      b = bufidx[node]
      buf = buffers[b]
      c = cursors[b]
      if c < len(buf) and buf[c] < 0x80:
        end = c + 1 + buf[c]
      else:
        try:
          length, start = read_varint64(buf, c)
        except CompressionError:
          raise TransposeError('reading string length failed') from None
        end = start + length
      if end > len(buf):
        raise TransposeError('reading string field failed: buffer too short')
      cursors[b] = end
      add(buf[c:end])
      tag = consts[node]
      add(tag)
      pos += end - c + len(tag)
    elif kind == _COPY:
      piece = consts[node]
      add(piece)
      pos += len(piece)
    elif kind == _MSG_START:
      if stack:
        raise TransposeError('submessages still open at the start of a record')
      if len(records) == num_records:
        raise TransposeError('too many records')
      pieces.reverse()
      records.append(b''.join(pieces))
      pieces.clear()
    elif kind == _VARINT:
      b = bufidx[node]
      buf = buffers[b]
      c = cursors[b]
      size = sizes[node]
      end = c + size
      if end > len(buf):
        raise TransposeError('reading varint field failed: buffer too short')
      cursors[b] = end
      if size == 1:
        value = buf[c:end]
      else:
        value = (int.from_bytes(buf[c:end], 'little') | masks[size]).to_bytes(size, 'little')
      piece = consts[node] + value
      add(piece)
      pos += len(piece)
    elif kind == _FIXED:
      b = bufidx[node]
      buf = buffers[b]
      c = cursors[b]
      end = c + sizes[node]
      if end > len(buf):
        raise TransposeError('reading fixed field failed: buffer too short')
      cursors[b] = end
      piece = consts[node] + buf[c:end]
      add(piece)
      pos += len(piece)
    elif kind == _NONPROTO:
      lbuf = buffers[nonproto_lengths]
      try:
        length, cursors[nonproto_lengths] = read_varint64(lbuf, cursors[nonproto_lengths])
      except CompressionError:
        raise TransposeError('reading non-proto record length failed') from None
      b = bufidx[node]
      buf = buffers[b]
      c = cursors[b]
      end = c + length
      if end > len(buf):
        raise TransposeError('reading non-proto record failed: buffer too short')
      cursors[b] = end
      add(buf[c:end])
      pos += length
      if stack:
        raise TransposeError('submessages still open at the start of a record')
      if len(records) == num_records:
        raise TransposeError('too many records')
      pieces.reverse()
      records.append(b''.join(pieces))
      pieces.clear()
    # else: _NOOP
    if pos > decoded_data_size:
      raise TransposeError('records larger than the decoded data size')

    node = nexts[node]
    if repeats:
      if not implicit[node]:
        repeats -= 1
    else:
      if ti == num_transitions:
        break
      t = transitions[ti]
      ti += 1
      node += t >> 2
      if node >= n:
        raise TransposeError('invalid node index')
      repeats = (t & 3) + implicit[node]

  if stack:
    raise TransposeError('submessages still open at the end')
  if pieces:
    raise TransposeError('unfinished record at the end')
  if len(records) != num_records:
    raise TransposeError(f'{len(records)} records decoded, {num_records} declared')
  if pos != decoded_data_size:
    raise TransposeError(f'records hold {pos} bytes, {decoded_data_size} declared')
  records.reverse()
  return records
