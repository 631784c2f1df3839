"""A bounded memo of bytes derived from byte strings that often repeat.

Logged data repeats: gridworld boards, sparse rewards, constant discounts,
the flags of episodes of one length. Where deriving bytes from such a value
(compressing it, serializing it) costs microseconds of Python, remembering the
result costs a dict lookup. The derived bytes are a function of the value, so
what is written is the same with or without the memo.

Memory is bounded: keys and values take at most `max_bytes`. When that is
reached, the memo is emptied if at least half of its lookups found a value
(values that stopped repeating leave with it), and is turned off otherwise
(values that rarely repeat, such as noisy sensors or dense rewards, are then
derived as if there were no memo; the lookups spent finding this out cost a
small fraction of the work they came with).

Not locked: a writer encodes in one thread at a time, and a race between two
threads would at worst derive a value twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

# Per entry, besides the bytes of key and value: the dict slot and two bytes objects.
ENTRY_OVERHEAD = 100


class Memo:
  """key bytes -> derived bytes, in at most `max_bytes`.

  Callers ask `derive` (one key) or `derive_each` (a column of keys) for
  values, giving the function that derives a value the memo does not hold.
  While `enabled` is False, callers derive every value themselves.

  Args:
    max_bytes: the memory the keys and values may take (each entry is counted
      with `ENTRY_OVERHEAD` bytes more).
  """

  __slots__ = ('max_bytes', 'enabled', 'values', 'nbytes', 'hits', 'misses')

  def __init__(self, max_bytes: int = 1 << 20):
    self.max_bytes = max_bytes
    self.enabled = True
    self.values: dict[bytes, bytes] = {}
    self.nbytes = 0
    self.hits = self.misses = 0

  def _add(self, key: bytes, value: bytes) -> None:
    """Remembers a value derived after a lookup missed."""
    self.values[key] = value
    self.nbytes += len(key) + len(value) + ENTRY_OVERHEAD
    self.misses += 1

  def derive(self, key: bytes, derive: Callable[..., bytes], *args: Any) -> bytes:
    """The value of `key`: remembered, else `derive(*args)`, then remembered.

    The key may be bytes or a read-only byte memoryview (remembered as bytes).
    """
    value = self.values.get(key)
    if value is not None:
      self.hits += 1
      return value
    value = derive(*args)
    self._add(bytes(key), value)
    self.check()
    return value

  def derive_each(self, keys: Sequence[bytes], derive: Callable[[bytes], bytes]) -> list[bytes]:
    """The value of each key: remembered, else `derive(key)`, then remembered.

    Keys may be bytes or read-only byte memoryviews (remembered as bytes).
    """
    get = self.values.get
    out = [get(k) for k in keys]
    if None not in out:
      self.hits += len(out)
      return out
    for j, value in enumerate(out):
      if value is None:  # (an earlier key of these may have added it since)
        out[j] = self.derive(keys[j], derive, keys[j])
      else:
        self.hits += 1
    return out

  def check(self) -> None:
    """Empties or turns off the memo if it is full (call after adding)."""
    if self.nbytes >= self.max_bytes:
      self.enabled = self.hits >= self.misses
      self.values = {}
      self.nbytes = self.hits = self.misses = 0
