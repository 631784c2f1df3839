"""Standard TFDS loading of a fresh log, in processes that never import envlogger."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import run_python
from dm_env import specs

import envlogger
from envlogger.testing import catch_env, spec_env

pytestmark = pytest.mark.slow


def _write_nested(directory: str) -> envlogger.Reader:
  env = spec_env.SpecEnv(
    {'x': specs.Array((3,), np.float64), 'img': specs.Array((16, 16, 3), np.uint8)},  # img is zlib-encoded
    specs.DiscreteArray(4),
    episode_lengths=(3, 5),
    terminations=(True, False),
    seed=1,
  )
  with envlogger.EnvLogger(
    env,
    data_directory=directory,
    step_fn=lambda ts, a, e: {'note': 'hello', 'v': np.float64(1 / 3)},
    episode_fn=lambda ts, a, e: {'success': bool(ts.last())} if ts.last() else None,
    metadata={'who': 'test'},
  ) as logged:
    for _ in range(3):
      ts = logged.reset()
      while not ts.last():
        ts = logged.step(1)
  return envlogger.Reader(directory)


def test_tfds_load_reads_every_value(tmp_path, shared_python):
  d = str(tmp_path / 'logs')
  r = _write_nested(d)
  expected = []
  for ep in r.episodes:
    cols = ep.as_rlds()['steps']
    expected.append(
      {
        'x': cols['observation']['x'].tobytes().hex(),
        'img': cols['observation']['img'].tobytes().hex(),
        'action': cols['action'].tolist(),
        'reward': cols['reward'].tobytes().hex(),
        'is_terminal': cols['is_terminal'].tolist(),
        'is_last': cols['is_last'].tolist(),
        'v': cols['v'].tobytes().hex(),
        'id': ep.episode_id,
      }
    )
  code = f"""
import json, sys
import numpy as np
import tensorflow_datasets as tfds
expected = json.loads({json.dumps(expected)!r})
for how in ('load', 'builder'):
  if how == 'load':
    ds = tfds.load('envlogger', data_dir={d!r}, split='train')
  else:
    ds = tfds.builder_from_directory({d!r} + '/envlogger/1.0.0').as_dataset(split='train')
  got = list(tfds.as_numpy(ds))
  assert len(got) == len(expected), (len(got), len(expected))
  for ep, exp in zip(got, expected):
    step_list = list(ep['steps'])
    def stack(key, sub=None):
      return np.stack([s[key] if sub is None else s[key][sub] for s in step_list])
    steps = dict((k, stack(k)) for k in ('action', 'reward', 'is_terminal', 'is_last', 'v', 'note'))
    steps['observation'] = dict(x=stack('observation', 'x'), img=stack('observation', 'img'))
    assert ep['episode_id'].decode() == exp['id']
    assert steps['observation']['x'].dtype == np.float64
    assert steps['observation']['x'].tobytes().hex() == exp['x']
    assert steps['observation']['img'].dtype == np.uint8
    assert steps['observation']['img'].tobytes().hex() == exp['img']
    assert steps['action'].tolist() == exp['action']
    assert steps['reward'].tobytes().hex() == exp['reward']
    assert steps['is_terminal'].tolist() == exp['is_terminal']
    assert steps['is_last'].tolist() == exp['is_last']
    assert steps['v'].tobytes().hex() == exp['v']
    assert all(n == b'hello' for n in steps['note'])
assert 'envlogger' not in sys.modules
print('OK', len(expected))
"""
  proc = shared_python.run(code)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'OK 3' in proc.stdout


def test_logging_does_not_import_tensorflow(tmp_path):
  code = f"""
import sys
import numpy as np
import envlogger
from envlogger.testing import catch_env
with envlogger.EnvLogger(catch_env.Catch(), data_directory={str(tmp_path)!r}) as env:
  env.reset()
  for _ in range(30):
    env.step(np.random.randint(3))
r = envlogger.Reader({str(tmp_path)!r})
assert len(r.steps) > 0 and r.steps[-1] is not None
print('TF', 'tensorflow' in sys.modules, 'TFDS', 'tensorflow_datasets' in sys.modules)
"""
  proc = run_python(code)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'TF False TFDS False' in proc.stdout  # neither is imported to log or read


def test_reader_tf_dataset_view(tmp_path):
  d = str(tmp_path)
  with envlogger.EnvLogger(catch_env.Catch(seed=4), data_directory=d) as env:
    for _ in range(3):
      ts = env.reset()
      while not ts.last():
        ts = env.step(0)
  with envlogger.Reader(d) as r:
    ds = r.as_tf_dataset()
    import tensorflow_datasets as tfds  # noqa: PLC0415

    episodes = list(tfds.as_numpy(ds))
    assert len(episodes) == len(r.episodes) == 3
    for got, ep in zip(episodes, r.episodes):
      rewards = np.stack([s['reward'] for s in got['steps']])
      np.testing.assert_array_equal(rewards, ep.as_rlds()['steps']['reward'])


def test_tfds_load_after_a_crash_and_concurrent_writers(tmp_path, shared_python):
  """Writers killed or still racing each other: after `envlogger recover`,
  tfds.load sees exactly the episodes the Reader sees."""
  import os  # noqa: PLC0415
  import signal  # noqa: PLC0415
  import subprocess  # noqa: PLC0415
  import sys  # noqa: PLC0415

  child = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'children', 'log_until_killed.py')
  d = str(tmp_path / 'log')
  killed = subprocess.Popen([sys.executable, child, d, '0', 'forever'], stdout=subprocess.PIPE, text=True)
  writers = [
    subprocess.Popen([sys.executable, child, d, str(w), 'count'], stdout=subprocess.PIPE, text=True)
    for w in (1, 2, 3)
  ]
  for line in killed.stdout:
    if int(line.split()[1]) >= 30:
      break
  killed.send_signal(signal.SIGKILL)
  killed.wait()
  for w in writers:
    assert w.wait(timeout=300) == 0
  rec = subprocess.run([sys.executable, '-m', 'envlogger', 'recover', d], capture_output=True, text=True)
  assert rec.returncode == 0, rec.stderr
  with envlogger.Reader(d) as r:
    expected = sorted((e.episode_id, len(e)) for e in r.episodes)
  assert len(expected) >= 3 * 40 + 31
  code = f"""
import json
import tensorflow_datasets as tfds
ds = tfds.builder_from_directory({d + '/envlogger/1.0.0'!r}).as_dataset(split='train')
got = sorted((ep['episode_id'].numpy().decode(), int(ep['steps'].cardinality())) for ep in ds)
print(json.dumps(got))
"""
  proc = shared_python.run(code)
  assert proc.returncode == 0, proc.stderr[-3000:]
  got = [tuple(x) for x in json.loads(proc.stdout.strip().splitlines()[-1])]
  assert got == expected
