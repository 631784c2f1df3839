"""Decoding many episode records at once, with numpy instead of a parse per record.

The episodes of a log share one layout: the writer emits the same features in
the same order, and episodes of equal length with small integers give records
of equal length whose tags, lengths and keys sit at the same offsets. For a
group of records of equal length, the first record is parsed as usual and its
bytes are sorted into *value bytes* (raw leaf bytes, packed one-byte integers
and flags, the episode and run ids) and *structural bytes* (everything else).
A record whose structural bytes equal the first record's has the same layout,
because parsing reads only those bytes to find its way (value varints are
checked to be one byte each, flags to be 0 or 1). Those records are decoded
together: one comparison, then one gather per leaf, for the whole group.

Records that do not fit, and logs this path does not cover (zlib-compressed
leaves, as the default format stores images and boards; string leaves;
episode metadata), are parsed one by one, and their columns are decoded
together (`_decode_parsed`): each record's payload of a leaf is found by the
parse, the payloads of all records are joined, and one numpy call decodes the
leaf for the whole batch (zlib leaves: one inflate per step, then one join).
A record whose leaves do not fit that (values of other sizes, multi-byte
integers) has its leaves decoded per record. The result is the same either
way (tested against `Codec.decode`).

Written by hand because a full decode per record (about 35 us for a 10-step
episode, most of it numpy calls per leaf) caps a columnar read at a few
hundred thousand steps per second, and protobuf's parser does not help (it
builds a Python object per value).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from envlogger import _schema as S
from envlogger import rlds
from envlogger.backends import _batch_walk
from envlogger.backends import _example_wire as wire
from envlogger.backends import _tfds_codec as C

# Smaller groups are decoded record by record (planning a layout costs about as
# much as decoding a few records).
MIN_GROUP = 4
# Fewer records are parsed one by one: a walk costs about 40 numpy calls per feature
# whatever the number of records (0.6 ms for a Catch-like batch), a parse 15 us per record.
MIN_WALK = 48
GROUP_BYTES = 4 << 20  # records stacked into one array at a time, at most (unless one is larger)
_EPISODE_FLAGS = (S.CUT_SHORT, S.INVALID)


def batchable(codec: C.Codec) -> bool:
  """Whether records of `codec` can be decoded in groups (see the module docstring)."""
  if codec.schema.episode_metadata_spec is not None:
    return False
  leaves = [lf for lfs in codec.step_leaves.values() for lf in lfs]
  return all(lf.kind == 'bool' or (lf.kind == 'raw' and lf.encoding != C.ZLIB) for lf in leaves)


def decode_many(
  codec: C.Codec, records: Sequence[bytes], fields: frozenset[str] | None = None
) -> rlds.EpisodeBatch:
  """The episodes of `records`, in order, as one batch: what decoding each with
  `codec.decode` and `rlds.concat_episodes(..., fields)` gives (the leaves of
  other step fields are not decoded).

  Raises:
    WireError, ValueError: a record is not an episode of the codec's schema
      (callers decode one by one to tell which).
  """
  if not batchable(codec):
    return _decode_walked(codec, records, fields)
  by_length: dict[int, list[int]] = {}
  for i, r in enumerate(records):
    by_length.setdefault(len(r), []).append(i)
  pieces: list[tuple[np.ndarray, rlds.EpisodeBatch]] = []
  singles: list[int] = []
  for length, idx in by_length.items():
    plan = _Plan.of(codec, records[idx[0]]) if len(idx) >= MIN_GROUP else None
    if plan is None:
      singles.extend(idx)
      continue
    # Records are stacked a few MiB at a time: buffers that size are reused by the
    # allocator, while larger ones are fresh pages every time (slow on some VMs).
    step = max(1, GROUP_BYTES // length)
    for lo in range(0, len(idx), step):
      part = np.asarray(idx[lo : lo + step])
      arr = np.frombuffer(b''.join([records[i] for i in part]), dtype=np.uint8).reshape(len(part), length)
      fits = plan.fits(arr)
      if fits.all():
        pieces.append((part, plan.decode(arr, codec, fields)))
        continue
      if fits.any():
        pieces.append((part[fits], plan.decode(arr[fits], codec, fields)))
      singles.extend(part[~fits].tolist())
  if singles:
    singles.sort()
    pieces.append((np.asarray(singles), _decode_walked(codec, [records[i] for i in singles], fields)))
  return assemble(len(records), pieces, codec.casters, fields)


def _decode_walked(
  codec: C.Codec, records: Sequence[bytes], fields: frozenset[str] | None
) -> rlds.EpisodeBatch:
  """`decode_many` by `_batch_walk` (records of one key order, of any lengths);
  records that do not fit its walk are parsed one by one."""
  fits = np.arange(len(records))
  # Each pass drops the records failing the walk's first failed check (a few passes at most).
  while len(fits) >= MIN_WALK:
    got = _batch_walk.decode(
      codec, [records[i] for i in fits.tolist()] if len(fits) < len(records) else records, fields
    )
    if isinstance(got, rlds.EpisodeBatch):
      if len(fits) == len(records):
        return got
      rest = np.setdiff1d(np.arange(len(records)), fits)
      parsed = _decode_parsed(codec, [records[i] for i in rest.tolist()], fields)
      return assemble(len(records), [(fits, got), (rest, parsed)], codec.casters, fields)
    if not got.any():
      break
    fits = fits[got]
  return _decode_parsed(codec, records, fields)


def assemble(
  m: int,
  pieces: list[tuple[np.ndarray, rlds.EpisodeBatch]],
  casters: rlds.Casters,
  fields: frozenset[str] | None = None,
):
  """One batch of m episodes from pieces holding some of them each (positions,
  batch), each with the columns of step `fields` (None: all)."""
  if len(pieces) == 1 and np.array_equal(pieces[0][0], np.arange(m)):
    return pieces[0][1]  # one group, in order: nothing to move
  if not pieces:
    return rlds.concat_episodes([], casters, fields)
  lengths = np.zeros(m, dtype=np.int64)
  for pos, piece in pieces:
    lengths[pos] = piece.lengths
  # Pieces that are runs of positions tiling 0..m (records of one length often
  # are: episode ids grow a digit at 10, 100, ...) are joined end to end;
  # others are scattered to their rows.
  runs = sorted(pieces, key=lambda p: int(p[0][0]))
  starts_of_runs = np.cumsum([0] + [len(pos) for pos, _ in runs])
  if all(np.array_equal(pos, np.arange(a, a + len(pos))) for (pos, _), a in zip(runs, starts_of_runs)):

    def gather(get) -> np.ndarray:
      return np.concatenate([get(piece) for _, piece in runs])

  else:
    starts = np.cumsum(lengths) - lengths
    dests = []
    for pos, piece in pieces:
      n = piece.lengths
      first_row = np.cumsum(n) - n  # of each episode within the piece
      dests.append(np.repeat(starts[pos] - first_row, n) + np.arange(int(n.sum())))

    def gather(get) -> np.ndarray:
      first = get(pieces[0][1])
      out = np.empty((int(lengths.sum()), *first.shape[1:]), dtype=first.dtype)
      for dest, (_, piece) in zip(dests, pieces):
        out[dest] = get(piece)
      return out

  def per_episode(name: str) -> np.ndarray:
    out = np.empty(m, dtype=bool)
    for pos, piece in pieces:
      out[pos] = getattr(piece, name)
    return out

  def per_episode_list(name: str) -> list:
    out: list = [None] * m
    for pos, piece in pieces:
      for j, value in zip(pos.tolist(), getattr(piece, name)):
        out[j] = value
    return out

  first = pieces[0][1]
  return rlds.EpisodeBatch(
    columns={
      field: [gather(lambda p, f=field, i=i: p.columns[f][i]) for i in range(len(cols))]
      for field, cols in first.columns.items()
    },
    is_first=gather(lambda p: p.is_first),
    is_last=gather(lambda p: p.is_last),
    is_terminal=gather(lambda p: p.is_terminal),
    has_custom_data=None if first.has_custom_data is None else gather(lambda p: p.has_custom_data),
    lengths=lengths,
    metadata=per_episode_list('metadata'),
    episode_id=per_episode_list('episode_id'),
    run_id=per_episode_list('run_id'),
    cut_short=per_episode('cut_short'),
    invalid=per_episode('invalid'),
  )


def _offset(payload: memoryview, base: int) -> int:
  """Where `payload` starts in the record whose buffer starts at address `base`."""
  return np.frombuffer(payload, dtype=np.uint8).ctypes.data - base if len(payload) else -1


def _packed(payload: memoryview, p: int, count: int) -> slice | None:
  """Where the `count` one-byte values of a packed Int64List payload starting at
  `p` are, if it is one (as `wire.int64_feature` and `wire.bool_feature` write them)."""
  if count == 0 or p < 0 or len(payload) < 2 or payload[0] != 0x0A:
    return None
  head = len(wire.varint(count)) + 1
  if len(payload) != head + count or bytes(payload[1:head]) != wire.varint(count):
    return None
  return slice(p + head, p + head + count)


class _Plan:
  """Where the values of one record layout are, and how to decode them."""

  def __init__(self, length: int, n: int):
    self.n = n  # steps per episode
    self.value = np.zeros(length, dtype=bool)  # which bytes are values (the rest: structure)
    # (field, leaf, where its bytes are): raw leaves (start, bytes per step with the entry's
    # head, bytes per step); integers and bools a slice of one-byte values.
    self.leaves: list[tuple[str, C._Leaf, tuple[int, int, int] | slice]] = []
    self.small: list[slice] = []  # one-byte varints (must be < 0x80)
    self.bits: list[slice] = []  # bool values (must be 0 or 1)
    self.flags: dict[str, slice] = {}  # RLDS and episode flags
    self.strings: dict[str, tuple[int, int]] = {}  # episode_id, run_id: (start, stop)
    self.struct = np.zeros(0, dtype=np.intp)

  @classmethod
  def of(cls, codec: C.Codec, record: bytes) -> _Plan | None:
    """The plan of `record`'s layout, or None if its layout is not one this path decodes."""
    try:
      feats = codec._parse(record)
      n = len(C._flags(feats, C._IS_FIRST))
    except (wire.WireError, ValueError):
      return None
    plan = cls(len(record), n)
    base = np.frombuffer(record, dtype=np.uint8).ctypes.data
    for field, leaves in codec.step_leaves.items():
      for leaf in leaves:
        payload = feats.get(leaf.key)
        if payload is None:
          return None
        p = _offset(payload[1], base)
        if leaf.kind == 'raw' and leaf.encoding == C.BYTES:
          rows = wire.fixed_entries(payload[1], n, leaf.step_nbytes) if leaf.step_nbytes else None
          if rows is None or p < 0:
            return None
          row = len(payload[1]) // n
          head = row - leaf.step_nbytes
          plan.leaves.append((field, leaf, (p + head, row, leaf.step_nbytes)))
          plan.value[p : p + n * row] = True
          plan.value[p : p + n * row].reshape(n, row)[:, :head] = False  # the entries' heads
        else:  # an Int64List: integers ('none' encoding) or bools
          where = _packed(payload[1], p, n * leaf.size)
          if where is None:
            return None
          (plan.small if leaf.kind == 'raw' else plan.bits).append(where)
          plan.leaves.append((field, leaf, where))
          plan.value[where] = True
    flag_keys = [C._IS_FIRST, C._IS_LAST, C._IS_TERMINAL, *_EPISODE_FLAGS]
    if codec.schema.custom_data_spec is not None:
      flag_keys.append(C._HAS_CUSTOM_DATA)
    for key in flag_keys:
      payload = feats.get(key)
      size = 1 if key in _EPISODE_FLAGS else n
      pos = None if payload is None else _packed(payload[1], _offset(payload[1], base), size)
      if pos is None:
        return None
      plan.flags[key] = pos
      plan.bits.append(pos)
      plan.value[pos] = True
    for key in (S.EPISODE_ID, S.RUN_ID):
      payload = feats.get(key)
      entries = None if payload is None else wire.bytes_entries(payload[1])
      if not entries or len(entries) != 1:
        return None
      start = _offset(entries[0], base)
      if start < 0:
        return None  # an empty id: decoded record by record
      plan.strings[key] = (start, start + len(entries[0]))
      plan.value[start : start + len(entries[0])] = True
    plan.struct = np.flatnonzero(~plan.value)
    return plan

  def fits(self, arr: np.ndarray) -> np.ndarray:
    """Which records (rows of `arr`) have this layout."""
    ok = (arr[:, self.struct] == arr[0, self.struct]).all(axis=1)
    for where in self.small:
      ok &= (arr[:, where] < 0x80).all(axis=1)
    for where in self.bits:
      ok &= (arr[:, where] <= 1).all(axis=1)
    return ok

  def decode(
    self, arr: np.ndarray, codec: C.Codec, fields: frozenset[str] | None = None
  ) -> rlds.EpisodeBatch:
    """The episodes of records `arr` (rows that fit this plan), with the columns
    of step `fields` (None: all)."""
    m, n = len(arr), self.n
    columns: dict[str, list[np.ndarray]] = {field: [] for field in codec.leaves_of(fields)}
    for field, leaf, where in self.leaves:
      if field not in columns:
        continue
      if isinstance(where, tuple):  # raw bytes: n entries of `row` bytes, values at their ends
        start, row, nbytes = where
        values = arr[:, start : start + n * row].reshape(m, n, row)[:, :, :nbytes]
        col = values.copy().view(leaf.dtype)  # always a fresh copy (a view of one row would be read-only)
        columns[field].append(col.reshape(m * n, *leaf.shape))
        continue
      # One-byte varints: each byte is the value (astype copies: the caller's array).
      col = arr[:, where].astype(bool if leaf.kind == 'bool' else leaf.dtype)
      columns[field].append(col.reshape(m * n, *leaf.shape))
    flags = {key: arr[:, where].astype(bool).ravel() for key, where in self.flags.items()}
    ids = {key: _strings(arr[:, a:b]) for key, (a, b) in self.strings.items()}
    return rlds.EpisodeBatch(
      columns=columns,
      is_first=flags[C._IS_FIRST],
      is_last=flags[C._IS_LAST],
      is_terminal=flags[C._IS_TERMINAL],
      has_custom_data=flags.get(C._HAS_CUSTOM_DATA),
      lengths=np.full(m, n, dtype=np.int64),
      metadata=[None] * m,
      episode_id=ids[S.EPISODE_ID],
      run_id=ids[S.RUN_ID],
      cut_short=flags[S.CUT_SHORT],
      invalid=flags[S.INVALID],
    )


