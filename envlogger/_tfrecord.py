"""TFRecord framing, written and read without TensorFlow.

Each record is `uint64 length | uint32 masked_crc32c(length) | data |
uint32 masked_crc32c(data)`, little-endian: the framing `tf.data.TFRecordDataset`
and `tfds.load` read. We frame records by hand because the only writer TFDS
offers (`tf.io.TFRecordWriter`) imports TensorFlow (2.5-4 s and hundreds of MB
per actor process); the CRC is computed by `google-crc32c` (hardware CRC32C).
"""

from __future__ import annotations

import functools
import os
import struct
from collections.abc import Iterator, Sequence
from typing import BinaryIO

import google_crc32c

_LEN = struct.Struct('<Q')
_CRC = struct.Struct('<I')
HEADER_SIZE = 12
FOOTER_SIZE = 4


class CorruptRecordError(IOError):
  """A TFRecord frame is truncated or fails its checksum."""


def masked_crc(data: bytes) -> int:
  crc = google_crc32c.value(data)
  return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def frame(data: bytes) -> bytes:
  """Returns `data` framed as one TFRecord."""
  length = _LEN.pack(len(data))
  return b''.join((length, _CRC.pack(masked_crc(length)), data, _CRC.pack(masked_crc(data))))


def framed_size(data_length: int) -> int:
  return HEADER_SIZE + data_length + FOOTER_SIZE


def read_at(f: BinaryIO, offset: int, verify: bool = True) -> bytes:
  """Reads the record whose frame starts at `offset`."""
  f.seek(offset)
  header = f.read(HEADER_SIZE)
  if len(header) < HEADER_SIZE:
    raise CorruptRecordError(f'truncated record header at offset {offset}')
  (length,) = _LEN.unpack_from(header)
  if verify and _CRC.unpack_from(header, 8)[0] != masked_crc(header[:8]):
    raise CorruptRecordError(f'record length checksum mismatch at offset {offset}')
  body = f.read(length + FOOTER_SIZE)
  if len(body) < length + FOOTER_SIZE:
    raise CorruptRecordError(f'truncated record at offset {offset}')
  data = body[:length]
  if verify and _CRC.unpack_from(body, length)[0] != masked_crc(data):
    raise CorruptRecordError(f'record data checksum mismatch at offset {offset}')
  return data


def pread_record(fd: int, offset: int, length: int, verify: bool = True) -> bytes:
  """Reads the record of `length` data bytes whose frame starts at `offset`.

  One `os.pread` of the whole frame (the length comes from the shard's
  index): a random read costs one system call and no seek, and threads may
  share `fd`.
  """
  frame_bytes = os.pread(fd, HEADER_SIZE + length + FOOTER_SIZE, offset)
  if len(frame_bytes) < HEADER_SIZE + length + FOOTER_SIZE:
    raise CorruptRecordError(f'truncated record at offset {offset}')
  if _LEN.unpack_from(frame_bytes)[0] != length:
    raise CorruptRecordError(f'record at offset {offset} is not {length} bytes long, as its index says')
  data = frame_bytes[HEADER_SIZE : HEADER_SIZE + length]
  if verify and (
    _CRC.unpack_from(frame_bytes, 8)[0] != masked_crc(frame_bytes[:8])
    or _CRC.unpack_from(frame_bytes, HEADER_SIZE + length)[0] != masked_crc(data)
  ):
    raise CorruptRecordError(f'record checksum mismatch at offset {offset}')
  return data


@functools.lru_cache(maxsize=4096)
def _header(length: int) -> bytes:
  """A frame's header: its data length and that length's checksum (which records
  of one length share)."""
  packed = _LEN.pack(length)
  return packed + _CRC.pack(masked_crc(packed))


RUN_BYTES = 1 << 20  # adjacent frames read by one pread, at most (unless one frame is larger)


def pread_records(
  fd: int, offsets: Sequence[int], lengths: Sequence[int], verify: bool = True
) -> list[bytes]:
  """`pread_record` of each (offset, length), in order.

  Frames that lie end to end in the file (the episodes of a shard, read in
  order) are read by one `os.pread` per run of up to `RUN_BYTES`: a columnar
  read of 10-step episodes spent a third of its time in a system call per
  record. Each frame's lengths and checksums are checked as `pread_record`
  checks them.
  """
  out: list[bytes] = []
  n, i = len(offsets), 0
  while i < n:
    start = end = offsets[i]
    j = i
    while j < n and offsets[j] == end and (j == i or end - start + HEADER_SIZE + lengths[j] <= RUN_BYTES):
      end += HEADER_SIZE + lengths[j] + FOOTER_SIZE
      j += 1
    run = os.pread(fd, end - start, start)
    crc = google_crc32c.value
    for k in range(i, j):
      p, length = offsets[k] - start, lengths[k]
      q = p + HEADER_SIZE + length  # where its data checksum is
      if len(run) < q + FOOTER_SIZE:
        raise CorruptRecordError(f'truncated record at offset {offsets[k]}')
      header = _header(length)
      if run[p : p + HEADER_SIZE] != header and (verify or run[p : p + 8] != header[:8]):
        if run[p : p + 8] != header[:8]:
          raise CorruptRecordError(
            f'record at offset {offsets[k]} is not {length} bytes long, as its index says'
          )
        raise CorruptRecordError(f'record checksum mismatch at offset {offsets[k]}')
      data = run[p + HEADER_SIZE : q]
      if verify:
        c = crc(data)  # masked_crc, inlined (a call per record is a tenth of this loop)
        if _CRC.unpack_from(run, q)[0] != (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF:
          raise CorruptRecordError(f'record checksum mismatch at offset {offsets[k]}')
      out.append(data)
    i = j
  return out


def scan(f: BinaryIO, start: int = 0) -> Iterator[tuple[int, int]]:
  """Yields `(offset, data_length)` of each intact record from `start` on.

  Stops silently at the first frame that is truncated or whose length
  checksum fails (the tail a crash leaves); data checksums are not verified
  here.
  """
  offset = start
  while True:
    f.seek(offset)
    header = f.read(HEADER_SIZE)
    if len(header) < HEADER_SIZE:
      return
    (length,) = _LEN.unpack_from(header)
    if _CRC.unpack_from(header, 8)[0] != masked_crc(header[:8]):
      return
    end = offset + framed_size(length)
    f.seek(0, 2)
    if f.tell() < end:
      return
    yield offset, length
    offset = end
