"""`EnvLogger`: a dm_env wrapper that records every interaction."""

from __future__ import annotations

import enum
import sys
import weakref
from collections.abc import Callable
from typing import Any

import dm_env

from envlogger.backends import base
from envlogger.step_data import StepData

StepFn = Callable[[dm_env.TimeStep, Any, dm_env.Environment], Any]


class BackendType(enum.Enum):
  """Backends by name, as in the original EnvLogger (`backend=BackendType.TFDS`)."""

  TFDS = 'tfds'
  IN_MEMORY = 'in_memory'
  RIEGELI = 'riegeli'


# Arguments of the original's Riegeli backend that have no counterpart here.
_RIEGELI_ONLY_ARGS = ('writer_options',)


def _make_backend(backend: Any, data_directory: str | None, scheduler, backend_kwargs) -> base.BackendWriter:
  if isinstance(backend, base.BackendWriter):
    if backend_kwargs or scheduler is not None:
      raise ValueError(
        'scheduler and backend keyword arguments go to the backend constructor; '
        'they cannot be given with a backend instance.'
      )
    return backend
  bad = [k for k in _RIEGELI_ONLY_ARGS if k in backend_kwargs]
  if bad:
    raise ValueError(
      f'{bad} are options of the original Riegeli backend, which this package does not '
      "write. Use the default TFDS backend (backend='tfds'); its options are "
      'dataset_name, version, split_name, max_episodes_per_file, flush_scheduler.'
    )
  if isinstance(backend, BackendType):
    backend = backend.value
  if isinstance(backend, str):
    name = backend.lower()
    if name == 'tfds':
      from envlogger.backends import tfds as tfds_backend  # noqa: PLC0415

      if data_directory is None:
        raise ValueError('data_directory is required for the TFDS backend.')
      return tfds_backend.TFDSBackendWriter(data_directory, scheduler=scheduler, **backend_kwargs)
    if name == 'in_memory':
      from envlogger.backends import in_memory  # noqa: PLC0415

      unknown = sorted(set(backend_kwargs) - {'max_episode_bytes', 'async_writes', 'max_queued_batches'})
      if unknown:
        raise ValueError(f'Unknown options of the in-memory backend: {unknown}.')
      return in_memory.InMemoryBackendWriter(scheduler=scheduler, **backend_kwargs)
    if name == 'riegeli':
      raise ValueError(
        'Writing the original Riegeli format is not supported (the riegeli package '
        "is not available); use the default TFDS backend (backend='tfds')."
      )
    raise ValueError(f"Unknown backend {backend!r}; use 'tfds', 'in_memory', a BackendWriter or a factory.")
  if callable(backend):
    kwargs = dict(backend_kwargs)
    if data_directory is not None:
      kwargs['data_directory'] = data_directory
    if scheduler is not None:
      kwargs['scheduler'] = scheduler
    made = backend(**kwargs)
    if not isinstance(made, base.BackendWriter):
      raise TypeError(f'The backend factory returned {type(made).__name__}, not a BackendWriter.')
    return made
  raise TypeError(f'backend must be a name, a BackendType, a BackendWriter or a factory, got {backend!r}.')


def _close_abandoned(backend: base.BackendWriter) -> None:
  """Closes the backend of a logger that was garbage-collected or is open at exit.

  Many RL frameworks never close their envs: this writes the episode in
  flight (cut short) and publishes the TFDS metadata anyway. Finished
  episodes are on disk already.
  """
  try:
    backend.close()
  except Exception as e:  # noqa: BLE001 (exit or GC must go on; say what was not written)
    print(f'envlogger: closing an abandoned logger failed: {e!r}', file=sys.stderr)


