"""Catch: a tiny dm_env environment (a ball falls, a paddle catches it).

The same game as the original EnvLogger's and bsuite's `Catch`: a 10x5 board,
float32 observation with a 1 for the ball and a 1 for the paddle, three actions
(left, stay, right), reward +1 for a catch and -1 for a miss at the last row,
episodes of `rows - 1` steps that end in termination (discount 0).
"""

from __future__ import annotations

import dm_env
import numpy as np
from dm_env import specs

_ACTIONS = (-1, 0, 1)


class Catch(dm_env.Environment):
  """A `dm_env.Environment` for the game of Catch."""

  def __init__(self, rows: int = 10, columns: int = 5, seed: int | None = 1):
    self._rows = rows
    self._columns = columns
    self._rng = np.random.RandomState(seed)
    self._board = np.zeros((rows, columns), dtype=np.float32)
    self._ball_x = self._ball_y = self._paddle_x = 0
    self._paddle_y = rows - 1
    self._reset_next_step = True

  def reset(self) -> dm_env.TimeStep:
    self._reset_next_step = False
    self._ball_x = self._rng.randint(self._columns)
    self._ball_y = 0
    self._paddle_x = self._columns // 2
    return dm_env.restart(self._observation())

  def step(self, action) -> dm_env.TimeStep:
    if self._reset_next_step:
      return self.reset()
    dx = _ACTIONS[int(action)]
    self._paddle_x = int(np.clip(self._paddle_x + dx, 0, self._columns - 1))
    self._ball_y += 1
    if self._ball_y == self._paddle_y:
      reward = 1.0 if self._paddle_x == self._ball_x else -1.0
      self._reset_next_step = True
      return dm_env.termination(reward=reward, observation=self._observation())
    return dm_env.transition(reward=0.0, observation=self._observation())

  def observation_spec(self) -> specs.BoundedArray:
    return specs.BoundedArray(
      shape=self._board.shape, dtype=np.float32, minimum=0.0, maximum=1.0, name='board'
    )

  def action_spec(self) -> specs.DiscreteArray:
    return specs.DiscreteArray(num_values=len(_ACTIONS), dtype=np.int64, name='action')

  def _observation(self) -> np.ndarray:
    self._board.fill(0.0)
    self._board[self._ball_y, self._ball_x] = 1.0
    self._board[self._paddle_y, self._paddle_x] = 1.0
    return self._board.copy()
