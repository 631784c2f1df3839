"""Cheap dm_env environments for the benchmarks.

Each env precomputes what it returns (boards, frames, vectors and even the
`TimeStep`s where the action does not matter), so a step costs a few
microseconds and the logger's overhead is what the benchmark sees. The arrays
returned are read-only and shared between steps, as a real env's fresh arrays
would be from the logger's point of view (it must not mutate them).

  CatchLike   10x5 float32 board, 3 actions, 10-step episodes (ball falls,
              paddle moves; the same game as envlogger.testing.catch_env.Catch)
  AtariLike   84x84x3 uint8 frames (static noise background, an 8x8 sprite
              moving a little each step), 18 actions, 200-step episodes
  MujocoLike  {'position': float32 (17,), 'velocity': float32 (6,)}, float32
              action (6,), 1000-step episodes

Every env auto-resets: the `step()` after a LAST timestep returns the next
episode's FIRST timestep (the dm_env convention).
"""

from __future__ import annotations

import dm_env
import numpy as np
from dm_env import specs


def _frozen(a: np.ndarray) -> np.ndarray:
  a.flags.writeable = False
  return a


class _Precomputed(dm_env.Environment):
  """An env replaying precomputed episodes of `episode_length` timesteps.

  Subclasses set `self._episodes`: a list of lists of TimeSteps (FIRST, MIDs,
  LAST); episodes are replayed in turn, ignoring actions.
  """

  _episodes: list[list[dm_env.TimeStep]]

  def __init__(self):
    self._ep = -1
    self._t = 0
    self._current: list[dm_env.TimeStep] = []
    self._needs_reset = True

  def reset(self) -> dm_env.TimeStep:
    self._ep = (self._ep + 1) % len(self._episodes)
    self._current = self._episodes[self._ep]
    self._t = 0
    self._needs_reset = False
    return self._current[0]

  def step(self, action) -> dm_env.TimeStep:
    if self._needs_reset:
      return self.reset()
    self._t += 1
    ts = self._current[self._t]
    if self._t == len(self._current) - 1:
      self._needs_reset = True
    return ts


class CatchLike(dm_env.Environment):
  """Catch on a 10x5 board with every board precomputed (action-dependent)."""

  ROWS, COLUMNS = 10, 5
  EPISODE_LENGTH = ROWS  # timesteps per episode: FIRST, 8 MID, LAST

  def __init__(self, seed: int = 1):
    rows, cols = self.ROWS, self.COLUMNS
    boards = np.zeros((rows, cols, cols, rows, cols), dtype=np.float32)
    for by in range(rows):
      for bx in range(cols):
        for px in range(cols):
          boards[by, bx, px, by, bx] = 1.0
          boards[by, bx, px, rows - 1, px] = 1.0
    self._boards = _frozen(boards)
    self._rng = np.random.RandomState(seed)
    self._ball_xs = self._rng.randint(cols, size=4096).tolist()
    self._n = 0
    self._ball_x = self._ball_y = self._paddle_x = 0
    self._needs_reset = True

  def reset(self) -> dm_env.TimeStep:
    self._ball_x = self._ball_xs[self._n % len(self._ball_xs)]
    self._n += 1
    self._ball_y = 0
    self._paddle_x = self.COLUMNS // 2
    self._needs_reset = False
    return dm_env.restart(self._boards[0, self._ball_x, self._paddle_x])

  def step(self, action) -> dm_env.TimeStep:
    if self._needs_reset:
      return self.reset()
    self._paddle_x = min(max(self._paddle_x + int(action) - 1, 0), self.COLUMNS - 1)
    self._ball_y += 1
    obs = self._boards[self._ball_y, self._ball_x, self._paddle_x]
    if self._ball_y == self.ROWS - 1:
      self._needs_reset = True
      return dm_env.termination(reward=1.0 if self._paddle_x == self._ball_x else -1.0, observation=obs)
    return dm_env.transition(reward=0.0, observation=obs)

  def observation_spec(self):
    return specs.BoundedArray((self.ROWS, self.COLUMNS), np.float32, 0.0, 1.0, name='board')

  def action_spec(self):
    return specs.DiscreteArray(3, dtype=np.int64, name='action')


