"""RLDS episodes <-> serialized `tf.train.Example`s in TFDS's layout.

Each episode is one Example, laid out as TFDS lays out a
`FeaturesDict({'steps': Dataset({...}), ...})` (see `_tfds_metadata` for the
matching features.json):

* numeric leaves (every dtype but bool) are `Tensor(encoding=BYTES)`, one bytes
  entry per step holding the raw array, so every value (float64 too) reads back
  bit-exact; leaves of `ZLIB_MIN_BYTES` or more per step (images, boards) are
  `Tensor(encoding=ZLIB)` instead: the same bytes, zlib-compressed per step;
* bool leaves are `Tensor(bool)` (an int64 list);
* string leaves are `Tensor(object)` (a bytes list, UTF-8 for `str` specs);
* nested dicts are nested `FeaturesDict`s; tuples and lists (which TFDS lacks)
  become `FeaturesDict`s keyed '0', '1', ... and are restored from the stored
  specs on read.

Encoding and decoding work on whole columns (`_example_wire`), not per step;
decoding can also take a window of steps (what a random step read needs).
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
from dm_env import specs

from envlogger import _memo, _zlib, rlds
from envlogger import _schema as S
from envlogger import specs as specs_lib
from envlogger.backends import _example_wire as wire
from envlogger.backends._example_wire import WireError

# Numeric leaves at least this large per step are zlib-compressed.
ZLIB_MIN_BYTES = 128
# Compressed leaves up to this large per step have a `_zlib.Memo` of their
# streams: at most ZLIB_MEMO_MAX_BYTES each, and ZLIB_MEMOS_MAX_BYTES for all
# the leaves of a codec together.
MEMO_MAX_STEP_BYTES = 2048
ZLIB_MEMO_MAX_BYTES, ZLIB_MEMOS_MAX_BYTES = 1 << 20, 4 << 20
# Uncompressed numeric columns up to this large per episode have their map
# entries remembered (`_memo.Memo`), and so have the step flags: sparse rewards
# and discounts repeat from episode to episode. At most ENTRY_MEMO_MAX_BYTES
# per leaf, and ENTRY_MEMOS_MAX_BYTES for all of a codec's together.
ENTRY_MEMO_MAX_COLUMN_BYTES = 1024
ENTRY_MEMO_MAX_BYTES, ENTRY_MEMOS_MAX_BYTES = 256 << 10, 1 << 20
BYTES, ZLIB, INT64 = 'bytes', 'zlib', 'none'


def leaf_kind(spec: specs.Array) -> str:
  """'str', 'bytes' (strings), 'bool', or 'raw' (numeric)."""
  if isinstance(spec, specs.StringArray):
    return 'str' if spec.string_type is str else 'bytes'
  if np.dtype(spec.dtype) == np.bool_:
    return 'bool'
  return 'raw'


def default_encoding(spec: specs.Array) -> str | None:
  """The TFDS Tensor encoding of a numeric leaf (None for bool/strings).

  Small integer leaves are 'none' (an Int64List of varints: 1 byte for an
  action in [0, 127] instead of 8, and exact for every integer dtype); small
  float leaves 'bytes' (raw: float64 stays exact); large leaves 'zlib'.
  """
  if leaf_kind(spec) != 'raw':
    return None
  nbytes = int(np.prod(spec.shape, dtype=np.int64)) * np.dtype(spec.dtype).itemsize
  if nbytes >= ZLIB_MIN_BYTES:
    return ZLIB
  return INT64 if np.dtype(spec.dtype).kind in 'iu' else BYTES


class _Leaf:
  __slots__ = (
    'key',
    'spec',
    'kind',
    'encoding',
    'dtype',
    'shape',
    'size',
    'step_nbytes',
    'memo',
    'inflated',
    'entries',
  )

  def __init__(self, key: str, spec: specs.Array, encoding: str | None):
    self.key = key
    self.spec = spec
    self.kind = leaf_kind(spec)
    self.encoding = encoding
    self.shape = tuple(spec.shape)
    self.dtype = np.dtype(spec.dtype) if self.kind in ('raw', 'bool') else np.dtype(object)
    self.size = int(np.prod(self.shape, dtype=np.int64))  # values per step
    self.step_nbytes = self.size * self.dtype.itemsize
    # Small compressed values (boards) are remembered: they often repeat.
    small = encoding == ZLIB and 0 < self.step_nbytes <= MEMO_MAX_STEP_BYTES
    self.memo = _zlib.Memo(self.step_nbytes, ZLIB_MEMO_MAX_BYTES, wire.bytes_entry) if small else None
    self.inflated = (
      _zlib.InflateMemo(ZLIB_MEMO_MAX_BYTES) if small and self.step_nbytes < _zlib.SMALL else None
    )
    # Map entries of small uncompressed numeric columns (rewards, discounts, actions) are remembered.
    # (Not zero-size leaves: the key, the column's bytes, gives the number of steps.)
    fixed = self.kind == 'raw' and encoding in (BYTES, INT64) and self.step_nbytes > 0
    self.entries = _memo.Memo(ENTRY_MEMO_MAX_BYTES) if fixed else None


def step_field_prefixes(schema: S.Schema):
  """(field, feature key prefix) of every step field of a schema."""
  yield 'observation', f'{S.STEPS}/{S.OBSERVATION}'
  yield 'action', f'{S.STEPS}/{S.ACTION}'
  yield 'reward', f'{S.STEPS}/{S.REWARD}'
  yield 'discount', f'{S.STEPS}/{S.DISCOUNT}'
  if schema.custom_data_spec is not None:
    if schema.custom_data_layout == S.FIELDS:
      yield 'custom_data', S.STEPS
    else:
      yield 'custom_data', f'{S.STEPS}/{S.CUSTOM_DATA}'


def metadata_prefix(schema: S.Schema) -> str:
  return '' if schema.episode_metadata_layout == S.FIELDS else S.EPISODE_METADATA


def leaf_keys(prefix: str, spec: Any) -> list[tuple[str, specs.Array]]:
  return [
    ('/'.join(p for p in (prefix, path) if p), leaf) for path, leaf in specs_lib.flatten_with_names(spec)
  ]


class Codec:
  """Encodes and decodes episodes of one schema.

  Args:
    schema: the log's schema.
    encodings: feature key -> 'bytes' | 'zlib' for numeric leaves, as stored
      with the log; keys missing get `default_encoding`.
  """

  def __init__(self, schema: S.Schema, encodings: dict[str, str] | None = None):
    self.schema = schema
    self.casters = rlds.Casters(schema)
    encodings = encodings or {}
    self.step_leaves: dict[str, list[_Leaf]] = {}
    for field, prefix in step_field_prefixes(schema):
      spec = getattr(schema, f'{field}_spec')
      self.step_leaves[field] = [
        _Leaf(k, s, encodings.get(k, default_encoding(s))) for k, s in leaf_keys(prefix, spec)
      ]
    self.meta_leaves: list[_Leaf] = []
    if schema.episode_metadata_spec is not None:
      self.meta_leaves = [
        _Leaf(k, s, encodings.get(k, default_encoding(s)))
        for k, s in leaf_keys(metadata_prefix(schema), schema.episode_metadata_spec)
      ]
    # Serialized keys, computed once (serializing them for every Example took
    # 8 of the 49 us of a Catch episode's encoding).
    keys = [lf.key for lfs in self.step_leaves.values() for lf in lfs] + [lf.key for lf in self.meta_leaves]
    keys += [_IS_FIRST, _IS_LAST, _IS_TERMINAL, _HAS_CUSTOM_DATA, S.EPISODE_ID, S.RUN_ID, S.CUT_SHORT]
    keys += [S.INVALID, S.HAS_EPISODE_METADATA]
    self._heads = {k: wire.key_head(k) for k in keys}
    self._run_id: tuple[str, bytes] = ('', b'')  # (run id, its map entry)
    self._flag_entry = {
      (k, v): wire.map_entry(self._heads[k], _FLAG_FEATURES[v])
      for k in (S.CUT_SHORT, S.INVALID, S.HAS_EPISODE_METADATA)
      for v in (False, True)
    }
    self._flags_memo = _memo.Memo(ENTRY_MEMO_MAX_BYTES)
    # The memos' memory is bounded per codec too (many small leaves share it).
    leaves = [lf for lfs in self.step_leaves.values() for lf in lfs] + self.meta_leaves
    _share([lf.memo.memo for lf in leaves if lf.memo is not None], ZLIB_MEMOS_MAX_BYTES)
    _share([lf.inflated.memo for lf in leaves if lf.inflated is not None], ZLIB_MEMOS_MAX_BYTES)
    _share(
      [lf.entries for lf in leaves if lf.entries is not None] + [self._flags_memo], ENTRY_MEMOS_MAX_BYTES
    )
    self._layout: tuple[tuple[str, bytes], ...] = ()

  @property
  def encodings(self) -> dict[str, str]:
    """Feature key -> encoding of every numeric leaf (stored with the log)."""
    leaves = [lf for lfs in self.step_leaves.values() for lf in lfs] + self.meta_leaves
    return {lf.key: lf.encoding for lf in leaves if lf.encoding is not None}

  # -- encoding ---------------------------------------------------------------

  def encode(self, episode: rlds.Episode) -> bytes:
    n = episode.num_steps
    h = self._heads
    entries = []
    for field, leaves in self.step_leaves.items():
      for leaf, col in zip(leaves, episode.columns[field]):
        entries.append(self._column_entry(leaf, col, n))
    entries.append(self._flag_entries(episode.is_first, episode.is_last, episode.is_terminal))
    if self.schema.custom_data_spec is not None:
      mask = episode.has_custom_data
      mask = mask if mask is not None else np.zeros(n, bool)
      entries.append(wire.map_entry(h[_HAS_CUSTOM_DATA], wire.bool_feature(mask)))
    entries.append(wire.map_entry(h[S.EPISODE_ID], wire.bytes_feature([episode.episode_id.encode()])))
    if self._run_id[0] != episode.run_id:  # one writer: one run id
      self._run_id = (
        episode.run_id,
        wire.map_entry(h[S.RUN_ID], wire.bytes_feature([episode.run_id.encode()])),
      )
    entries.append(self._run_id[1])
    entries.append(self._flag_entry[S.CUT_SHORT, bool(episode.cut_short)])
    entries.append(self._flag_entry[S.INVALID, bool(episode.invalid)])
    if self.schema.episode_metadata_spec is not None:
      has = episode.metadata is not None
      entries.append(self._flag_entry[S.HAS_EPISODE_METADATA, has])
      caster = self.casters.episode_metadata
      values = caster(episode.metadata) if has else caster.zeros()
      for leaf, value in zip(self.meta_leaves, values):
        column = _encode_column(leaf, np.asarray(value, dtype=leaf.dtype)[None], 1)
        entries.append(wire.map_entry(h[leaf.key], column))
    return wire.example_from_entries(entries)

  def _column_entry(self, leaf: _Leaf, col: np.ndarray, n: int) -> bytes:
    """The map entry of a step leaf's column (remembered for small columns that repeat)."""

    memo = leaf.entries
    if memo is not None and memo.enabled:
      col = np.ascontiguousarray(col, dtype=leaf.dtype)
      if col.nbytes <= ENTRY_MEMO_MAX_COLUMN_BYTES:  # the key's length gives n
        return memo.derive(col.tobytes(), self._new_column_entry, leaf, col, n)
    return self._new_column_entry(leaf, col, n)

  def _new_column_entry(self, leaf: _Leaf, col: np.ndarray, n: int) -> bytes:
    return wire.map_entry(self._heads[leaf.key], _encode_column(leaf, col, n))

  def _flag_entries(self, is_first: np.ndarray, is_last: np.ndarray, is_terminal: np.ndarray) -> bytes:
    """The map entries of the step flags (the same for every episode of one
    length and ending, so remembered)."""
    flags = [
      f if type(f) is np.ndarray and f.dtype == np.bool_ else np.asarray(f, bool)
      for f in (is_first, is_last, is_terminal)
    ]

    memo = self._flags_memo
    if not memo.enabled:
      return self._new_flag_entries(flags)
    return memo.derive(b''.join([f.tobytes() for f in flags]), self._new_flag_entries, flags)  # one length

  def _new_flag_entries(self, flags: list[np.ndarray]) -> bytes:
    keys = (_IS_FIRST, _IS_LAST, _IS_TERMINAL)
    return b''.join(wire.map_entry(self._heads[k], wire.bool_feature(f)) for k, f in zip(keys, flags))

  def to_features(self, episode: rlds.Episode) -> dict[str, Any]:
    """The episode as the nested dict of numpy values TFDS's FeaturesDict (of
    `_tfds_metadata.features_json`) encodes: what a TFDS builder yields."""
    n = episode.num_steps
    flat: dict[str, Any] = {}
    for field, leaves in self.step_leaves.items():
      for leaf, col in zip(leaves, episode.columns[field]):
        flat[leaf.key] = np.asarray(col, dtype=leaf.dtype).reshape((n, *leaf.shape))
    flat[f'{S.STEPS}/{S.IS_FIRST}'] = episode.is_first
    flat[f'{S.STEPS}/{S.IS_LAST}'] = episode.is_last
    flat[f'{S.STEPS}/{S.IS_TERMINAL}'] = episode.is_terminal
    if self.schema.custom_data_spec is not None:
      mask = episode.has_custom_data
      flat[f'{S.STEPS}/{S.HAS_CUSTOM_DATA}'] = mask if mask is not None else np.zeros(n, dtype=bool)
    flat[S.EPISODE_ID] = episode.episode_id
    flat[S.RUN_ID] = episode.run_id
    flat[S.CUT_SHORT] = episode.cut_short
    flat[S.INVALID] = episode.invalid
    if self.schema.episode_metadata_spec is not None:
      has = episode.metadata is not None
      flat[S.HAS_EPISODE_METADATA] = has
      caster = self.casters.episode_metadata
      for leaf, value in zip(self.meta_leaves, caster(episode.metadata) if has else caster.zeros()):
        flat[leaf.key] = np.asarray(value, dtype=leaf.dtype).reshape(leaf.shape)
    nested: dict[str, Any] = {}
    for key, value in flat.items():
      *path, last = key.split('/')
      node = nested
      for part in path:
        node = node.setdefault(part, {})
      node[last] = value
    return nested

  # -- decoding ---------------------------------------------------------------

  def decode(self, data: bytes, rows: tuple[int, int] | np.ndarray | None = None) -> rlds.Episode:
    """Decodes an Example into an episode's columns.

    Args:
      data: a serialized Example.
      rows: (lo, hi) to decode only steps lo..hi-1 (a window of the episode:
        its columns and flags hold those steps only, and only their zlib
        entries are decompressed), or an int array of step indexes (the
        columns and flags hold those steps, in that order); None for every
        step.

    Raises:
      WireError: the bytes are not an episode of this schema.
    """
    feats = self._parse(data)
    is_first = _flags(feats, _IS_FIRST)
    n = len(is_first)
    if isinstance(rows, np.ndarray):
      if rows.size and not (rows.min() >= 0 and rows.max() < n):
        raise ValueError(f'rows out of range for an episode of {n} steps')
      sel = rows
    else:
      lo, hi = (0, n) if rows is None else rows
      if not 0 <= lo <= hi <= n:
        raise ValueError(f'rows {rows} out of range for an episode of {n} steps')
      sel = slice(lo, hi)
    columns = {
      field: [_decode_column(leaf, feats, n, sel) for leaf in leaves]
      for field, leaves in self.step_leaves.items()
    }
    is_last, is_terminal = _flags(feats, _IS_LAST), _flags(feats, _IS_TERMINAL)
    has_custom = None if self.schema.custom_data_spec is None else _flags(feats, _HAS_CUSTOM_DATA)
    if rows is not None:  # part of the episode: its rows of the flags (whole episodes skip this)
      is_first, is_last, is_terminal = is_first[sel], is_last[sel], is_terminal[sel]
      has_custom = None if has_custom is None else has_custom[sel]
    return rlds.Episode(
      columns=columns,
      is_first=is_first,
      is_last=is_last,
      is_terminal=is_terminal,
      has_custom_data=has_custom,
      metadata=self._decode_metadata(feats),
      episode_id=_string(feats, S.EPISODE_ID),
      run_id=_string(feats, S.RUN_ID),
      cut_short=_flag(feats, S.CUT_SHORT),
      invalid=S.INVALID in feats and _flag(feats, S.INVALID),
    )

  def leaves_of(self, fields: frozenset[str] | None) -> dict[str, list[_Leaf]]:
    """The leaves of step `fields` (None: all), by field."""
    if fields is None:
      return self.step_leaves
    return {f: leaves for f, leaves in self.step_leaves.items() if f in fields}

  def _parse(self, data: bytes) -> dict[str, tuple[int, memoryview]]:
    """`wire.parse_example`, by the key order of the last record parsed when it
    fits (records of one log share it)."""
    feats = wire.parse_like(data, self._layout)
    if feats is None:
      feats = wire.parse_example(data)
      self._layout = wire.layout_of(feats)
    return feats

  def decode_episode_id(self, data: bytes) -> str:
    return _string(self._parse(data), S.EPISODE_ID)

  def decode_metadata(self, data: bytes) -> Any:
    return self._decode_metadata(self._parse(data))

  def _decode_metadata(self, feats) -> Any:
    if self.schema.episode_metadata_spec is None:
      return None
    if not _flags(feats, S.HAS_EPISODE_METADATA)[0]:
      return None
    values = [rlds.scalarize(_decode_column(leaf, feats, 1, slice(0, 1))[0]) for leaf in self.meta_leaves]
    return self.casters.episode_metadata.unflatten(values)


