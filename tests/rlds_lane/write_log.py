"""rlds lane, step 1 (main environment): write a small Catch log and what to expect of it.

Usage: python tests/rlds_lane/write_log.py OUT_DIR

Writes, with fixed seeds, an envlogger TFDS log into OUT_DIR (dataset
`envlogger` 1.0.0, two episodes per shard, so three shards) and
OUT_DIR/expected.json. Everything in expected.json is computed from
`envlogger.Reader` reading the log back, not written down by hand; the other
half of the lane (check_with_rlds.py, run in a separate environment with the
real `rlds` library and an older TFDS) checks the same numbers on the TFDS
dataset.

The log has:
  * 3 complete Catch episodes (10 RLDS steps each, reward +-1 at the end);
  * 1 episode cut short by a `reset()` after 4 steps (5 RLDS steps);
  * 1 episode cut short by `close()` after 6 steps (7 RLDS steps);
  * a `step_fn` giving a float64 step field `score`;
  * an `episode_fn` giving an int64 top-level episode field `calls`.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import sys

import numpy as np

import envlogger
from envlogger.testing import catch_env

DATASET_NAME = 'envlogger'
VERSION = '1.0.0'
SPLIT = 'train'
EPISODES_PER_SHARD = 2
# Number of env.step() calls per episode; None plays the episode to its end.
# The last episode is left open and closed by the logger's close().
PLAN = (None, None, None, 4, 6)
_WEIGHTS = (np.arange(50, dtype=np.float64).reshape(10, 5) + 1.0) / 7.0


def _score(timestep, action, env):
  del env
  value = float(np.sum(np.asarray(timestep.observation, np.float64) * _WEIGHTS))
  if action is not None:
    value += 0.25 * int(action)
  return {'score': value}


class _CallCounter:
  """episode_fn: the number of env calls seen in the episode so far."""

  def __init__(self):
    self.n = 0

  def __call__(self, timestep, action, env):
    del action, env
    self.n = 1 if timestep.first() else self.n + 1
    return {'calls': self.n}


def write(out_dir: str) -> None:
  env = catch_env.Catch(seed=1)
  rng = np.random.RandomState(0)
  with envlogger.EnvLogger(
    env,
    data_directory=out_dir,
    step_fn=_score,
    episode_fn=_CallCounter(),
    max_episodes_per_file=EPISODES_PER_SHARD,
    metadata={'lane': 'rlds'},
  ) as logged:
    for steps in PLAN:
      ts = logged.reset()
      n = 0
      while not ts.last() and (steps is None or n < steps):
        ts = logged.step(int(rng.randint(3)))
        n += 1


def expected(out_dir: str) -> dict:
  episodes = []
  with envlogger.Reader(out_dir) as reader:
    for ep in reader.episodes:
      steps = ep.as_rlds()['steps']
      n = len(ep)
      obs = np.asarray(steps['observation'], np.float64)
      episodes.append(
        {
          'episode_id': ep.episode_id,
          'length': n,
          'num_transitions': max(n - 1, 0),
          'cut_short': bool(ep.cut_short),
          'is_terminal': bool(steps['is_terminal'][-1]),
          'num_first': int(np.sum(steps['is_first'])),
          'num_last': int(np.sum(steps['is_last'])),
          'calls': int(ep.metadata['calls']),
          'actions': [int(a) for a in steps['action']],
          'rewards': [float(r) for r in steps['reward']],
          'reward_sum': float(np.sum(steps['reward'])),
          'discount_sum': float(np.sum(steps['discount'])),
          'score_sum': float(np.sum(steps['score'])),
          'observation_sum': float(np.sum(obs)),
          # sum over steps of sum(observation * weights): a position-sensitive checksum.
          'observation_checksum': float(np.sum(obs * _WEIGHTS)),
        }
      )
    num_steps = len(reader.steps)
  return {
    'dataset_dir': os.path.join(DATASET_NAME, VERSION),
    'split': SPLIT,
    'num_episodes': len(episodes),
    'num_steps': num_steps,
    'num_shards': -(-len(episodes) // EPISODES_PER_SHARD),
    'weights': _WEIGHTS.tolist(),
    'written_with': {
      'envlogger': envlogger.__version__,
      'tensorflow-datasets': importlib.metadata.version('tensorflow-datasets'),
      'numpy': np.__version__,
      'python': sys.version.split()[0],
    },
    'episodes': episodes,
  }


BUILT_NAME = 'catch_shared'


def build_shared(out_dir: str, exp: dict) -> dict:
  """Assembles the log into a shared dataset with tfds_builder (two splits)."""
  from tfds_builder import BuildConfig, build  # noqa: PLC0415 (imports TFDS and TensorFlow)

  config = BuildConfig(name=BUILT_NAME, sources=[out_dir], splits={'train': 0.5, 'test': 0.5})
  built_dir = build(config, os.path.join(out_dir, 'built'))
  return {
    'dataset_dir': os.path.relpath(built_dir, out_dir),
    'episodes': {
      e['episode_id']: {'length': e['length'], 'reward_sum': e['reward_sum']} for e in exp['episodes']
    },
  }


def main(argv: list[str]) -> int:
  if len(argv) != 2:
    print(f'usage: {argv[0]} OUT_DIR', file=sys.stderr)
    return 2
  out_dir = argv[1]
  if os.path.exists(os.path.join(out_dir, DATASET_NAME)):
    print(f'{out_dir} already holds a log; give an empty directory.', file=sys.stderr)
    return 2
  os.makedirs(out_dir, exist_ok=True)
  write(out_dir)
  exp = expected(out_dir)
  exp['built'] = build_shared(out_dir, exp)
  with open(os.path.join(out_dir, 'expected.json'), 'w') as f:
    json.dump(exp, f, indent=1)
  lengths = [e['length'] for e in exp['episodes']]
  print(
    f'write_log: {exp["num_episodes"]} episodes (lengths {lengths}, {exp["num_steps"]} steps) '
    f'in {exp["num_shards"]} shards, tfds {exp["written_with"]["tensorflow-datasets"]} '
    f'-> {out_dir}'
  )
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv))
