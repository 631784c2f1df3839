"""Advisory file locks between processes that write one dataset (POSIX flock).

Two kinds of lock, both released by the kernel when a process dies (so a
SIGKILLed writer never leaves a stale lock behind):

* the dataset lock (`<dataset_dir>/.envlogger.lock`, exclusive, held briefly)
  serializes what writers share: creating and fixing `envlogger_log.json`,
  publishing the TFDS metadata, and repairing shards;
* each open shard is locked by its writer for as long as it appends to it, so
  recovery can tell a live writer's shard (leave it alone) from a dead one's
  (repair its torn tail).

Locks work on local POSIX filesystems. On platforms without `fcntl` (Windows)
they are no-ops: use one dataset directory per writer there.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

try:
  import fcntl
except ImportError:  # pragma: no cover (Windows)
  fcntl = None

LOCK_FILE = '.envlogger.lock'


@contextlib.contextmanager
def dataset_lock(dataset_dir: str) -> Iterator[None]:
  """Holds the dataset's exclusive lock for the duration of the block."""
  if fcntl is None:  # pragma: no cover
    yield
    return
  fd = os.open(os.path.join(dataset_dir, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644)
  try:
    fcntl.flock(fd, fcntl.LOCK_EX)
    yield
  finally:
    os.close(fd)  # closing releases the lock


def lock_shard(fd: int) -> None:
  """Marks the shard open on `fd` as being written by this process."""
  if fcntl is not None:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def shard_in_use(path: str) -> bool:
  """True if a live process holds the shard's writer lock."""
  if fcntl is None:  # pragma: no cover
    return False
  try:
    fd = os.open(path, os.O_RDONLY)
  except FileNotFoundError:
    return False
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except BlockingIOError:
    return True
  finally:
    os.close(fd)
  return False
