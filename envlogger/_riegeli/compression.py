"""Decompression of Riegeli's compressed blocks (none, brotli, zstd, snappy).

Layout (riegeli's `doc/riegeli_records_file_format.md`, "Chunk data", and its
C++ `riegeli/chunk_encoding/decompressor.h`, read for understanding): a
compressed block is stored as `varint64 decompressed_size` followed by the
compressed stream, except with compression type 0 (none), where the block is
the data itself. The compression type byte is 0 (none), `'b'` (brotli, a raw
brotli stream), `'z'` (zstd, a zstd frame) or `'s'` (snappy, the raw snappy
block format, not the framed one).

The codecs are imported lazily, on first use: `brotli` (pip `brotli`),
`zstandard` (pip `zstandard`), snappy from `snappy` (pip `python-snappy`) or
else `cramjam` (pip `cramjam`). A missing one raises `MissingCodecError`
naming the pip package.
"""

from __future__ import annotations

__all__ = [
  'BROTLI',
  'NONE',
  'SNAPPY',
  'ZSTD',
  'CompressionError',
  'MissingCodecError',
  'decompress',
  'read_varint64',
]

NONE = 0
BROTLI = 0x62  # 'b'
ZSTD = 0x7A  # 'z'
SNAPPY = 0x73  # 's'

_NAMES = {NONE: 'none', BROTLI: 'brotli', ZSTD: 'zstd', SNAPPY: 'snappy'}


class CompressionError(ValueError):
  """A compressed block could not be decompressed (damaged data or unknown type)."""


class MissingCodecError(ImportError):
  """The Python package needed for a compression type is not installed."""


def read_varint64(data, pos: int) -> tuple[int, int]:
  """Reads a Riegeli/protobuf varint64 (little-endian base 128) at `data[pos]`.

  Args:
    data: a bytes-like object indexable by int (bytes, bytearray, memoryview of bytes).
    pos: where the varint starts.

  Returns:
    (value, position after the varint).

  Raises:
    CompressionError: the varint is truncated or longer than 10 bytes or above 2**64 - 1.
  """
  b = data[pos] if pos < len(data) else -1
  if 0 <= b < 0x80:
    return b, pos + 1
  value = 0
  shift = 0
  end = min(len(data), pos + 10)
  while pos < end:
    b = data[pos]
    pos += 1
    value |= (b & 0x7F) << shift
    if b < 0x80:
      if value >> 64:
        raise CompressionError('varint64 overflows 64 bits')
      return value, pos
    shift += 7
  raise CompressionError('truncated or overlong varint64')


_codecs: dict[int, object] = {}


def _brotli():
  try:
    import brotli  # noqa: PLC0415 (imported on first use: optional dependency)
  except ImportError as e:
    raise MissingCodecError(
      "reading brotli-compressed Riegeli chunks needs the 'brotli' package (pip install brotli)"
    ) from e

  def run(data, size: int) -> bytes:
    try:
      d = brotli.Decompressor()
      try:
        # The limit keeps a damaged stream from inflating far beyond the declared size.
        out = d.process(data, output_buffer_limit=size + 1)
      except TypeError:  # brotli < 1.1 has no output limit
        return brotli.decompress(bytes(data))
      if not d.is_finished():
        raise CompressionError('brotli stream is truncated or larger than declared')
      return out
    except brotli.error as e:
      raise CompressionError(f'brotli: {e}') from e

  return run


def _zstd():
  try:
    import zstandard  # noqa: PLC0415 (imported on first use: optional dependency)
  except ImportError as e:
    raise MissingCodecError(
      "reading zstd-compressed Riegeli chunks needs the 'zstandard' package (pip install zstandard)"
    ) from e
  dctx = zstandard.ZstdDecompressor()

  def run(data, size: int) -> bytes:
    try:
      data = bytes(data)
      declared = zstandard.frame_content_size(data)
      if declared >= 0 and declared != size:
        raise CompressionError(f'zstd frame holds {declared} bytes, {size} declared')
      obj = dctx.decompressobj()
      out = obj.decompress(bytes(data))
      if not obj.eof:
        raise CompressionError('zstd frame is truncated')
      if obj.unused_data:
        raise CompressionError('data after the zstd frame')
      return out
    except zstandard.ZstdError as e:
      raise CompressionError(f'zstd: {e}') from e

  return run


def _snappy():
  try:
    import snappy  # noqa: PLC0415 (imported on first use: optional dependency)

    def raw(data) -> bytes:
      return snappy.uncompress(bytes(data))
  except ImportError:
    try:
      import cramjam  # noqa: PLC0415 (imported on first use: optional dependency)
    except ImportError as e:
      raise MissingCodecError(
        'reading snappy-compressed Riegeli chunks needs the '
        "'python-snappy' package (pip install python-snappy) or 'cramjam'"
      ) from e

    def raw(data) -> bytes:
      return bytes(cramjam.snappy.decompress_raw(bytes(data)))

  def run(data, size: int) -> bytes:
    # A raw snappy block starts with its own varint length: check it before the
    # binding allocates that much.
    inner, _ = read_varint64(data, 0)
    if inner != size:
      raise CompressionError(f'snappy block holds {inner} bytes, {size} declared')
    try:
      return raw(data)
    except Exception as e:  # the bindings raise assorted exception types on bad input
      raise CompressionError(f'snappy: {e}') from e

  return run


_LOADERS = {BROTLI: _brotli, ZSTD: _zstd, SNAPPY: _snappy}


def decompress(compression_type: int, block, max_size: int | None = None) -> bytes:
  """Decompresses one Riegeli compressed block.

  Args:
    compression_type: NONE, BROTLI, ZSTD or SNAPPY (the byte stored in the chunk).
    block: the stored block (bytes-like): with a compression, the varint64
      decompressed size followed by the compressed stream.
    max_size: if given, a declared size above it is an error (raised before
      anything is decompressed: damaged or crafted sizes allocate nothing).

  Returns:
    The decompressed bytes, exactly as long as the declared size.

  Raises:
    CompressionError: unknown type, damaged stream, size different from the
      declared one, or declared size above `max_size`.
    MissingCodecError: the codec's Python package is not installed.
  """
  if compression_type == NONE:
    if max_size is not None and len(block) > max_size:
      raise CompressionError(f'block of {len(block)} bytes, at most {max_size} expected')
    return bytes(block)
  loader = _LOADERS.get(compression_type)
  if loader is None:
    raise CompressionError(f'unknown compression type {compression_type:#04x}')
  size, start = read_varint64(block, 0)
  if max_size is not None and size > max_size:
    raise CompressionError(f'declared decompressed size {size}, at most {max_size} expected')
  run = _codecs.get(compression_type)
  if run is None:
    run = _codecs[compression_type] = loader()
  if size == 0 and start == len(block):
    return b''
  out = run(memoryview(block)[start:], size)
  if len(out) != size:
    raise CompressionError(
      f'{_NAMES[compression_type]} block decompressed to {len(out)} bytes, {size} declared'
    )
  return out
