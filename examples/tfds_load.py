"""Load a log with standard TFDS and build a tf.data pipeline of transitions.

Needs TensorFlow (`pip install 'envlogger-rlds[tf]'`). Does not import envlogger:
any RLDS dataset in TFDS format works.

  python examples/random_agent_catch.py --data_directory /tmp/catch
  python examples/tfds_load.py --data_dir /tmp/catch
"""

from __future__ import annotations

import argparse

import tensorflow as tf
import tensorflow_datasets as tfds


def transitions(episode):
  """(o, a, r, discount, o') for each step but the last, from one RLDS episode."""
  steps = episode['steps']
  pairs = tf.data.Dataset.zip((steps, steps.skip(1)))
  return pairs.map(
    lambda s, nxt: {
      'observation': s['observation'],
      'action': s['action'],
      'reward': s['reward'],
      'discount': s['discount'],
      'next_observation': nxt['observation'],
    }
  )


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument('--data_dir', required=True)
  parser.add_argument('--name', default='envlogger')
  parser.add_argument('--batch_size', type=int, default=32)
  args = parser.parse_args()

  episodes = tfds.load(args.name, data_dir=args.data_dir, split='train')
  returns = episodes.map(
    lambda ep: ep['steps'].reduce(
      tf.constant(0.0, tf.float64), lambda acc, s: acc + tf.cast(s['reward'], tf.float64)
    )
  )
  print('episode returns:', [round(float(r), 3) for r in returns.as_numpy_iterator()])

  batches = episodes.flat_map(transitions).shuffle(1000, seed=0).batch(args.batch_size)
  for batch in batches.take(1):
    print({k: (v.dtype.name, tuple(v.shape)) for k, v in batch.items()})
  n = sum(int(tf.shape(b['reward'])[0]) for b in batches)
  print(f'{n} transitions in batches of {args.batch_size}')


if __name__ == '__main__':
  main()
