"""In-memory backend: episodes kept in the writer object (tests, short experiments)."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from envlogger import _jsonable, rlds
from envlogger.backends import base, source


class InMemoryBackendWriter(base.BackendWriter):
  """Keeps every recorded episode in memory; read it with `Reader(backend=writer)`."""

  def __init__(self, scheduler=None, **kwargs):
    """Args: `scheduler`, and `max_episode_bytes`, `async_writes`, ... as `BackendWriter`."""
    super().__init__(scheduler=scheduler, **kwargs)
    self.episodes: list[rlds.Episode] = []

  def _write_episode(self, episode: rlds.Episode) -> None:
    self.episodes.append(episode)

  def _close(self) -> None:
    pass

  def as_source(self) -> source.LogSource:
    if not self._closed:
      self.flush()
    return _InMemorySource(self)


class _InMemorySource(source.LogSource):
  def __init__(self, writer: InMemoryBackendWriter):
    self._writer = writer
    super().__init__(writer.schema)

  def num_episodes(self) -> int:
    return len(self._writer.episodes)

  def episode_lengths(self) -> np.ndarray:
    return np.asarray([e.num_steps for e in self._writer.episodes], dtype=np.int64)

  def read_episode(self, index: int) -> rlds.Episode:
    return self._writer.episodes[index]

  def runs(self) -> list[dict[str, Any]]:
    return [
      {
        'run_id': self._writer.run_id,
        'metadata': copy.deepcopy(_jsonable.decode(_jsonable.encode(self._writer.metadata))),
      }
    ]

  def copy(self) -> source.LogSource:
    return _InMemorySource(self._writer)
