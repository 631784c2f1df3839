"""A small Riegeli/records *writer* for tests: simple chunks ('r'), padding and other chunks.

Written from riegeli's `doc/riegeli_records_file_format.md`: the file
signature, a 24-byte block header at every 64 KiB boundary (interrupting
chunks anywhere), 40-byte chunk headers, simple chunks (compression type,
varint size of the compressed sizes block, sizes block, values block; a
compressed block is prefixed by its varint decompressed size), and the
padding that makes a chunk span at least `num_records` bytes and not end
inside or right after a block header. Test-only: no transposed chunks.
"""

from __future__ import annotations

import struct

from envlogger._riegeli.highwayhash import riegeli_hash
from envlogger._riegeli.records import (
  BLOCK_HEADER_SIZE,
  BLOCK_SIZE,
  CHUNK_HEADER_SIZE,
  FILE_SIGNATURE,
  _chunk_end,
)

COMPRESSIONS = ('none', 'brotli', 'zstd', 'snappy')


def varint(value: int) -> bytes:
  out = bytearray()
  while value >= 0x80:
    out.append((value & 0x7F) | 0x80)
    value >>= 7
  out.append(value)
  return bytes(out)


def block_header(previous_chunk: int, next_chunk: int) -> bytes:
  body = struct.pack('<QQ', previous_chunk, next_chunk)
  return struct.pack('<Q', riegeli_hash(body)) + body


def chunk_header(data: bytes, chunk_type: bytes, num_records: int, decoded_data_size: int) -> bytes:
  body = struct.pack(
    '<QQQQ', len(data), riegeli_hash(data), chunk_type[0] | (num_records << 8), decoded_data_size
  )
  return struct.pack('<Q', riegeli_hash(body)) + body


def compression_byte(compression: str) -> int:
  return {'none': 0, 'brotli': 0x62, 'zstd': 0x7A, 'snappy': 0x73}[compression]


def compress_block(compression: str, raw: bytes) -> bytes:
  """A Riegeli compressed block: varint decompressed size + stream (raw bytes for 'none')."""
  if compression == 'none':
    return raw
  if compression == 'brotli':
    import brotli  # noqa: PLC0415

    stream = brotli.compress(raw, quality=5)
  elif compression == 'zstd':
    import zstandard  # noqa: PLC0415

    stream = zstandard.ZstdCompressor().compress(raw)
  elif compression == 'snappy':
    import snappy  # noqa: PLC0415

    stream = snappy.compress(raw)
  else:
    raise ValueError(compression)
  return varint(len(raw)) + stream


def simple_chunk_data(records: list[bytes], compression: str = 'none') -> bytes:
  sizes = compress_block(compression, b''.join(varint(len(r)) for r in records))
  values = compress_block(compression, b''.join(records))
  return bytes((compression_byte(compression),)) + varint(len(sizes)) + sizes + values


class Writer:
  """Builds a Riegeli file in memory, chunk by chunk.

  Each `add_*` method returns the chunk's begin offset (its records' positions
  are begin + index).
  """

  def __init__(self) -> None:
    self.buf = bytearray(FILE_SIGNATURE)

  def add_chunk(self, chunk_type: bytes, data: bytes, num_records: int, decoded_data_size: int) -> int:
    begin = len(self.buf)
    logical = chunk_header(data, chunk_type, num_records, decoded_data_size) + data
    end = _chunk_end(begin, len(data), num_records)
    pos = begin
    i = 0
    out = self.buf
    while pos < end:
      if pos % BLOCK_SIZE == 0:
        out += block_header(pos - begin, end - pos)
        pos += BLOCK_HEADER_SIZE
        continue
      take = min(BLOCK_SIZE - pos % BLOCK_SIZE, end - pos)
      part = logical[i : i + take]
      out += part + bytes(take - len(part))  # zero padding after the data
      i += len(part)
      pos += take
    assert len(out) == end and i == len(logical)
    return begin

  def add_simple_chunk(self, records: list[bytes], compression: str = 'none') -> int:
    data = simple_chunk_data(records, compression)
    return self.add_chunk(b'r', data, len(records), sum(len(r) for r in records))

  def add_padding_chunk(self, data_size: int) -> int:
    return self.add_chunk(b'p', bytes(data_size), 0, 0)

  def getvalue(self) -> bytes:
    return bytes(self.buf)


def write_simple_file(chunks: list[list[bytes]], compression: str = 'none') -> tuple[bytes, list[int]]:
  """A file with one simple chunk per list of records; returns (bytes, chunk begin offsets)."""
  w = Writer()
  begins = [w.add_simple_chunk(records, compression) for records in chunks]
  return w.getvalue(), begins


__all__ = [
  'CHUNK_HEADER_SIZE',
  'COMPRESSIONS',
  'Writer',
  'block_header',
  'chunk_header',
  'compress_block',
  'simple_chunk_data',
  'varint',
  'write_simple_file',
]
