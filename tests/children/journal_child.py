"""A logging process for the journal tests: rich specs, killed with SIGKILL.

Usage: journal_child.py DATA_DIR SEED EPISODES FLUSH_AFTER
  Logs EPISODES episodes of `make_env(SEED)` (nested observations with
  strings, booleans and a zero-size leaf; dict actions; step_fn custom data
  that is None at first steps; episode_fn metadata), prints 'finished <i>'
  after each, waits for the background writer after FLUSH_AFTER episodes (if
  >= 0), and kills itself with SIGKILL after the last one.

The parent rebuilds what the env produced with `drive` (every value is a
function of the seed).
"""

from __future__ import annotations

import os
import signal
import sys

import numpy as np
from dm_env import specs

import envlogger
from envlogger.testing import spec_env

OBS = {
  'pixels': specs.Array((2, 3), np.uint8),
  'vec': specs.Array((4,), np.float32),
  'empty': specs.Array((0, 2), np.float64),
  'text': specs.StringArray((), str),
  'tags': specs.StringArray((2,), bytes),
  'flag': specs.Array((), np.bool_),
}
ACTION = {'move': specs.DiscreteArray(5), 'torque': specs.Array((2,), np.float32)}
LENGTHS = (3, 1, 6, 2, 5)


def make_env(seed: int) -> spec_env.SpecEnv:
  return spec_env.SpecEnv(OBS, ACTION, episode_lengths=LENGTHS, terminations=(True, False), seed=seed)


def step_fn(timestep, action, env):
  if timestep.first():
    return None
  return {'note': timestep.observation['text'], 'sum': np.float32(timestep.observation['vec'].sum())}


def episode_fn(timestep, action, env):
  if not timestep.last():
    return None
  return {'label': f'ends with {int(timestep.discount)}', 'pixels': timestep.observation['pixels'].copy()}


def drive(env, seed: int, episodes: int, after_episode=None) -> None:
  rng = np.random.default_rng(seed + 1)
  for i in range(episodes):
    ts = env.reset()
    while not ts.last():
      ts = env.step(spec_env.random_nest(ACTION, rng))
    if after_episode is not None:
      after_episode(i)


def main() -> None:
  data_dir, seed, episodes, flush_after = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
  env = envlogger.EnvLogger(make_env(seed), data_directory=data_dir, step_fn=step_fn, episode_fn=episode_fn)

  def after_episode(i: int) -> None:
    print(f'finished {i}', flush=True)
    if i == flush_after:
      env.backend.flush()

  drive(env, seed, episodes, after_episode)
  os.kill(os.getpid(), signal.SIGKILL)


if __name__ == '__main__':
  main()
