"""The journal: each finished episode, raw, on disk before the step that ended it returns.

Why: the TFDS layout needs each episode encoded (a tf.train.Example, one zlib
stream per compressed step value), which costs far more than copying the
episode's columns (a 10-step Catch episode: ~60 us to encode, frame and write;
~3 us to write it raw). The logger writes the raw columns here, in the step,
and encodes them into the TFDS shards in its background thread. A process
killed at any moment therefore loses no finished episode: each one is in a
shard or in the journal (or both, for an instant), and readers and
`envlogger recover` take the journal's episodes that no shard holds yet.
The page cache holds a journal for the seconds its episodes wait for the
background writer; it is deleted once they are all in shards, usually
before the kernel writes it back to disk.

Files: `<dataset_dir>/envlogger_journal/<run_id>.<seq>.journal`, each written
by one logger (which holds a `flock` on it while it lives, see `_locks`):

  bytes [0, HEADER_SIZE)   the header: which shards the background writer is
                           writing (see below); zeros until it writes the
                           file's first episode
  then one TFRecord frame per episode (length and data CRC32C checksums)

Which episodes of a dead writer's journal are not in its shards: one writer
writes its episodes in order, to shards of its own. Before it writes the
first episode of a journal file, and before its first write to each new
shard, it records in the header the shard it writes to (`cur`) and the one
before (`prev`). The last whole record of `cur` (else of `prev`) is then the
writer's newest episode in a shard, and the journal's entries after it (by
episode counter) are the ones no shard holds. This needs no write per
episode besides the journal's own.

Entry payload (little-endian; shapes and dtypes come from the log's schema):

  struct ENTRY: magic b'ELJ1', flags (u8), num_steps n (u32), counter (u64),
                episode id length (u16), run id length (u16)
  episode id, run id (UTF-8)
  for each step field (observation, action, reward, discount, custom data if
  the schema has it), each leaf in flatten order: the leaf's n rows
  has_custom_data: n bytes (if the schema has custom data)
  the episode metadata's leaves, one row each (if flag HAS_METADATA)

A numeric leaf is its rows' raw bytes; a string leaf is u32 lengths of its
values, then their bytes (UTF-8 for `str`).
"""

from __future__ import annotations

import contextlib
import glob
import json
import mmap
import os
import re
import struct
import threading
from typing import Any

import google_crc32c
import numpy as np

from envlogger import _files, _locks, _tfrecord, rlds

JOURNAL_DIR = 'envlogger_journal'
HEADER_SIZE = 512
DEFAULT_MAX_FILE_BYTES = 8 << 20

_HEADER = struct.Struct('<4sII')  # magic, crc32c(body), len(body)
_HEADER_MAGIC = b'ELJH'
_ENTRY = struct.Struct('<4sBIQHH')
_ENTRY_MAGIC = b'ELJ1'
_CUT_SHORT, _INVALID, _TERMINAL, _HAS_METADATA = 1, 2, 4, 8
_STEP_FIELDS = ('observation', 'action', 'reward', 'discount')
_NAME_RE = re.compile(r'^(?P<run>.+)\.(?P<seq>\d+)\.journal$')


class JournalError(ValueError):
  """A journal entry does not decode with the log's schema."""


# -- entries ------------------------------------------------------------------


def _fields(casters: rlds.Casters) -> list[str]:
  return list(_STEP_FIELDS) + (['custom_data'] if casters.custom_data is not None else [])


def _leaf_parts(cast, col: Any, out: list) -> None:
  if cast.kind != 'S':
    out.append(np.ascontiguousarray(col, dtype=cast.dtype))
    return
  values = [
    v.encode('utf-8') if isinstance(v, str) else bytes(v) for v in np.asarray(col, dtype=object).ravel()
  ]
  out.append(np.fromiter(map(len, values), dtype='<u4', count=len(values)))
  out.extend(values)


def _step_leaves(casters: rlds.Casters) -> list[tuple[str, int, Any, Any]]:
  """(field, leaf index, cast, dtype or None for strings) of every step leaf, in entry order."""
  return [
    (name, i, cast, None if cast.kind == 'S' else np.dtype(cast.dtype))
    for name in _fields(casters)
    for i, cast in enumerate(casters.field(name).casts)
  ]