def _strings(raw: np.ndarray) -> list[str]:
  """The rows of an (m, k) uint8 array as UTF-8 strings (UnicodeDecodeError if one is not)."""
  if raw.shape[1] and not raw[:, -1].all():  # numpy's bytes dtype would drop trailing NULs
    return [bytes(row).decode() for row in raw]
  as_bytes = np.ascontiguousarray(raw).view(f'S{raw.shape[1]}').ravel()
  if (raw < 0x80).all():
    return as_bytes.astype(str).tolist()  # ASCII, the common case: one conversion
  return [b.decode() for b in as_bytes.tolist()]


# ----------------------------------------------------------------------------
# Records parsed one by one, columns decoded together.


def _decode_parsed(
  codec: C.Codec, records: Sequence[bytes], fields: frozenset[str] | None = None
) -> rlds.EpisodeBatch:
  """`decode_many` of records of any layout: parsed one by one (the parse
  finds each leaf's payload), each leaf then decoded for all records at once."""
  if not records:
    return rlds.concat_episodes([], codec.casters, fields)
  feats = [codec._parse(r) for r in records]
  bodies = [wire.packed_body(C._payload(f, C._IS_FIRST)) for f in feats]
  if all(b is not None for b in bodies) and b''.join(bodies).isascii():
    ns = [len(b) for b in bodies]  # a byte per flag
  else:
    ns = [len(C._flags(f, C._IS_FIRST)) for f in feats]
  columns = {
    field: [_leaf_column(leaf, feats, ns) for leaf in leaves]
    for field, leaves in codec.leaves_of(fields).items()
  }
  custom = codec.schema.custom_data_spec is not None
  return rlds.EpisodeBatch(
    columns=columns,
    is_first=_flag_column(feats, C._IS_FIRST, ns),
    is_last=_flag_column(feats, C._IS_LAST, ns),
    is_terminal=_flag_column(feats, C._IS_TERMINAL, ns),
    has_custom_data=_flag_column(feats, C._HAS_CUSTOM_DATA, ns) if custom else None,
    lengths=np.asarray(ns, dtype=np.int64),
    metadata=[codec._decode_metadata(f) for f in feats],
    episode_id=[C._string(f, S.EPISODE_ID) for f in feats],
    run_id=[C._string(f, S.RUN_ID) for f in feats],
    cut_short=np.array([C._flag(f, S.CUT_SHORT) for f in feats], dtype=bool),
    invalid=np.array([S.INVALID in f and C._flag(f, S.INVALID) for f in feats], dtype=bool),
  )


