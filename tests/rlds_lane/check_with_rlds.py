"""rlds lane, step 2 (rlds environment): check an envlogger log with the real `rlds` library.

Usage: python tests/rlds_lane/check_with_rlds.py OUT_DIR

OUT_DIR is what write_log.py wrote: the TFDS dataset and expected.json. This
script runs in a separate environment (tensorflow-cpu 2.15.1, rlds 0.1.8,
tensorflow-datasets 4.9.4; see .ci/rlds_lane.sh) and does NOT import
envlogger: it reads the dataset as any RLDS user would, with
`tfds.builder_from_directory(...).as_dataset(...)`, and computes with
`rlds.transformations` (episode_length, sum_dataset, sum_nested_steps, batch).
Every check is compared with expected.json (counts exactly, floats to 1e-6).
Prints one line per episode and a summary; exits 1 on any mismatch.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import sys
import traceback

import numpy as np
import rlds
import tensorflow as tf
import tensorflow_datasets as tfds

TOL = 1e-6


class Checks:
  """Collects named checks; a failure is recorded, not raised."""

  def __init__(self):
    self.n = 0
    self.failures: list[str] = []

  def eq(self, what: str, got, want) -> bool:
    self.n += 1
    if got != want:
      self.failures.append(f'{what}: got {got!r}, expected {want!r}')
      return False
    return True

  def close(self, what: str, got: float, want: float) -> bool:
    self.n += 1
    if not abs(float(got) - float(want)) <= TOL:
      self.failures.append(f'{what}: got {float(got)!r}, expected {float(want)!r} (tol {TOL})')
      return False
    return True

  def true(self, what: str, ok: bool, detail: str = '') -> bool:
    self.n += 1
    if not ok:
      self.failures.append(f'{what}: {detail or "false"}')
    return bool(ok)


def _step_sums(weights: tf.Tensor):
  """data_to_sum for rlds.transformations.sum_dataset: per-step values to add up."""

  def data_to_sum(step):
    obs = tf.cast(step['observation'], tf.float64)
    return {
      'reward': tf.cast(step['reward'], tf.float64),
      'discount': tf.cast(step['discount'], tf.float64),
      'score': tf.cast(step['score'], tf.float64),
      'observation_sum': tf.reduce_sum(obs),
      'observation_checksum': tf.reduce_sum(obs * weights),
      'num_first': tf.cast(step['is_first'], tf.int64),
      'num_last': tf.cast(step['is_last'], tf.int64),
      'num_terminal': tf.cast(step['is_terminal'], tf.int64),
    }

  return data_to_sum


def check_episode(c: Checks, episode, want: dict, weights: tf.Tensor) -> str:
  """Checks one RLDS episode (a dict with a nested `steps` dataset)."""
  eid = want['episode_id']
  steps = episode[rlds.STEPS]

  # Length: rlds.transformations.episode_length.
  length = int(rlds.transformations.episode_length(steps))
  c.eq(f'{eid} episode_length', length, want['length'])

  # Sums over steps: rlds.transformations.sum_dataset (tf.vectorized_map inside).
  sums = rlds.transformations.sum_dataset(steps, _step_sums(weights))
  sums = {k: v.numpy() for k, v in sums.items()}
  for key in ('reward', 'discount', 'score', 'observation_sum', 'observation_checksum'):
    want_key = key if key.startswith('observation') else f'{key}_sum'
    c.close(f'{eid} sum_dataset[{key}]', sums[key], want[want_key])
  c.eq(f'{eid} number of is_first steps', int(sums['num_first']), want['num_first'])
  c.eq(f'{eid} number of is_last steps', int(sums['num_last']), want['num_last'])
  c.eq(f'{eid} number of is_terminal steps', int(sums['num_terminal']), int(want['is_terminal']))

  # Top-level episode fields.
  c.eq(f'{eid} cut_short', bool(episode['cut_short'].numpy()), want['cut_short'])
  c.eq(f'{eid} calls (episode_fn field)', int(episode['calls'].numpy()), want['calls'])

  # Transitions: rlds.transformations.batch(size=2, shift=1) pairs step k with step k+1.
  transitions = list(
    rlds.transformations.batch(steps, size=2, shift=1, drop_remainder=True).as_numpy_iterator()
  )
  c.eq(f'{eid} number of transitions (batch size=2 shift=1)', len(transitions), want['num_transitions'])
  n = len(transitions)
  for k, t in enumerate(transitions):
    where = f'{eid} transition {k}'
    if not c.eq(f'{where} shape', t['reward'].shape, (2,)):
      continue
    if k < len(want['actions']):
      c.eq(f'{where} action', int(t['action'][0]), want['actions'][k])
      c.close(f'{where} reward', t['reward'][0], want['rewards'][k])
    c.eq(f'{where} is_first', [bool(x) for x in t['is_first']], [k == 0, False])
    c.eq(f'{where} is_last', [bool(x) for x in t['is_last']], [False, k == n - 1])
    if k + 1 < n:
      c.true(
        f'{where} -> {k + 1} observation continuity',
        np.array_equal(t['observation'][1], transitions[k + 1]['observation'][0]),
        'second observation of a transition differs from the first of the next',
      )
  if n:
    last = transitions[-1]
    c.eq(f'{eid} final is_terminal', bool(last['is_terminal'][1]), want['is_terminal'])
    c.eq(f'{eid} final action', int(last['action'][1]), want['actions'][-1])
    c.close(f'{eid} final reward', last['reward'][1], want['rewards'][-1])
    c.close(
      f'{eid} sum of transition rewards + final',
      float(sum(t['reward'][0] for t in transitions) + last['reward'][1]),
      want['reward_sum'],
    )
  return (
    f'  {eid}: length {length}, reward sum {sums["reward"]:+.1f}, score sum {sums["score"]:.6f}, '
    f'{n} transitions, cut_short {bool(episode["cut_short"].numpy())}'
  )


def run(out_dir: str) -> Checks:
  c = Checks()
  with open(os.path.join(out_dir, 'expected.json')) as f:
    exp = json.load(f)
  dataset_dir = os.path.join(out_dir, exp['dataset_dir'])
  written = exp['written_with']
  print(
    f'check_with_rlds: rlds {importlib.metadata.version("rlds")}, tensorflow {tf.__version__}, '
    f'tfds {tfds.__version__}, numpy {np.__version__}; dataset written by envlogger '
    f'{written["envlogger"]} with tfds {written["tensorflow-datasets"]}, numpy {written["numpy"]}'
  )
  weights = tf.constant(exp['weights'], dtype=tf.float64)

  builder = tfds.builder_from_directory(dataset_dir)
  split = builder.info.splits[exp['split']]
  c.eq('split num_examples', int(split.num_examples), exp['num_episodes'])
  c.eq('split num_shards', int(split.num_shards), exp['num_shards'])
  c.true('steps is a nested dataset', isinstance(builder.info.features[rlds.STEPS], tfds.features.Dataset))

  ds = builder.as_dataset(split=exp['split'], shuffle_files=False)
  by_id = {e['episode_id']: e for e in exp['episodes']}
  seen = []
  for episode in ds:
    eid = episode['episode_id'].numpy().decode()
    seen.append(eid)
    if not c.true(f'episode {eid!r} expected', eid in by_id, 'not in expected.json'):
      continue
    print(check_episode(c, episode, by_id[eid], weights))
  c.eq('episode ids (in order)', seen, [e['episode_id'] for e in exp['episodes']])

  # Whole dataset: rlds.transformations.sum_nested_steps over every episode's steps.
  totals = rlds.transformations.sum_nested_steps(
    ds, lambda s: {'reward': s['reward'], 'steps': tf.ones_like(s['reward'], dtype=tf.int64)}
  )
  c.eq('sum_nested_steps: number of steps', int(totals['steps'].numpy()), exp['num_steps'])
  c.close(
    'sum_nested_steps: reward',
    float(totals['reward'].numpy()),
    sum(e['reward_sum'] for e in exp['episodes']),
  )
  if 'built' in exp:
    check_built(c, out_dir, exp['built'])
  return c


def check_built(c: Checks, out_dir: str, built: dict) -> None:
  """The dataset tfds_builder assembled from the log: every episode once, across its splits."""
  builder = tfds.builder_from_directory(os.path.join(out_dir, built['dataset_dir']))
  seen = {}
  for split in builder.info.splits:
    for episode in builder.as_dataset(split=split, shuffle_files=False):
      steps = episode[rlds.STEPS]
      seen[episode['episode_id'].numpy().decode()] = {
        'length': int(rlds.transformations.episode_length(steps).numpy()),
        'reward_sum': float(rlds.transformations.sum_dataset(steps, lambda s: s[rlds.REWARD]).numpy()),
      }
  c.eq('built dataset: episode ids', sorted(seen), sorted(built['episodes']))
  for eid, want in built['episodes'].items():
    got = seen.get(eid, {})
    c.eq(f'built {eid}: length', got.get('length'), want['length'])
    c.close(f'built {eid}: reward sum', got.get('reward_sum', float('nan')), want['reward_sum'])
  print(
    f'check_with_rlds: built dataset {built["dataset_dir"]}: {len(seen)} episodes in {len(builder.info.splits)} splits'
  )


def main(argv: list[str]) -> int:
  if len(argv) != 2:
    print(f'usage: {argv[0]} OUT_DIR', file=sys.stderr)
    return 2
  try:
    c = run(argv[1])
  except Exception:  # noqa: BLE001 (report what broke, e.g. TFDS 4.9.4 failing on newer metadata)
    traceback.print_exc()
    print('check_with_rlds: ERROR (see the traceback above)')
    return 1
  for failure in c.failures:
    print(f'  MISMATCH {failure}')
  print(f'check_with_rlds: {c.n} checks, {len(c.failures)} failed')
  return 1 if c.failures else 0


if __name__ == '__main__':
  code = main(sys.argv)
  sys.stdout.flush()
  sys.stderr.flush()
  # TF 2.15 prints "Exception ignored in: AtomicFunction.__del__" noise while the
  # interpreter tears down; nothing is left to clean up, so leave at once.
  os._exit(code)
