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
import numpy as np

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


def pread_joined(
  fd: int, offsets: Sequence[int], lengths: Sequence[int], verify: bool = True
) -> tuple[bytes, np.ndarray]:
  """The records at `offsets` (data lengths `lengths`, from the shard's index)
  in one buffer: (buffer, where each record's data starts in it).

  Frames that lie end to end in the file (the episodes of a shard, read in
  order) are read by one `os.pread` per run of up to `RUN_BYTES` (a columnar
  read of 10-step episodes spent a third of its time in a system call per
  record), and stay in the buffer as read, frames and all. Each frame's
  length, length checksum and data checksum are checked as `pread_record`
  checks them, with numpy over all frames but the data checksums (one
  CRC32C call per record).

  Raises:
    CorruptRecordError: a frame is truncated, or does not match its index or
      its checksums (the first such, by offset).
  """
  offsets = np.asarray(offsets, dtype=np.int64)
  lengths = np.asarray(lengths, dtype=np.int64)
  n = len(offsets)
  frame_ends = offsets + lengths + (HEADER_SIZE + FOOTER_SIZE)
  # Runs: frames that follow each other, cut every RUN_BYTES or so.
  follows = np.zeros(n, dtype=bool)
  follows[1:] = offsets[1:] == frame_ends[:-1]
  segment = np.cumsum(~follows)
  within = offsets - offsets[np.flatnonzero(~follows)][segment - 1]
  run_of = segment * (1 << 40) + within // RUN_BYTES
  cuts = np.flatnonzero(np.diff(run_of)) + 1
  bounds = np.concatenate(([0], cuts, [n])).tolist()
  parts, starts, base = [], np.empty(n, dtype=np.int64), 0
  for r0, r1 in zip(bounds[:-1], bounds[1:]):
    start, size = int(offsets[r0]), int(frame_ends[r1 - 1] - offsets[r0])
    run = os.pread(fd, size, start)
    if len(run) < size:
      short = int(np.flatnonzero(frame_ends[r0:r1] > start + len(run))[0]) + r0
      raise CorruptRecordError(f'truncated record at offset {int(offsets[short])}')
    parts.append(run)
    starts[r0:r1] = offsets[r0:r1] - start + base + HEADER_SIZE
    base += size
  buf = parts[0] if len(parts) == 1 else b''.join(parts)
  if not n:
    return buf, starts
  heads = starts - HEADER_SIZE
  words = np.ndarray((len(buf) - 7,), '<u8', buf, 0, (1,))  # the 8 bytes at every offset
  wrong_length = words[heads] != lengths
  wrong_crc = np.zeros(n, dtype=bool)
  if verify:
    u32 = np.ndarray((len(buf) - 3,), '<u4', buf, 0, (1,))
    distinct, inverse = np.unique(lengths, return_inverse=True)
    header_crcs = np.array([masked_crc(_LEN.pack(int(x))) for x in distinct], dtype=np.uint32)
    data = np.frombuffer(buf, dtype=np.uint8)
    crc = google_crc32c.value  # takes a read-only numpy slice, not a memoryview
    c = np.fromiter(
      (crc(data[a : a + k]) for a, k in zip(starts.tolist(), lengths.tolist())), dtype=np.uint64, count=n
    )
    masked = (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF
    wrong_crc = (u32[heads + 8] != header_crcs[inverse.ravel()]) | (u32[starts + lengths] != masked)
  bad = wrong_length | wrong_crc
  if bad.any():
    first = int(np.flatnonzero(bad)[np.argmin(offsets[bad])])
    at = int(offsets[first])
    if wrong_length[first]:
      raise CorruptRecordError(
        f'record at offset {at} is not {int(lengths[first])} bytes long, as its index says'
      )
    raise CorruptRecordError(f'record checksum mismatch at offset {at}')
  return buf, starts


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