def _one_byte_values(feats: list, key: str, counts: list[int]) -> np.ndarray | None:
  """The values of Int64List `key` of every record, joined (uint8), if each is
  one packed field of one-byte values (0..127) and record i holds `counts[i]`
  of them; else None."""
  bodies = []
  for f, count in zip(feats, counts):
    body = wire.packed_body(C._payload(f, key))
    if body is None or len(body) != count:
      return None
    bodies.append(body)
  joined = b''.join(bodies)
  if not joined.isascii():
    return None
  return np.frombuffer(joined, dtype=np.uint8)


def _flag_column(feats: list, key: str, ns: list[int]) -> np.ndarray:
  """Flag column `key` of every record, joined (record i holds `ns[i]` flags)."""
  joined = _one_byte_values(feats, key, ns)
  if joined is not None and not (joined > 1).any():
    return joined.astype(bool)
  cols = [C._flags(f, key) for f in feats]  # other encodings of the same flags
  if [len(c) for c in cols] != ns:
    raise wire.WireError(f'feature {key!r}: a record holds another number of flags than of steps')
  return np.concatenate(cols).astype(bool, copy=False)


def _leaf_column(leaf: C._Leaf, feats: list, ns: list[int]) -> np.ndarray:
  """A leaf's column over every record (fresh and writable, as `Codec.decode` gives)."""
  total = sum(ns)
  shape = (total, *leaf.shape)
  if leaf.kind == 'raw' and leaf.encoding == C.BYTES and leaf.step_nbytes:
    payloads = [C._payload(f, leaf.key) for f in feats]
    row = len(wire._len_field(wire._LEN1, leaf.step_nbytes)) + leaf.step_nbytes
    if [len(p) for p in payloads] == [n * row for n in ns]:
      rows = wire.fixed_entries(memoryview(b''.join(payloads)), total, leaf.step_nbytes)
      if rows is not None:
        return rows.copy().view(leaf.dtype).reshape(shape)
  elif leaf.kind == 'raw' and leaf.encoding == C.ZLIB:
    entries = []
    for f, n in zip(feats, ns):
      got = wire.bytes_entries(C._payload(f, leaf.key))
      if len(got) != n:
        break
      entries += got
    else:
      return C.inflate_column(leaf, entries)
  elif leaf.kind == 'bool' or (leaf.kind == 'raw' and leaf.encoding == C.INT64):
    joined = _one_byte_values(feats, leaf.key, [n * leaf.size for n in ns])
    if joined is not None:
      return joined.astype(bool if leaf.kind == 'bool' else leaf.dtype).reshape(shape)
  # Anything else (strings, multi-byte integers, odd layouts): record by record.
  return np.concatenate([C._decode_column(leaf, f, n, slice(0, n)) for f, n in zip(feats, ns)])
