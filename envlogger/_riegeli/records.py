"""Reading Riegeli/records files: blocks, chunks, records, positions, damage.

The layout comes from riegeli's `doc/riegeli_records_file_format.md`, with
details (how block headers are checked while a chunk is read, how reading
recovers from damage, how a numeric record position finds its chunk) learnt
by reading riegeli's C++ `riegeli/records/block.h` and `chunk_reader.cc`, for
understanding only; this is an independent implementation.

* The file is cut into 64 KiB blocks. Every block starts with a 24-byte block
  header: `header_hash` (HighwayHash-64 of the next 16 bytes),
  `previous_chunk` (distance from the beginning of the chunk this header
  interrupts back to the block start) and `next_chunk` (distance from the
  block start to the end of that chunk). A chunk that begins exactly at a
  block boundary begins *before* the block header (previous_chunk == 0).
* Between block headers, the file is a sequence of chunks. A chunk is a
  40-byte chunk header (`header_hash` of the next 32 bytes, `data_size`,
  `data_hash` of the data, `chunk_type` (1 byte), `num_records` (7 bytes),
  `decoded_data_size`), then `data_size` bytes of data, then zero padding so
  that the chunk spans at least `num_records` bytes and does not end inside
  or right after a block header. Block headers interrupt chunks anywhere,
  headers included; sizes above exclude them.
* Chunk types: 's' file signature (the first 64 bytes of every file are fixed),
  'm' file metadata, 'p' padding (no records), 'r' simple records (record
  sizes and values in two compressed blocks) and 't' transposed records (see
  `transpose`).
* A record's numeric position is its chunk's begin offset plus its index in
  the chunk (the padding keeps these unique).

Damage handling follows Riegeli's recovery: a chunk whose data hash does not
match is skipped (its header, whose hash matched, says where the next chunk
is); a chunk header whose hash does not match cannot be trusted, so reading
resumes at a chunk boundary found through the block header of the next
64 KiB block. One deliberate difference: a block header whose own hash does
not match is ignored when it falls inside a chunk whose header (and, when
checked, data) hashes match, since its place is fixed and the chunk does not
need it. Every damage is reported in `RecordReader.problems`, never returned
as records.

Data hashes cost a pure-Python HighwayHash of each chunk's stored (compressed)
data: about 9 MB/s on this machine (see `highwayhash`); on the envlogger Catch
fixture that is ~90 us for its 614-byte chunk of 50 records (~2 us a record,
against ~6-15 us a record for decoding). They are checked by default
(`verify_data_hashes=True`): brotli alone does not catch damage; of all 5744
single-bit flips of the fixture `steps.riegeli`, 665 gave wrong records
without the check, none with it. Logs of poorly compressible data (raw
pixels) pay more: ~0.1 s per MB stored.
"""

from __future__ import annotations

import dataclasses
import os
import struct
from collections.abc import Iterator

from envlogger._riegeli import compression
from envlogger._riegeli.compression import CompressionError, MissingCodecError, read_varint64
from envlogger._riegeli.highwayhash import riegeli_hash
from envlogger._riegeli.transpose import TransposeError, decode_transposed

__all__ = [
  'BLOCK_HEADER_SIZE',
  'BLOCK_SIZE',
  'CHUNK_HEADER_SIZE',
  'FILE_SIGNATURE',
  'ChunkInfo',
  'RecordReader',
  'RiegeliError',
]

BLOCK_SIZE = 1 << 16
BLOCK_HEADER_SIZE = 24
USABLE_BLOCK_SIZE = BLOCK_SIZE - BLOCK_HEADER_SIZE
CHUNK_HEADER_SIZE = 40

# The fixed first 64 bytes of every Riegeli/records file: a block header
# (previous 0, next 64) and the header of an empty 's' chunk.
FILE_SIGNATURE = bytes.fromhex(
  '83af70d10d884a3f00000000000000004000000000000000'
  '91bac23c9287e1a90000000000000000e19f13c0e9b1c372'
  '73000000000000000000000000000000'
)

_U64X3 = struct.Struct('<3Q')
_CHUNK_HEADER = struct.Struct('<5Q')
_SIGNATURE_MAX_BIT_ERRORS = 16  # more differing bits than this: not a Riegeli file at all


