"""Decoder of Riegeli's transposed chunks (chunk type 't').

Riegeli's format document leaves this chunk type undocumented (a placeholder); the
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


def _decompress(compression_type: int, block, what: str, max_size: int) -> bytes:
  try:
    return compression.decompress(compression_type, block, max_size)
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
    'signature',
  )

  def __init__(self, data: bytes, max_size: int) -> None:
    """Parses chunk data; `max_size` bounds each decompressed block (see `decode_transposed`)."""
    if not data:
      raise TransposeError('empty chunk data')
    ct = data[0]
    try:
      header_size, pos = read_varint64(data, 1)
    except CompressionError as e:
      raise TransposeError(f'reading header size failed: {e}') from None
    block, pos = _block(data, pos, header_size, 'header')
    h = _Cursor(_decompress(ct, block, 'header', max_size))

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
      bucket = _decompress(ct, buckets[0], 'bucket', max_size)
      at = 0
      for _ in range(num_buffers):
        length = h.varint('buffer length')
        if at + length > len(bucket):
          raise TransposeError('reading buffer failed: bucket too short')
        buffers.append(bucket[at : at + length])
        at += length
        while at == len(bucket) and bucket_index + 1 < num_buckets:
          bucket_index += 1
          bucket = _decompress(ct, buckets[bucket_index], 'bucket', max_size)
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
    self.transitions = _decompress(ct, data[pos:], 'transitions', max_size)
    # What compiled record programs depend on (chunks of one file usually share it).
    self.signature = (tuple(kinds), tuple(consts), tuple(sizes), tuple(bufidx), len(buffers))

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
  # Buffers hold parts of the records, the header and transitions a few bytes
  # per field or record: a decompressed block far above this is damage (or
  # crafted), and is refused before anything is allocated.
  max_size = 4 * decoded_data_size + 16 * num_records + (1 << 20)
  m = _Machine(bytes(data), max_size)
  return _Decoding(m, num_records, decoded_data_size).run()


# How the records are rebuilt fast: the walk of the state machine from one
# record boundary to the next depends only on the state it starts from and on
# the transition bytes it reads. Records of the same shape (same fields, same
# nesting; values may differ) read the same bytes from the same state, so the
# first record of a shape is interpreted node by node (recording its path of
# states), and when the shape comes back it is compiled to a small Python
# function that reads the shape's values from the buffers and joins the record
# forwards in one go, with the submessage lengths computed from the value
# lengths. Later records of that shape are a `bytes.startswith` test on the
# transitions and one call.

_COMPILE_AFTER = 2  # compile a shape the second time it is seen
_MAX_SHAPES_PER_STATE = 32  # beyond, further shapes starting at that state are interpreted
_MAX_COMPILED = 256  # compiled shapes kept per chunk
_MAX_PATH = 4096  # longer record paths are not compiled (the generated code would be huge)
_MAX_DEPTH = 100  # nor records nesting submessages deeper (compiling recurses per level)


class _Shape:
  __slots__ = ('end_node', 'end_repeats', 'path', 'program', 'seen', 'transitions')

  def __init__(self, transitions: bytes, path: list[int], end_node: int, end_repeats: int) -> None:
    self.transitions = transitions
    self.path = path
    self.end_node = end_node
    self.end_repeats = end_repeats
    self.seen = 1
    self.program = None


class _Decoding:
  """The decoding of one chunk's records from a parsed `_Machine`."""

  def __init__(self, m: _Machine, num_records: int, decoded_data_size: int) -> None:
    self.m = m
    self.num_records = num_records
    self.decoded_data_size = decoded_data_size
    self.cursors = [0] * len(m.buffers)
    n = len(m.kinds)
    # Node visits allowed in total: far above what a valid chunk needs (each
    # visit but no-ops and record starts writes bytes or consumes a transition),
    # it bounds the work on crafted input.
    self.budget = 8 * (decoded_data_size + num_records + len(m.transitions) + n) + 64
    self.compiled = 0

  def run(self) -> list[bytes]:
    m = self.m
    nexts = m.nexts
    implicit = m.implicit
    transitions = m.transitions
    num_transitions = len(transitions)
    n = len(nexts)
    buffers = m.buffers
    cursors = self.cursors
    num_records = self.num_records
    shapes: dict[int, list[_Shape]] = {}
    records: list[bytes] = []
    add = records.append
    total = 0
    node = m.first_node
    repeats = implicit[node]
    ti = 0
    while True:
      # A record begins at (node, repeats, ti).
      key = node * 8 + repeats
      candidates = shapes.get(key)
      shape = None
      if candidates:
        for c in candidates:
          if transitions.startswith(c.transitions, ti):
            shape = c
            break
      if shape is not None and (shape.program is not None or self._maybe_compile(shape)):
        try:
          record = shape.program(buffers, cursors)
        except (IndexError, CompressionError):
          raise TransposeError('reading a field failed: buffer too short') from None
        ti += len(shape.transitions)
        node = shape.end_node
        repeats = shape.end_repeats
      else:
        start = ti
        record, path, ti, node, repeats = self._interpret(node, repeats, ti)
        if record is None:
          break
        if shape is not None:
          shape.seen += 1
        elif candidates is None:
          shapes[key] = [_Shape(transitions[start:ti], path, node, repeats)]
        elif len(candidates) < _MAX_SHAPES_PER_STATE:
          candidates.append(_Shape(transitions[start:ti], path, node, repeats))
      if len(records) == num_records:
        raise TransposeError('too many records')
      add(record)
      total += len(record)
      if total > self.decoded_data_size:
        raise TransposeError('records larger than the decoded data size')
      # The move after the record's first node (its start-of-message state).
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

    for b, c in enumerate(cursors):
      if c > len(buffers[b]):
        raise TransposeError('reading a field failed: buffer too short')
    if len(records) != num_records:
      raise TransposeError(f'{len(records)} records decoded, {num_records} declared')
    if total != self.decoded_data_size:
      raise TransposeError(f'records hold {total} bytes, {self.decoded_data_size} declared')
    records.reverse()
    return records

  def _maybe_compile(self, shape: _Shape) -> bool:
    if shape.seen < _COMPILE_AFTER or self.compiled >= _MAX_COMPILED or len(shape.path) > _MAX_PATH:
      return False
    program = _program(self.m, shape.path)
    if program is None:
      shape.seen = -(1 << 62)  # never again
      return False
    shape.program = program
    self.compiled += 1
    return True

  def _interpret(self, node: int, repeats: int, ti: int):
    """Walks the machine node by node from a record boundary through the next record.

    Returns:
      (record, path, ti, node, repeats): the record, the nodes visited, and the
      state at its start-of-message node (before moving on); record is None
      when the transitions end first (what was visited must then have written
      nothing).
    """
    m = self.m
    kinds = m.kinds
    nexts = m.nexts
    implicit = m.implicit
    sizes = m.sizes
    consts = m.tags
    bufidx = m.bufidx
    buffers = m.buffers
    cursors = self.cursors
    transitions = m.transitions
    num_transitions = len(transitions)
    n = len(kinds)
    masks = _VARINT_MASKS
    pieces: list[bytes] = []  # the record's pieces, last piece first
    add = pieces.append
    pos = 0
    stack: list[tuple[int, bytes]] = []  # open submessages: (position of their end, tag)
    path: list[int] = []
    visit = path.append
    budget = self.budget
    while True:
      visit(node)
      kind = kinds[node]
      if kind == _SUB_END:
        stack.append((pos, consts[node]))
      elif kind == _SUB_START:
        if not stack:
          raise TransposeError('submessage stack underflow')
        end, tag = stack.pop()
        piece = tag + _varint_bytes(pos - end)
        add(piece)
        pos += len(piece)
      elif kind == _STRING:
        b = bufidx[node]
        buf = buffers[b]
        c = cursors[b]
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
      elif kind in (_VARINT, _FIXED):
        b = bufidx[node]
        buf = buffers[b]
        c = cursors[b]
        size = sizes[node]
        end = c + size
        if end > len(buf):
          raise TransposeError('reading a numeric field failed: buffer too short')
        cursors[b] = end
        value = buf[c:end]
        if kind == _VARINT and size > 1:
          value = (int.from_bytes(value, 'little') | masks[size]).to_bytes(size, 'little')
        piece = consts[node] + value
        add(piece)
        pos += len(piece)
      elif kind == _NONPROTO:
        lb = len(buffers) - 1
        try:
          length, cursors[lb] = read_varint64(buffers[lb], cursors[lb])
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
        kind = _MSG_START
      if kind == _MSG_START:
        if stack:
          raise TransposeError('submessages still open at the start of a record')
        self.budget = budget - len(path)
        pieces.reverse()
        return b''.join(pieces), path, ti, node, repeats
      if pos > self.decoded_data_size:
        raise TransposeError('records larger than the decoded data size')
      if len(path) > budget:
        raise TransposeError('state machine walk too long')

      node = nexts[node]
      if repeats:
        if not implicit[node]:
          repeats -= 1
      else:
        if ti == num_transitions:
          if pieces or stack:
            raise TransposeError('unfinished record at the end of the transitions')
          return None, path, ti, node, repeats
        t = transitions[ti]
        ti += 1
        node += t >> 2
        if node >= n:
          raise TransposeError('invalid node index')
        repeats = (t & 3) + implicit[node]


