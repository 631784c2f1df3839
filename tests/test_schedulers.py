"""Schedulers: episode schedulers keep whole episodes, step schedulers thin them."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import Recorder, make_logger, nest_equal, open_reader

import envlogger
from envlogger import schedulers
from envlogger.testing import catch_env


def _run(env, episodes):
  rec = Recorder(env)
  for _ in range(episodes):
    ts = rec.reset()
    while not ts.last():
      ts = rec.step(int(np.random.default_rng(len(rec.truth.steps)).integers(3)))
  rec.close()
  return rec.truth


@pytest.mark.parametrize(
  'scheduler, kept',
  [
    (lambda: schedulers.NEpisodeScheduler(3), [0, 3, 6, 9]),
    (lambda: schedulers.ListEpisodeScheduler([1, 4, 5]), [1, 4, 5]),
  ],
)
def test_episode_schedulers(backend, tmp_path, scheduler, kept):
  env = make_logger(catch_env.Catch(seed=0), backend, tmp_path, scheduler=scheduler())
  truth = _run(env, 10)
  with open_reader(env, backend, tmp_path) as r:
    assert len(r.episodes) == len(kept)
    for ep, idx in zip(r.episodes, kept):
      assert len(ep) == len(truth.episodes[idx])
      for a, e in zip(ep, truth.episodes[idx]):
        nest_equal(a.timestep.observation, e.timestep.observation, r.observation_spec(), 'obs')


def test_bernoulli_episode_scheduler_is_all_or_nothing(backend, tmp_path):
  env = make_logger(
    catch_env.Catch(seed=0), backend, tmp_path, scheduler=schedulers.BernoulliEpisodeScheduler(0.5, seed=3)
  )
  truth = _run(env, 20)
  with open_reader(env, backend, tmp_path) as r:
    assert 0 < len(r.episodes) < 20
    assert all(len(ep) == 10 for ep in r.episodes)
    assert len(truth.episodes) == 20


def test_step_scheduler_thins_and_keeps_alignment(backend, tmp_path):
  env = make_logger(catch_env.Catch(seed=0), backend, tmp_path, scheduler=schedulers.NStepScheduler(3))
  truth = _run(env, 3)
  with open_reader(env, backend, tmp_path) as r:
    assert len(r.episodes) == 3
    for ep, exp in zip(r.episodes, truth.episodes):
      kept = [0, 3, 6, 9]  # every 3rd step; the last step (9) is always kept
      assert len(ep) == len(kept)
      steps = ep.as_rlds()['steps']
      for j, t in enumerate(kept):
        nest_equal(ep[j].timestep.observation, exp[t].timestep.observation, r.observation_spec(), 'obs')
        if t + 1 < len(exp):
          # RLDS step j: the action taken at observation t and the reward that followed.
          assert steps['action'][j] == exp[t + 1].action
          assert steps['reward'][j] == exp[t + 1].timestep.reward
      assert ep[-1].timestep.last() and steps['is_terminal'][-1]


def test_bernoulli_step_scheduler_keeps_first_and_last(tmp_path):
  env = envlogger.EnvLogger(
    catch_env.Catch(seed=0), backend='in_memory', scheduler=schedulers.BernoulliStepScheduler(0.0)
  )
  _run(env, 2)
  with envlogger.Reader(backend=env.backend) as r:
    assert [len(e) for e in r.episodes] == [2, 2]
    assert r.episodes[0][0].timestep.first() and r.episodes[0][1].timestep.last()


def test_thinned_cut_short_episode_keeps_last_seen_step(tmp_path):
  env = envlogger.EnvLogger(
    catch_env.Catch(seed=0), backend='in_memory', scheduler=schedulers.NStepScheduler(4)
  )
  rec = Recorder(env)
  rec.reset()
  for _ in range(6):
    rec.step(1)
  rec.close()
  with envlogger.Reader(backend=env.backend) as r:
    (ep,) = r.episodes
    assert ep.cut_short
    assert len(ep) == 3  # steps 0, 4 and the last seen step (6)
    nest_equal(
      ep[-1].timestep.observation, rec.truth.episodes[0][6].timestep.observation, r.observation_spec(), 'o'
    )


def test_scheduler_argument_validation():
  with pytest.raises(ValueError):
    schedulers.NStepScheduler(0)
  with pytest.raises(ValueError):
    schedulers.BernoulliStepScheduler(1.5)
  with pytest.raises(ValueError):
    schedulers.NEpisodeScheduler(-1)