class EnvLogger(dm_env.Environment):
  """Wraps a `dm_env.Environment` and records every step as RLDS episodes.

  The wrapper is transparent: it returns the wrapped env's timesteps and specs
  unchanged and forwards other attribute access to it.

  Durability: each episode is on disk before the `step()` that ends it
  returns (journaled raw; a background thread encodes it into the TFDS
  shards), so a process killed at any moment loses no finished episode (the
  log reads at once with `Reader`; `envlogger recover DIR` readies it for
  `tfds.load`). See docs/durability.md for the write modes. `close()` (or the `with` block's end) writes the episode in
  flight, marked `cut_short`, and publishes the TFDS metadata; loggers still
  open when the interpreter exits are closed then.

  Example:
    with envlogger.EnvLogger(env, data_directory='/tmp/logs') as env:
      timestep = env.reset()
      while not timestep.last():
        timestep = env.step(agent.act(timestep))

  Args:
    env: the environment to record.
    data_directory: where the TFDS backend writes (created if missing).
    metadata: dataset-level metadata (a dict of JSON-like values, numpy arrays
      allowed), stored once for this logger together with the env's specs.
    step_fn: optional `step_fn(timestep, action, env)`; its value is stored
      with each step (a dict's keys become RLDS step fields; None means "no
      data for this step").
    episode_fn: optional `episode_fn(timestep, action, env)`, called on every
      step; the last non-None value of an episode is its metadata (a dict's
      keys become top-level RLDS episode fields).
    scheduler: optional `StepData -> bool` choosing which episodes and steps
      to record (see `envlogger.schedulers`).
    backend: 'tfds' (default), 'in_memory', a `BackendType`, a
      `BackendWriter` instance, or a factory called with `data_directory`,
      `scheduler` and `**backend_kwargs`.
    **backend_kwargs: options of the backend (for TFDS: `dataset_name`,
      `version`, `split_name`, `max_episodes_per_file`, `flush_scheduler`,
      `async_writes`, `journal`, `fsync`, ...: see `TFDSBackendWriter`).

  Raises:
    MetadataError: `metadata` cannot be stored.
    SpecError: the env's specs do not match a log being appended to.
  """

  def __init__(
    self,
    env: dm_env.Environment,
    data_directory: str | None = None,
    metadata: dict[str, Any] | None = None,
    step_fn: StepFn | None = None,
    episode_fn: StepFn | None = None,
    scheduler: Callable[[StepData], bool] | None = None,
    backend: Any = BackendType.TFDS,
    **backend_kwargs: Any,
  ):
    self._environment = env
    self._step_fn = step_fn
    self._episode_fn = episode_fn
    self._closed = False
    self._in_episode = False
    self._backend = _make_backend(backend, data_directory, scheduler, backend_kwargs)
    self._backend.init_log(
      {
        'observation_spec': env.observation_spec(),
        'action_spec': env.action_spec(),
        'reward_spec': env.reward_spec(),
        'discount_spec': env.discount_spec(),
      },
      metadata,
      expects_custom_data=step_fn is not None,
      expects_episode_metadata=episode_fn is not None,
    )
    self._finalizer = weakref.finalize(self, _close_abandoned, self._backend)  # also runs at exit

  # -- dm_env.Environment -----------------------------------------------------

  def reset(self) -> dm_env.TimeStep:
    self._check_open()
    timestep = self._environment.reset()
    self._record(timestep, None)
    return timestep

  def step(self, action) -> dm_env.TimeStep:
    if self._closed:
      self._check_open()
    timestep = self._environment.step(action)
    self._record(timestep, action)
    return timestep

  def observation_spec(self):
    return self._environment.observation_spec()

  def action_spec(self):
    return self._environment.action_spec()

  def reward_spec(self):
    return self._environment.reward_spec()

  def discount_spec(self):
    return self._environment.discount_spec()

  def close(self) -> None:
    """Writes the episode in flight and closes the backend, then the env."""
    if self._closed:
      return
    self._closed = True
    self._finalizer.detach()
    try:
      self._backend.close()
    finally:
      self._environment.close()

  def discard_episode(self) -> int:
    """Drops the episode in flight (a failed rollout): none of it is written.

    The env's remaining steps of that episode are not recorded; recording
    resumes at the next `reset()`. Episodes already finished are unaffected.

    Returns:
      The number of steps dropped (0 if no episode was in flight).
    """
    self._check_open()
    return self._backend.discard_episode()

  def mark_episode_invalid(self) -> bool:
    """Marks the episode in flight invalid; it is still recorded in full.

    The mark is stored with the episode (its boolean `invalid` field, False
    for other episodes): `Reader` gives it as `episode.invalid`, and TFDS
    users filter with `ds.filter(lambda ep: not ep['invalid'])`.

    Returns:
      False if no episode is in flight (nothing was marked).
    """
    self._check_open()
    return self._backend.mark_episode_invalid()

  # -- wrapper plumbing -------------------------------------------------------

  @property
  def environment(self) -> dm_env.Environment:
    """The wrapped environment."""
    return self._environment

  @property
  def backend(self) -> base.BackendWriter:
    """The backend writer (e.g. to read an in-memory log back)."""
    return self._backend

  def __getattr__(self, name: str) -> Any:
    if name.startswith('__') or name in ('_environment', '_backend', '_finalizer'):
      raise AttributeError(name)
    return getattr(self._environment, name)

  def __getstate__(self):
    raise TypeError(
      'EnvLogger cannot be pickled: create it inside each worker process '
      '(see examples/multiprocess_actors.py).'
    )

  # -- recording --------------------------------------------------------------

  def _check_open(self) -> None:
    if self._closed:
      raise RuntimeError('reset()/step() called after close(): this EnvLogger is closed.')

  def _record(self, timestep: dm_env.TimeStep, action: Any) -> None:
    first = timestep.first()
    if not first and not self._in_episode:
      raise RuntimeError(
        'The environment returned a non-FIRST timestep outside an episode; call reset() to start an episode.'
      )
    custom = self._step_fn(timestep, action, self._environment) if self._step_fn else None
    meta = self._episode_fn(timestep, action, self._environment) if self._episode_fn else None
    data = StepData(timestep, None if first else action, custom)
    backend = self._backend
    if first:
      backend.record_step(data, is_new_episode=True)
      if meta is not None:
        backend.set_episode_metadata(meta)
    else:
      # Metadata first: a LAST step finishes (and writes) the episode.
      if meta is not None:
        backend.set_episode_metadata(meta)
      backend.record_step(data, is_new_episode=False)
    self._in_episode = not timestep.last()
