"""Bad input: a clear error at the call that caused it, and nothing recorded is lost."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_logger, open_reader
from dm_env import specs

import envlogger
from envlogger.testing import catch_env, spec_env


def _two_good_episodes(env, action=0):
  for _ in range(2):
    ts = env.reset()
    while not ts.last():
      ts = env.step(action)


def _dict_env():
  return spec_env.SpecEnv(
    {'a': specs.Array((2,), np.float32), 'b': specs.Array((), np.int32)},
    specs.Array((2,), np.float32),
    episode_lengths=(3,),
  )


@pytest.mark.parametrize(
  'bad_action, message',
  [
    (np.zeros(3, np.float32), 'shape'),
    (np.zeros(2, np.complex64), 'cast'),
    (['x', 'y'], 'cast'),
    ('text', 'text'),
  ],
)
def test_bad_action_raises_at_step_and_keeps_data(backend, tmp_path, bad_action, message):
  env = make_logger(_dict_env(), backend, tmp_path)
  _two_good_episodes(env, np.zeros(2, np.float32))
  env.reset()
  env.step(np.zeros(2, np.float32))
  with pytest.raises(envlogger.SpecError, match=message) as err:
    env.step(bad_action)
  assert 'action' in str(err.value)
  env.step(np.zeros(2))  # the logger still works: float64 -> float32 is fine
  env.close()
  with open_reader(env, backend, tmp_path) as r:
    assert len(r.episodes) == 3
    assert [len(e) for e in r.episodes] == [4, 4, 3]


def test_float_into_int_spec_is_an_error(tmp_path):
  env = envlogger.EnvLogger(catch_env.Catch(), backend='in_memory')
  env.reset()
  with pytest.raises(envlogger.SpecError, match='unsafe cast'):
    env.step(1.5)
  with pytest.raises(envlogger.SpecError, match='unsafe cast'):
    env.step(np.array(1.0))


def test_integer_out_of_range_is_an_error():
  env = envlogger.EnvLogger(
    spec_env.SpecEnv(specs.Array((), np.float32), specs.Array((), np.uint8)), backend='in_memory'
  )
  env.reset()
  env.step(np.int64(200))  # fits: allowed
  with pytest.raises(envlogger.SpecError, match='does not fit|do not fit'):
    env.step(300)
  with pytest.raises(envlogger.SpecError, match='do not fit'):
    env.step(np.int64(-1))


@pytest.mark.parametrize(
  'dtype, actions',
  [
    (np.int32, [np.int64(7), np.asarray(-3, np.int16), np.uint8(255), np.int64(2**31 - 1), 5, np.int8(-128)]),
    (np.uint64, [np.uint64(2**64 - 1), np.asarray(9, np.int32), np.int64(0), 3]),
    (
      np.float16,
      [np.float64(0.1), np.asarray(1e-30), np.float32(3.25), 2.5, np.asarray(60001.0, np.float32)],
    ),
    (np.float64, [np.float32(0.1), np.float16(0.5), np.asarray(1e-30, np.float32), 1.5]),
  ],
)
def test_scalars_of_other_dtypes_are_stored_as_casts_of_them(tmp_path, dtype, actions):
  """Numpy scalars and 0-d arrays of another integer or float dtype than the
  spec's (np.argmax gives int64 for an int32 spec) are stored as casting them
  to the spec's dtype gives."""
  env = spec_env.SpecEnv(
    specs.Array((), np.float32), specs.Array((), dtype), episode_lengths=(len(actions) + 1,)
  )
  with envlogger.EnvLogger(env, data_directory=str(tmp_path / 'log')) as logger:
    logger.reset()
    for a in actions:
      logger.step(a)
  with envlogger.Reader(tmp_path / 'log') as r:
    stored = r.episodes[0].as_rlds()['steps']['action']
  assert stored.dtype == dtype
  expected = [np.asarray(a).astype(dtype) for a in actions]
  np.testing.assert_array_equal(stored[: len(actions)], expected)


@pytest.mark.parametrize('dtype', [np.float32, np.float16, np.float64])
def test_arrays_of_other_dtypes_are_stored_as_casts_of_them(tmp_path, dtype):
  """Float leaves given arrays of another numeric dtype store what casting them
  gives, and keep no reference to the caller's arrays."""
  actions = [np.arange(3, dtype=np.float64) / 3, np.array([1, -2, 3]), np.array([True, False, True])]
  actions += [np.array([0.5, 1e-8, 6e4], np.float32), np.array([7, 8, 9], np.uint8)]
  originals = [a.copy() for a in actions]
  env = spec_env.SpecEnv(
    specs.Array((), np.float32), specs.Array((3,), dtype), episode_lengths=(len(actions) + 1,)
  )
  with envlogger.EnvLogger(env, data_directory=str(tmp_path / 'log')) as logger:
    logger.reset()
    for a in actions:
      logger.step(a)
      a[...] = 1  # the caller reuses its buffer
  with envlogger.Reader(tmp_path / 'log') as r:
    stored = r.episodes[0].as_rlds()['steps']['action']
  assert stored.dtype == dtype
  np.testing.assert_array_equal(stored[: len(actions)], [o.astype(dtype) for o in originals])