def encode(
  episode: rlds.Episode, casters: rlds.Casters, step_leaves: list[tuple[str, int, Any, Any]] | None = None
) -> bytes:
  """An episode's journal entry (the payload of its frame); `step_leaves`:
  `_step_leaves(casters)`, if the caller keeps it."""
  n = episode.num_steps
  counter = _counter(episode.episode_id)
  has_meta = episode.metadata is not None and casters.episode_metadata is not None
  flags = (
    (_CUT_SHORT if episode.cut_short else 0)
    | (_INVALID if episode.invalid else 0)
    | (_TERMINAL if n and episode.is_terminal[-1] else 0)
    | (_HAS_METADATA if has_meta else 0)
  )
  eid, rid = episode.episode_id.encode(), episode.run_id.encode()
  parts: list[Any] = [_ENTRY.pack(_ENTRY_MAGIC, flags, n, counter, len(eid), len(rid)), eid, rid]
  columns = episode.columns
  for name, i, cast, dtype in step_leaves or _step_leaves(casters):
    col = columns[name][i]
    if type(col) is np.ndarray and col.dtype == dtype and col.flags.c_contiguous:
      parts.append(col)  # as it is (the common case: ~0.4 us less per leaf)
    else:
      _leaf_parts(cast, col, parts)
  if casters.custom_data is not None:
    parts.append(np.ascontiguousarray(episode.has_custom_data, dtype=bool))
  if has_meta:
    for cast, leaf in zip(casters.episode_metadata.casts, casters.episode_metadata(episode.metadata)):
      _leaf_parts(cast, np.asarray(leaf, dtype=cast.dtype)[None], parts)
  return b''.join(parts)


def _fixed(data: bytes) -> tuple[int, int, int, int, int]:
  """(flags, num_steps, counter, id length, run id length) of an entry."""
  if len(data) < _ENTRY.size:
    raise JournalError('journal entry shorter than its header')
  magic, *fixed = _ENTRY.unpack_from(data)
  if magic != _ENTRY_MAGIC:
    raise JournalError('not a journal entry')
  return tuple(fixed)


def _counter(episode_id: str) -> int:
  return int(episode_id.rsplit('/', 1)[-1])


def entry_info(data: bytes) -> tuple[int, int]:
  """(counter, num_steps) of an entry, from its fixed part."""
  _, n, counter, _, _ = _fixed(data)
  return counter, n


def entry_episode_id(data: bytes) -> str:
  id_len = _fixed(data)[3]
  return bytes(data[_ENTRY.size : _ENTRY.size + id_len]).decode('utf-8')


class _Cursor:
  __slots__ = ('data', 'pos')

  def __init__(self, data: bytes, pos: int):
    self.data = data
    self.pos = pos

  def take(self, size: int) -> memoryview:
    end = self.pos + size
    if end > len(self.data):
      raise JournalError('journal entry shorter than its schema needs')
    out = memoryview(self.data)[self.pos : end]
    self.pos = end
    return out

  def leaf(self, cast, rows: int) -> np.ndarray:
    count = rows * int(np.prod(cast.shape, dtype=np.int64))
    if cast.kind != 'S':
      raw = self.take(count * cast.dtype.itemsize)
      return np.frombuffer(raw, dtype=cast.dtype).reshape(rows, *cast.shape).copy()
    lengths = np.frombuffer(self.take(4 * count), dtype='<u4')
    text = cast.spec.string_type is str
    out = np.empty(count, dtype=object)
    for i, size in enumerate(lengths.tolist()):
      raw = bytes(self.take(size))
      out[i] = raw.decode('utf-8') if text else raw
    return out.reshape(rows, *cast.shape)


