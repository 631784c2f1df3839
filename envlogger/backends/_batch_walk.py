"""Decoding many episode records at once, walking all of them together.

`_batch_decode`'s layout plan needs records of equal length, which a log
with zlib leaves (boards, frames: one stream per step, of varying length)
never has. This path reads records that share the first record's *key order*
(as every record of a log written here does), whatever their lengths: the
records, in one buffer (as read from a shard, `Joined`, or joined here), are
walked in step, one numpy operation per field for all of them. Each map entry's tag, lengths, key and list kind
are checked for every record at once, which gives where each feature's
payload starts and ends in every record. Leaves are then decoded for the
whole batch: fixed-size entries and packed integers by one gather, zlib
entries walked step by step across records (one numpy operation per step
index, not per step) and inflated; a small stream that repeats in the batch
(a Catch board) is inflated once.

Records that do not fit the walk (another key order, unpacked integers) are
left to the caller, which parses them one by one. Leaves of other kinds
(strings, zero-size leaves) and episode metadata are decoded per record
from the payloads found by the walk. The result is what `Codec.decode` of
each record gives (tested against it).

Written by hand because parsing each record in Python (`parse_like`, then
splitting each BytesList) costs about 25 us for a 10-step Catch-like
episode: a columnar read of such a log stayed under 400k steps per second.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from envlogger import _schema as S
from envlogger import _zlib, rlds
from envlogger.backends import _example_wire as wire
from envlogger.backends import _tfds_codec as C

# Zero bytes after the joined records: reads past a bad record's end find no tag, and a
# stream's padded row (`_words`) ends inside the buffer.
_PAD = 16 + 128
# Zlib entries are walked across records while this many records still have steps left; the
# rest of a long episode (few records left) is read record by record.
_MIN_ACTIVE = 8
# Small streams are deduplicated across the batch (hashed, sorted, compared) before inflating.
_DEDUPE_MAX_STREAM = _PAD - 16
_DEDUPE_MIN_STEPS = 64


def _all(flags: np.ndarray) -> bool:
  """`flags.all()` of a 1-D bool array (count_nonzero runs in C; `.all()` costs
  4 times more through numpy's Python wrapper, and a walk calls it often)."""
  return np.count_nonzero(flags) == len(flags)


def _any(flags: np.ndarray) -> bool:
  return np.count_nonzero(flags) > 0


class Joined:
  """Records held in one buffer, as `_tfrecord.pread_joined` reads them (frames
  and all): the walk reads them in place instead of joining copies.

  Indexing gives a record's bytes (a copy), as a list of records would.
  """

  __slots__ = ('data', 'starts', 'lengths')

  def __init__(self, data: bytes, starts: np.ndarray, lengths: np.ndarray):
    self.data = data
    self.starts = starts
    self.lengths = lengths

  def __len__(self) -> int:
    return len(self.starts)

  def __getitem__(self, i: int) -> bytes:
    a = int(self.starts[i])
    return self.data[a : a + int(self.lengths[i])]

  def __iter__(self):
    data = self.data
    return iter([data[a : a + k] for a, k in zip(self.starts.tolist(), self.lengths.tolist())])


class _Walk:
  """The records in one buffer, and where each feature's payload is in each.

  Attributes:
    data: the buffer (bytes; record i is data[starts[i]:ends[i]]), and `buf`
      the same bytes as a padded uint8 array.
    ok: (m,) bool: which records fit so far (checks only ever clear it).
    spans: feature key -> (starts, ends) int64 arrays into `data`.
  """

  def __init__(self, records: Sequence[bytes] | Joined):
    self.m = len(records)
    if isinstance(records, Joined):
      self.data, self.starts = records.data, records.starts
      self.ends = records.starts + records.lengths
    else:
      self.data = b''.join(records)
      lengths = np.fromiter(map(len, records), dtype=np.int64, count=self.m)
      self.ends = np.cumsum(lengths)
      self.starts = self.ends - lengths
    self.buf = np.frombuffer(self.data + bytes(_PAD), dtype=np.uint8)
    self._views: dict[tuple[str, int], np.ndarray] = {}
    self._pairs = np.ndarray((len(self.buf) - 1,), '<u2', self.buf, 0, (1,))  # the 2 bytes at each offset
    self.ok = np.ones(self.m, dtype=bool)
    self.spans: dict[str, tuple[np.ndarray, np.ndarray]] = {}

  def at(self, pos: np.ndarray) -> np.ndarray:
    """The bytes at positions `pos` (positions past the data read a pad byte)."""
    return self.buf.take(pos, mode='clip')

  def varint(self, pos: np.ndarray) -> tuple[np.ndarray, Any, Any]:
    """(value, size in bytes, valid) of the varint at each position (lengths: up
    to 5 bytes; a longer one is not valid). Size and valid are scalars when
    every varint is one byte."""
    b = self.at(pos)
    more = b >= 0x80
    if not _any(more):  # the common case: one-byte lengths
      return b.astype(np.int64), 1, True
    pair = self._pairs[np.minimum(pos, len(self._pairs) - 1)].astype(np.int64)
    lo, hi = pair & 0xFF, pair >> 8
    if not _any(more & (hi >= 0x80)):  # at most two bytes (lengths under 16 KiB): one gather
      return np.where(more, (lo & 0x7F) | (hi << 7), lo), 1 + more, True
    value, size = b.astype(np.int64) & 0x7F, np.ones(len(pos), dtype=np.int64)
    for k in range(1, 5):
      b = self.at(pos + k).astype(np.int64)
      value |= np.where(more, (b & 0x7F) << (7 * k), 0)
      size += more
      more &= b >= 0x80
      if not _any(more):
        break
    return value, size, ~more

  def header(self, pos: np.ndarray, tag: int) -> tuple[np.ndarray, np.ndarray, Any]:
    """At each position a length-delimited field with `tag`: (payload start,
    payload end, valid)."""
    length, size, valid = self.varint(pos + 1)
    start = pos + 1 + size
    return start, start + length, valid & (self.at(pos) == tag)

  def equals(self, pos: np.ndarray, expected: bytes) -> np.ndarray:
    """Whether the bytes at each position start with `expected`."""
    view = self.strings(len(expected), 'S')
    if not len(view):
      return np.zeros(len(pos), dtype=bool)
    # numpy's fixed-width bytes compare equal only when byte-identical.
    return view[np.minimum(pos, len(view) - 1)] == expected

  def strings(self, k: int, kind: str) -> np.ndarray:
    """The k-byte string at every offset of the buffer, as an array of numpy
    dtype `kind`k ('S' or 'V'; a strided view, no copy): indexing it gathers
    whole strings at once (a 2-D index of bytes costs several times more)."""
    view = self._views.get((kind, k))
    if view is None:
      view = self._views[kind, k] = np.ndarray(
        (max(len(self.buf) - k + 1, 0),), f'{kind}{k}', self.buf, 0, (1,)
      )
    return view

  def walk(
    self, layout: Sequence[tuple[str, int]], template: dict[str, tuple[bytes, int]] | None = None
  ) -> None:
    """Finds the payload of each feature, in `layout` order: (key, list kind).

    With `template` (`_template` of one record, usually the first), an entry
    whose bytes before its payload (tag, lengths, key, list tag) equal the
    template's is taken at the template's offsets: most entries are the same
    size in every record of a log, and one comparison checks them.
    """
    pos, end, valid = self.header(self.starts, wire._LEN1)  # Example.features
    self.ok &= valid & (end == self.ends)
    for key, kind in layout:
      if template is not None:
        head, size = template[key]
        same = self.equals(pos, head)
        if _all(same):
          self.spans[key] = (pos + len(head), pos + size)
          pos = pos + size
          continue
      pos, entry_end, valid = self.header(pos, wire._LEN1)  # a map entry
      head = wire.key_head(key)  # its key field and the Feature's tag
      self.ok &= valid & self.equals(pos, head)
      feature, feature_end, valid = self.header(pos + len(head) - 1, wire._LEN2)
      self.ok &= valid
      payload, payload_end, valid = self.header(feature, (kind << 3) | 2)
      self.ok &= valid & (feature_end == entry_end) & (payload_end == entry_end)
      self.spans[key] = (payload, payload_end)
      pos = entry_end
    self.ok &= pos == self.ends

  def gather(self, starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The bytes of ranges [starts[i], starts[i] + counts[i]), joined (uint8)."""
    if len(counts) and counts[0] > 0 and _all(counts == counts[0]):  # equal ranges: one gather
      return self.strings(int(counts[0]), 'V')[starts].view(np.uint8)
    return self.buf[_ranges(starts, counts)]

  def payload(self, key: str, i: int) -> memoryview:
    s, e = self.spans[key]
    return memoryview(self.data)[int(s[i]) : int(e[i])]


def _template(record: bytes, layout: Sequence[tuple[str, int]]) -> dict[str, tuple[bytes, int]] | None:
  """For each feature of `record` (in `layout` order): the bytes of its map entry
  before the payload, and the entry's size. None if `record` is laid out otherwise."""
  mv = memoryview(record)
  out = {}
  try:
    _, pos = wire._read_varint(mv, 1)
    for key, kind in layout:
      length, p = wire._read_varint(mv, pos + 1)
      end = p + length
      head = wire.key_head(key)
      if record[pos] != wire._LEN1 or not record.startswith(head, p):
        return None
      _, p = wire._read_varint(mv, p + len(head))
      if record[p] != (kind << 3) | 2:
        return None
      _, p = wire._read_varint(mv, p + 1)
      out[key] = (record[pos:p], end - pos)
      pos = end
  except (IndexError, wire.WireError):
    return None
  return out


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
  """The positions of ranges [starts[i], starts[i] + counts[i]), joined."""
  total = int(counts.sum())
  first = np.cumsum(counts) - counts
  return np.repeat(starts - first, counts) + np.arange(total, dtype=np.int64)


def _packed(w: _Walk, key: str) -> tuple[np.ndarray, np.ndarray]:
  """The values of Int64List `key` of every record, joined, and their count per
  record. Records whose payload is not one packed field (or empty) are
  cleared from `w.ok` and hold no values."""
  s, e = w.spans[key]
  size = int(e[0] - s[0]) if w.m else 0
  if size and _all(e - s == size):  # payloads of one size (flags; actions of one-byte values)
    body = wire.packed_body(w.payload(key, 0))
    head = size - len(body) if body is not None else 0
    if head and _all(w.equals(s, w.data[int(s[0]) : int(s[0]) + head])):  # one packed field of one count
      raw = w.strings(size - head, 'V')[s + head].view(np.uint8) if size > head else np.zeros(0, np.uint8)
      if _all(raw < 0x80):
        return raw.astype(np.int64), np.full(w.m, size - head, dtype=np.int64)
  empty = s == e
  start, end, valid = w.header(s, wire._LEN1)
  w.ok &= empty | (valid & (end == e))
  start = np.where(empty, s, start)
  nbytes = np.where(w.ok, e - start, 0)
  raw = w.gather(start, nbytes)
  ends = raw < 0x80
  if _all(ends):  # one-byte values (flags, small actions): the bytes are the values
    return raw.astype(np.int64), nbytes
  # Multi-byte varints: each record's must end inside it, then one decode for all.
  w.ok &= (nbytes == 0) | (w.at(e - 1) < 0x80)
  nbytes = np.where(w.ok, nbytes, 0)
  raw = w.buf[_ranges(start, nbytes)]
  counts = np.bincount(np.repeat(np.arange(w.m), nbytes), weights=raw < 0x80, minlength=w.m)
  try:
    return wire.decode_varints(raw), counts.astype(np.int64)
  except wire.WireError:  # a varint of over 64 bits: which record is told record by record
    w.ok[:] = False
    return np.zeros(0, np.int64), np.zeros(w.m, np.int64)


class _Steps:
  """Where the steps of every record are: `n` per record, and each record's first row."""

  def __init__(self, n: np.ndarray):
    self.n = n
    self.total = int(n.sum())
    self.first = np.cumsum(n) - n
    self.record = np.repeat(np.arange(len(n)), n)  # the record of each row
    self.index = np.arange(self.total, dtype=np.int64) - self.first[self.record]  # row within it


def _flags(w: _Walk, key: str, counts: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
  """A flag column, written as 0/1 bytes, and its count per record (which must
  be `counts`, if given)."""
  values, n = _packed(w, key)
  if counts is not None:
    w.ok &= n == counts
  bad = values > 1
  if _any(bad):  # other encodings of flags: record by record
    w.ok[np.repeat(np.arange(w.m), n)[bad]] = False
  return values.astype(bool), n


def _fixed(w: _Walk, leaf: C._Leaf, st: _Steps):
  """Locates a BYTES leaf of fixed-size entries; returns a function that gathers its column."""
  s, e = w.spans[leaf.key]
  head = wire._len_field(wire._LEN1, leaf.step_nbytes)
  row = len(head) + leaf.step_nbytes
  w.ok &= e - s == st.n * row  # (other sizes: the caller parses those records)
  value = s[st.record] + st.index * row + len(head)  # where each step's bytes start
  w.ok[st.record[~w.equals(value - len(head), head)]] = False

  def gather() -> np.ndarray:
    raw = w.strings(leaf.step_nbytes, 'V')[value]  # one gather of whole entries (fresh, writable)
    return raw.view(np.uint8).view(leaf.dtype).reshape(st.total, *leaf.shape)

  return gather


def _zlib_streams(w: _Walk, leaf: C._Leaf, st: _Steps) -> tuple[np.ndarray, np.ndarray]:
  """(start, length) of each step's zlib stream of a ZLIB leaf, in row order."""
  s, e = w.spans[leaf.key]
  n = int(st.n[0]) if w.m else 0
  # Episodes of one length (the common case): step j of every record at once, as a column.
  if n and w.m >= _MIN_ACTIVE and _all(st.n == n):
    starts, lengths = np.empty((w.m, n), dtype=np.int64), np.empty((w.m, n), dtype=np.int64)
    pos = s
    for j in range(n):
      start, pos, valid = w.header(pos, wire._LEN1)
      w.ok &= valid
      starts[:, j], lengths[:, j] = start, pos - start
    w.ok &= pos == e
    return starts.ravel(), lengths.ravel()
  starts = np.zeros(st.total, dtype=np.int64)
  lengths = np.zeros(st.total, dtype=np.int64)
  pos = s.copy()
  j = 0
  alive = np.flatnonzero(st.n > 0)
  while len(alive) >= _MIN_ACTIVE:  # step j of every record that has one, at once
    start, end, valid = w.header(pos[alive], wire._LEN1)
    w.ok[alive] &= valid
    rows = st.first[alive] + j
    starts[rows], lengths[rows] = start, end - start
    pos[alive] = end
    j += 1
    alive = alive[st.n[alive] > j]
  mv = memoryview(w.data)
  for i in alive.tolist():  # the long tails of a few records, read one by one
    p, stop = int(pos[i]), int(e[i])
    for r in range(int(st.first[i]) + j, int(st.first[i] + st.n[i])):
      if p >= stop or w.data[p] != wire._LEN1:
        w.ok[i] = False
        break
      try:
        length, p = wire._read_varint(mv, p + 1)
      except wire.WireError:
        w.ok[i] = False
        break
      starts[r], lengths[r] = p, length
      p += length
    pos[i] = p
  w.ok &= pos == e
  return starts, lengths


def _words(w: _Walk, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
  """The bytes of each stream (of at most `_DEDUPE_MAX_STREAM`) as rows of
  8-byte words, zero past its end."""
  width = -(-int(lengths.max()) // 8) * 8
  rows = w.strings(width, 'V')[starts].view(np.uint8).reshape(len(starts), width)  # (the pad covers the last)
  # Row k of `keep`: k bytes of 0xFF. A table gather: a broadcast comparison costs 4 times more.
  keep = np.where(np.arange(width) < np.arange(width + 1)[:, None], 0xFF, 0).astype(np.uint8)
  rows &= keep[lengths]
  return rows.view(np.uint64)


def _hash(words: np.ndarray, lengths: np.ndarray) -> np.ndarray:
  """A 64-bit hash of each row of words and its length (FNV-style; equal rows
  hash equal, and unequal ones are told apart by comparing them)."""
  h = lengths.astype(np.uint64)
  for c in range(words.shape[1]):  # wraps modulo 2**64 (numpy arrays do not warn)
    h = h * np.uint64(0x100000001B3) ^ words[:, c]
  return h


def _inflate(w: _Walk, leaf: C._Leaf, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
  """The column of a ZLIB leaf from its streams (`C.inflate_column` of each)."""
  mv = memoryview(w.data)
  total = len(starts)
  if total >= _DEDUPE_MIN_STEPS and leaf.step_nbytes < _zlib.SMALL and lengths.max() <= _DEDUPE_MAX_STREAM:
    # Boards repeat: each distinct stream is inflated once. Streams are read as
    # 8-byte words (zeroed past their end), hashed, sorted by hash, and compared
    # word for word with their group's first (a collision falls through to
    # inflating each).
    words = _words(w, starts, lengths)
    _, first, inverse = np.unique(_hash(words, lengths), return_index=True, return_inverse=True)
    rep = first[inverse]
    if np.array_equal(words, words[rep]) and np.array_equal(lengths, lengths[rep]):
      distinct = [mv[a : a + n] for a, n in zip(starts[first].tolist(), lengths[first].tolist())]
      return C.inflate_column(leaf, distinct)[inverse.ravel()]
  streams = [mv[a : a + n] for a, n in zip(starts.tolist(), lengths.tolist())]
  return C.inflate_column(leaf, streams)


def _strings(w: _Walk, key: str) -> list[str]:
  """A one-entry BytesList of UTF-8 text per record (episode and run ids)."""
  s, e = w.spans[key]
  start, end, valid = w.header(s, wire._LEN1)
  w.ok &= valid & (end == e)
  if not _all(w.ok):
    return []
  return [w.data[a:b].decode() for a, b in zip(start.tolist(), end.tolist())]


def decode(
  codec: C.Codec, records: Sequence[bytes] | Joined, fields: frozenset[str] | None = None
) -> rlds.EpisodeBatch | np.ndarray:
  """The episodes of `records` as one batch; or, if some records do not fit the
  walk, a bool array clearing those that failed its first failed check (later
  checks did not run: call again with the others, until a batch comes back).

  Raises:
    WireError, ValueError: the first record is not an Example, or a record
      that fits holds values that do not decode (a bad zlib stream, say).
  """
  layout = [(key, kind) for key, (kind, _) in wire.parse_example(records[0]).items()]
  keys = {key for key, _ in layout}
  custom = codec.schema.custom_data_spec is not None
  needed = [C._IS_FIRST, C._IS_LAST, C._IS_TERMINAL, S.EPISODE_ID, S.RUN_ID, S.CUT_SHORT]
  needed += [C._HAS_CUSTOM_DATA] if custom else []
  leaves = codec.leaves_of(fields)
  needed += [lf.key for lfs in leaves.values() for lf in lfs]
  w = _Walk(records)
  if not keys.issuperset(needed):
    return ~w.ok
  w.walk(layout, _template(records[0], layout))
  if not _all(w.ok):
    return w.ok
  # The flags, the ids, and where each leaf's values are: checks for every record.
  is_first, n = _flags(w, C._IS_FIRST)  # a flag per step: the steps of each record
  st = _Steps(n)
  flags = {key: _flags(w, key, n)[0] for key in (C._IS_LAST, C._IS_TERMINAL)}
  if custom:
    flags[C._HAS_CUSTOM_DATA] = _flags(w, C._HAS_CUSTOM_DATA, n)[0]
  one = np.ones(w.m, dtype=np.int64)
  episode_flags = {key: _flags(w, key, one)[0] for key in (S.CUT_SHORT, S.INVALID) if key in keys}
  ids = {key: _strings(w, key) for key in (S.EPISODE_ID, S.RUN_ID)}
  getters = {field: [_locate(w, leaf, st) for leaf in lfs] for field, lfs in leaves.items()}
  if not _all(w.ok):
    return w.ok
  return rlds.EpisodeBatch(
    columns={field: [get() for get in gets] for field, gets in getters.items()},
    is_first=is_first,
    is_last=flags[C._IS_LAST],
    is_terminal=flags[C._IS_TERMINAL],
    has_custom_data=flags.get(C._HAS_CUSTOM_DATA),
    lengths=n,
    metadata=_metadata(codec, w),
    episode_id=ids[S.EPISODE_ID],
    run_id=ids[S.RUN_ID],
    cut_short=episode_flags[S.CUT_SHORT],
    invalid=episode_flags.get(S.INVALID, np.zeros(w.m, dtype=bool)),
  )


def _locate(w: _Walk, leaf: C._Leaf, st: _Steps):
  """Checks a leaf's payload in every record; returns a function decoding its column."""
  shape = (st.total, *leaf.shape)
  if leaf.kind == 'raw' and leaf.encoding == C.BYTES and leaf.step_nbytes:
    return _fixed(w, leaf, st)
  if leaf.kind == 'raw' and leaf.encoding == C.ZLIB:
    starts, lengths = _zlib_streams(w, leaf, st)
    return lambda: _inflate(w, leaf, starts, lengths)
  if leaf.kind == 'bool' or (leaf.kind == 'raw' and leaf.encoding == C.INT64):
    values, counts = _packed(w, leaf.key)
    w.ok &= counts == st.n * leaf.size
    if leaf.kind == 'bool':
      return lambda: values.astype(bool).reshape(shape)
    if leaf.dtype == np.uint64:
      return lambda: values.view(np.uint64).reshape(shape)
    return lambda: values.astype(leaf.dtype).reshape(shape)
  # Strings, zero-size leaves, odd payloads: each record's column from its payload.
  return lambda: np.concatenate(
    [
      C._decode_column(leaf, {leaf.key: (0, w.payload(leaf.key, i))}, int(n), slice(0, int(n)))
      for i, n in enumerate(st.n.tolist())
    ]
  )


def _metadata(codec: C.Codec, w: _Walk) -> list[Any]:
  if codec.schema.episode_metadata_spec is None:
    return [None] * w.m
  keys = [S.HAS_EPISODE_METADATA] + [lf.key for lf in codec.meta_leaves]
  return [codec._decode_metadata({k: (0, w.payload(k, i)) for k in keys if k in w.spans}) for i in range(w.m)]
