"""tfds_builder: logs of several runs assembled into one RLDS dataset (real TFDS builds)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import log_catch_actor, steps_by_episode

import envlogger
from envlogger.testing import catch_env

pytestmark = pytest.mark.slow
tfds_builder = pytest.importorskip('tfds_builder', reason='tfds_builder ships with this repository')


_KEYS = ('observation', 'action', 'reward', 'row', 'is_terminal')


def _expected_steps(sources) -> dict[str, dict]:
  return steps_by_episode(sources, _KEYS, episode_keys=('ret',))


def _load_in_fresh_process(shared_python, data_dir, name, split):
  """What tfds.load gives, in a process that imports neither envlogger nor tfds_builder."""
  code = f"""
import json, sys
import tensorflow as tf
import tensorflow_datasets as tfds
out = {{}}
for ep in tfds.load({name!r}, data_dir={str(data_dir)!r}, split={split!r}):
  s = tf.nest.map_structure(lambda t: t.numpy(), next(iter(ep['steps'].batch(100000))))
  ep = tf.nest.map_structure(lambda t: t.numpy(), {{k: v for k, v in ep.items() if k != 'steps'}})
  out[ep['episode_id'].decode()] = {{
    'observation': s['observation'].tolist(), 'action': s['action'].tolist(), 'reward': s['reward'].tolist(),
    'row': s['row'].tolist(), 'is_terminal': s['is_terminal'].tolist(), 'ret': float(ep['ret']),
  }}