# --- Compilation of a record shape to a Python function. ---

_SMALL_VARINTS: list[bytes] = []  # varint encodings of 0 .. 2**14 - 1, built on first use
_PROGRAMS: dict[object, object] = {}  # (machine signature, path) or source -> function, all chunks
_MAX_PROGRAMS = 1024


def _small_varints() -> list[bytes]:
  if not _SMALL_VARINTS:
    _SMALL_VARINTS.extend(_varint_bytes(i) for i in range(1 << 14))
  return _SMALL_VARINTS


def _program(m: _Machine, path: list[int]):
  """Compiles the record whose walk (in visiting order) is `path` to `f(buffers, cursors) -> bytes`.

  Returns None for records nesting submessages deeper than _MAX_DEPTH.

  The function reads the record's values from the buffers in visiting order
  (advancing `cursors`), and returns the record's bytes. It does not check
  buffer bounds: a read past a buffer's end leaves its cursor past the end
  (checked once per chunk) or raises IndexError (reading a string length).
  """
  key = (m.signature, tuple(path))
  program = _PROGRAMS.get(key)
  if program is not None:
    return program
  kinds = m.kinds
  consts = m.tags
  sizes = m.sizes
  bufidx = m.bufidx
  lines: list[str] = []
  used: dict[int, None] = {}
  nonproto_lengths = len(m.buffers) - 1

  # Units in visiting order (= backwards); a unit is a list of items in
  # forward order: ('c', bytes) constant, ('v', name) variable length,
  # ('f', name, size) variable of known length, ('s', tag, units) submessage.
  stack: list[tuple[list, bytes]] = []
  units: list[list] = []
  for i, node in enumerate(path):
    kind = kinds[node]
    if kind == _SUB_END:
      stack.append((units, consts[node]))
      units = []
      if len(stack) > _MAX_DEPTH:
        return None
    elif kind == _SUB_START:
      parent, tag = stack.pop()
      parent.append([('s', tag, units)])
      units = parent
    elif kind == _COPY:
      units.append([('c', consts[node])])
    elif kind == _STRING:
      b = bufidx[node]
      used[b] = None
      lines += [
        f'x = b{b}[c{b}]',
        'if x < 128:',
        f'  e = c{b} + 1 + x',
        'else:',
        f'  x, e = rv(b{b}, c{b})',
        '  e += x',
        f'v{i} = b{b}[c{b}:e]',
        f'c{b} = e',
      ]
      units.append([('c', consts[node]), ('v', f'v{i}')])
    elif kind in (_VARINT, _FIXED):
      b = bufidx[node]
      used[b] = None
      size = sizes[node]
      if kind == _VARINT and size > 1:
        mask = _VARINT_MASKS[size]
        lines.append(
          f"v{i} = (int.from_bytes(b{b}[c{b}:c{b} + {size}], 'little') | {mask}).to_bytes({size}, 'little')"
        )
      else:
        lines.append(f'v{i} = b{b}[c{b}:c{b} + {size}]')
      lines.append(f'c{b} += {size}')
      units.append([('c', consts[node]), ('f', f'v{i}', size)])
    elif kind == _NONPROTO:
      b = bufidx[node]
      lb = nonproto_lengths
      used[b] = None
      used[lb] = None
      lines += [f'x, c{lb} = rv(b{lb}, c{lb})', f'e = c{b} + x', f'v{i} = b{b}[c{b}:e]', f'c{b} = e']
      units.append([('v', f'v{i}')])
  # (_NOOP and the final _MSG_START write nothing.)

  counter = [0]

  def flatten(units: list[list]) -> tuple[list, int, list[str]]:
    """Forward pieces of `units`, their constant length and the expressions of the rest."""
    pieces: list = []
    const = 0
    exprs: list[str] = []
    for unit in reversed(units):
      for item in unit:
        if item[0] == 'c':
          pieces.append(item)
          const += len(item[1])
        elif item[0] == 'v':
          pieces.append(item)
          exprs.append(f'len({item[1]})')
        elif item[0] == 'f':
          pieces.append(('v', item[1]))
          const += item[2]
        else:
          _, tag, child = item
          child_pieces, child_const, child_exprs = flatten(child)
          if not child_exprs:
            prefix = tag + _varint_bytes(child_const)
            pieces.append(('c', prefix))
            const += len(prefix) + child_const
          else:
            j = counter[0]
            counter[0] += 1
            lines.append(f'n{j} = {" + ".join([str(child_const), *child_exprs])}')
            lines.append(f'p{j} = V[n{j}] if n{j} < 16384 else vb(n{j})')
            pieces.append(('c', tag))
            pieces.append(('v', f'p{j}'))
            const += len(tag)
            exprs += [f'len(p{j})', f'n{j}']
          pieces += child_pieces
    return pieces, const, exprs

  pieces, _, _ = flatten(units)
  merged: list[str] = []
  run = b''
  for kind, value in pieces:
    if kind == 'c':
      run += value
    else:
      if run:
        merged.append(repr(run))
        run = b''
      merged.append(value)
  if run:
    merged.append(repr(run))
  head = [f'b{b} = B[{b}]\nc{b} = C[{b}]' for b in used]
  tail = [f'C[{b}] = c{b}' for b in used]
  if not merged:
    result = "b''"
  elif len(merged) == 1:
    result = merged[0]
  else:
    result = f"b''.join(({', '.join(merged)},))"
  body = '\n'.join([*head, *lines, *tail, f'return {result}'])
  source = 'def program(B, C, rv=rv, V=V, vb=vb):\n' + '\n'.join('  ' + line for line in body.split('\n'))
  program = _PROGRAMS.get(source)
  if program is None:
    namespace = {'rv': read_varint64, 'V': _small_varints(), 'vb': _varint_bytes}
    exec(compile(source, '<riegeli transposed record>', 'exec'), namespace)  # noqa: S102 (generated from the state machine, no input text)
    program = namespace['program']
  if len(_PROGRAMS) >= _MAX_PROGRAMS:
    _PROGRAMS.clear()
  _PROGRAMS[source] = _PROGRAMS[key] = program
  return program
