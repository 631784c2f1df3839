"""Conformance suite: every backend x every workload, compared with ground truth.

Each workload drives an env through EnvLogger (with resets mid-episode and a
close mid-episode, so cut-short episodes are covered), captures what the
logger saw outside it, then reads the log back through the public Reader and
compares every field of every step, random access, slices, negative indexes,
episode and dataset metadata, and specs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import tree
from conftest import (
  BACKENDS,
  Recorder,
  assert_step_equal,
  make_logger,
  metadata_equal,
  nest_equal,
  open_reader,
)
from dm_env import specs

import envlogger
from envlogger import specs as specs_lib
from envlogger.testing import catch_env, spec_env


@dataclasses.dataclass
class Workload:
  name: str
  make_env: Callable[[], Any]
  policy: Callable[[np.random.Generator, Any], Any]
  step_fn: Callable | None = None
  episode_fn: Callable | None = None
  metadata: dict | None = None
  # Script: a list of ('episode', n_steps or None for "until LAST") / ('cut', n).
  script: tuple = (('episode', None),) * 4 + (('cut', 2), ('episode', None), ('cut', 1))


def _catch_policy(rng, env):
  return int(rng.integers(3))


def _nested_env():
  obs = {
    'pixels': specs.BoundedArray((6, 5, 3), np.uint8, 0, 255, name='pixels'),
    'state': (specs.Array((3,), np.float64), specs.Array((), np.int32)),
    'text': specs.StringArray(()),
    'flags': specs.Array((2,), np.bool_),
    'empty': specs.Array((0, 2), np.float32),
  }
  action = {
    'move': specs.BoundedArray((2,), np.float32, -1.0, 1.0),
    'grip': specs.DiscreteArray(2, dtype=np.int32),
  }
  return spec_env.SpecEnv(
    obs,
    action,
    episode_lengths=(3, 1, 4, 6),
    terminations=(True, False, True),
    reward_spec=specs.Array((2,), np.float32),
    discount_spec=specs.BoundedArray((2,), np.float32, 0.0, 1.0),
    seed=3,
  )


def _nested_policy(rng, env):
  # float64 for a float32 spec and a Python int for int32: cast under same_kind.
  return {'move': rng.uniform(-1, 1, size=2), 'grip': int(rng.integers(2))}


def _nested_step_fn(ts, action, env):
  if ts.first():
    return None  # no step data at reset
  return {'score': float(np.sum(ts.reward)), 'tag': f'step-{int(ts.observation["state"][1])}'}


def _nested_episode_fn(ts, action, env):
  if ts.last():
    return {'final_reward': np.asarray(ts.reward), 'outcome': 'done', 'ids': (np.int64(7), b'\x00x')}
  return None


def _text_env():
  return spec_env.SpecEnv(
    specs.StringArray((2,), string_type=bytes),
    specs.StringArray((), name='command'),
    episode_lengths=(2, 3),
    terminations=(False, True),
    seed=5,
  )


def _text_policy(rng, env):
  return str(rng.choice(['go', 'stop', 'wait', 'ünïcode']))


def _scalar_step_fn(ts, action, env):
  return None if ts.mid() and int(np.frombuffer(ts.observation[0][:1] or b'\x00', np.uint8)[0]) % 2 else 1.25


def _tuple_env():
  return spec_env.SpecEnv(
    (specs.Array((2,), np.float16), specs.Array((), np.uint64), [specs.Array((), np.int8)]),
    specs.Array((), np.float64),
    episode_lengths=(1, 2, 5),
    seed=9,
  )


WORKLOADS = [
  Workload(
    'catch',
    lambda: catch_env.Catch(seed=2),
    _catch_policy,
    metadata={'agent': 'random', 'seed': 2, 'cfg': (1, 2.5, 'x'), 'arr': np.arange(3)},
  ),
  Workload(
    'nested',
    _nested_env,
    _nested_policy,
    step_fn=_nested_step_fn,
    episode_fn=_nested_episode_fn,
    metadata={'nested': {'a': [1, 2], 'b': None}},
  ),
  Workload(
    'text',
    _text_env,
    _text_policy,
    step_fn=_scalar_step_fn,
    episode_fn=lambda ts, a, e: 'ended' if ts.last() else None,
  ),
  Workload('tuple', _tuple_env, lambda rng, env: float(rng.standard_normal())),
]


def _drive(workload: Workload, backend: str, tmp_path):
  raw = workload.make_env()
  logger = make_logger(
    raw,
    backend,
    tmp_path,
    metadata=workload.metadata,
    step_fn=workload.step_fn,
    episode_fn=workload.episode_fn,
  )
  rec = Recorder(logger, workload.step_fn, workload.episode_fn, raw_env=raw)
  rng = np.random.default_rng(0)
  for _kind, n in workload.script:
    ts = rec.reset()
    count = 0
    while not ts.last() and (n is None or count < n):
      ts = rec.step(workload.policy(rng, raw))
      count += 1
  rec.close()
  return logger, rec.truth


@pytest.fixture(params=WORKLOADS, ids=lambda w: w.name)
def workload(request):
  return request.param


@pytest.fixture(params=(*BACKENDS, 'compact'))
def backend(request):
  """Every backend, and the compact format (the tfds log converted to ArrayRecord shards)."""
  return request.param


def test_round_trip(workload, backend, tmp_path):
  logger, truth = _drive(workload, backend, tmp_path)
  with open_reader(logger, backend, tmp_path) as r:
    assert len(r.episodes) == len(truth.episodes)
    assert len(r.steps) == len(truth.steps)
    for ep, exp_ep, cut in zip(r.episodes, truth.episodes, truth.cut_short):
      assert len(ep) == len(exp_ep)
      assert ep.cut_short == cut
      for actual, expected in zip(ep, exp_ep):
        assert_step_equal(actual, expected, r)
    # Global step sequence: forward, negative indexes, slices.
    flat = truth.steps
    for i in range(len(flat)):
      assert_step_equal(r.steps[i], flat[i], r)
    for i in (-1, -2, -len(flat)):
      assert_step_equal(r.steps[i], flat[i], r)
    sliced = r.steps[3:-2:2]
    assert len(sliced) == len(flat[3:-2:2])
    for actual, expected in zip(sliced, flat[3:-2:2]):
      assert_step_equal(actual, expected, r)
    window = list(r.steps[2 : len(flat) - 1])  # contiguous: iterated episode by episode
    assert len(window) == len(flat) - 3
    for actual, expected in zip(window, flat[2:-1]):
      assert_step_equal(actual, expected, r)
    with pytest.raises(IndexError):
      r.steps[len(flat)]
    with pytest.raises(IndexError):
      r.episodes[-len(truth.episodes) - 1]
    # Episode slices and negative indexes.
    assert [len(e) for e in r.episodes[::-1]] == [len(e) for e in truth.episodes[::-1]]
    last = r.episodes[-1]
    assert_step_equal(last[-1], truth.episodes[-1][-1], r)
    assert len(last[1:]) == len(truth.episodes[-1]) - 1


def test_random_access_in_any_order(workload, backend, tmp_path):
  logger, truth = _drive(workload, backend, tmp_path)
  flat = truth.steps
  with open_reader(logger, backend, tmp_path) as r:
    order = np.random.default_rng(1).permutation(len(flat))
    for i in order:
      assert_step_equal(r.steps[int(i)], flat[i], r)
    copy = r.copy()
    assert_step_equal(copy.steps[-1], flat[-1], copy)
    copy.close()


def test_values_handed_out_are_the_callers(workload, backend, tmp_path):
  """Writing into arrays the Reader returned never changes what it returns next."""
  logger, truth = _drive(workload, backend, tmp_path)

  def scribble(nest):
    for leaf in tree.flatten(nest):
      if isinstance(leaf, np.ndarray) and leaf.size and leaf.dtype != object:
        leaf[...] = 1 if leaf.dtype == bool else 99

  with open_reader(logger, backend, tmp_path) as r:
    for step in r.steps:  # sequential pass
      scribble((step.timestep.observation, step.action, step.custom_data))
    scribble(r.steps[len(truth.steps) // 2].timestep.observation)  # random access
    for ep in r.episodes:
      scribble(ep.as_rlds()['steps'])
    for actual, expected in zip(r.steps, truth.steps):
      assert_step_equal(actual, expected, r)


def test_metadata_and_specs(workload, backend, tmp_path):
  logger, truth = _drive(workload, backend, tmp_path)
  raw = workload.make_env()
  with open_reader(logger, backend, tmp_path) as r:
    for name in ('observation_spec', 'action_spec', 'reward_spec', 'discount_spec'):
      got, want = getattr(r, name)(), getattr(raw, name)()
      assert specs_lib.specs_equal(got, want), name
      assert type(got) is type(want)
    meta = r.metadata()
    env_specs = meta.pop('environment_specs')
    assert specs_lib.specs_equal(env_specs['observation_spec'], raw.observation_spec())
    metadata_equal(meta, workload.metadata or {})
    got_meta = list(r.episode_metadata())
    assert len(got_meta) == len(truth.metadata)
    for got, want in zip(got_meta, truth.metadata):
      metadata_equal(got, want)
    for ep, want in zip(r.episodes, truth.metadata):
      metadata_equal(ep.metadata, want)
    assert len(r.runs()) == 1
    ids = [ep.episode_id for ep in r.episodes]
    assert len(set(ids)) == len(ids)
    assert {ep.run_id for ep in r.episodes} == {r.runs()[0]['run_id']}


def test_rlds_columns(workload, backend, tmp_path):
  """as_rlds() follows the alignment contract (docs/alignment.md)."""
  logger, truth = _drive(workload, backend, tmp_path)
  with open_reader(logger, backend, tmp_path) as r:
    for ep, exp_ep, cut in zip(r.episodes, truth.episodes, truth.cut_short):
      steps = ep.as_rlds()['steps']
      n = len(exp_ep)
      np.testing.assert_array_equal(steps['is_first'], [True] + [False] * (n - 1))
      np.testing.assert_array_equal(steps['is_last'], [False] * (n - 1) + [True])
      terminal = (not cut) and bool(np.all(np.asarray(exp_ep[-1].timestep.discount) == 0))
      assert bool(steps['is_terminal'][-1]) == terminal
      assert not steps['is_terminal'][:-1].any()
      for k in range(n - 1):
        nxt = exp_ep[k + 1]
        nest_equal(_index(steps['reward'], k), nxt.timestep.reward, r.reward_spec(), 'reward')
        nest_equal(_index(steps['action'], k), nxt.action, r.action_spec(), 'action')
      zero_reward = _index(steps['reward'], n - 1)
      assert all(np.all(np.asarray(x) == 0) for x in _leaves(zero_reward))


def _index(nest, k):
  if isinstance(nest, dict):
    return {key: _index(v, k) for key, v in nest.items()}
  if isinstance(nest, (tuple, list)):
    return type(nest)(_index(v, k) for v in nest)
  return nest[k]


def _leaves(nest):
  import tree  # noqa: PLC0415

  return tree.flatten(nest)


def test_in_memory_and_tfds_agree(workload, tmp_path):
  """Both backends give identical StepData for the same run."""
  _, _ = _drive(workload, 'tfds', tmp_path)
  logger_mem, truth = _drive(workload, 'in_memory', tmp_path / 'mem')
  with envlogger.Reader(str(tmp_path / 'log')) as a, envlogger.Reader(backend=logger_mem.backend) as b:
    assert len(a.steps) == len(b.steps) == len(truth.steps)
    for x, y in zip(a.steps, b.steps):
      assert_step_equal(x, y, a)


def _concat_rlds(episodes: list[dict[str, Any]]) -> dict[str, Any]:
  return tree.map_structure(lambda *cols: np.concatenate(cols), *[e['steps'] for e in episodes])


def _assert_nest_identical(got, want) -> None:
  tree.assert_same_structure(got, want)
  for g, w in zip(tree.flatten(got), tree.flatten(want)):
    assert g.dtype == w.dtype and g.shape == w.shape
    np.testing.assert_array_equal(g, w)


def test_as_columns(workload, backend, tmp_path):
  """Reader.as_columns() holds what the episodes' as_rlds() hold, concatenated, for any selection."""
  logger, truth = _drive(workload, backend, tmp_path)
  with open_reader(logger, backend, tmp_path) as r:
    n = len(r.episodes)
    everything = [r.episodes[i].as_rlds() for i in range(n)]
    for selection in (None, slice(1, None, 2), [n - 1, 0, 0, -2], np.arange(n)[::-1]):
      idx = np.arange(n) if selection is None else np.arange(n)[selection]
      want = [everything[i] for i in idx]
      got = r.as_columns(selection)
      _assert_nest_identical(got['steps'], _concat_rlds(want))
      assert got['episode_lengths'].tolist() == [len(e['steps']['is_first']) for e in want]
      for key in ('episode_id', 'run_id'):
        assert got[key] == [e[key] for e in want]
      for key in ('cut_short', 'invalid'):
        np.testing.assert_array_equal(got[key], [e[key] for e in want])
      for g, w in zip(got['episode_metadata'], [e['episode_metadata'] for e in want], strict=True):
        metadata_equal(g, w)
    # No episode: every field, empty, with the dtypes and shapes of a step.
    empty = r.as_columns([])
    assert empty['episode_lengths'].shape == (0,) and empty['episode_id'] == []
    tree.assert_same_structure(empty['steps'], everything[0]['steps'])
    for g, w in zip(tree.flatten(empty['steps']), tree.flatten(everything[0]['steps'])):
      assert g.shape == (0, *w.shape[1:]) and g.dtype == w.dtype
    # The arrays are the caller's: writing into them changes nothing read later.
    for leaf in tree.flatten(r.as_columns()['steps']):
      if leaf.size and leaf.dtype != object:
        leaf[...] = 1 if leaf.dtype == bool else 99
    _assert_nest_identical(r.as_columns()['steps'], _concat_rlds(everything))
    for bad in ([n], [-n - 1]):
      with pytest.raises(IndexError, match='out of range'):
        r.as_columns(bad)
    with pytest.raises(TypeError):
      r.as_columns([0.5])
