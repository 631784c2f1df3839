"""The writer seam: `BackendWriter` turns StepData into RLDS episodes.

`EnvLogger` knows only this class's public methods (`init_log`,
`record_step`, `set_episode_metadata`, `close`), as in the original
EnvLogger; subclasses only store finished episodes (`_write_episode`).
The base class applies the scheduler, the RLDS alignment (`envlogger.rlds`),
and infers the schema of user data from the first value it sees.
"""

from __future__ import annotations

import abc
import dataclasses
import datetime
import uuid
from collections.abc import Callable
from typing import Any

from envlogger import _jsonable, _schema, rlds
from envlogger import specs as specs_lib
from envlogger.backends import _worker
from envlogger.schedulers import Scheduler
from envlogger.step_data import StepData


def new_run_id() -> str:
  stamp = datetime.datetime.now(datetime.timezone.utc).strftime('%Y%m%dT%H%M%S')
  return f'{stamp}-{uuid.uuid4().hex[:8]}'


DEFAULT_MAX_EPISODE_BYTES = 1 << 30


class EpisodeTooLongError(RuntimeError):
  """The episode in flight outgrew `max_episode_bytes`."""


class BackendWriter(abc.ABC):
  """Base class of storage backends.

  Args:
    scheduler: optional `StepData -> bool` callable choosing what to record
      (see `envlogger.schedulers`).
    max_episode_bytes: cap on the memory of the episode in flight (raw array
      bytes; default 1 GiB, under the 2 GiB limit of one serialized record).
      The step that crosses it raises `EpisodeTooLongError`; the steps
      recorded so far are written as an episode marked `cut_short`, and the
      rest of that episode is not recorded (recording resumes at the next
      reset).
    async_writes: False (this class's default) writes each finished episode
      before the step that finished it returns, so a process killed at any
      moment loses no finished episode, and a write error is raised by that
      step. True encodes and writes in a background thread instead, so the
      env loop does not wait; errors then surface at the next `record_step`
      (the episode in flight ends, cut short, at the step before), and
      episodes are handed over in batches of up to 64 episodes or 8 MiB of
      raw data (or a second old; and on `flush()`/`close()`): unless the
      backend journals them (the TFDS backend's default, see
      `TFDSBackendWriter`), that much finished data is in memory only, and
      lost if the process dies.
    max_queued_batches: batches that may wait for the background writer
      before `record_step` blocks (back-pressure bounds memory).
  """

  def __init__(
    self,
    scheduler: Scheduler | None = None,
    max_episode_bytes: int = DEFAULT_MAX_EPISODE_BYTES,
    async_writes: bool = False,
    max_queued_batches: int = 2,
  ):
    if int(max_episode_bytes) <= 0:
      raise ValueError(f'max_episode_bytes must be positive, got {max_episode_bytes!r}.')
    self._max_episode_bytes = int(max_episode_bytes)
    self._scheduler = scheduler
    self.run_id = new_run_id()
    self._schema: _schema.Schema | None = None
    self._casters: rlds.Casters | None = None
    self._schema_fixed = False
    self._expect_custom = False
    self._expect_metadata = False
    self._builder: rlds.EpisodeBuilder | None = None
    self._pending: list[rlds.Episode] = []
    self._episode_counter = 0
    self._last_length = 16  # steps of the last episode: room the next one starts with
    self._closed = False
    self._worker = _worker.Worker(asynchronous=async_writes, max_queued=max_queued_batches)
    self.metadata: dict[str, Any] = {}

  # -- the seam EnvLogger uses ------------------------------------------------

  def init_log(
    self,
    env_specs: dict[str, Any],
    metadata: dict[str, Any] | None = None,
    expects_custom_data: bool = False,
    expects_episode_metadata: bool = False,
  ) -> None:
    """Declares the env's specs and the dataset metadata, before any step.

    Raises:
      MetadataError: if `metadata` cannot be stored.
      SpecError: if the specs do not match data already in the log.
    """
    if metadata is not None and not isinstance(metadata, dict):
      raise _jsonable.MetadataError(f'metadata must be a dict or None, got {type(metadata).__name__}.')
    _jsonable.encode(metadata or {}, 'metadata')  # fails early if unstorable
    self.metadata = dict(metadata or {})
    self._expect_custom = expects_custom_data
    self._expect_metadata = expects_episode_metadata
    self._set_schema(_schema.Schema(**env_specs))
    self._on_init()

  def record_step(self, data: StepData, is_new_episode: bool) -> None:
    """Records one StepData; `is_new_episode` is True for an episode's first step."""
    if self._closed:
      self._check_open()
    if self._worker.error is not None:
      try:
        self._worker.check()
      except _worker.WriteError:
        # The episode in flight ends at the step before (cut short, stored),
        # not with a gap where this step was.
        if self._builder is not None:
          self._finish_episode(cut_short=True)
        raise
    if self._schema is None:
      raise RuntimeError('init_log() must be called before record_step().')
    if is_new_episode:
      if self._builder is not None:
        self._finish_episode(cut_short=True)
      record = self._scheduler is None or bool(self._scheduler(data))
      if record:
        self._builder = rlds.EpisodeBuilder(
          self._casters,
          f'{self.run_id}/{self._episode_counter}',
          self.run_id,
          capacity=self._last_length,
          max_bytes=self._max_episode_bytes,
        )
        self._episode_counter += 1
    elif self._builder is None:
      if self._scheduler is not None:
        self._scheduler(data)  # episodes not recorded still tick the scheduler
      return
    else:
      if self._scheduler is not None:
        record = bool(self._scheduler(data))
      else:
        record = True
    if self._builder is None:
      return
    if data.custom_data is not None and self._casters.custom_data is None:
      self._learn_custom_data_spec(data.custom_data)
    builder = self._builder
    builder.add(data, record)
    if data.timestep.last():
      self._finish_episode(cut_short=False)
    elif builder.nbytes > self._max_episode_bytes:
      steps = self._builder.num_recorded
      self._finish_episode(cut_short=True)
      raise EpisodeTooLongError(
        f'The episode in flight reached {steps} recorded steps and more than '
        f'max_episode_bytes={self._max_episode_bytes} bytes; it was written as a cut-short '
        'episode and its remaining steps will not be recorded. Raise max_episode_bytes, '
        'thin steps with a scheduler, or end episodes sooner.'
      )
    self._after_step(data)

  def flush(self) -> None:
    """Waits until every finished episode is written; raises a pending write error."""
    self._worker.drain()

  def discard_episode(self) -> int:
    """Drops the episode in flight: nothing of it is written, and its remaining
    steps are not recorded (recording resumes at the next reset). Returns the
    number of steps dropped (0 if no episode was in flight)."""
    self._check_open()
    builder, self._builder = self._builder, None
    return 0 if builder is None else builder.num_recorded

  def mark_episode_invalid(self) -> bool:
    """Marks the episode in flight invalid (stored with it: the `invalid`
    episode field). Returns False if no episode is in flight."""
    self._check_open()
    if self._builder is None:
      return False
    self._builder.invalid = True
    return True

  def set_episode_metadata(self, data: Any) -> None:
    """Sets the metadata of the episode in flight (the last value set wins)."""
    self._check_open()
    if data is None or self._builder is None:
      return
    if self._casters.episode_metadata is None:
      self._learn_episode_metadata_spec(data)
    leaves = self._casters.episode_metadata(data)
    self._builder.metadata = self._casters.episode_metadata.unflatten([rlds.scalarize(x) for x in leaves])

  def close(self) -> None:
    """Writes the episode in flight (cut short) and anything pending; idempotent."""
    if self._closed:
      return
    self._closed = True
    try:
      if self._builder is not None:
        self._finish_episode(cut_short=True)
      self._schema_fixed = True
      self._flush_pending()
      self._worker.submit(self._close, 'closing the log')
    finally:
      self._worker.close()

  @property
  def schema(self) -> _schema.Schema | None:
    return self._schema

  # -- for subclasses ---------------------------------------------------------

  def _on_init(self) -> None:  # noqa: B027 (optional hook)
    """Called at the end of init_log (e.g. to check or create the directory)."""

  def _after_step(self, data: StepData) -> None:  # noqa: B027 (optional hook)
    """Called after each recorded step (e.g. to consult a flush scheduler)."""

  @abc.abstractmethod
  def _write_episode(self, episode: rlds.Episode) -> None:
    """Stores one finished episode. The schema is fixed from the first call on."""

  @abc.abstractmethod
  def _close(self) -> None:
    """Releases resources; everything written must be readable afterwards."""

  # -- internals --------------------------------------------------------------

  def _check_open(self) -> None:
    if self._closed:
      raise RuntimeError('This logger is closed; create a new EnvLogger to record more.')

  def _set_schema(self, schema: _schema.Schema) -> None:
    self._schema = schema
    self._casters = rlds.Casters(schema)

  def _learn_custom_data_spec(self, value: Any) -> None:
    self._learn_spec(value, 'step_fn', 'custom_data', _schema.RESERVED_STEP_KEYS)
    if self._builder is not None:
      self._builder.enable_custom_data(self._casters)

  def _learn_episode_metadata_spec(self, value: Any) -> None:
    self._learn_spec(value, 'episode_fn', 'episode_metadata', _schema.RESERVED_EPISODE_KEYS)
    if self._builder is not None:
      self._builder.set_casters(self._casters)

  def _learn_spec(self, value: Any, fn_name: str, field: str, reserved: frozenset[str]) -> None:
    """Infers the schema of `fn_name`'s values from its first non-None value."""
    if self._schema_fixed:
      raise specs_lib.SpecError(
        f'{fn_name} returned a value after episodes without it were written; the log has no field for it.'
      )
    _schema.check_user_keys(value, reserved, fn_name)
    spec = specs_lib.infer_spec(value, f'{fn_name} value')
    changes = {f'{field}_spec': spec, f'{field}_layout': _schema.layout_for(value)}
    self._set_schema(dataclasses.replace(self._schema, **changes))

  def _finish_episode(self, cut_short: bool) -> None:
    builder, self._builder = self._builder, None
    if builder.num_recorded == 0:
      return
    self._last_length = builder.num_recorded
    schema_known = (self._casters.custom_data is not None or not self._expect_custom) and (
      self._casters.episode_metadata is not None or not self._expect_metadata
    )
    if not self._schema_fixed and not schema_known:
      # The schema of step_fn/episode_fn values is still unknown (they only
      # returned None so far): hold finished episodes until it is known.
      self._pending.append(builder.finish(cut_short))
      return
    self._schema_fixed = True
    self._flush_pending()
    self._submit(lambda: builder.finish(cut_short), builder.episode_id, builder.nbytes)

  def _flush_pending(self) -> None:
    pending, self._pending = self._pending, []
    for ep in pending:
      self._submit(lambda ep=ep: ep, ep.episode_id, 0)

  def _submit(self, finish: Callable[[], rlds.Episode], episode_id: str, nbytes: int) -> None:
    """Hands a finished episode to the writer (`finish()` returns it; it runs
    in the writer's thread with `async_writes`). `nbytes`: its raw size."""
    casters = self._casters
    self._worker.submit(
      lambda: self._write_episode(rlds.conform(finish(), casters)),
      f'writing episode {episode_id}',
      nbytes=nbytes,
    )
