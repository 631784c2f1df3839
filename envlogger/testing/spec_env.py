"""`SpecEnv`: a dm_env environment that emits random values for any specs.

For tests and benchmarks: episode lengths and endings (termination with
discount 0, truncation with discount 1) are chosen by the caller, and every
value is drawn from the specs with a seeded generator.
"""

from __future__ import annotations

from collections.abc import Sequence

import dm_env
import numpy as np
import tree
from dm_env import specs


def random_value(spec: specs.Array, rng: np.random.Generator):
  """A random value of a leaf spec (strings are short random words)."""
  if isinstance(spec, specs.StringArray):
    words = np.empty(spec.shape, dtype=object)
    for idx in np.ndindex(*spec.shape):
      w = ''.join(rng.choice(list('abcxyzé€'), size=rng.integers(0, 6)))
      words[idx] = w if spec.string_type is str else w.encode()
    return words[()] if words.ndim == 0 else words
  dtype = np.dtype(spec.dtype)
  if isinstance(spec, specs.DiscreteArray):
    return dtype.type(rng.integers(spec.num_values))
  if dtype == np.bool_:
    return rng.random(spec.shape) < 0.5
  if dtype.kind in 'iu':
    info = np.iinfo(dtype)
    lo, hi = max(info.min, -1000), min(info.max, 1000)
    return rng.integers(lo, hi, size=spec.shape, endpoint=True).astype(dtype)
  return rng.standard_normal(spec.shape).astype(dtype)


def random_nest(spec_nest, rng: np.random.Generator):
  return tree.map_structure(lambda s: random_value(s, rng), spec_nest)


class SpecEnv(dm_env.Environment):
  """Emits random observations/rewards/discounts of the given specs.

  Args:
    observation_spec, action_spec: spec nests.
    episode_lengths: number of `step()` calls of each episode (cycled).
    terminations: per episode (cycled), True to end with discount 0, False to
      end with a truncation (discount 1).
    reward_spec, discount_spec: default to dm_env's scalar float64 specs.
    seed: seed of the value generator.
  """

  def __init__(
    self,
    observation_spec,
    action_spec,
    episode_lengths: Sequence[int] = (5,),
    terminations: Sequence[bool] = (True,),
    reward_spec=None,
    discount_spec=None,
    seed: int = 0,
  ):
    self._obs_spec = observation_spec
    self._action_spec = action_spec
    self._reward_spec = reward_spec if reward_spec is not None else specs.Array((), np.float64, 'reward')
    self._discount_spec = (
      discount_spec if discount_spec is not None else specs.BoundedArray((), np.float64, 0.0, 1.0, 'discount')
    )
    self._lengths = list(episode_lengths)
    self._terminations = list(terminations)
    self._rng = np.random.default_rng(seed)
    self._episode = -1
    self._t = 0
    self._done = True

  def reset(self) -> dm_env.TimeStep:
    self._episode += 1
    self._t = 0
    self._done = False
    return dm_env.restart(random_nest(self._obs_spec, self._rng))

  def step(self, action) -> dm_env.TimeStep:
    if self._done:
      return self.reset()
    self._t += 1
    obs = random_nest(self._obs_spec, self._rng)
    reward = random_nest(self._reward_spec, self._rng)
    if self._t >= self._lengths[self._episode % len(self._lengths)]:
      self._done = True
      terminate = self._terminations[self._episode % len(self._terminations)]
      if terminate:
        discount = tree.map_structure(lambda s: np.zeros(s.shape, s.dtype), self._discount_spec)
      else:
        discount = tree.map_structure(lambda s: np.ones(s.shape, s.dtype), self._discount_spec)
      return dm_env.TimeStep(dm_env.StepType.LAST, reward, discount, obs)
    discount = tree.map_structure(lambda s: np.ones(s.shape, s.dtype), self._discount_spec)
    return dm_env.transition(reward, obs, discount)

  def observation_spec(self):
    return self._obs_spec

  def action_spec(self):
    return self._action_spec

  def reward_spec(self):
    return self._reward_spec

  def discount_spec(self):
    return self._discount_spec
