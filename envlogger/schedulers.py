"""Schedulers: plain callables that decide which steps and episodes to record.

A scheduler is any callable `scheduler(data: StepData) -> bool`. The writer
calls it on every step the environment produces, recorded or not:

* On the first step of an episode (`data.timestep.first()`), the answer decides
  whether the **whole episode** is recorded. An episode that is not recorded
  leaves no trace in the log.
* On the other steps of a recorded episode, the answer decides whether that
  step is kept (thinning). The first and the last step of a recorded episode
  are always kept, whatever the scheduler answers, so that `is_first`,
  `is_last` and `is_terminal` keep their RLDS meaning.

Step schedulers (`NStepScheduler`, `BernoulliStepScheduler`) therefore always
record the first step and thin the rest; episode schedulers
(`NEpisodeScheduler`, `BernoulliEpisodeScheduler`, `ListEpisodeScheduler`)
answer once per episode and repeat that answer for its other steps.

What a thinned episode holds is described in `docs/alignment.md`: recorded
RLDS step k still carries the action taken at its observation and the reward
and discount that followed it.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable

import numpy as np

from envlogger.step_data import StepData

Scheduler = Callable[[StepData], bool]


class NStepScheduler:
  """Records one step in every `step_interval` within each episode.

  Steps 0, N, 2N, ... of every episode are recorded (plus its last step).
  """

  def __init__(self, step_interval: int):
    if int(step_interval) < 1:
      raise ValueError(f'step_interval must be >= 1, got {step_interval!r}.')
    self._interval = int(step_interval)
    self._index = 0

  def __call__(self, data: StepData) -> bool:
    if data.timestep.first():
      self._index = 0
    keep = self._index % self._interval == 0
    self._index += 1
    return keep


class BernoulliStepScheduler:
  """Records each non-first step with probability `keep_probability`."""

  def __init__(self, keep_probability: float, seed: int | None = None):
    if not 0.0 <= keep_probability <= 1.0:
      raise ValueError(f'keep_probability must be in [0, 1], got {keep_probability!r}.')
    self._p = float(keep_probability)
    self._rng = np.random.default_rng(seed)

  def __call__(self, data: StepData) -> bool:
    if data.timestep.first():
      return True
    return bool(self._rng.random() < self._p)


class _EpisodeScheduler(abc.ABC):
  """Base for schedulers that decide once per episode."""

  def __init__(self):
    self._episode = -1
    self._keep = False

  @abc.abstractmethod
  def _decide(self, episode_index: int) -> bool:
    """Whether episode `episode_index` (0-based) is kept."""

  def __call__(self, data: StepData) -> bool:
    if data.timestep.first():
      self._episode += 1
      self._keep = bool(self._decide(self._episode))
    return self._keep


class NEpisodeScheduler(_EpisodeScheduler):
  """Records episodes 0, N, 2N, ... (counted from the logger's first reset)."""

  def __init__(self, episode_interval: int):
    super().__init__()
    if int(episode_interval) < 1:
      raise ValueError(f'episode_interval must be >= 1, got {episode_interval!r}.')
    self._interval = int(episode_interval)

  def _decide(self, episode_index: int) -> bool:
    return episode_index % self._interval == 0


class BernoulliEpisodeScheduler(_EpisodeScheduler):
  """Records each episode with probability `keep_probability`."""

  def __init__(self, keep_probability: float, seed: int | None = None):
    super().__init__()
    if not 0.0 <= keep_probability <= 1.0:
      raise ValueError(f'keep_probability must be in [0, 1], got {keep_probability!r}.')
    self._p = float(keep_probability)
    self._rng = np.random.default_rng(seed)

  def _decide(self, episode_index: int) -> bool:
    return bool(self._rng.random() < self._p)


class ListEpisodeScheduler(_EpisodeScheduler):
  """Records the episodes whose indexes (0-based, from the first reset) are listed."""

  def __init__(self, desired_episodes: Iterable[int]):
    super().__init__()
    self._wanted = frozenset(int(i) for i in desired_episodes)

  def _decide(self, episode_index: int) -> bool:
    return episode_index in self._wanted
