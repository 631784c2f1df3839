"""The reading seam: what the Reader needs from a stored log."""

from __future__ import annotations

import abc
from typing import Any

import numpy as np

from envlogger import _schema, rlds


class LogSource(abc.ABC):
  """Random access to the episodes of one log."""

  def __init__(self, schema: _schema.Schema):
    self.schema = schema
    self.casters = rlds.Casters(schema)

  @abc.abstractmethod
  def num_episodes(self) -> int:
    """Number of readable episodes."""

  @abc.abstractmethod
  def episode_lengths(self) -> np.ndarray:
    """Recorded steps of every episode, as an int64 array (no decoding)."""

  @abc.abstractmethod
  def read_episode(self, index: int) -> rlds.Episode:
    """Decodes episode `index` (0 <= index < num_episodes)."""

  def read_episode_metadata(self, index: int) -> Any:
    return self.read_episode(index).metadata

  @abc.abstractmethod
  def runs(self) -> list[dict[str, Any]]:
    """One record per logger run: {'run_id', 'metadata', ...}, oldest first."""

  @abc.abstractmethod
  def copy(self) -> LogSource:
    """An independent source (own file handles) over the same log."""

  def close(self) -> None:  # noqa: B027 (optional)
    """Releases file handles."""