def decode(data: bytes, casters: rlds.Casters, rows: tuple[int, int] | None = None) -> rlds.Episode:
  """The episode of an entry (`rows`: only steps lo..hi-1, as `Codec.decode`).

  Raises:
    JournalError: the entry does not fit the schema.
  """
  flags, n, _, id_len, run_len = _fixed(data)
  cur = _Cursor(data, _ENTRY.size)
  episode_id = bytes(cur.take(id_len)).decode('utf-8')
  run_id = bytes(cur.take(run_len)).decode('utf-8')
  columns = {name: [cur.leaf(c, n) for c in casters.field(name).casts] for name in _fields(casters)}
  has_custom = None
  if casters.custom_data is not None:
    has_custom = np.frombuffer(cur.take(n), dtype=bool).copy()
  metadata = None
  if flags & _HAS_METADATA:
    if casters.episode_metadata is None:
      raise JournalError('journal entry has episode metadata; the schema has none')
    leaves = [rlds.scalarize(cur.leaf(c, 1)[0]) for c in casters.episode_metadata.casts]
    metadata = casters.episode_metadata.unflatten(leaves)
  if cur.pos != len(data):
    raise JournalError(f'journal entry has {len(data) - cur.pos} bytes more than its schema needs')
  is_first, is_last, is_terminal = rlds.flag_columns(n, bool(flags & _TERMINAL))
  lo, hi = (0, n) if rows is None else rows
  if not 0 <= lo <= hi <= n:
    raise ValueError(f'rows {rows} out of range for an episode of {n} steps')
  if (lo, hi) != (0, n):
    columns = {k: [c[lo:hi] for c in v] for k, v in columns.items()}
    is_first, is_last, is_terminal = is_first[lo:hi], is_last[lo:hi], is_terminal[lo:hi]
    has_custom = None if has_custom is None else has_custom[lo:hi]
  return rlds.Episode(
    columns=columns,
    is_first=is_first,
    is_last=is_last,
    is_terminal=is_terminal,
    has_custom_data=has_custom,
    metadata=metadata,
    episode_id=episode_id,
    run_id=run_id,
    cut_short=bool(flags & _CUT_SHORT),
    invalid=bool(flags & _INVALID),
  )


# -- the header -----------------------------------------------------------------


def _header_bytes(prev: str | None, cur: str | None) -> bytes:
  body = json.dumps({'prev': prev, 'cur': cur}).encode()
  data = _HEADER.pack(_HEADER_MAGIC, google_crc32c.value(body), len(body)) + body
  if len(data) > HEADER_SIZE:
    raise ValueError(f'shard names too long for the journal header: {prev!r}, {cur!r}')
  return data.ljust(HEADER_SIZE, b'\0')


def read_header(path: str) -> tuple[str | None, str | None] | None:
  """(prev, cur) shard names from a journal's header; None if unset or damaged."""
  with open(path, 'rb') as f:
    data = f.read(HEADER_SIZE)
  if len(data) < _HEADER.size:
    return None
  magic, crc, size = _HEADER.unpack_from(data)
  body = data[_HEADER.size : _HEADER.size + size]
  if magic != _HEADER_MAGIC or len(body) != size or google_crc32c.value(body) != crc:
    return None
  try:
    d = json.loads(body)
    return d['prev'], d['cur']
  except (ValueError, KeyError, TypeError):
    return None


def write_header(fd: int, prev: str | None, cur: str | None, fsync: bool = False) -> None:
  os.pwrite(fd, _header_bytes(prev, cur), 0)
  if fsync:
    os.fsync(fd)


# -- files on disk ----------------------------------------------------------------


def journal_paths(dataset_dir: str) -> list[str]:
  """Every journal file of the dataset, oldest first within each run."""
  paths = glob.glob(os.path.join(glob.escape(dataset_dir), JOURNAL_DIR, '*.journal'))

  def key(path: str):
    m = _NAME_RE.match(os.path.basename(path))
    return (m['run'], int(m['seq'])) if m else (os.path.basename(path), -1)

  return sorted(paths, key=key)


def run_of(path: str) -> str | None:
  m = _NAME_RE.match(os.path.basename(path))
  return m['run'] if m else None


def scan(path: str) -> tuple[list[tuple[int, int]], int, int]:
  """A journal's whole frames: ([(offset, length), ...], end of the last, end of the data).

  Files are allocated ahead: zeros after the last frame are free space, not
  damage, so the end of the data is the end of the last frame when only zeros
  follow it, else the file size (a torn or damaged tail).
  """
  with open(path, 'rb') as f:
    frames = list(_tfrecord.scan(f, HEADER_SIZE))
    end = frames[-1][0] + _tfrecord.framed_size(frames[-1][1]) if frames else HEADER_SIZE
    f.seek(end)
    data_end = end
    while chunk := f.read(1 << 20):
      if chunk.count(0) != len(chunk):
        data_end = f.seek(0, os.SEEK_END)
        break
  return frames, end, data_end


