"""A logging process for the durability tests.

Usage: log_until_killed.py DATA_DIR SEED MODE
  MODE 'forever': logs episodes until killed, printing 'finished <i>' after
    each step() that ends episode i returns.
  MODE 'exit': logs 3 episodes and half of a fourth, then exits without close().
  MODE 'count': logs 40 episodes numbered from SEED * 1000 (one of several
    concurrent writers of one dataset), closes, prints 'closed'.
  MODE 'fsize': under RLIMIT_FSIZE (SIGXFSZ ignored), logs until a step fails,
    prints 'error <i> <message>' for the episode whose write failed, logs two
    more episodes (which fail too) and closes (printing 'close-error <message>'
    if close() raises, then 'closed').
  MODE 'fsize-sync': the same with async_writes=False.

Observations and actions are a function of (episode, step), so the parent can
check every value it reads back: `expected_episode(i)`.
"""

from __future__ import annotations

import random
import resource
import signal
import sys

import dm_env
import numpy as np
from dm_env import specs

import envlogger


def episode_length(i: int) -> int:
  return 2 + (i * 7) % 9


class CountingEnv(dm_env.Environment):
  """Episode i has episode_length(i) timesteps; observation [i, t, i * t]."""

  def __init__(self, first: int = 0):
    self._i = first - 1
    self._t = 0

  def reset(self):
    self._i += 1
    self._t = 0
    return dm_env.restart(self._obs())

  def step(self, action):
    self._t += 1
    if self._t == episode_length(self._i) - 1:
      return dm_env.termination(float(self._i), self._obs())
    return dm_env.transition(0.5, self._obs())

  def _obs(self):
    return np.array([self._i, self._t, self._i * self._t], dtype=np.float32)

  def observation_spec(self):
    return specs.Array((3,), np.float32)

  def action_spec(self):
    return specs.DiscreteArray(1000)


def run_episode(env, i: int) -> None:
  ts = env.reset()
  while not ts.last():
    ts = env.step((i + 1) % 1000)


def main() -> None:
  data_dir, seed, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
  rng = random.Random(seed)
  fsize = mode.startswith('fsize')
  if fsize:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (6000, 6000))  # ~15 episodes per shard
  per_file = 1000 if fsize else rng.randint(2, 50)
  first = seed * 1000 if mode == 'count' else 0
  env = envlogger.EnvLogger(
    CountingEnv(first),
    data_directory=data_dir,
    metadata={'seed': seed},
    max_episodes_per_file=per_file,
    async_writes=mode != 'fsize-sync',
  )
  if mode == 'count':
    for i in range(first, first + 40):
      run_episode(env, i)
    env.close()
    print('closed', flush=True)
    return
  if mode == 'exit':
    for i in range(3):
      run_episode(env, i)
    env.reset()
    env.step(1)
    print('exiting', flush=True)
    return  # no close(): the logger must still leave a complete log
  i = 0
  failures = 0
  while True:
    try:
      run_episode(env, i)
      print(f'finished {i}', flush=True)
    except OSError as e:
      print(f'error {i} {e}', flush=True)
      failures += 1
      if failures == 3:
        try:
          env.close()
        except OSError as e:  # writes the background writer did at close
          print(f'close-error {e}', flush=True)
        print('closed', flush=True)
        return
    i += 1


if __name__ == '__main__':
  main()