class AtariLike(_Precomputed):
  """84x84x3 uint8 frames: a static background and a sprite moving one pixel a step.

  The background is made of flat bands and blocks of colour, as Atari screens
  are (sky, ground, rows of bricks), with a little noise in one band; frames
  of pure noise would measure a compressor's worst case, not Atari's.
  """

  EPISODE_LENGTH = 200
  SHAPE = (84, 84, 3)

  def __init__(self, seed: int = 1, num_episodes: int = 2):
    super().__init__()
    rng = np.random.RandomState(seed)
    background = np.zeros(self.SHAPE, dtype=np.uint8)
    background[:20] = (50, 60, 180)  # sky
    background[70:] = (110, 90, 40)  # ground
    for row in range(6):  # bricks
      background[25 + 7 * row : 28 + 7 * row, 10:74] = (200, 72 + 10 * row, 72)
    background[80:] += rng.randint(0, 8, size=(4, 84, 3), dtype=np.uint8)  # textured strip
    sprite = np.full((8, 8, 3), 255, dtype=np.uint8)
    span = self.SHAPE[0] - sprite.shape[0]
    self._episodes = []
    for e in range(num_episodes):
      steps = []
      for t in range(self.EPISODE_LENGTH):
        frame = background.copy()
        y, x = (7 * e + t // 4) % span, t % span
        frame[y : y + 8, x : x + 8] = sprite
        obs = _frozen(frame)
        if t == 0:
          steps.append(dm_env.restart(obs))
        elif t == self.EPISODE_LENGTH - 1:
          steps.append(dm_env.termination(reward=np.float32(1.0), observation=obs))
        else:
          steps.append(dm_env.transition(reward=np.float32(t % 7 == 0), observation=obs))
      self._episodes.append(steps)

  def observation_spec(self):
    return specs.Array(self.SHAPE, np.uint8, name='frame')

  def action_spec(self):
    return specs.DiscreteArray(18, dtype=np.int64, name='action')

  def reward_spec(self):
    return specs.Array((), np.float32, name='reward')


class MujocoLike(_Precomputed):
  """Dict observation of float32 vectors, float32 action (6,), truncated at 1000 steps."""

  EPISODE_LENGTH = 1000

  def __init__(self, seed: int = 1, num_episodes: int = 2):
    super().__init__()
    rng = np.random.RandomState(seed)
    self._episodes = []
    for _ in range(num_episodes):
      pos = np.cumsum(rng.normal(0, 0.01, size=(self.EPISODE_LENGTH, 17)), axis=0).astype(np.float32)
      vel = rng.normal(0, 1, size=(self.EPISODE_LENGTH, 6)).astype(np.float32)
      rewards = rng.normal(0, 1, size=self.EPISODE_LENGTH).astype(np.float32)
      steps = []
      for t in range(self.EPISODE_LENGTH):
        obs = {'position': _frozen(pos[t].copy()), 'velocity': _frozen(vel[t].copy())}
        if t == 0:
          steps.append(dm_env.restart(obs))
        elif t == self.EPISODE_LENGTH - 1:
          steps.append(dm_env.truncation(reward=rewards[t], observation=obs, discount=np.float32(1.0)))
        else:
          steps.append(dm_env.transition(reward=rewards[t], observation=obs, discount=np.float32(1.0)))
      self._episodes.append(steps)

  def observation_spec(self):
    return {
      'position': specs.Array((17,), np.float32, name='position'),
      'velocity': specs.Array((6,), np.float32, name='velocity'),
    }

  def action_spec(self):
    return specs.BoundedArray((6,), np.float32, -1.0, 1.0, name='action')

  def reward_spec(self):
    return specs.Array((), np.float32, name='reward')

  def discount_spec(self):
    return specs.BoundedArray((), np.float32, 0.0, 1.0, name='discount')


class NeverRepeating(dm_env.Environment):
  """Wraps an env with one array observation so that no two observations are
  equal: its first value is replaced by a counter (a copy per step). What the
  logger's memos of repeated values save shows against the env itself."""

  def __init__(self, env: dm_env.Environment):
    self._env = env
    self._count = 0

  def _unique(self, ts: dm_env.TimeStep) -> dm_env.TimeStep:
    obs = ts.observation.copy()
    self._count += 1
    obs.flat[0] = self._count
    return ts._replace(observation=obs)

  def reset(self) -> dm_env.TimeStep:
    return self._unique(self._env.reset())

  def step(self, action) -> dm_env.TimeStep:
    return self._unique(self._env.step(action))

  def observation_spec(self):
    return self._env.observation_spec()

  def action_spec(self):
    return self._env.action_spec()

  def reward_spec(self):
    return self._env.reward_spec()

  def discount_spec(self):
    return self._env.discount_spec()


ENVS = {'catch': CatchLike, 'atari': AtariLike, 'mujoco': MujocoLike}