def _share(memos: list[_memo.Memo], total: int) -> None:
  """Caps each memo at an equal share of `total` bytes."""
  for m in memos:
    m.max_bytes = min(m.max_bytes, total // len(memos))


def _encode_column(leaf: _Leaf, col: np.ndarray, n: int) -> bytes:
  if leaf.kind == 'raw':
    col = np.ascontiguousarray(col, dtype=leaf.dtype)
    if leaf.encoding == ZLIB:
      rows = col.reshape(n, -1).view(np.uint8) if n else col
      if leaf.memo is not None and n:
        return wire.bytes_feature_of_entries(leaf.memo.compress_each(rows))
      return wire.bytes_feature(_zlib.compress_each(rows))
    if leaf.encoding == INT64:
      return wire.int64_feature(col)
    return wire.bytes_feature_fixed(col, n)
  if leaf.kind == 'bool':
    return wire.bool_feature(col.ravel())
  if leaf.kind == 'str':
    return wire.bytes_feature([s.encode('utf-8') for s in col.ravel()])
  return wire.bytes_feature(list(col.ravel()))


def _payload(feats, key: str) -> memoryview:
  entry = feats.get(key)
  if entry is None:
    raise WireError(f'the record has no feature {key!r}')
  return entry[1]


def _decode_column(leaf: _Leaf, feats, n: int, sel: slice | np.ndarray) -> np.ndarray:
  """Steps `sel` (a slice of 0..n, or an index array) of a leaf's column, as a
  writable array (callers may modify it)."""
  count = len(range(n)[sel]) if isinstance(sel, slice) else len(sel)
  shape = (count, *leaf.shape)
  payload = _payload(feats, leaf.key)
  if leaf.kind == 'raw' and leaf.encoding != INT64:
    if leaf.encoding == BYTES:
      rows = wire.fixed_entries(payload, n, leaf.step_nbytes)  # our layout: a zero-copy view
      if rows is not None:
        picked = rows[sel].copy() if isinstance(sel, slice) else rows[sel]  # an index array copies
        return picked.view(leaf.dtype).reshape(shape)
    entries = wire.bytes_entries(payload)
    if len(entries) == n:  # one entry per step, as TFDS writes Tensor(encoding=...)
      entries = _pick(entries, sel)
      if leaf.encoding == ZLIB:
        return inflate_column(leaf, entries)
      raw = bytearray().join(entries)
      if len(raw) == count * leaf.step_nbytes:
        return np.frombuffer(raw, dtype=leaf.dtype).reshape(shape)
    raise WireError(
      f'feature {leaf.key!r} holds {len(entries)} entries (after decompression: not {n} of'
      f' {leaf.step_nbytes} bytes each)'
    )
  size = leaf.size
  if leaf.kind in ('str', 'bytes'):
    values = wire.bytes_entries(payload)
  else:
    values = wire.int64_values(payload)
  if len(values) != n * size:
    raise WireError(f'feature {leaf.key!r} holds {len(values)} values; expected {n * size}')
  if isinstance(sel, slice):
    values = values[sel.start * size : sel.stop * size]
  else:  # the values of steps sel, in order
    values = _pick(values, (sel[:, None] * size + np.arange(size)).ravel())
  if leaf.kind == 'raw':  # integers stored as an Int64List
    if leaf.dtype == np.uint64:
      return values.view(np.uint64).reshape(shape)
    return values.astype(leaf.dtype, copy=False).reshape(shape)
  if leaf.kind == 'bool':
    return values.astype(bool).reshape(shape)
  out = np.empty(len(values), dtype=object)
  out[:] = [bytes(v).decode('utf-8') for v in values] if leaf.kind == 'str' else [bytes(v) for v in values]
  return out.reshape(shape)


def _pick(values, sel: slice | np.ndarray):
  """values[sel] for a list or an array (a list indexed by an array: a list)."""
  if isinstance(sel, slice) or isinstance(values, np.ndarray):
    return values[sel]
  return [values[i] for i in sel.tolist()]


def inflate_column(leaf: _Leaf, entries: list) -> np.ndarray:
  """The column of a zlib leaf from its entries (one zlib stream per step), writable.

  Raises:
    WireError: an entry is not a zlib stream of one step's bytes.
  """
  size = leaf.step_nbytes
  try:
    if leaf.inflated is not None:  # boards: remembered, else the stdlib's inflate, a call per step
      raw = bytearray().join(leaf.inflated.decompress_each(entries))
    elif size < _zlib.SMALL:
      raw = bytearray().join([zlib.decompress(e) for e in entries])
    else:  # frames: inflated into place (not all held at once, then joined)
      raw = bytearray(len(entries) * size)
      _zlib.decompress_into(entries, size, memoryview(raw))
  except (*_zlib.error, ValueError) as e:
    raise WireError(f'feature {leaf.key!r}: {e}') from None
  if len(raw) != len(entries) * size:
    raise WireError(f'feature {leaf.key!r}: steps of other sizes than {size} bytes')
  return np.frombuffer(raw, dtype=leaf.dtype).reshape(len(entries), *leaf.shape)


_IS_FIRST = f'{S.STEPS}/{S.IS_FIRST}'
_IS_LAST = f'{S.STEPS}/{S.IS_LAST}'
_IS_TERMINAL = f'{S.STEPS}/{S.IS_TERMINAL}'
_HAS_CUSTOM_DATA = f'{S.STEPS}/{S.HAS_CUSTOM_DATA}'
_ONE_FLAG = {b'\n\x01\x00': False, b'\n\x01\x01': True}  # [0] and [1] as bool_feature packs them
_FLAG_FEATURES = {False: wire.packed_flags_feature(b'\x00'), True: wire.packed_flags_feature(b'\x01')}


def _flags(feats, key: str) -> np.ndarray:
  """A flag column (a read-only array: episodes hand out copies)."""
  return wire.bool_values(_payload(feats, key))


def _flag(feats, key: str) -> bool:
  """An episode-level flag (one value)."""
  payload = _payload(feats, key)
  flag = _ONE_FLAG.get(payload.tobytes())
  if flag is None:
    flags = wire.bool_values(payload)
    if len(flags) != 1:
      raise WireError(f'feature {key!r} holds {len(flags)} values; expected 1')
    flag = bool(flags[0])
  return flag


def _string(feats, key: str) -> str:
  values = wire.bytes_entries(_payload(feats, key))
  if len(values) != 1:
    raise WireError(f'feature {key!r} holds {len(values)} values; expected 1')
  return bytes(values[0]).decode()