def _round_up(n: int, multiple: int) -> int:
  return -(-n // multiple) * multiple


def _release(f: _File) -> None:
  if f.mm is not None:
    f.mm.close()
  os.close(f.fd)


class _File:
  __slots__ = ('path', 'fd', 'mm', 'size', 'header', 'appended', 'written', 'sealed')

  def __init__(self, path: str, fd: int):
    self.path = path
    self.fd = fd
    self.mm: mmap.mmap | None = None  # the file mapped (allocated ahead), or None: appended with pwrite
    self.size = HEADER_SIZE
    self.header: tuple[str | None, str | None] | None = None
    self.appended = -1  # counter of the last entry appended
    self.written = -1  # counter of the last entry the background writer stored
    self.sealed = False  # no more appends: deleted once every entry is written


class Entry:
  """What the background writer needs to know of a journaled episode."""

  __slots__ = ('file', 'counter')

  def __init__(self, file: _File, counter: int):
    self.file = file
    self.counter = counter


class JournalWriter:
  """One logger's journal: appended by the env loop, released by the background writer.

  Args:
    dataset_dir: the dataset directory.
    run_id: the logger's run id (journal file names start with it).
    casters: the log's (fixed) schema's casters.
    fsync: `fsync` each entry before `append` returns (and headers).
    max_file_bytes: a new journal file is started past this size, so that
      files whose episodes are all in shards are deleted soon.
  """

  def __init__(
    self,
    dataset_dir: str,
    run_id: str,
    casters: rlds.Casters,
    fsync: bool = False,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
  ):
    self._dir = os.path.join(dataset_dir, JOURNAL_DIR)
    self._run_id = run_id
    self._casters = casters
    self._fsync = fsync
    self._max_file_bytes = max_file_bytes
    self._seq = 0
    self._file: _File | None = None
    self._files: list[_File] = []  # not yet deleted
    self._keep = False
    self._lock = threading.Lock()  # file states are changed by both threads
    self._step_leaves = _step_leaves(casters)

  def append(self, episode: rlds.Episode) -> Entry:
    """Writes `episode` to the journal (the env loop's side).

    Raises:
      OSError: the entry could not be written (the journal is left as it was).
    """
    framed = _tfrecord.frame(encode(episode, self._casters, self._step_leaves))
    f = self._file
    if f is not None and f.mm is not None and f.size + len(framed) > len(f.mm):
      self._seal()  # full: the next file
      f = None
    if f is None:
      f = self._file = self._open(len(framed))
    try:
      if f.mm is not None:
        # A copy into the file's shared mapping: in the page cache (it
        # survives the death of the process) without a system call, so the
        # GIL is not released here. A `pwrite` would release it, and with the
        # writer thread encoding, taking it back cost ~25 us per episode
        # (Catch, measured in the logging loop) against ~2 us alone.
        f.mm[f.size : f.size + len(framed)] = framed
        if self._fsync:
          start = f.size - f.size % mmap.PAGESIZE
          f.mm.flush(start, f.size + len(framed) - start)
      else:
        _files.write_all(f.fd, framed, f.size)
        if self._fsync:
          os.fsync(f.fd)
    except OSError as e:
      with contextlib.suppress(OSError, ValueError):  # else readers skip the torn tail
        if f.mm is not None:
          f.mm[f.size : f.size + len(framed)] = bytes(len(framed))
        else:
          os.ftruncate(f.fd, f.size)
      raise OSError(
        e.errno,
        f'Could not write episode {episode.episode_id} ({len(framed)} bytes) to the journal '
        f'{f.path}: {e.strerror or e}. Episodes finished before it are intact.',
      ) from e
    f.size += len(framed)
    counter = _counter(episode.episode_id)
    f.appended = counter
    entry = Entry(f, counter)
    if f.mm is None and f.size >= self._max_file_bytes:
      self._seal()
    return entry

  def before_write(self, entry: Entry, prev: str | None, cur: str) -> None:
    """Records the shards the entry is about to be written to (the writer thread's side)."""
    f = entry.file
    if f.header != (prev, cur):
      write_header(f.fd, prev, cur, self._fsync)
      f.header = (prev, cur)

  def written(self, entry: Entry) -> None:
    """The entry's episode is in a shard: its file goes when all of its entries are."""
    f = entry.file
    with self._lock:
      f.written = entry.counter
      done = f.sealed and f.written == f.appended and not self._keep
    if done:
      self._remove(f)

  def keep_all(self) -> None:
    """Deletes no journal file from now on (an episode failed to reach a shard:
    the ones after it must not be taken for stored either)."""
    with self._lock:
      self._keep = True

  def close(self) -> None:
    """Seals the current file; files with entries not in shards are kept, and
    unlocked (for `envlogger recover` and readers)."""
    if self._file is not None:
      self._seal()
    with self._lock:
      files, self._files = self._files, []
    for f in files:
      _release(f)

  def _open(self, first_entry: int) -> _File:
    os.makedirs(self._dir, exist_ok=True)
    # The file is created under a name no reader or writer looks at, locked,
    # then renamed into place: a writer opening the log takes unlocked journal
    # files for dead writers' and stores and deletes them, and must never see
    # this one between its creation and its lock (a race seen with five
    # concurrent writers under load). The lock (flock) follows the file
    # across the rename. A crash in between leaves an empty `.new` file.
    while True:
      path = os.path.join(self._dir, f'{self._run_id}.{self._seq:05d}.journal')
      self._seq += 1
      if os.path.exists(path):  # (names are this writer's own: its run id)
        continue
      try:
        fd = os.open(path + '.new', os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        break
      except FileExistsError:
        continue
    _locks.lock_shard(fd)  # held while this process lives: readers leave a live journal alone
    os.rename(path + '.new', path)
    f = _File(path, fd)
    with self._lock:
      self._files.append(f)
    # The file's blocks are allocated ahead (so a full disk is an error here,
    # not a SIGBUS when a page of the mapping is first written), and it is
    # mapped. Where that fails (a full disk, a file size limit, a filesystem
    # without mmap), entries are appended with `pwrite`, until they fail too.
    size = _round_up(HEADER_SIZE + max(first_entry, self._max_file_bytes), mmap.PAGESIZE)
    try:
      os.posix_fallocate(fd, 0, size)
      f.mm = mmap.mmap(fd, size)
    except (OSError, ValueError):
      with contextlib.suppress(OSError):
        os.ftruncate(fd, HEADER_SIZE)
    else:
      return f
    os.ftruncate(fd, HEADER_SIZE)
    return f

  def _seal(self) -> None:
    f, self._file = self._file, None
    with self._lock:
      f.sealed = True
      done = f.written == f.appended and not self._keep
    if done:
      self._remove(f)

  def _remove(self, f: _File) -> None:
    with self._lock:
      if f not in self._files:
        return
      self._files.remove(f)
    os.unlink(f.path)
    _release(f)


def pending(path: str, last_counter) -> tuple[list[list[int]], str | None, int, int]:
  """The entries of a dead writer's journal file that no shard holds.

  Args:
    path: the journal file.
    last_counter: shard name -> counter of the newest episode of this
      journal's run in that shard (None if the shard is missing or has none).

  Returns:
    ([[offset, length, steps], ...] of those entries, the shard holding the
    run's newest stored episode (or None), end of the last whole frame, end
    of the data (past the frames if the file has a torn or damaged tail)).
  """
  header = read_header(path)
  committed, base = -1, None
  for name in header[::-1] if header else ():
    if name:
      c = last_counter(name)
      if c is not None:
        committed, base = c, name
        break
  frames, end, size = scan(path)
  out = []
  with open(path, 'rb') as f:
    for offset, length in frames:
      f.seek(offset + _tfrecord.HEADER_SIZE)
      try:
        counter, n = entry_info(f.read(min(length, _ENTRY.size)))
        if counter > committed:  # checksummed whole: a kill may have cut the copy into a mapped file
          _tfrecord.read_at(f, offset)
      except (JournalError, _tfrecord.CorruptRecordError):
        end = offset  # not a whole entry: what follows is not trusted either
        break
      if counter > committed:
        out.append([offset, length, n])
  return out, base, end, size