assert 'envlogger' not in sys.modules and 'tfds_builder' not in sys.modules
print(json.dumps(out))
"""
  proc = shared_python.run(code)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return json.loads(proc.stdout.strip().splitlines()[-1])


def test_build_from_several_runs_by_fraction(tmp_path, shared_python):
  sources = [tmp_path / 'logs' / f'actor{k}' for k in range(3)]
  for k, d in enumerate(sources):
    log_catch_actor(d, seed=k)
  config = tfds_builder.BuildConfig(
    name='catch_actors',
    sources=[str(tmp_path / 'logs' / 'actor*')],
    splits={'train': 0.75, 'test': 0.25},
    description='Catch played by three actors.',
  )
  out = tfds_builder.build(config, str(tmp_path / 'out'))
  expected = _expected_steps(sources)
  train = _load_in_fresh_process(shared_python, tmp_path / 'out', 'catch_actors', 'train')
  test = _load_in_fresh_process(shared_python, tmp_path / 'out', 'catch_actors', 'test')
  assert not set(train) & set(test)
  assert {**train, **test} == expected  # every step of every episode, once
  assert (len(train), len(test)) == (27, 9)  # 36 episodes cut at exactly 0.75 / 0.25
  info = json.loads((tmp_path / 'out' / 'catch_actors' / '1.0.0' / 'dataset_info.json').read_text())
  assert 'Catch played by three actors.' in info['description'] and 'train (' in info['description']
  assert out.endswith('catch_actors/1.0.0')


def test_build_by_run_and_array_record_random_access(tmp_path):
  log_catch_actor(tmp_path / 'logs', seed=1, episodes=5)
  log_catch_actor(tmp_path / 'logs', seed=2, episodes=4)  # appended: a second run in the same log
  with envlogger.Reader(tmp_path / 'logs') as r:
    runs = [run['run_id'] for run in r.runs()]
  config = tfds_builder.BuildConfig(
    name='catch_runs',
    sources=[str(tmp_path / 'logs')],
    splits={'train': [runs[0]], 'test': [runs[1]]},
    split_by='run',
  )
  tfds_builder.build(config, str(tmp_path / 'out'), file_format='array_record')
  import tensorflow_datasets as tfds  # noqa: PLC0415

  builder = tfds.builder_from_directory(str(tmp_path / 'out' / 'catch_runs' / '1.0.0'))
  source = builder.as_data_source(split='test')
  assert len(source) == 4
  expected = _expected_steps([tmp_path / 'logs'])
  for i in (3, 0, 2):
    ep = source[i]
    eid = ep['episode_id'].decode()
    assert eid.startswith(runs[1])
    steps = ep['steps']  # a random-access sequence of step dicts
    np.testing.assert_array_equal(
      [steps[k]['observation'] for k in range(len(steps))], expected[eid]['observation']
    )
    assert [int(steps[k]['action']) for k in range(len(steps))] == expected[eid]['action']


def test_compact_logs_are_sources(tmp_path):
  """A log in the compact format (`envlogger convert --format array_record`) builds like any other."""
  from envlogger.convert import convert  # noqa: PLC0415

  log_catch_actor(tmp_path / 'log', seed=4, episodes=6)
  convert(tmp_path / 'log', tmp_path / 'compact', file_format='array_record')
  config = tfds_builder.BuildConfig(name='from_compact', sources=[str(tmp_path / 'compact')])
  out = tfds_builder.build(config, str(tmp_path / 'out'), file_format='array_record')
  import tensorflow_datasets as tfds  # noqa: PLC0415

  source = tfds.builder_from_directory(out).as_data_source(split='train')
  expected = _expected_steps([tmp_path / 'compact'])
  assert len(source) == len(expected) == 6
  for i in range(len(source)):
    ep = source[i]
    want = expected[ep['episode_id'].decode()]
    steps = ep['steps']
    np.testing.assert_array_equal([steps[k]['observation'] for k in range(len(steps))], want['observation'])
    assert [int(steps[k]['action']) for k in range(len(steps))] == want['action']
    assert float(ep['ret']) == want['ret']


def test_clear_errors_for_bad_sources(tmp_path):
  BuildConfig, SourceError = tfds_builder.BuildConfig, tfds_builder.SourceError
  with pytest.raises(ValueError, match='sources is empty'):
    BuildConfig(name='x', sources=[])
  with pytest.raises(SourceError, match='matches no directory'):
    tfds_builder.build(BuildConfig(name='x', sources=[str(tmp_path / 'nothing*')]), str(tmp_path / 'out'))
  log_catch_actor(tmp_path / 'a', seed=0, episodes=2)
  with envlogger.EnvLogger(catch_env.Catch(rows=6), data_directory=str(tmp_path / 'b')) as env:
    env.reset()
  with pytest.raises(SourceError, match='do not record the same specs') as err:
    tfds_builder.build(
      BuildConfig(name='x', sources=[str(tmp_path / 'a'), str(tmp_path / 'b')]), str(tmp_path / 'o')
    )
  assert 'observation_spec' in str(err.value)
  # Two episodes cannot fill three splits: a clear error before anything is written.
  with pytest.raises(SourceError, match=r"\['c'\] would get no episode \(a: 1, b: 1, c: 0"):
    tfds_builder.build(
      BuildConfig(name='z', sources=[str(tmp_path / 'a')], splits={'a': 0.4, 'b': 0.4, 'c': 0.2}),
      str(tmp_path / 'o'),
    )
  assert not (tmp_path / 'o' / 'z').exists()
  # A damaged source: fail by default, skipped with a report on request.
  log_catch_actor(tmp_path / 'c', seed=1, episodes=2)
  shard = next((tmp_path / 'c' / 'envlogger' / '1.0.0').glob('envlogger-train.tfrecord-*'))
  with open(shard, 'ab') as f:
    f.write(b'torn')
  sources = [str(tmp_path / 'a'), str(tmp_path / 'c')]
  with pytest.raises(SourceError, match='is damaged'):
    tfds_builder.build(BuildConfig(name='y', sources=sources), str(tmp_path / 'o'))
  tfds_builder.build(BuildConfig(name='y', sources=sources, on_damage='skip'), str(tmp_path / 'o'))
  import tensorflow_datasets as tfds  # noqa: PLC0415

  assert (
    tfds.builder_from_directory(str(tmp_path / 'o' / 'y' / '1.0.0')).info.splits['train'].num_examples == 2
  )


def test_images_as_png_and_shards_in_episodes(tmp_path):
  from dm_env import specs  # noqa: PLC0415

  from envlogger.testing import spec_env  # noqa: PLC0415

  env = spec_env.SpecEnv(
    {'frame': specs.Array((12, 10, 3), np.uint8), 'pos': specs.Array((2,), np.float32)},
    specs.DiscreteArray(3),
    episode_lengths=(4, 6),
    seed=3,
  )
  with envlogger.EnvLogger(env, data_directory=str(tmp_path / 'logs')) as logged:
    for _ in range(6):
      ts = logged.reset()
      while not ts.last():
        ts = logged.step(1)
  with envlogger.Reader(tmp_path / 'logs') as r:
    expected = {e.episode_id: e.as_rlds()['steps']['observation']['frame'] for e in r.episodes}
  config = tfds_builder.BuildConfig(
    name='frames', sources=[str(tmp_path / 'logs')], image_encoding='png', episodes_per_shard=2
  )
  tfds_builder.build(config, str(tmp_path / 'out'))
  import tensorflow_datasets as tfds  # noqa: PLC0415

  builder = tfds.builder_from_directory(str(tmp_path / 'out' / 'frames' / '1.0.0'))
  frame = builder.info.features['steps']['observation']['frame']
  assert isinstance(frame, tfds.features.Image) and frame.encoding_format == 'png'
  assert builder.info.splits['train'].num_shards == 3
  for ep in tfds.as_numpy(builder.as_dataset(split='train')):
    frames = np.stack([s['observation']['frame'] for s in ep['steps']])
    np.testing.assert_array_equal(frames, expected[ep['episode_id'].decode()])  # PNG is lossless


def test_build_with_apache_beam_direct_runner(tmp_path, shared_python):
  beam = pytest.importorskip('apache_beam', reason='the beam extra is not installed')
  sources = [tmp_path / 'logs' / f'actor{k}' for k in range(2)]
  for k, d in enumerate(sources):
    log_catch_actor(d, seed=k, episodes=6)
  config = tfds_builder.BuildConfig(
    name='catch_beam', sources=[str(tmp_path / 'logs' / 'actor*')], splits={'train': 0.5, 'test': 0.5}
  )
  options = beam.options.pipeline_options.PipelineOptions(
    flags=['--runner=DirectRunner', '--direct_num_workers=1']
  )
  tfds_builder.build(config, str(tmp_path / 'out'), beam_options=options)
  train = _load_in_fresh_process(shared_python, tmp_path / 'out', 'catch_beam', 'train')
  test = _load_in_fresh_process(shared_python, tmp_path / 'out', 'catch_beam', 'test')
  assert {**train, **test} == _expected_steps(sources) and len(train) + len(test) == 12


def test_riegeli_logs_of_the_original_are_sources(tmp_path):
  """A log of DeepMind's envlogger (Riegeli) and its conversion build into one dataset."""
  from envlogger13 import FIXTURES  # noqa: PLC0415

  from envlogger.convert import convert  # noqa: PLC0415

  riegeli = FIXTURES / 'catch_riegeli' / 'data'
  convert(riegeli, tmp_path / 'converted')
  config = tfds_builder.BuildConfig(name='catch_mixed', sources=[str(riegeli), str(tmp_path / 'converted')])
  out = tfds_builder.build(config, str(tmp_path / 'out'))
  import tensorflow_datasets as tfds  # noqa: PLC0415

  built = list(tfds.as_numpy(tfds.builder_from_directory(out).as_dataset(split='train')))
  assert len(built) == 10
  got = sorted(
    (tuple(int(s['action']) for s in ep['steps']), tuple(int(s['step_index']) for s in ep['steps']))
    for ep in built
  )
  with envlogger.Reader(riegeli) as r:
    want = [
      (tuple(s['action'].tolist()), tuple(s['step_index'].tolist()))
      for s in (ep.as_rlds()['steps'] for ep in r.episodes)
    ]
  assert got == sorted(want * 2)