class RiegeliError(ValueError):
  """The file is not a Riegeli/records file, or a record position cannot be read."""


@dataclasses.dataclass(frozen=True)
class ChunkInfo:
  """One chunk of a Riegeli file.

  Attributes:
    begin: file offset where the chunk begins (its records' positions are
      begin + index).
    end: file offset after the chunk (padding included), where the next chunk begins.
    chunk_type: the type byte as a character: 's', 'm', 'p', 'r', 't' (or another, unknown).
    num_records: number of records in the chunk.
    decoded_data_size: sum of the sizes of its records.
    data_size: size of the stored (encoded, usually compressed) data.
  """

  begin: int
  end: int
  chunk_type: str
  num_records: int
  decoded_data_size: int
  data_size: int


# --- Block arithmetic (riegeli's format document, "Implementation notes"). ---


def _remaining_in_block(pos: int) -> int:
  return -pos % BLOCK_SIZE


def _is_possible_chunk_boundary(pos: int) -> bool:
  """Whether a chunk can begin at `pos`: not inside nor right after a block header."""
  return _remaining_in_block(pos) < USABLE_BLOCK_SIZE


def _add_with_overhead(begin: int, length: int) -> int:
  """The file offset `length` chunk bytes after a chunk begin, block headers included."""
  blocks = (length + (begin + USABLE_BLOCK_SIZE - 1) % BLOCK_SIZE) // USABLE_BLOCK_SIZE
  return begin + length + blocks * BLOCK_HEADER_SIZE


def _round_up_to_possible_chunk_boundary(pos: int) -> int:
  return pos + max(0, _remaining_in_block(pos) - (USABLE_BLOCK_SIZE - 1))


def _chunk_end(begin: int, data_size: int, num_records: int) -> int:
  return max(
    _add_with_overhead(begin, CHUNK_HEADER_SIZE + data_size),
    _round_up_to_possible_chunk_boundary(begin + num_records),
  )


def _next_block_boundary(pos: int) -> int:
  """The first block boundary strictly after `pos`."""
  return pos - pos % BLOCK_SIZE + BLOCK_SIZE


class _Damage(Exception):
  """Damage found while reading a chunk: what, where, and how reading may resume.

  `resume` is a chunk boundary to continue from; `find_from` asks to look for
  the next chunk boundary through the block headers from that offset on.
  """

  def __init__(self, message: str, *, resume: int | None = None, find_from: int | None = None) -> None:
    super().__init__(message)
    self.message = message
    self.resume = resume
    self.find_from = find_from


class _Truncated(Exception):
  """The file ends inside a chunk."""


@dataclasses.dataclass
class _Chunk:
  info: ChunkInfo
  data: bytes
  notes: list[str]  # harmless damage seen while reading it (ignored block headers)


def _decode_simple(data: bytes, num_records: int, decoded_data_size: int) -> list[bytes]:
  """Records of a simple chunk ('r'): compression type, sizes block size, sizes block, values block."""
  if not data:
    raise CompressionError('empty chunk data')
  ct = data[0]
  sizes_size, pos = read_varint64(data, 1)
  if pos + sizes_size > len(data):
    raise CompressionError('sizes block longer than the chunk data')
  sizes = compression.decompress(ct, data[pos : pos + sizes_size], 10 * num_records)
  values = compression.decompress(ct, data[pos + sizes_size :], decoded_data_size)
  if len(values) != decoded_data_size:
    raise CompressionError(f'values hold {len(values)} bytes, {decoded_data_size} declared')
  records = []
  at = 0
  p = 0
  n = len(sizes)
  for _ in range(num_records):
    if p < n and sizes[p] < 0x80:
      size = sizes[p]
      p += 1
    else:
      size, p = read_varint64(sizes, p)
    end = at + size
    if end > decoded_data_size:
      raise CompressionError('record sizes exceed the decoded data size')
    records.append(values[at:end])
    at = end
  if p != n:
    raise CompressionError('unused data after the record sizes')
  if at != decoded_data_size:
    raise CompressionError(f'record sizes add up to {at} bytes, {decoded_data_size} declared')
  return records


