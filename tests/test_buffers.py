"""Envs and agents that reuse their arrays: the log keeps each step's values."""

from __future__ import annotations

import dm_env
import numpy as np
import pytest
from conftest import make_logger, open_reader
from dm_env import specs

import envlogger


class _ReusingEnv(dm_env.Environment):
  """Writes every observation into the same buffer (as emulators do)."""

  def __init__(self):
    self._buf = np.zeros(3, np.float32)
    self._t = 0

  def reset(self):
    self._t = 0
    self._buf[:] = 0
    return dm_env.restart(self._buf)

  def step(self, action):
    self._t += 1
    self._buf[:] = self._t
    if self._t == 4:
      return dm_env.termination(1.0, self._buf)
    return dm_env.transition(0.0, self._buf)

  def observation_spec(self):
    return specs.Array((3,), np.float32)

  def action_spec(self):
    return specs.Array((2,), np.int32)


def test_reused_observation_and_action_buffers(backend, tmp_path):
  env = make_logger(_ReusingEnv(), backend, tmp_path, step_fn=lambda ts, a, e: {'obs_copy': ts.observation})
  action = np.zeros(2, np.int32)
  ts = env.reset()
  while not ts.last():
    action[:] += 1  # the agent mutates its action array in place
    ts = env.step(action)
  env.close()
  with open_reader(env, backend, tmp_path) as r:
    obs = [s.timestep.observation[0] for s in r.steps]
    assert obs == [0, 1, 2, 3, 4]
    assert [s.custom_data['obs_copy'][0] for s in r.steps] == [0, 1, 2, 3, 4]
    assert [None if s.action is None else int(s.action[0]) for s in r.steps] == [None, 1, 2, 3, 4]


@pytest.mark.parametrize('with_step_fn', [False, True], ids=['plain', 'step_fn'])
def test_reused_buffers_in_thinned_and_cut_short_episodes(backend, tmp_path, with_step_fn):
  # NStepScheduler(2) records steps 0 and 2 of the first episode; step 3 is the
  # last one seen before reset() (which zeroes the env's buffer) cuts it short,
  # so the logger must have kept its own copy of step 3's values.
  step_fn = (lambda ts, a, e: {'obs_copy': ts.observation}) if with_step_fn else None
  env = make_logger(
    _ReusingEnv(), backend, tmp_path, step_fn=step_fn, scheduler=envlogger.schedulers.NStepScheduler(2)
  )
  action = np.zeros(2, np.int32)
  env.reset()
  for _ in range(3):
    action[:] += 1
    env.step(action)
  ts = env.reset()
  while not ts.last():
    action[:] += 1
    ts = env.step(action)
  env.close()
  with open_reader(env, backend, tmp_path) as r:
    first, second = r.episodes
    assert first.cut_short and not second.cut_short
    assert [s.timestep.observation[0] for s in first] == [0, 2, 3]
    # A thinned step's action is the one taken at the recorded step before it.
    assert [None if s.action is None else int(s.action[0]) for s in first] == [None, 1, 3]
    assert [s.timestep.observation[0] for s in second] == [0, 2, 4]
    if with_step_fn:
      assert [s.custom_data['obs_copy'][0] for s in first] == [0, 2, 3]
