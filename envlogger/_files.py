"""Small file helpers: atomic publication of text and JSON files; whole writes to descriptors."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any


def write_json_atomic(path: str, data: Any) -> None:
  """Writes JSON to `path` so that readers see the old or the new file, never a torn one."""
  write_text_atomic(path, json.dumps(data, indent=1, sort_keys=True))


def write_text_atomic(path: str, text: str) -> None:
  """Writes `text` to `path` so that readers see the old or the new file, never a torn one."""
  directory = os.path.dirname(path) or '.'
  fd, tmp = tempfile.mkstemp(dir=directory, prefix='.tmp-', suffix='.txt')
  try:
    with os.fdopen(fd, 'w') as f:
      f.write(text)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise


def read_json(path: str) -> Any:
  with open(path) as f:
    return json.load(f)


def write_all(fd: int, data: bytes, offset: int | None = None) -> None:
  """Writes all of `data` to `fd`: at its position, or at `offset` (`pwrite`)."""
  view = memoryview(data)
  while view:
    n = os.write(fd, view) if offset is None else os.pwrite(fd, view, offset)
    view = view[n:]
    if offset is not None:
      offset += n
