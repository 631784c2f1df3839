"""Several actor processes log into one dataset; the learner reads it all.

python examples/multiprocess_actors.py [--data_directory DIR] [--actors 4] [--episodes 25]

An `EnvLogger` cannot be pickled (it holds open files): each actor creates
its own, inside its process, on the same `data_directory`. Writers need no
coordination service: each appends to shards of its own (claimed with
O_EXCL), and they take turns (a file lock) to publish the TFDS metadata. On
object stores without locks, give each actor its own `data_directory` and
merge them with the TFDS builder in tfds_builder/ (or read them one by one).

While actors run, a `Reader` opened on the directory sees every episode they
have finished; `tfds.load` sees the episodes listed at the last publication
(after all have closed: everything; after a crash: run `envlogger recover DIR`).
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
from collections import Counter

import numpy as np

import envlogger
from envlogger.testing import catch_env


def actor(actor_id: int, data_directory: str, episodes: int) -> int:
  """One actor process: its own env, its own logger, the shared directory."""
  rng = np.random.default_rng(actor_id)
  env = catch_env.Catch(seed=actor_id)
  with envlogger.EnvLogger(
    env,
    data_directory=data_directory,
    metadata={'actor': actor_id},
    max_episodes_per_file=10,
  ) as env:
    for _ in range(episodes):
      timestep = env.reset()
      while not timestep.last():
        timestep = env.step(int(rng.integers(3)))
  return episodes


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--data_directory', default=None, help='where to write (default: a temp dir)')
  parser.add_argument('--actors', type=int, default=4)
  parser.add_argument('--episodes', type=int, default=25, help='episodes per actor')
  args = parser.parse_args()
  data_directory = args.data_directory or tempfile.mkdtemp(prefix='envlogger-actors-')

  # 'spawn' starts clean interpreters (no inherited file handles or threads).
  ctx = multiprocessing.get_context('spawn')
  with ctx.Pool(args.actors) as pool:
    done = pool.starmap(actor, [(i, data_directory, args.episodes) for i in range(args.actors)])

  with envlogger.Reader(data_directory=data_directory) as reader:
    actor_of_run = {run['run_id']: run['metadata']['actor'] for run in reader.runs()}
    per_actor = Counter(actor_of_run[ep.run_id] for ep in reader.episodes)
    print(f'Log in {data_directory}: {len(reader.episodes)} episodes, {len(reader.steps)} steps')
    for a in sorted(per_actor):
      print(f'  actor {a}: {per_actor[a]} episodes')
    if sorted(per_actor.values()) != sorted(done):
      raise SystemExit(f'expected {done} episodes per actor, read {dict(per_actor)}')


if __name__ == '__main__':
  main()