class _BadObsEnv(spec_env.SpecEnv):
  """Returns an observation with a missing key on the third step."""

  def step(self, action):
    ts = super().step(action)
    if self._t == 2:
      ts = ts._replace(observation={'a': ts.observation['a'], 'c': 1})
    return ts


def test_observation_with_wrong_keys(backend, tmp_path):
  raw = _BadObsEnv(
    {'a': specs.Array((2,), np.float32), 'b': specs.Array((), np.int32)},
    specs.Array((2,), np.float32),
    episode_lengths=(5,),
  )
  env = make_logger(raw, backend, tmp_path)
  env.reset()
  env.step(np.zeros(2))
  with pytest.raises(envlogger.SpecError, match=r"missing keys \['b'\], unexpected keys \['c'\]"):
    env.step(np.zeros(2))
  env.close()


def test_step_fn_structure_change(backend, tmp_path):
  calls = []

  def step_fn(ts, action, e):
    calls.append(1)
    return {'x': 1.0} if len(calls) < 3 else {'x': 1.0, 'y': 2}

  env = make_logger(catch_env.Catch(), backend, tmp_path, step_fn=step_fn)
  env.reset()
  env.step(0)
  with pytest.raises(envlogger.SpecError, match=r"unexpected keys \['y'\]"):
    env.step(0)
  env.close()


def test_step_fn_shape_change_names_the_field(tmp_path):
  n = [0]

  def step_fn(ts, action, e):
    n[0] += 1
    return {'vec': np.zeros(n[0])}

  env = envlogger.EnvLogger(catch_env.Catch(), data_directory=str(tmp_path), step_fn=step_fn)
  env.reset()
  with pytest.raises(envlogger.SpecError, match=r'step_fn value/vec: expected shape \(1,\), got \(2,\)'):
    env.step(0)
  env.close()


def test_step_fn_reserved_key(tmp_path):
  env = envlogger.EnvLogger(
    catch_env.Catch(), data_directory=str(tmp_path), step_fn=lambda ts, a, e: {'reward': 1.0}
  )
  with pytest.raises(envlogger.SpecError, match='clash'):
    env.reset()
  env.close()


@pytest.mark.parametrize('metadata', [{'f': object()}, {1: 'a'}, 'not a dict', {'f': {1, 2}}])
def test_metadata_that_cannot_be_stored(tmp_path, metadata):
  with pytest.raises(envlogger.MetadataError):
    envlogger.EnvLogger(catch_env.Catch(), data_directory=str(tmp_path), metadata=metadata)


def test_unstorable_episode_metadata(tmp_path):
  env = envlogger.EnvLogger(
    catch_env.Catch(), data_directory=str(tmp_path), episode_fn=lambda ts, a, e: {'o': object()}
  )
  with pytest.raises(envlogger.SpecError, match='cannot be stored'):
    env.reset()
  env.close()


def test_reader_on_directory_without_log(tmp_path):
  with pytest.raises(envlogger.NoLogError, match='holds no envlogger log'):
    envlogger.Reader(str(tmp_path))
  with pytest.raises(envlogger.NoLogError, match='does not exist'):
    envlogger.Reader(str(tmp_path / 'missing'))


def test_step_after_close(backend, tmp_path):
  env = make_logger(catch_env.Catch(), backend, tmp_path)
  env.reset()
  env.close()
  env.close()  # idempotent
  with pytest.raises(RuntimeError, match='after close'):
    env.step(0)
  with pytest.raises(RuntimeError, match='after close'):
    env.reset()


def test_riegeli_options_point_to_tfds(tmp_path):
  with pytest.raises(ValueError, match='TFDS backend'):
    envlogger.EnvLogger(catch_env.Catch(), data_directory=str(tmp_path), writer_options='brotli:6')
  with pytest.raises(ValueError, match='TFDS backend'):
    envlogger.EnvLogger(
      catch_env.Catch(), data_directory=str(tmp_path), backend=envlogger.BackendType.RIEGELI
    )


def test_appending_with_different_specs_fails_before_writing(tmp_path):
  d = str(tmp_path)
  with envlogger.EnvLogger(catch_env.Catch(), data_directory=d) as env:
    _two_good_episodes(env)
  with pytest.raises(envlogger.SpecError, match='observation_spec'):
    envlogger.EnvLogger(catch_env.Catch(rows=6), data_directory=d)
  with envlogger.Reader(d) as r:
    assert len(r.episodes) == 2
    assert len(r.runs()) == 1


def test_episode_memory_cap(backend, tmp_path):
  # Catch(rows=20): 400 bytes at reset, then 424 per step; 3000 bytes are crossed at step 7.
  env = make_logger(catch_env.Catch(rows=20), backend, tmp_path, max_episode_bytes=3000)
  env.reset()
  with pytest.raises(envlogger.EpisodeTooLongError, match='cut-short'):
    for _ in range(15):
      env.step(1)
  for _ in range(3):
    env.step(1)  # the rest of this episode is not recorded, without new errors
  env.reset()  # the next episode is recorded again
  env.step(1)
  env.close()
  with open_reader(env, backend, tmp_path) as r:
    assert [len(e) for e in r.episodes] == [8, 2]  # steps 0..7, then 0..1
    assert all(e.cut_short for e in r.episodes)
