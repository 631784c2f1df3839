"""Property-based round trips: random specs (nested dicts, every dtype, shapes
with zero-size dimensions, strings) logged to disk and read back exactly."""

from __future__ import annotations

import shutil
import tempfile

import numpy as np
from conftest import Recorder, assert_step_equal
from dm_env import specs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import envlogger
from envlogger.testing import spec_env

DTYPES = [np.float16, np.float32, np.float64, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16,
          np.uint32, np.uint64, np.bool_]  # fmt: skip
names = st.text(alphabet='abcdefghij_', min_size=1, max_size=6).filter(lambda s: not s.startswith('_'))
shapes = st.lists(st.integers(0, 4), min_size=0, max_size=3).map(tuple)
leaf_specs = st.one_of(
  st.builds(lambda s, d: specs.Array(s, d), shapes, st.sampled_from(DTYPES)),
  st.builds(lambda s, t: specs.StringArray(s, string_type=t), shapes.filter(lambda s: np.prod(s) <= 4),
            st.sampled_from([str, bytes])),
  st.builds(lambda n: specs.DiscreteArray(n), st.integers(1, 300)),
)  # fmt: skip
spec_nests = st.recursive(leaf_specs, lambda inner: st.dictionaries(names, inner, min_size=1, max_size=3),
                          max_leaves=6)  # fmt: skip


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
  obs_spec=spec_nests,
  action_spec=st.one_of(leaf_specs, spec_nests),
  lengths=st.lists(st.integers(1, 6), min_size=1, max_size=3),
  seed=st.integers(0, 2**16),
)
def test_any_specs_round_trip_through_disk(obs_spec, action_spec, lengths, seed):
  env = spec_env.SpecEnv(
    obs_spec, action_spec, episode_lengths=lengths, terminations=(True, False), seed=seed
  )
  rng = np.random.default_rng(seed)
  d = tempfile.mkdtemp(prefix='envlogger-prop-')
  try:
    rec = Recorder(envlogger.EnvLogger(env, data_directory=d), raw_env=env)
    for _ in lengths:
      ts = rec.reset()
      while not ts.last():
        ts = rec.step(spec_env.random_nest(action_spec, rng))
    rec.close()
    with envlogger.Reader(d) as r:
      assert not r.problems
      assert [len(e) for e in r.episodes] == [len(e) for e in rec.truth.episodes]
      for actual, expected in zip(r.steps, rec.truth.steps):
        assert_step_equal(actual, expected, r)
      assert r.observation_spec() == obs_spec and r.action_spec() == action_spec
  finally:
    shutil.rmtree(d)
