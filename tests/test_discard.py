"""Dropping a failed rollout, and marking an episode invalid, on every backend."""

from __future__ import annotations

import pytest
from conftest import make_logger, open_reader

from envlogger.testing import catch_env


def _play(env, steps=None):
  """Plays to the end of an episode, or `steps` steps into it."""
  ts = env.reset()
  n = 1
  while not ts.last() and (steps is None or n < steps):
    ts = env.step(1)
    n += 1
  return n


def test_discard_drops_the_episode_in_flight_only(backend, tmp_path):
  env = make_logger(catch_env.Catch(seed=3), backend, tmp_path)
  kept_before = _play(env)
  _play(env, steps=4)
  assert env.discard_episode() == 4
  ts = env.step(1)  # the rest of the discarded episode is not recorded
  while not ts.last():
    ts = env.step(1)
  assert env.discard_episode() == 0  # nothing in flight after LAST
  kept_after = _play(env)
  env.close()
  with open_reader(env, backend, tmp_path) as r:
    assert [len(e) for e in r.episodes] == [kept_before, kept_after]
    assert not any(e.cut_short or e.invalid for e in r.episodes)
    assert r.episodes[1][0].timestep.first() and r.episodes[1][-1].timestep.last()


def test_mark_invalid_is_stored_with_the_episode(backend, tmp_path):
  env = make_logger(catch_env.Catch(seed=4), backend, tmp_path)
  _play(env)
  env.reset()
  env.step(1)
  assert env.mark_episode_invalid()
  ts = env.step(1)
  while not ts.last():
    ts = env.step(1)
  assert not env.mark_episode_invalid()  # no episode in flight
  _play(env)
  env.close()
  with open_reader(env, backend, tmp_path) as r:
    assert [e.invalid for e in r.episodes] == [False, True, False]
    assert r.episodes[1].as_rlds()['invalid'] is True
    assert len(r.episodes[1]) == 10  # recorded in full


def test_discard_after_close_is_an_error(backend, tmp_path):
  env = make_logger(catch_env.Catch(), backend, tmp_path)
  env.close()
  with pytest.raises(RuntimeError, match='closed'):
    env.discard_episode()
