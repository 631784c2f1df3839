"""Log a random agent playing Catch, read the log back, and print a summary.

python examples/random_agent_catch.py [--data_directory DIR] [--num_episodes N]
"""

from __future__ import annotations

import argparse
import tempfile

import numpy as np

import envlogger
from envlogger.testing import catch_env


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument('--data_directory', default=None, help='where to write (default: a temp dir)')
  parser.add_argument('--num_episodes', type=int, default=20)
  args = parser.parse_args()
  data_directory = args.data_directory or tempfile.mkdtemp(prefix='envlogger-catch-')

  rng = np.random.default_rng(0)
  env = catch_env.Catch()
  # The one-liner: wrap the env; everything the agent does is recorded.
  with envlogger.EnvLogger(
    env,
    data_directory=data_directory,
    metadata={'environment_type': 'catch', 'agent_type': 'random'},
    step_fn=lambda timestep, action, env: {'ball_row': int(np.argmax(timestep.observation.max(axis=1)))},
    episode_fn=lambda timestep, action, env: {'return': float(timestep.reward)} if timestep.last() else None,
  ) as env:
    for _ in range(args.num_episodes):
      timestep = env.reset()
      while not timestep.last():
        timestep = env.step(int(rng.integers(3)))

  with envlogger.Reader(data_directory=data_directory) as reader:
    print(f'Log in {data_directory}')
    print(f'  {len(reader.episodes)} episodes, {len(reader.steps)} steps')
    print(f'  dataset metadata: { {k: v for k, v in reader.metadata().items() if k != "environment_specs"} }')
    print(f'  observation spec: {reader.observation_spec()}')
    returns = [float(m['return']) for m in reader.episode_metadata()]
    print(f'  returns: mean {np.mean(returns):+.2f}, catches {sum(r > 0 for r in returns)}/{len(returns)}')
    step = reader.steps[-1]
    print(f'  last step: {step.timestep.step_type}, reward {step.timestep.reward}, action {step.action}')
    first = reader.episodes[0]
    rewards = first.as_rlds()['steps']['reward']
    print(f'  episode 0: {len(first)} steps, RLDS rewards {rewards.tolist()}')
    print(f'  load it with TFDS: tfds.load("envlogger", data_dir="{data_directory}")')


if __name__ == '__main__':
  main()
