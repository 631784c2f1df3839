"""TFDS backend options, layout, appending runs, and the backend argument forms."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import envlogger
from envlogger.backends.tfds import TFDSBackendWriter
from envlogger.testing import catch_env


def _episodes(env, n, action=0):
  for _ in range(n):
    ts = env.reset()
    while not ts.last():
      ts = env.step(action)


def test_directory_created_and_layout(tmp_path):
  d = tmp_path / 'a' / 'b'
  with envlogger.EnvLogger(
    catch_env.Catch(),
    data_directory=str(d),
    dataset_name='my_catch',
    version='2.1.0',
    max_episodes_per_file=2,
  ) as env:
    _episodes(env, 5)
  ds_dir = d / 'my_catch' / '2.1.0'
  shards = sorted(p.name for p in ds_dir.iterdir() if '.tfrecord-' in p.name)
  assert shards == [f'my_catch-train.tfrecord-0000{i}' for i in range(3)]
  info = json.loads((ds_dir / 'dataset_info.json').read_text())
  assert [int(x) for x in info['splits'][0]['shardLengths']] == [2, 2, 1]
  log = json.loads((ds_dir / 'envlogger_log.json').read_text())
  assert log['format_version'] == 1 and log['package_version'] == envlogger.__version__
  with envlogger.Reader(str(d)) as r:
    assert len(r.episodes) == 5
  with envlogger.Reader(str(ds_dir)) as r:
    assert len(r.episodes) == 5


def test_append_keeps_every_run(tmp_path):
  d = str(tmp_path)
  with envlogger.EnvLogger(catch_env.Catch(seed=1), data_directory=d, metadata={'run': 1}) as env:
    _episodes(env, 2)
  with envlogger.EnvLogger(catch_env.Catch(seed=2), data_directory=d, metadata={'run': 2}) as env:
    _episodes(env, 3)
  with envlogger.Reader(d) as r:
    assert len(r.episodes) == 5
    runs = r.runs()
    assert [run['metadata'] for run in runs] == [{'run': 1}, {'run': 2}]
    assert r.metadata()['run'] == 1
    assert [e.run_id for e in r.episodes] == [runs[0]['run_id']] * 2 + [runs[1]['run_id']] * 3
  info = json.loads(Path(d, 'envlogger', '1.0.0', 'dataset_info.json').read_text())
  assert sum(int(x) for x in info['splits'][0]['shardLengths']) == 5


def test_append_with_different_step_data_fails(tmp_path):
  d = str(tmp_path)
  with envlogger.EnvLogger(catch_env.Catch(), data_directory=d, step_fn=lambda ts, a, e: 1.0) as env:
    _episodes(env, 1)
  env = envlogger.EnvLogger(catch_env.Catch(), data_directory=d, step_fn=lambda ts, a, e: 'text')
  with pytest.raises(envlogger.SpecError):
    env.reset()
  env.close()
  with envlogger.Reader(d) as r:
    assert len(r.episodes) == 1


def test_several_logs_need_a_name(tmp_path):
  d = str(tmp_path)
  for name in ('a', 'b'):
    with envlogger.EnvLogger(catch_env.Catch(), data_directory=d, dataset_name=name) as env:
      _episodes(env, 1)
  with pytest.raises(ValueError, match='several logs'):
    envlogger.Reader(d)
  with envlogger.Reader(d, dataset_name='b') as r:
    assert len(r.episodes) == 1


@pytest.mark.parametrize(
  'kwargs',
  [{'dataset_name': 'Bad-Name'}, {'version': '1'}, {'max_episodes_per_file': 0}, {'file_format': 'x'}],
)
def test_option_validation(tmp_path, kwargs):
  with pytest.raises(ValueError):
    envlogger.EnvLogger(catch_env.Catch(), data_directory=str(tmp_path), **kwargs)


def test_backend_forms(tmp_path):
  w = TFDSBackendWriter(str(tmp_path / 'inst'))
  with envlogger.EnvLogger(catch_env.Catch(), backend=w) as env:
    _episodes(env, 1)
  with envlogger.EnvLogger(
    catch_env.Catch(), data_directory=str(tmp_path / 'fac'), backend=TFDSBackendWriter, dataset_name='f'
  ) as env:
    _episodes(env, 1)
  with envlogger.EnvLogger(catch_env.Catch(), backend=envlogger.BackendType.IN_MEMORY) as env:
    _episodes(env, 1)
    mem = env.backend
  assert len(envlogger.Reader(str(tmp_path / 'inst')).episodes) == 1
  assert len(envlogger.Reader(str(tmp_path / 'fac'), dataset_name='f').episodes) == 1
  assert len(envlogger.Reader(backend=mem).episodes) == 1


def test_wrapper_is_transparent(tmp_path):
  raw = catch_env.Catch(seed=5)
  twin = catch_env.Catch(seed=5)
  with envlogger.EnvLogger(raw, data_directory=str(tmp_path)) as env:
    assert env.observation_spec() == twin.observation_spec()
    assert env.action_spec() == twin.action_spec()
    assert env.environment is raw
    assert env._rows == raw._rows  # attribute access goes to the wrapped env
    a, b = env.reset(), twin.reset()
    np.testing.assert_array_equal(a.observation, b.observation)
    for _ in range(20):
      a, b = env.step(2), twin.step(2)
      assert a.step_type == b.step_type and a.reward == b.reward
      np.testing.assert_array_equal(a.observation, b.observation)
  import pickle  # noqa: PLC0415

  with pytest.raises(TypeError, match='inside each worker'):
    pickle.dumps(env)


def test_flush_scheduler_publishes(tmp_path):
  d = str(tmp_path)
  env = envlogger.EnvLogger(
    catch_env.Catch(), data_directory=d, flush_scheduler=lambda data: data.timestep.last()
  )
  _episodes(env, 3)
  env.backend.flush()  # writes happen in the background: wait for them
  info = json.loads(Path(d, 'envlogger', '1.0.0', 'dataset_info.json').read_text())
  assert sum(int(x) for x in info['splits'][0]['shardLengths']) == 3
  env.close()


def test_reader_rebuilds_a_missing_index_and_ignores_a_torn_tail(tmp_path):
  d = str(tmp_path)
  with envlogger.EnvLogger(catch_env.Catch(seed=3), data_directory=d, max_episodes_per_file=4) as env:
    _episodes(env, 6)
  with envlogger.Reader(d) as r:
    expected = [ep.as_rlds()['steps']['observation'] for ep in r.episodes]
  ds_dir = Path(d, 'envlogger', '1.0.0')
  (ds_dir / 'envlogger_index' / 'envlogger-train.tfrecord-00001.jsonl').unlink()
  index0 = ds_dir / 'envlogger_index' / 'envlogger-train.tfrecord-00000.jsonl'
  index0.write_text(''.join(index0.read_text().splitlines(keepends=True)[:2]))  # lost index lines
  with open(ds_dir / 'envlogger-train.tfrecord-00001', 'ab') as f:
    f.write(b'\x10\x00\x00\x00\x00\x00\x00\x00partial')  # a frame cut by a crash
  with pytest.warns(UserWarning, match='1 problem'), envlogger.Reader(d) as r:
    assert len(r.problems) == 1 and 'tfrecord-00001: 15 bytes from offset' in r.problems[0]
    assert len(r.episodes) == 6
    assert list(r.episode_lengths()) == [10] * 6
    for ep, obs in zip(r.episodes, expected):
      np.testing.assert_array_equal(ep.as_rlds()['steps']['observation'], obs)