class RecordReader:
  """Reads the records of a Riegeli/records file, tolerating damage.

  Usage:

    with RecordReader(path) as r:
      for record in r: ...                       # bytes of every record, in order
      for position, record in r.records_with_positions(): ...
      record = r.read_at(position)               # one record by numeric position
      for chunk in r.chunks(): ...               # ChunkInfo of every chunk
      r.problems                                 # damage found so far

  Damage (truncation, flipped bits, garbage) never raises and never yields
  wrong records: the records before it are returned, the damage is recorded
  in `problems` (naming the file and byte offset), and reading resumes at the
  next chunk it can trust. Each iteration re-reads the file from the start.

  Args:
    source: a path, or a binary file object opened for reading and seekable
      (not closed by the reader).
    verify_data_hashes: check each chunk's data hash (pure-Python HighwayHash,
      ~8-10 MB/s of stored data) before decoding it. Header hashes are always
      checked. Without it, damaged chunk data are still detected when they
      fail to decompress or decode, but not always.

  Raises:
    RiegeliError: the file is not a Riegeli/records file (its first 64 bytes
      are not, nor nearly, the Riegeli file signature). An empty file is a
      valid file without records; a file shorter than 64 bytes that starts
      like the signature is a truncated Riegeli file (no records, one problem).
    OSError: the file cannot be opened or read.
  """

  def __init__(self, source, *, verify_data_hashes: bool = True) -> None:
    if isinstance(source, (str, bytes, os.PathLike)):
      self._file = open(source, 'rb')  # noqa: SIM115 (closed by close())
      self._owns_file = True
      self.name = os.fsdecode(source)
    else:
      self._file = source
      self._owns_file = False
      self.name = str(getattr(source, 'name', repr(source)))
    self.verify_data_hashes = verify_data_hashes
    self._problems: dict[str, None] = {}
    self._cached: tuple[int, list[bytes]] | None = None  # last decoded chunk: (begin, records)
    try:
      self._first_chunk = self._check_signature()
    except BaseException:
      self.close()
      raise

  # --- Public API. ---

  @property
  def problems(self) -> list[str]:
    """Damage found so far (each once), in the order found: file name, byte offset, what."""
    return list(self._problems)

  def close(self) -> None:
    """Closes the file if the reader opened it."""
    if self._owns_file and not self._file.closed:
      self._file.close()

  def __enter__(self) -> RecordReader:
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  def __iter__(self) -> Iterator[bytes]:
    """Yields the bytes of every readable record, in file order."""
    for _, record in self.records_with_positions():
      yield record

  def records_with_positions(self) -> Iterator[tuple[int, bytes]]:
    """Yields (position, record) for every readable record, in file order.

    The position is Riegeli's numeric record position: the chunk's begin
    offset plus the record's index in the chunk; `read_at(position)` reads
    the record back.
    """
    for chunk in self._walk(with_data=True):
      records = self._decode(chunk)
      if records is None:
        continue
      begin = chunk.info.begin
      self._cached = (begin, records)
      for i, record in enumerate(records):
        yield begin + i, record

  def chunks(self) -> Iterator[ChunkInfo]:
    """Yields the descriptor of every intact chunk, the file signature included.

    Only headers are read (and checked); a chunk whose data are damaged is
    still listed (reading its records reports the damage).
    """
    for chunk in self._walk(with_data=False):
      yield chunk.info

  def read_at(self, position: int) -> bytes:
    """Reads the record at a numeric position (chunk begin + index in the chunk).

    Only the chunk holding the record is read and decoded; the last decoded
    chunk is kept, so reading positions in order decodes each chunk once.

    Raises:
      RiegeliError: no intact record is at that position (beyond the end of
        the file, not a record position, or the chunk holding it is damaged;
        the damage is also added to `problems`).
    """
    position = int(position)
    cached = self._cached
    if cached is not None and 0 <= position - cached[0] < len(cached[1]):
      return cached[1][position - cached[0]]
    if position < 0:
      raise RiegeliError(f'{self.name}: no record at negative position {position}')
    begin = self._find_chunk_containing(position)
    try:
      chunk = self._read_chunk(begin, self._size(), with_data=True)
    except _Truncated as e:
      self._problem(f'{self.name}: offset {begin}: {e}')
      raise RiegeliError(f'{self.name}: no record at position {position}: {e}') from None
    except _Damage as e:
      self._problem(f'{self.name}: offset {begin}: {e.message}')
      raise RiegeliError(f'{self.name}: no record at position {position}: {e.message}') from None
    records = self._decode(chunk)
    if records is None:
      raise RiegeliError(f'{self.name}: no record at position {position}: the chunk at {begin} is damaged')
    self._cached = (begin, records)
    index = position - begin
    if not 0 <= index < len(records):
      raise RiegeliError(f'{self.name}: no record at position {position}')
    return records[index]

  # --- File access. ---

  def _size(self) -> int:
    try:
      return os.fstat(self._file.fileno()).st_size
    except (AttributeError, OSError, ValueError):
      return self._file.seek(0, os.SEEK_END)

  def _pread(self, offset: int, n: int) -> bytes:
    self._file.seek(offset)
    parts = []
    while n > 0:
      part = self._file.read(n)
      if not part:
        break
      parts.append(part)
      n -= len(part)
    return b''.join(parts)

  def _problem(self, message: str) -> None:
    self._problems.setdefault(message, None)

  # --- The file signature. ---

  def _check_signature(self) -> int:
    """Checks the first 64 bytes; returns where the first chunk after the signature is."""
    head = self._pread(0, len(FILE_SIGNATURE))
    self._signature_intact = head == FILE_SIGNATURE
    if self._signature_intact or not head:
      return len(head)
    if len(head) < len(FILE_SIGNATURE) and FILE_SIGNATURE.startswith(head):
      self._problem(f'{self.name}: offset 0: truncated Riegeli/records file: {len(head)} bytes, no chunk')
      return len(head)
    bad_bits = sum(bin(a ^ b).count('1') for a, b in zip(head, FILE_SIGNATURE[: len(head)])) + 8 * (
      len(FILE_SIGNATURE) - len(head)
    )
    if bad_bits > _SIGNATURE_MAX_BIT_ERRORS:
      raise RiegeliError(f'{self.name}: not a Riegeli/records file (no Riegeli file signature at offset 0)')
    # A nearly intact signature: a damaged Riegeli file. The signature chunk
    # always spans the first 64 bytes, so the next chunk begins there.
    self._problem(
      f'{self.name}: offset 0: damaged file signature ({bad_bits} bits differ); read on from offset 64'
    )
    return len(FILE_SIGNATURE)

  # --- Chunks. ---

  def _read_chunk(self, begin: int, size: int, *, with_data: bool) -> _Chunk:
    """Reads and checks the chunk beginning at `begin` (a possible chunk boundary).

    Raises:
      _Damage: with where to resume.
      _Truncated: the file ends inside the chunk (before its data end).
    """
    notes: list[str] = []
    header_end = _add_with_overhead(begin, CHUNK_HEADER_SIZE)
    if header_end > size:
      raise _Truncated(
        f'truncated file: incomplete chunk header ({size - begin} of {header_end - begin} bytes)'
      )
    raw = self._pread(begin, header_end - begin)
    if len(raw) != header_end - begin:
      raise _Truncated('truncated file: incomplete chunk header')
    header, blocks = self._logical(begin, raw)
    stored_hash, data_size, data_hash, type_and_count, decoded_data_size = _CHUNK_HEADER.unpack(header)
    if riegeli_hash(header[8:]) != stored_hash:
      # The header cannot be trusted: find the next chunk through block headers.
      raise _Damage('chunk header hash mismatch', find_from=begin + 1)
    chunk_type = type_and_count & 0xFF
    num_records = type_and_count >> 8
    end = _chunk_end(begin, data_size, num_records)
    if begin == 0 and (chunk_type != 0x73 or data_size or num_records or decoded_data_size):
      raise _Damage('missing file signature', find_from=1)
    self._check_blocks(begin, end, blocks, notes)
    info = ChunkInfo(begin, end, chr(chunk_type), num_records, decoded_data_size, data_size)
    if not with_data:
      return _Chunk(info, b'', notes)
    data_end = _add_with_overhead(begin, CHUNK_HEADER_SIZE + data_size)
    if data_end > size:
      raise _Truncated(
        f'truncated file: incomplete chunk ({size - begin} of {data_end - begin} bytes before its padding)'
      )
    raw = self._pread(header_end, data_end - header_end)
    if len(raw) != data_end - header_end:
      raise _Truncated('truncated file: incomplete chunk data')
    data, blocks = self._logical(header_end, raw)
    self._check_blocks(begin, end, blocks, notes)
    if self.verify_data_hashes and riegeli_hash(data) != data_hash:
      raise _Damage(f'chunk data hash mismatch (chunk of {end - begin} bytes)', resume=end)
    if end > size:
      notes.append(f'truncated file: the padding of the chunk ends at {end}, after the end of the file')
    return _Chunk(info, data, notes)

  @staticmethod
  def _logical(start: int, phys: bytes) -> tuple[bytes, list[tuple[int, bytes]]]:
    """Splits file bytes read from `start` into chunk bytes and the block headers among them."""
    parts = []
    blocks = []
    i = 0
    pos = start
    n = len(phys)
    while i < n:
      in_block = pos % BLOCK_SIZE
      if in_block < BLOCK_HEADER_SIZE:
        take = min(BLOCK_HEADER_SIZE - in_block, n - i)
        if in_block == 0:
          blocks.append((pos, phys[i : i + take]))
      else:
        take = min(BLOCK_SIZE - in_block, n - i)
        parts.append(phys[i : i + take])
      i += take
      pos += take
    return b''.join(parts), blocks

  def _check_blocks(self, begin: int, end: int, blocks: list[tuple[int, bytes]], notes: list[str]) -> None:
    """Checks the block headers that interrupt the chunk [begin, end)."""
    for block_begin, raw in blocks:
      stored_hash, previous_chunk, next_chunk = _U64X3.unpack(raw)
      if riegeli_hash(raw[8:]) != stored_hash:
        # Its place is fixed, and the chunk's own hashes protect what we read.
        notes.append(f'offset {block_begin}: block header hash mismatch (ignored: inside an intact chunk)')
        continue
      if previous_chunk != block_begin - begin:
        if next_chunk <= BLOCK_SIZE:
          raise _Damage(
            f'block header at {block_begin} implies a chunk boundary at '
            f'{block_begin - previous_chunk}, not {begin}',
            resume=block_begin + next_chunk,
          )
        raise _Damage(
          f'block header at {block_begin} implies a chunk boundary at {block_begin - previous_chunk}, not {begin}',
          find_from=block_begin + 1,
        )
      if next_chunk != end - block_begin:
        raise _Damage(
          f'block header at {block_begin} implies a chunk end at {block_begin + next_chunk}, not {end}',
          find_from=block_begin + 1,
        )

  def _find_boundary(self, pos: int, size: int) -> int | None:
    """The first chunk boundary found through a block header at or after `pos`, or None.

    Mirrors Riegeli's recovery: go to the next block boundary, read its block
    header; if damaged, try the next block; if it says a chunk begins at the
    block boundary, that is it; otherwise the chunk it interrupts ends at
    `next_chunk` from there.
    """
    while True:
      pos += _remaining_in_block(pos)
      if pos + BLOCK_HEADER_SIZE > size:
        return None
      raw = self._pread(pos, BLOCK_HEADER_SIZE)
      stored_hash, previous_chunk, next_chunk = _U64X3.unpack(raw)
      if riegeli_hash(raw[8:]) != stored_hash:
        pos += 1
        continue
      if previous_chunk == 0:
        return pos
      candidate = pos + next_chunk
      if not _is_possible_chunk_boundary(candidate):
        pos = candidate if candidate > pos else pos + 1
        continue
      return candidate

  def _resume_point(self, damage: _Damage, pos: int, size: int) -> int | None:
    """Where reading resumes after damage found reading the chunk at `pos` (always > pos), or None."""
    resume = damage.resume
    if resume is None or not _is_possible_chunk_boundary(resume) or resume <= pos:
      resume = self._find_boundary(max(damage.find_from or pos + 1, pos + 1), size)
    return resume

  def _walk(self, *, with_data: bool) -> Iterator[_Chunk]:
    """Yields the intact chunks in file order, recording damage and resuming after it."""
    size = self._size()
    if self._first_chunk == 0:  # empty file
      return
    if self._signature_intact:
      yield _Chunk(ChunkInfo(0, len(FILE_SIGNATURE), 's', 0, 0, 0), b'', [])
    pos = self._first_chunk
    while pos < size:
      try:
        chunk = self._read_chunk(pos, size, with_data=with_data)
      except _Truncated as e:
        self._problem(f'{self.name}: offset {pos}: {e}')
        return
      except _Damage as e:
        resume = self._resume_point(e, pos, size)
        if resume is None or resume >= size:
          self._problem(f'{self.name}: offset {pos}: {e.message}; nothing readable after it')
          return
        self._problem(f'{self.name}: offset {pos}: {e.message}; skipped to offset {resume}')
        pos = resume
        continue
      for note in chunk.notes:
        self._problem(
          f'{self.name}: {note}' if note.startswith('offset') else f'{self.name}: offset {pos}: {note}'
        )
      yield chunk
      pos = chunk.info.end

  def _decode(self, chunk: _Chunk) -> list[bytes] | None:
    """The records of a chunk, or None (problem recorded) if its data cannot be decoded."""
    info = chunk.info
    try:
      if info.chunk_type == 't':
        return decode_transposed(chunk.data, info.num_records, info.decoded_data_size)
      if info.chunk_type == 'r':
        return _decode_simple(chunk.data, info.num_records, info.decoded_data_size)
      if info.chunk_type in 'smp' or info.num_records == 0:
        return []  # no records (a chunk of unknown type without records is ignored, as Riegeli does)
      raise CompressionError(f'unknown chunk type {info.chunk_type!r} with {info.num_records} records')
    except MissingCodecError:
      raise
    except (CompressionError, TransposeError) as e:
      self._problem(
        f'{self.name}: offset {info.begin}: cannot decode chunk ({info.num_records} records lost): {e}'
      )
      return None

  def _find_chunk_containing(self, position: int) -> int:
    """The begin offset of the chunk whose records include `position`.

    Starts from the block header of the block holding `position` (or an
    earlier one if it is damaged), then walks chunk headers forward.
    """
    size = self._size()
    if position >= size:
      raise RiegeliError(f'{self.name}: no record at position {position}: the file has {size} bytes')
    block_begin = position - position % BLOCK_SIZE
    start = None
    while start is None:
      if block_begin == 0:
        start = self._first_chunk
        break
      raw = self._pread(block_begin, BLOCK_HEADER_SIZE)
      stored_hash, previous_chunk, next_chunk = _U64X3.unpack(raw) if len(raw) == 24 else (None, 0, 0)
      if stored_hash is None or riegeli_hash(raw[8:]) != stored_hash or previous_chunk > block_begin:
        block_begin -= BLOCK_SIZE  # damaged: start from an earlier block
        continue
      if previous_chunk == 0:
        start = block_begin
      elif block_begin + next_chunk > position:
        start = block_begin - previous_chunk  # the chunk crossing this block boundary holds it
      else:
        start = block_begin + next_chunk
    pos = start
    while pos <= position and pos < size:
      try:
        chunk = self._read_chunk(pos, size, with_data=False)
      except _Truncated as e:
        self._problem(f'{self.name}: offset {pos}: {e}')
        raise RiegeliError(f'{self.name}: no record at position {position}: {e}') from None
      except _Damage as e:
        resume = self._resume_point(e, pos, size)
        if resume is None or resume > position:
          self._problem(f'{self.name}: offset {pos}: {e.message}')
          raise RiegeliError(
            f'{self.name}: no record at position {position}: damaged chunk at {pos}: {e.message}'
          ) from None
        pos = resume
        continue
      info = chunk.info
      if position < info.begin + info.num_records:
        return info.begin
      pos = info.end
    raise RiegeliError(f'{self.name}: no record at position {position}')
