"""step_fn/episode_fn values that are None for a while, or always."""

from __future__ import annotations

import numpy as np
from conftest import make_logger, open_reader

from envlogger.testing import catch_env


def _episodes(env, n):
  for _ in range(n):
    ts = env.reset()
    while not ts.last():
      ts = env.step(1)


def test_values_appear_after_episodes_of_none(backend, tmp_path):
  count = [0]

  def step_fn(ts, a, e):
    count[0] += 1
    return {'n': count[0]} if count[0] > 25 else None  # None for the first 2.5 episodes

  def episode_fn(ts, a, e):
    return ('late', count[0]) if count[0] > 35 and ts.last() else None

  env = make_logger(catch_env.Catch(), backend, tmp_path, step_fn=step_fn, episode_fn=episode_fn)
  _episodes(env, 5)
  env.close()
  with open_reader(env, backend, tmp_path) as r:
    assert len(r.episodes) == 5
    customs = [s.custom_data for s in r.steps]
    assert customs[:25] == [None] * 25
    assert [int(c['n']) for c in customs[25:]] == list(range(26, 51))
    meta = list(r.episode_metadata())
    assert meta[:3] == [None] * 3
    assert meta[3] == ('late', 40) and meta[4] == ('late', 50)
    assert isinstance(meta[3], tuple)


def test_values_that_are_always_none(backend, tmp_path):
  env = make_logger(catch_env.Catch(), backend, tmp_path, step_fn=lambda *a: None, episode_fn=lambda *a: None)
  _episodes(env, 3)
  env.close()
  with open_reader(env, backend, tmp_path) as r:
    assert len(r.episodes) == 3
    assert all(s.custom_data is None for s in r.steps)
    assert list(r.episode_metadata()) == [None] * 3


def test_scalar_and_array_values(backend, tmp_path):
  env = make_logger(
    catch_env.Catch(),
    backend,
    tmp_path,
    step_fn=lambda ts, a, e: np.arange(3, dtype=np.int16) * (0 if a is None else int(a)),
    episode_fn=lambda ts, a, e: 'caught' if ts.last() and ts.reward > 0 else None,
  )
  _episodes(env, 4)
  env.close()
  with open_reader(env, backend, tmp_path) as r:
    for s in r.steps:
      assert s.custom_data.dtype == np.int16
      expected = 0 if s.action is None else int(s.action)
      np.testing.assert_array_equal(s.custom_data, np.arange(3) * expected)
    assert set(r.episode_metadata()) <= {'caught', None}
