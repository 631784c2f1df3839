"""zlib streams, compressed and decompressed by ISA-L when it is installed.

TFDS's `Tensor(encoding=ZLIB)` needs standard zlib streams (TensorFlow decodes
them with `tf.io.decode_compressed(..., 'ZLIB')`). ISA-L (`isal`, a core
dependency with wheels for Linux, macOS and Windows) writes the same format
about 3x faster than the stdlib's zlib at the same ratio on image frames
(8.6 vs 24 us per 84x84x3 frame here, level 1) and reads it 1.6x faster; both
release the GIL. Small streams are inflated by the stdlib, faster there.
The stdlib's zlib is the fallback, so output stays readable either way.

Columns of large streams (a 200-step episode of 84x84x3 frames: 4 MB) are
split in two: a helper thread takes the second half while the caller does the
first (ISA-L releases the GIL). On the 2-core benchmark VM that took inflating
such an episode from 3.0 to 1.7 ms and compressing it from 1.9 to 1.4 ms.
"""

from __future__ import annotations

import os
import threading
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from envlogger import _memo

try:
  from isal import isal_zlib as _impl

  # ISA-L levels are 0..3; 1 matches zlib's level 1 in ratio on frames.
  LEVEL = 1
  IMPLEMENTATION = 'isal'
except ImportError:  # pragma: no cover (isal is a dependency; kept for odd platforms)
  _impl = zlib
  LEVEL = 1
  IMPLEMENTATION = 'zlib'

error = (zlib.error, _impl.error)


# A column of at least this many raw bytes is split between two threads.
PARALLEL_MIN_BYTES = 1 << 20
_helper: tuple[int, ThreadPoolExecutor] | None = None  # (pid, pool): a forked child makes its own
_helper_lock = threading.Lock()


def _two_halves(n: int, nbytes: int) -> ThreadPoolExecutor | None:
  """The helper thread's pool if a column of n streams and `nbytes` raw bytes
  is worth splitting, else None."""
  global _helper
  if n < 2 or nbytes < PARALLEL_MIN_BYTES or (os.cpu_count() or 1) < 2:
    return None
  pid = os.getpid()
  with _helper_lock:
    if _helper is None or _helper[0] != pid:
      _helper = (pid, ThreadPoolExecutor(1, thread_name_prefix='envlogger-zlib'))
    return _helper[1]


def _split(n: int, nbytes: int, run) -> None:
  """run(0, n), or run(n // 2, n) in the helper thread while run(0, n // 2) runs here."""
  pool = _two_halves(n, nbytes)
  if pool is None:
    run(0, n)
    return
  half = n // 2
  other = pool.submit(run, half, n)
  try:
    run(0, half)
  finally:
    failed = other.exception()  # waits for the helper's half, whatever happened here
  if failed is not None:
    raise failed


def compress_each(buffers) -> list[bytes]:
  """A zlib stream (RFC 1950) of each buffer (one call for a column of steps)."""
  impl, level = _impl.compress, LEVEL
  out: list = [None] * len(buffers)

  def run(lo: int, hi: int) -> None:
    out[lo:hi] = [impl(b, level) for b in buffers[lo:hi]]

  _split(len(buffers), len(buffers) and memoryview(buffers[0]).nbytes * len(buffers), run)
  return out


class Memo:
  """zlib streams of small values, remembered (`envlogger._memo`): a value seen
  again costs a lookup.

  Why: gridworlds and board games show the same small observations again and
  again (Catch's 10x5 float32 board takes 250 values), and compressing a
  200-byte board costs ~2.4 us from Python (most of it zlib's set-up, whatever
  the level or window), where a lookup of its bytes costs ~0.2 us. On the
  Catch-like benchmark that took 3 us off each logged step.

  Args:
    size: the bytes of each value (a row of the columns given to `compress_each`).
    max_bytes: the memory the memo may hold.
    wrap: what is remembered and returned for a stream (default: the stream),
      such as the stream framed for the record it goes to.
  """

  __slots__ = ('size', 'memo', 'wrap')

  def __init__(self, size: int, max_bytes: int = 1 << 20, wrap: Callable[[bytes], bytes] | None = None):
    self.size = size
    self.memo = _memo.Memo(max_bytes)
    self.wrap = wrap

  def compress_each(self, rows) -> list[bytes]:
    """`compress_each(rows)` (each stream wrapped) for a C-contiguous 2-D
    uint8 array of rows of `size` bytes."""
    wrap = self.wrap
    if not self.memo.enabled:
      streams = compress_each(rows)
      return streams if wrap is None else [wrap(x) for x in streams]
    impl, level, size = _impl.compress, LEVEL, self.size

    def derive(value: bytes) -> bytes:
      stream = impl(value, level)
      return stream if wrap is None else wrap(stream)

    buf = rows.tobytes()
    return self.memo.derive_each([buf[i : i + size] for i in range(0, len(buf), size)], derive)


class InflateMemo:
  """Small zlib streams and what they inflate to, remembered (`envlogger._memo`).

  The reader's side of `Memo`: a log of boards that repeat holds the same
  streams again and again, and inflating a 200-byte board costs ~0.55 us more
  than looking its stream up (a Catch-like episode read: about a tenth of
  its decoding). Streams that fail to inflate are not remembered.

  Args:
    max_bytes: the memory the memo may hold.
  """

  __slots__ = ('memo',)

  def __init__(self, max_bytes: int = 1 << 20):
    self.memo = _memo.Memo(max_bytes)

  def decompress_each(self, streams) -> list[bytes]:
    """`zlib.decompress` of each stream (bytes, or read-only byte memoryviews).

    Raises:
      zlib.error: a stream is damaged.
    """
    memo = self.memo
    if not memo.enabled:
      return [zlib.decompress(s) for s in streams]
    return memo.derive_each(streams, zlib.decompress)


def decompress_into(streams, size: int, out: memoryview) -> None:
  """Inflates streams[j] into out[j * size:(j + 1) * size].

  Raises:
    one of `error`: a stream is damaged.
    ValueError: a stream does not inflate to `size` bytes.
  """

  def run(lo: int, hi: int) -> None:
    for j in range(lo, hi):
      data = decompress(streams[j], size)
      if len(data) != size:
        raise ValueError(f'a stream of {len(data)} bytes, not {size}')
      out[j * size : (j + 1) * size] = data

  _split(len(streams), len(streams) * size, run)


# For streams this small, compressed and inflated, the stdlib inflates faster
# (less set-up per call: 0.54 vs 0.88 us for a 200-byte board); otherwise ISA-L
# does (an 84x84x3 frame, 900 compressed bytes: 13.5 vs 22 us).
SMALL = 2048


def decompress(data, size: int = 0) -> bytes:
  """The bytes of a zlib stream (`size`: the expected inflated size, if known);
  raises one of `error` if it is damaged."""
  if len(data) < SMALL and size < SMALL:
    return zlib.decompress(data)
  return _impl.decompress(data)
