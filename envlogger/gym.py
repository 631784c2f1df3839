"""Recording and reading Gymnasium environments (needs the `gymnasium` extra).

`GymLogger` wraps a `gymnasium.Env`, `VectorGymLogger` a
`gymnasium.vector.VectorEnv`; both record RLDS episodes in the same format as
`envlogger.EnvLogger` (which does the recording, through `DmEnvAdapter`), and
`GymReader` reads any envlogger log back in gymnasium terms. Semantics
(details and examples in docs/gymnasium.md):

* `reset()` starts an episode (a FIRST timestep: reward and discount None);
  `step()` returning `terminated` ends it with discount 0 (`is_terminal`),
  `truncated` with discount 1; both at once count as terminated. Other steps
  have discount 1.
* Spaces become dm_env specs (`space_to_spec`) and back (`specs_to_space`);
  the spec's `name` records the space's kind, so the mapping is exact except
  for `Text.charset` (not stored).
* `info` is stored only if asked for (`record_info=True`: each step's info as
  lossless JSON text, any keys; `info_fn=`: typed fields of fixed shape).

`import envlogger` does not import this module (nor gymnasium).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import dm_env
import numpy as np
from dm_env import specs

from envlogger import _jsonable
from envlogger.backends.base import BackendWriter
from envlogger.environment_logger import BackendType, EnvLogger
from envlogger.reader import Episode, Reader
from envlogger.specs import SpecError

try:
  import gymnasium
  from gymnasium import spaces
except ImportError as _e:  # pragma: no cover (tested in a subprocess)
  raise ImportError(
    'envlogger.gym needs gymnasium, which is not installed: '
    'pip install "envlogger-rlds[gymnasium]" (or pip install "gymnasium>=1.0").'
  ) from _e

__all__ = [
  'DmEnvAdapter',
  'GymEpisode',
  'GymLogger',
  'GymReader',
  'GymStep',
  'Transition',
  'VectorGymLogger',
  'decode_info',
  'space_to_spec',
  'specs_to_space',
]

# The dataset metadata key under which the loggers describe what they stored.
METADATA_KEY = 'envlogger_gymnasium'
INFO_KEY = 'info'  # the RLDS step field holding `info`
_INFO_JSON = 'json'
_INFO_FIELDS = 'fields'

# Spec names tagging the gymnasium space a spec came from.
_BOX, _DISCRETE, _MULTI_DISCRETE, _MULTI_BINARY = 'Box', 'Discrete', 'MultiDiscrete', 'MultiBinary'
_TEXT_NAME = re.compile(r'^Text\(min_length=(\d+), max_length=(\d+)\)$')
# max_length of the Text space given back for a string spec without the tag.
DEFAULT_TEXT_MAX_LENGTH = 1024


# ----------------------------------------------------------------------------
# Spaces <-> specs.


def _compact(a: np.ndarray, dtype: np.dtype) -> np.ndarray:
  """A bound array, as a scalar if all its values are equal (keeps stored specs small)."""
  a = np.asarray(a, dtype=dtype)
  if a.size and np.all(a == a.flat[0]):
    return np.asarray(a.flat[0], dtype=dtype)
  return a


def space_to_spec(space: gymnasium.Space, path: str = 'space') -> Any:
  """The dm_env spec nest of a gymnasium space.

  | space | spec (name) |
  |---|---|
  | `Box(low, high, shape, dtype)` | `BoundedArray(shape, dtype, low, high)` ('Box'); infinite bounds kept |
  | `Discrete(n)` | `DiscreteArray(n, int64)` ('Discrete') |
  | `Discrete(n, start=s)`, s != 0 | `BoundedArray((), int64, s, s+n-1)` ('Discrete') |
  | `MultiDiscrete(nvec, dtype, start)` | `BoundedArray(nvec.shape, dtype, start, start+nvec-1)` ('MultiDiscrete') |
  | `MultiBinary(n)` | `BoundedArray(shape, int8, 0, 1)` ('MultiBinary') |
  | `Text(max_length, min_length=m)` | `StringArray((), str)` ('Text(min_length=m, max_length=M)') |
  | `Dict` / `Tuple` | dict / tuple of specs |

  Bounds that are equal everywhere are stored as a scalar.

  Args:
    space: the space.
    path: where the space is, for error messages.

  Raises:
    SpecError: the space (or one inside a Dict/Tuple) has no spec (Sequence,
      Graph, OneOf, custom spaces), or a Dict key is not a non-empty string
      without '/'.
  """
  if isinstance(space, spaces.Box):
    dtype = np.dtype(space.dtype)
    return specs.BoundedArray(
      space.shape, dtype, _compact(space.low, dtype), _compact(space.high, dtype), name=_BOX
    )
  if isinstance(space, spaces.Discrete):
    n, start = int(space.n), int(space.start)
    if start == 0:
      return specs.DiscreteArray(n, dtype=np.int64, name=_DISCRETE)
    return specs.BoundedArray((), np.int64, start, start + n - 1, name=_DISCRETE)
  if isinstance(space, spaces.MultiDiscrete):
    dtype = np.dtype(space.dtype)
    start = np.asarray(space.start, dtype=dtype)
    return specs.BoundedArray(
      space.nvec.shape,
      dtype,
      _compact(start, dtype),
      _compact(start + np.asarray(space.nvec, dtype=dtype) - 1, dtype),
      name=_MULTI_DISCRETE,
    )
  if isinstance(space, spaces.MultiBinary):
    return specs.BoundedArray(space.shape, np.int8, np.int8(0), np.int8(1), name=_MULTI_BINARY)
  if isinstance(space, spaces.Text):
    return specs.StringArray(
      (), string_type=str, name=f'Text(min_length={space.min_length}, max_length={space.max_length})'
    )
  if isinstance(space, spaces.Dict):
    out = {}
    for key, sub in space.spaces.items():
      if not isinstance(key, str) or not key or '/' in key:
        raise SpecError(f"{path}: Dict key {key!r} must be a non-empty string without '/'.")
      out[key] = space_to_spec(sub, f'{path}/{key}')
    return out
  if isinstance(space, spaces.Tuple):
    return tuple(space_to_spec(sub, f'{path}/{i}') for i, sub in enumerate(space.spaces))
  raise SpecError(
    f'{path}: gymnasium space {space!r} ({type(space).__name__}) cannot be recorded; supported spaces '
    'are Box, Discrete, MultiDiscrete, MultiBinary, Text, and Dict/Tuple of these. Convert it with a '
    'gymnasium ObservationWrapper/ActionWrapper (e.g. pad a Sequence to a fixed-shape Box).'
  )


def specs_to_space(spec: Any) -> gymnasium.Space:
  """The gymnasium space of a dm_env spec nest (inverse of `space_to_spec`).

  Specs made by `space_to_spec` (tagged by their `name`) give back an equal
  space, except that a `Text` space comes back with gymnasium's default
  charset. Other specs (logs of dm_env envs): `DiscreteArray` -> `Discrete`,
  `BoundedArray` -> `Box(minimum, maximum)`, a numeric `Array` -> `Box` over
  the dtype's whole range (floats: -inf..inf; bool: False..True), a scalar
  `StringArray` -> `Text(DEFAULT_TEXT_MAX_LENGTH, min_length=0)`, dicts ->
  `Dict`, tuples and lists -> `Tuple`.

  Raises:
    ValueError: a spec has no space (a string array that is not a scalar).
  """
  if isinstance(spec, Mapping):
    return spaces.Dict({k: specs_to_space(v) for k, v in spec.items()})
  if isinstance(spec, (tuple, list)):
    return spaces.Tuple(tuple(specs_to_space(v) for v in spec))
  if isinstance(spec, specs.StringArray):
    if tuple(spec.shape) != ():
      raise ValueError(f'{spec!r}: only scalar strings have a gymnasium space (Text).')
    m = _TEXT_NAME.match(spec.name or '')
    if m:
      return spaces.Text(int(m.group(2)), min_length=int(m.group(1)))
    return spaces.Text(DEFAULT_TEXT_MAX_LENGTH, min_length=0)
  if isinstance(spec, specs.DiscreteArray):
    return spaces.Discrete(int(spec.num_values))
  dtype = np.dtype(spec.dtype)
  shape = tuple(spec.shape)
  if isinstance(spec, specs.BoundedArray):
    low = np.broadcast_to(spec.minimum, shape).astype(dtype)
    high = np.broadcast_to(spec.maximum, shape).astype(dtype)
    if spec.name == _DISCRETE and shape == ():
      return spaces.Discrete(int(high) - int(low) + 1, start=int(low))
    if spec.name == _MULTI_DISCRETE:
      return spaces.MultiDiscrete(high - low + 1, dtype=dtype, start=low)
    if spec.name == _MULTI_BINARY:
      return spaces.MultiBinary(list(shape) if len(shape) != 1 else shape[0])
    return spaces.Box(low, high, shape, dtype)
  if dtype.kind == 'f':
    return spaces.Box(-np.inf, np.inf, shape, dtype)
  if dtype.kind in 'iu':
    info = np.iinfo(dtype)
    return spaces.Box(info.min, info.max, shape, dtype)
  if dtype.kind == 'b':
    return spaces.Box(0, 1, shape, dtype)
  raise ValueError(f'{spec!r}: no gymnasium space for dtype {dtype}.')


# ----------------------------------------------------------------------------
# What step_fn/episode_fn see, and what the reader gives back.


class GymStep(NamedTuple):
  """One `reset()` or `step()` as the env returned it; what `step_fn`/`episode_fn` receive.

  Attributes:
    observation: the observation returned (at reset: the first one).
    reward: the reward returned; None at reset.
    terminated, truncated: as returned; False at reset.
    info: the info dict returned.
    action: the action passed to `step()`; None at reset.
    is_first: True for a reset.
    env_index: the sub-env's index in a vector env; None for a single env.
  """

  observation: Any
  reward: Any
  terminated: bool
  truncated: bool
  info: dict
  action: Any
  is_first: bool
  env_index: int | None = None


class Transition(NamedTuple):
  """One recorded `step()` call in gymnasium terms.

  Attributes:
    observation: the observation the action was taken at.
    action: the action.
    reward: the reward `step()` returned (float64).
    terminated: True for the step that ended the episode with discount 0.
    truncated: True for the step that ended the episode with discount 1
      (not terminated). Both are False on every other step, and on the last
      recorded step of an episode cut short (`GymEpisode.cut_short`).
    info: the info `step()` returned, if it was recorded; else `{}`.
    next_observation: the observation `step()` returned.
    custom_data: `step_fn`'s value for this step (None without one).
  """

  observation: Any
  action: Any
  reward: Any
  terminated: bool
  truncated: bool
  info: dict
  next_observation: Any
  custom_data: Any


StepFn = Callable[[GymStep, Any], Any]


# ----------------------------------------------------------------------------
# Recording.


class _StepData:
  """Turns GymSteps into the custom data and episode metadata EnvLogger stores.

  Stored custom data: without info, `step_fn`'s value as EnvLogger stores it;
  with info, a dict {'info': <info>, **step_fn's dict}.
  """

  def __init__(
    self,
    step_fn: StepFn | None,
    episode_fn: StepFn | None,
    record_info: bool,
    info_fn: Callable[[dict], Mapping[str, Any]] | None,
  ):
    self.step_fn = step_fn
    self.episode_fn = episode_fn
    self.info_fn = info_fn
    self.info_mode = _INFO_FIELDS if info_fn is not None else _INFO_JSON if record_info else None

  @property
  def stores_custom(self) -> bool:
    return self.step_fn is not None or self.info_mode is not None

  def marker(self, env_id: str | None, env_index: int | None, num_envs: int | None) -> dict[str, Any]:
    return {
      'format': 1,
      'info': self.info_mode,
      'step_fn': self.step_fn is not None,
      'env_id': env_id,
      'env_index': env_index,
      'num_envs': num_envs,
    }

  def _info(self, info: Mapping[str, Any]) -> Any:
    if self.info_mode == _INFO_JSON:
      try:
        return json.dumps(_jsonable.encode(dict(info), 'info'), separators=(',', ':'))
      except _jsonable.MetadataError as e:
        raise SpecError(
          f'{e} (record_info=True stores info as JSON text: pass info_fn= to choose what to store).'
        ) from None
    value = self.info_fn(info)
    if not isinstance(value, Mapping) or not value:
      raise SpecError(f'info_fn must return a non-empty dict, got {value!r:.100}.')
    return dict(value)

  def custom(self, step: GymStep, env: Any) -> Any:
    value = self.step_fn(step, env) if self.step_fn is not None else None
    if self.info_mode is None:
      return value
    stored = {INFO_KEY: self._info(step.info)}
    if self.step_fn is not None:
      if not isinstance(value, Mapping) or INFO_KEY in value:
        raise SpecError(
          "with record_info/info_fn, step_fn must return a dict (without an 'info' key) at every "
          f'step, got {value!r:.100}.'
        )
      stored.update(value)
    return stored

  def episode(self, step: GymStep, env: Any) -> Any:
    return self.episode_fn(step, env)


def _with_marker(metadata: dict[str, Any] | None, marker: dict[str, Any]) -> dict[str, Any]:
  if metadata is not None and not isinstance(metadata, dict):
    raise _jsonable.MetadataError(f'metadata must be a dict or None, got {type(metadata).__name__}.')
  metadata = dict(metadata or {})
  if METADATA_KEY in metadata:
    raise _jsonable.MetadataError(f'metadata key {METADATA_KEY!r} is reserved for envlogger.gym.')
  metadata[METADATA_KEY] = marker
  return metadata


def _env_id(env: Any) -> str | None:
  spec = getattr(env, 'spec', None)
  return getattr(spec, 'id', None)


class DmEnvAdapter(dm_env.Environment):
  """Presents a `gymnasium.Env` as a `dm_env.Environment`.

  `reset()` gives a FIRST timestep (reward and discount None); `step(a)` gives
  a MID timestep (discount 1), or a LAST one when the env returns
  `terminated` (discount 0; also when `truncated` is True as well) or
  `truncated` (discount 1). As dm_env requires, `step()` after a LAST
  timestep (or before any reset) resets instead and ignores the action.
  Specs come from the spaces (`space_to_spec`); reward and discount specs
  are dm_env's defaults (float64 scalars).

  `last_step` is the latest `GymStep` and `last_result` exactly what the env
  returned (`(obs, info)` or the 5-tuple of `step`).

  Args:
    env: the gymnasium env.

  Raises:
    SpecError: a space has no spec.
  """

  def __init__(self, env: gymnasium.Env):
    self._env = env
    self._observation_spec = space_to_spec(env.observation_space, 'observation_space')
    self._action_spec = space_to_spec(env.action_space, 'action_space')
    self._reset_kwargs: dict[str, Any] = {}
    self.needs_reset = True
    self.last_step: GymStep | None = None
    self.last_result: tuple | None = None

  @property
  def gym_env(self) -> gymnasium.Env:
    return self._env

  def prepare_reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> None:
    """Sets the `seed` and `options` passed to the env by the next `reset()`."""
    self._reset_kwargs = {'seed': seed, 'options': options}

  def reset(self) -> dm_env.TimeStep:
    kwargs, self._reset_kwargs = self._reset_kwargs, {}
    result = self._env.reset(**kwargs)
    obs, info = result
    self.last_result = result
    self.last_step = GymStep(obs, None, False, False, info, None, True)
    self.needs_reset = False
    return dm_env.restart(obs)

  def step(self, action) -> dm_env.TimeStep:
    if self.needs_reset:
      return self.reset()
    result = self._env.step(action)
    obs, reward, terminated, truncated, info = result
    self.last_result = result
    terminated, truncated = bool(terminated), bool(truncated)
    self.last_step = GymStep(obs, reward, terminated, truncated, info, action, False)
    self.needs_reset = terminated or truncated
    return _timestep(obs, reward, terminated, truncated)

  def observation_spec(self):
    return self._observation_spec

  def action_spec(self):
    return self._action_spec

  def close(self) -> None:
    self._env.close()


def _timestep(obs, reward, terminated: bool, truncated: bool) -> dm_env.TimeStep:
  if terminated:
    return dm_env.termination(reward, obs)
  if truncated:
    return dm_env.truncation(reward, obs)
  return dm_env.transition(reward, obs)


_INFO_PREFIX = 'step_fn value/info'


def _renaming_info_errors(call: Callable[[], Any]) -> Any:
  """Runs a recording call; SpecErrors about info_fn values name info_fn, not step_fn."""
  try:
    return call()
  except SpecError as e:
    msg = str(e).rstrip('.')
    if not msg.startswith(_INFO_PREFIX):
      raise
    raise SpecError(
      f'info_fn value{msg[len(_INFO_PREFIX) :]} (info_fn must return the keys, dtypes and shapes of its '
      'first value at every step).'
    ) from e


def _make_logger(
  env: dm_env.Environment,
  gym_env: Any,
  get_step: Callable[[], GymStep],
  data: _StepData,
  metadata: dict[str, Any],
  data_directory: str | None,
  scheduler: Any,
  backend: Any,
  backend_kwargs: dict[str, Any],
) -> EnvLogger:
  step_fn = episode_fn = None
  if data.stores_custom:

    def step_fn(timestep, action, _env):
      return data.custom(get_step(), gym_env)

  if data.episode_fn is not None:

    def episode_fn(timestep, action, _env):
      return data.episode(get_step(), gym_env)

  return EnvLogger(
    env,
    data_directory=data_directory,
    metadata=metadata,
    step_fn=step_fn,
    episode_fn=episode_fn,
    scheduler=scheduler,
    backend=backend,
    **backend_kwargs,
  )


class GymLogger(gymnasium.Wrapper):
  """Wraps a `gymnasium.Env` and records every episode, as `EnvLogger` does.

  `reset()` and `step()` return exactly what the wrapped env returns;
  `reset(seed=..., options=...)` passes both through. Each `reset()` starts an
  RLDS episode; a `step()` returning `terminated` ends it with discount 0
  (`is_terminal`), `truncated` with discount 1 (both: terminated). A
  `reset()` before the end, or `close()`, writes the episode in flight marked
  `cut_short`. Each finished episode is on disk before the `step()` that ends
  it returns (durability as in `EnvLogger`).

  Example:
    env = GymLogger(gymnasium.make('CartPole-v1'), data_directory='/tmp/logs')
    obs, info = env.reset(seed=0)
    for _ in range(1000):
      obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
      if terminated or truncated:
        obs, info = env.reset()
    env.close()

  Args:
    env: the environment to record.
    data_directory: where the TFDS backend writes (created if missing).
    metadata: dataset-level metadata (a dict of JSON-like values); the key
      'envlogger_gymnasium' is added (what was stored, the env's id).
    step_fn: optional `step_fn(step: GymStep, env)`, called at every reset and
      step; its value is stored with the step (a dict's keys become RLDS step
      fields; None means "nothing for this step"). With `record_info` or
      `info_fn` it must return a dict at every step.
    episode_fn: optional `episode_fn(step: GymStep, env)`, called at every
      reset and step; an episode's last non-None value is its metadata.
    record_info: store each reset's and step's `info` (RLDS step field
      'info') as lossless JSON text: any keys, varying between steps;
      numpy arrays and scalars come back exactly. Values that are not
      JSON-like (objects) raise SpecError at that step.
    info_fn: store `info_fn(info)` instead (implies recording info): a
      non-empty dict whose keys, dtypes and shapes are those of its first
      value at every step (typed RLDS fields under 'info'); a change raises
      SpecError at that step.
    scheduler: optional `StepData -> bool` choosing what to record (see
      `envlogger.schedulers`).
    backend: as in `EnvLogger` ('tfds', 'in_memory', a `BackendWriter`, or a
      factory).
    **backend_kwargs: options of the backend.

  Raises:
    SpecError: a space has no spec (`space_to_spec`), or the specs do not
      match a log being appended to.
    MetadataError: `metadata` cannot be stored.
  """

  def __init__(
    self,
    env: gymnasium.Env,
    data_directory: str | None = None,
    metadata: dict[str, Any] | None = None,
    step_fn: StepFn | None = None,
    episode_fn: StepFn | None = None,
    record_info: bool = False,
    info_fn: Callable[[dict], Mapping[str, Any]] | None = None,
    scheduler: Callable[[Any], bool] | None = None,
    backend: Any = BackendType.TFDS,
    **backend_kwargs: Any,
  ):
    super().__init__(env)
    self._adapter = DmEnvAdapter(env)
    data = _StepData(step_fn, episode_fn, record_info, info_fn)
    self._logger = _make_logger(
      self._adapter,
      env,
      lambda: self._adapter.last_step,
      data,
      _with_marker(metadata, data.marker(_env_id(env), None, None)),
      data_directory,
      scheduler,
      backend,
      backend_kwargs,
    )

  def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
    """Resets the env (starting an episode) and returns what it returned."""
    self._adapter.prepare_reset(seed, options)
    _renaming_info_errors(self._logger.reset)
    return self._adapter.last_result

  def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict]:
    """Steps the env, records the step, and returns what the env returned.

    Raises:
      RuntimeError: no episode is in flight (before the first `reset()`, or
        after a step that returned `terminated` or `truncated`).
    """
    if self._adapter.needs_reset:
      raise RuntimeError(
        'step() called outside an episode (before reset(), or after terminated/truncated): call reset() first.'
      )
    _renaming_info_errors(lambda: self._logger.step(action))
    return self._adapter.last_result

  def close(self) -> None:
    """Writes the episode in flight (cut short), closes the log, then the env."""
    self._logger.close()

  def discard_episode(self) -> int:
    """Drops the episode in flight (see `EnvLogger.discard_episode`)."""
    return self._logger.discard_episode()

  def mark_episode_invalid(self) -> bool:
    """Marks the episode in flight invalid (see `EnvLogger.mark_episode_invalid`)."""
    return self._logger.mark_episode_invalid()

  @property
  def logger(self) -> EnvLogger:
    """The `EnvLogger` recording the env (through a `DmEnvAdapter`)."""
    return self._logger

  @property
  def backend(self):
    """The backend writer (e.g. to read an in-memory log back)."""
    return self._logger.backend


# ----------------------------------------------------------------------------
# Vector envs.


class _Feed(dm_env.Environment):
  """A dm_env whose reset()/step() return timesteps computed by the vector wrapper."""

  def __init__(self, observation_spec, action_spec):
    self._specs = (observation_spec, action_spec)
    self.next: dm_env.TimeStep | None = None
    self.last_step: GymStep | None = None
    self.in_episode = False

  def _take(self) -> dm_env.TimeStep:
    ts, self.next = self.next, None
    return ts

  def reset(self) -> dm_env.TimeStep:
    return self._take()

  def step(self, action) -> dm_env.TimeStep:
    return self._take()

  def observation_spec(self):
    return self._specs[0]

  def action_spec(self):
    return self._specs[1]

  def close(self) -> None:
    pass


def _sub_info(info: Mapping[str, Any], i: int) -> dict[str, Any]:
  """Sub-env i's info from a vector env's info dict (arrays with `_key` masks)."""
  out = {}
  for key, value in info.items():
    if isinstance(key, str) and key.startswith('_'):
      continue
    mask = info.get(f'_{key}')
    if mask is not None and not mask[i]:
      continue
    out[key] = _sub_info(value, i) if isinstance(value, Mapping) else value[i]
  return out


def _autoreset_mode(env: Any) -> str:
  mode = (getattr(env, 'metadata', None) or {}).get('autoreset_mode', 'NextStep')
  return str(getattr(mode, 'value', mode))


class VectorGymLogger(gymnasium.vector.VectorWrapper):
  """Wraps a `gymnasium.vector.VectorEnv`: one episode stream per sub-env.

  Each sub-env is recorded by an `EnvLogger` of its own (`loggers[i]`), all
  writing into `data_directory` (the TFDS backend lets several writers share
  a directory); episodes are whole episodes of one sub-env, exactly as a
  `GymLogger` around that sub-env would record them. The run of sub-env i has
  `metadata['envlogger_gymnasium']['env_index'] == i` (`GymEpisode.env_index`).

  `reset()` and `step()` return exactly what the vector env returns. The
  vector env's autoreset mode (`metadata['autoreset_mode']`) decides how
  episodes are split:

  * NextStep (gymnasium's default): the `step()` after a sub-env ended
    returns its reset observation; that call is recorded as a reset of the
    sub-env (its action, ignored by the env, is not recorded).
  * SameStep: the final observation and info come from `info['final_obs']`
    and `info['final_info']`; the returned observation starts the next
    episode.
  * Disabled: sub-envs are reset with `reset(options={'reset_mask': mask})`;
    a reset of a sub-env in an episode cuts that episode short.

  Args:
    env: the vector env.
    data_directory, metadata, step_fn, episode_fn, record_info, info_fn,
      backend, **backend_kwargs: as in `GymLogger`, for every sub-env;
      `step_fn(step, env)` and `episode_fn(step, env)` get the vector env and
      `step.env_index`. `backend` may not be a `BackendWriter` instance (one
      is made per sub-env: pass a name or a factory).

  Raises:
    SpecError: a single space has no spec.
  """

  def __init__(
    self,
    env: gymnasium.vector.VectorEnv,
    data_directory: str | None = None,
    metadata: dict[str, Any] | None = None,
    step_fn: StepFn | None = None,
    episode_fn: StepFn | None = None,
    record_info: bool = False,
    info_fn: Callable[[dict], Mapping[str, Any]] | None = None,
    backend: Any = BackendType.TFDS,
    **backend_kwargs: Any,
  ):
    super().__init__(env)
    self._loggers: list[EnvLogger] = []  # close() may run on a half-made wrapper (VectorEnv.__del__)
    if isinstance(backend, BackendWriter):
      raise TypeError(
        'VectorGymLogger makes one backend per sub-env: pass a backend name or a factory, not an instance.'
      )
    self._mode = _autoreset_mode(env)
    if self._mode not in ('NextStep', 'SameStep', 'Disabled'):
      raise ValueError(f'Unknown autoreset mode {self._mode!r} of {env!r}.')
    obs_spec = space_to_spec(env.single_observation_space, 'single_observation_space')
    act_spec = space_to_spec(env.single_action_space, 'single_action_space')
    data = _StepData(step_fn, episode_fn, record_info, info_fn)
    n = env.num_envs
    self._feeds = [_Feed(obs_spec, act_spec) for _ in range(n)]
    try:
      for i, feed in enumerate(self._feeds):
        self._loggers.append(
          _make_logger(
            feed,
            env,
            lambda feed=feed: feed.last_step,
            data,
            _with_marker(metadata, data.marker(_env_id(env), i, n)),
            data_directory,
            None,
            backend,
            backend_kwargs,
          )
        )
    except BaseException:
      for logger in self._loggers:
        logger.close()
      raise
    self._autoreset = np.zeros(n, dtype=bool)

  @property
  def loggers(self) -> list[EnvLogger]:
    """One `EnvLogger` per sub-env (e.g. `loggers[i].discard_episode()`)."""
    return list(self._loggers)

  def _record(self, i: int, step: GymStep, errors: list[Exception]) -> None:
    """Records sub-env i's reset or step; an error is appended to `errors` (the
    other sub-envs are still recorded, then the first error is raised)."""
    feed, logger = self._feeds[i], self._loggers[i]
    feed.last_step = step
    try:
      if step.is_first:
        feed.in_episode = False  # if recording the reset fails, the episode is not recorded
        feed.next = dm_env.restart(step.observation)
        _renaming_info_errors(logger.reset)
        feed.in_episode = True
      elif feed.in_episode:
        feed.in_episode = not (step.terminated or step.truncated)
        feed.next = _timestep(step.observation, step.reward, step.terminated, step.truncated)
        _renaming_info_errors(lambda: logger.step(step.action))
    except Exception as e:  # noqa: BLE001 (raised by the caller once every sub-env is recorded)
      errors.append(e)

  def reset(
    self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
  ) -> tuple[Any, dict[str, Any]]:
    """Resets the vector env (all sub-envs, or those of `options['reset_mask']`)."""
    mask = None if options is None else options.get('reset_mask')
    mask = np.ones(self.num_envs, dtype=bool) if mask is None else np.array(mask, dtype=bool)
    obs, info = self.env.reset(seed=seed, options=options)
    errors = []
    for i, o in enumerate(gymnasium.vector.utils.iterate(self.env.observation_space, obs)):
      if mask[i]:
        self._autoreset[i] = False
        self._record(i, GymStep(o, None, False, False, _sub_info(info, i), None, True, i), errors)
    if errors:
      raise errors[0]
    return obs, info

  def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
    """Steps the vector env and records every sub-env's step (or reset)."""
    result = self.env.step(actions)
    obs, rewards, terminations, truncations, info = result
    acts = list(gymnasium.vector.utils.iterate(self.env.action_space, actions))
    observations = gymnasium.vector.utils.iterate(self.env.observation_space, obs)
    errors: list[Exception] = []
    for i, o in enumerate(observations):
      sub_info = _sub_info(info, i)
      done = bool(terminations[i]) or bool(truncations[i])
      if self._mode == 'NextStep' and self._autoreset[i]:
        self._record(i, GymStep(o, None, False, False, sub_info, None, True, i), errors)
      elif self._mode == 'SameStep' and done:
        final = GymStep(
          sub_info.pop('final_obs'),
          rewards[i],
          bool(terminations[i]),
          bool(truncations[i]),
          sub_info.pop('final_info', {}),
          acts[i],
          False,
          i,
        )
        self._record(i, final, errors)
        self._record(i, GymStep(o, None, False, False, sub_info, None, True, i), errors)
      else:
        step = GymStep(
          o, rewards[i], bool(terminations[i]), bool(truncations[i]), sub_info, acts[i], False, i
        )
        self._record(i, step, errors)
      self._autoreset[i] = done
    if errors:
      raise errors[0]
    return result

  def close(self, **kwargs: Any) -> None:
    """Writes every sub-env's episode in flight (cut short), closes the logs, then the env."""
    try:
      for logger in self._loggers:
        logger.close()
    finally:
      self.env.close(**kwargs)


# ----------------------------------------------------------------------------
# Reading in gymnasium terms.


class _Layout(NamedTuple):
  info: str | None
  step_fn: bool
  env_index: int | None


def _layout(metadata: Any) -> _Layout:
  marker = metadata.get(METADATA_KEY) if isinstance(metadata, Mapping) else None
  if not isinstance(marker, Mapping):
    return _Layout(None, True, None)  # not written by envlogger.gym: custom data is step_fn's
  return _Layout(marker.get('info'), bool(marker.get('step_fn')), marker.get('env_index'))


def decode_info(text: str | bytes | np.ndarray) -> dict:
  """The info dict stored as JSON text by `record_info=True` (e.g. a `tfds.load` step's 'info')."""
  if isinstance(text, np.ndarray):
    text = text[()]
  if isinstance(text, bytes):
    text = text.decode()
  return _jsonable.decode(json.loads(text))


def _split_custom(custom: Any, layout: _Layout) -> tuple[dict, Any]:
  """(info, step_fn value) from a step's stored custom data."""
  if layout.info is None:
    return {}, custom
  if not isinstance(custom, Mapping):
    return {}, None
  info = custom[INFO_KEY]
  if layout.info == _INFO_JSON:
    info = decode_info(info)
  rest = {k: v for k, v in custom.items() if k != INFO_KEY} if layout.step_fn else None
  return dict(info), rest


class GymEpisode(Sequence):
  """One recorded episode as a sequence of `Transition`s (one per `step()` call).

  Decoded on first access. An episode of a thinned log (a step scheduler)
  has transitions between recorded steps only (see docs/alignment.md).
  """

  def __init__(self, episode: Episode, layout: _Layout):
    self._ep = episode
    self._layout = layout
    self._decoded: tuple[Any, dict, Any, list[Transition]] | None = None

  def _decode(self) -> tuple[Any, dict, Any, list[Transition]]:
    if self._decoded is None:
      layout = self._layout
      steps = list(self._ep)
      info0, custom0 = _split_custom(steps[0].custom_data, layout)
      out = []
      for k in range(1, len(steps)):
        prev, cur = steps[k - 1], steps[k]
        ts = cur.timestep
        ended = ts.last()
        terminated = ended and bool(np.all(np.asarray(ts.discount) == 0))
        info, custom = _split_custom(cur.custom_data, layout)
        out.append(
          Transition(
            prev.timestep.observation,
            cur.action,
            ts.reward,
            terminated,
            ended and not terminated,
            info,
            ts.observation,
            custom,
          )
        )
      self._decoded = (steps[0].timestep.observation, info0, custom0, out)
    return self._decoded

  def __len__(self) -> int:
    return max(len(self._ep) - 1, 0)

  def __getitem__(self, i):
    return self._decode()[3][i]

  def __iter__(self) -> Iterator[Transition]:
    return iter(self._decode()[3])

  @property
  def reset_observation(self) -> Any:
    """The observation `reset()` returned."""
    return self._decode()[0]

  @property
  def reset_info(self) -> dict:
    """The info `reset()` returned, if info was recorded; else `{}`."""
    return self._decode()[1]

  @property
  def reset_custom_data(self) -> Any:
    """`step_fn`'s value at the reset (None without one)."""
    return self._decode()[2]

  @property
  def terminated(self) -> bool:
    """True if the episode ended with `terminated` (discount 0)."""
    return bool(self) and self[-1].terminated

  @property
  def truncated(self) -> bool:
    """True if the episode ended with `truncated` only (discount 1)."""
    return bool(self) and self[-1].truncated

  @property
  def cut_short(self) -> bool:
    """True if the episode was cut short (a reset or close before it ended)."""
    return self._ep.cut_short

  @property
  def invalid(self) -> bool:
    return self._ep.invalid

  @property
  def metadata(self) -> Any:
    """The episode's metadata (last non-None `episode_fn` value), or None."""
    return self._ep.metadata

  @property
  def episode_id(self) -> str:
    return self._ep.episode_id

  @property
  def run_id(self) -> str:
    return self._ep.run_id

  @property
  def env_index(self) -> int | None:
    """The sub-env that produced the episode (`VectorGymLogger`); None for a single env."""
    return self._layout.env_index

  @property
  def episode(self) -> Episode:
    """The underlying `envlogger.Episode` (StepData view, `as_rlds()`)."""
    return self._ep

  def __repr__(self) -> str:
    return f'<GymEpisode {self.episode_id!r}: {len(self)} transitions>'


class _Episodes(Sequence):
  def __init__(self, episodes: Sequence[Episode], layout_of: Callable[[str], _Layout]):
    self._episodes = episodes
    self._layout_of = layout_of

  def __len__(self) -> int:
    return len(self._episodes)

  def _wrap(self, ep: Episode) -> GymEpisode:
    return GymEpisode(ep, self._layout_of(ep.run_id))

  def __getitem__(self, i):
    if isinstance(i, slice):
      return _Episodes(self._episodes[i], self._layout_of)
    return self._wrap(self._episodes[i])

  def __iter__(self) -> Iterator[GymEpisode]:
    return (self._wrap(ep) for ep in self._episodes)


class GymReader:
  """Reads an envlogger log in gymnasium terms.

  Example:
    with GymReader('/tmp/logs') as r:
      r.observation_space, r.action_space
      for episode in r.episodes:
        obs, info = episode.reset_observation, episode.reset_info
        for t in episode:
          t.observation, t.action, t.reward, t.terminated, t.truncated, t.info, t.next_observation

  Works for any envlogger log; for logs of `GymLogger`/`VectorGymLogger`,
  info comes back as recorded and `episode.env_index` names the sub-env.

  Args:
    data_directory: the log's directory (as for `envlogger.Reader`).
    reader: an open `envlogger.Reader` to use instead (not closed by `close()`).
    **reader_kwargs: other arguments of `envlogger.Reader` (e.g. `backend=`
      for an in-memory log).
  """

  def __init__(
    self, data_directory: str | None = None, *, reader: Reader | None = None, **reader_kwargs: Any
  ):
    self._owns_reader = reader is None
    self._reader = Reader(data_directory, **reader_kwargs) if reader is None else reader
    layouts = {run['run_id']: _layout(run.get('metadata')) for run in self._reader.runs()}
    default = next(iter(layouts.values()), _Layout(None, True, None))
    self.observation_space: gymnasium.Space = specs_to_space(self._reader.observation_spec())
    self.action_space: gymnasium.Space = specs_to_space(self._reader.action_spec())
    self.episodes: Sequence[GymEpisode] = _Episodes(self._reader.episodes, lambda r: layouts.get(r, default))

  @property
  def reader(self) -> Reader:
    """The underlying `envlogger.Reader`."""
    return self._reader

  def transitions(self) -> Iterator[Transition]:
    """Every transition of every episode, in order."""
    for episode in self.episodes:
      yield from episode

  def close(self) -> None:
    if self._owns_reader:
      self._reader.close()

  def __enter__(self) -> GymReader:
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  def __repr__(self) -> str:
    return f'<envlogger.gym.GymReader: {len(self.episodes)} episodes>'
