"""The reading seam: what the Reader needs from a stored log."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

import numpy as np

from envlogger import _schema, rlds


class DamagedEpisodeError(OSError):
  """A stored episode cannot be read back (checksum mismatch, malformed record)."""


class LogSource(abc.ABC):
  """Random access to the episodes of one log.

  Attributes:
    problems: what was found damaged when the log was opened and skipped or
      worked around, one line each naming the file ([] for a sound log).
  """

  def __init__(self, schema: _schema.Schema):
    self.schema = schema
    self.casters = rlds.Casters(schema)
    self.problems: list[str] = []

  @abc.abstractmethod
  def num_episodes(self) -> int:
    """Number of readable episodes."""

  @abc.abstractmethod
  def episode_lengths(self) -> np.ndarray:
    """Recorded steps of every episode, as an int64 array (no decoding)."""

  @abc.abstractmethod
  def read_episode(self, index: int) -> rlds.Episode:
    """Decodes episode `index` (0 <= index < num_episodes)."""

  def read_batch(self, indices: Sequence[int], fields: frozenset[str] | None = None) -> rlds.EpisodeBatch:
    """Episodes `indices` (each 0 <= i < num_episodes; any order, repeats allowed)
    as one batch, in that order, with the columns of step `fields` only (None:
    all). Sources that can decode many records at once, or only some fields,
    override this."""
    return rlds.concat_episodes([self.read_episode(int(i)) for i in indices], self.casters, fields)

  @property
  def decodes_in_batches(self) -> bool:
    """Whether `read_batch` decodes many episodes faster than `read_episode` one
    by one (the Reader then reads ahead when iterating)."""
    return False

  def read_step(self, index: int, k: int) -> tuple[rlds.Episode, int]:
    """What `rlds.to_step_data` needs for step k (0 <= k < length) of episode `index`.

    Returns (episode or a window of it, position of step k in it). Sources that
    can decode part of an episode override this to decode only steps k-1 and k.
    """
    return self.read_episode(index), k

  def read_rows(self, index: int, rows: np.ndarray) -> rlds.Episode:
    """Steps `rows` (an int array of step indexes, in that order) of episode
    `index`, as `rlds.take_rows` gives them. Sources that can decode part of
    an episode override this to decode only those steps."""
    return rlds.take_rows(self.read_episode(index), rows)

  def read_episode_metadata(self, index: int) -> Any:
    return self.read_episode(index).metadata

  def dataset_metadata(self) -> dict[str, Any] | None:
    """The dataset metadata as stored, for formats that store it whole (else None:
    `Reader.metadata()` assembles it from `runs()` and the schema)."""
    return None

  @abc.abstractmethod
  def runs(self) -> list[dict[str, Any]]:
    """One record per logger run: {'run_id', 'metadata', ...}, oldest first."""

  @abc.abstractmethod
  def copy(self) -> LogSource:
    """An independent source (own file handles) over the same log."""

  def close(self) -> None:  # noqa: B027 (optional)
    """Releases file handles."""
