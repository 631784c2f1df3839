"""The RLDS alignment: from the logger's `StepData` stream to RLDS steps and back.

This module is the single place where the alignment is implemented; the
writer (`EpisodeBuilder`) and the Reader (`to_step_data`, its inverse) both
use it. The contract, with worked examples, is in docs/alignment.md:

The logger sees, per episode, `StepData(ts_0, None, c_0)` from `reset()` and
then `StepData(ts_t, a_{t-1}, c_t)` from each `step(a_{t-1})`. RLDS step k holds

  observation = ts_k.observation      (the observation the agent acted on)
  action      = a_k                   (the action taken at that observation)
  reward      = ts_{k+1}.reward       (what followed that action)
  discount    = ts_{k+1}.discount
  custom data = c_k
  is_first    = k == 0
  is_last     = k is the last recorded step
  is_terminal = is_last and the episode ended with a LAST timestep whose
                discount is 0 (termination, not truncation)

The last step holds the final observation and zeros for action, reward and
discount (no action followed it). An episode cut short (`reset()` before a
LAST timestep, or `close()` mid-episode) ends with `is_last` and not
`is_terminal`, and its `cut_short` flag is set.

Thinned episodes (a step scheduler skipped some steps): recorded step k still
holds the action taken at *its* observation and the reward and discount that
followed that action; the first and last steps are always recorded.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

import dm_env
import numpy as np

from envlogger import _schema
from envlogger import specs as specs_lib
from envlogger.step_data import StepData

_NUMERIC_FIELDS = ('action', 'reward', 'discount')


@dataclasses.dataclass
class Episode:
  """One RLDS episode in columnar form.

  Attributes:
    columns: field name ('observation', 'action', 'reward', 'discount',
      'custom_data') -> list of leaf arrays, each of shape (num_steps, ...), in
      `tree.flatten` order of the field's spec. 'custom_data' is absent if the
      schema has no custom data.
    is_first, is_last, is_terminal: bool arrays of shape (num_steps,).
    has_custom_data: bool array (num_steps,), or None without custom data.
    metadata: the episode's metadata (last non-None `episode_fn` value) or None.
    episode_id: unique id of the episode.
    run_id: id of the logger instance that wrote it.
    cut_short: True if the episode did not end with a LAST timestep.
    invalid: True if the user marked the episode invalid while recording it.
    native_steps: for logs of another format (DeepMind's Riegeli logs), the
      steps exactly as that format's reader returns them; the StepData view
      gives these instead of rebuilding steps from the columns.
  """

  columns: dict[str, list[np.ndarray]]
  is_first: np.ndarray
  is_last: np.ndarray
  is_terminal: np.ndarray
  has_custom_data: np.ndarray | None
  metadata: Any
  episode_id: str
  run_id: str
  cut_short: bool
  invalid: bool = False
  native_steps: Sequence[StepData] | None = None

  @property
  def num_steps(self) -> int:
    return len(self.is_first)


class Casters:
  """Leaf casters for every field of a schema (built once per writer)."""

  def __init__(self, schema: _schema.Schema):
    self.schema = schema
    self.observation = specs_lib.LeafCaster(schema.observation_spec, 'observation')
    self.action = specs_lib.LeafCaster(schema.action_spec, 'action')
    self.reward = specs_lib.LeafCaster(schema.reward_spec, 'reward')
    self.discount = specs_lib.LeafCaster(schema.discount_spec, 'discount')
    self.custom_data = (
      specs_lib.LeafCaster(schema.custom_data_spec, 'step_fn value')
      if schema.custom_data_spec is not None
      else None
    )
    self.episode_metadata = (
      specs_lib.LeafCaster(schema.episode_metadata_spec, 'episode_fn value')
      if schema.episode_metadata_spec is not None
      else None
    )

  def field(self, name: str) -> specs_lib.LeafCaster:
    return getattr(self, name)


class EpisodeBuilder:
  """Accumulates one episode's StepData into RLDS columns (the writer's side).

  `add` is called for every StepData of the episode, recorded or not; the
  values are checked and cast before anything is stored, so a bad value
  raises at the call that brought it and leaves the builder unchanged.
  """

  def __init__(self, casters: Casters, episode_id: str, run_id: str):
    self._c = casters
    self.episode_id = episode_id
    self.run_id = run_id
    self._cols: dict[str, list[list[np.ndarray]]] = {
      f: [[] for _ in casters.field(f).leaves] for f in ('observation', 'action', 'reward', 'discount')
    }
    if casters.custom_data is not None:
      self._cols['custom_data'] = [[] for _ in casters.custom_data.leaves]
    self._has_custom: list[bool] = []
    self._awaiting_successor = False
    self._unrecorded: tuple[list[np.ndarray], list[np.ndarray] | None] | None = None
    self._final_discount: Any = None
    self.metadata: Any = None
    self.invalid = False
    self.num_recorded = 0
    self.nbytes = 0

  def set_casters(self, casters: Casters) -> None:
    """Switches to casters of a schema that gained episode metadata."""
    self._c = casters

  def enable_custom_data(self, casters: Casters) -> None:
    """Adds the custom data column once its spec is known (earlier steps: None)."""
    self._c = casters
    self._cols['custom_data'] = [[z] * self.num_recorded for z in casters.custom_data.zeros()]
    self._has_custom = [False] * self.num_recorded

  def add(self, data: StepData, record: bool) -> None:
    """Adds one StepData; `record` is False for a step thinned away."""
    ts = data.timestep
    successor = None
    if self._awaiting_successor:
      successor = (self._c.action(data.action), self._c.reward(ts.reward), self._c.discount(ts.discount))
    keep = record or ts.first() or ts.last()
    obs = self._c.observation(ts.observation)
    custom = self._cast_custom(data.custom_data)
    # Everything is validated: now mutate.
    if successor is not None:
      for name, leaves in zip(_NUMERIC_FIELDS, successor):
        self._append(name, leaves)
      self._awaiting_successor = False
    if ts.last():
      self._final_discount = ts.discount
    if keep:
      self._record(obs, custom)
      self._unrecorded = None
    else:
      self._unrecorded = (obs, custom)

  def _cast_custom(self, value: Any) -> list[np.ndarray] | None:
    if value is None or self._c.custom_data is None:
      return None
    return self._c.custom_data(value)

  def _append(self, name: str, leaves: list[np.ndarray]) -> None:
    for col, leaf in zip(self._cols[name], leaves):
      col.append(leaf)
      self.nbytes += getattr(leaf, 'nbytes', 8)

  def _record(self, obs: list[np.ndarray], custom: list[np.ndarray] | None) -> None:
    self._append('observation', obs)
    if 'custom_data' in self._cols:
      self._has_custom.append(custom is not None)
      self._append('custom_data', custom if custom is not None else self._c.custom_data.zeros())
    self._awaiting_successor = True
    self.num_recorded += 1

  def finish(self, cut_short: bool) -> Episode:
    """Closes the episode and returns its RLDS columns."""
    if self._unrecorded is not None:
      self._record(*self._unrecorded)
      self._unrecorded = None
    if self._awaiting_successor:
      for name in _NUMERIC_FIELDS:
        self._append(name, self._c.field(name).zeros())
      self._awaiting_successor = False
    n = self.num_recorded
    is_first = np.zeros(n, dtype=bool)
    is_last = np.zeros(n, dtype=bool)
    is_terminal = np.zeros(n, dtype=bool)
    if n:
      is_first[0] = True
      is_last[-1] = True
      if not cut_short and self._final_discount is not None:
        is_terminal[-1] = bool(np.all(np.asarray(self._final_discount) == 0))
    columns = {
      name: [self._c.field(name).stack(i, col) for i, col in enumerate(cols)]
      for name, cols in self._cols.items()
    }
    return Episode(
      columns=columns,
      is_first=is_first,
      is_last=is_last,
      is_terminal=is_terminal,
      has_custom_data=np.asarray(self._has_custom, dtype=bool) if 'custom_data' in self._cols else None,
      metadata=self.metadata,
      episode_id=self.episode_id,
      run_id=self.run_id,
      cut_short=cut_short,
      invalid=self.invalid,
    )


def scalarize(x: Any) -> Any:
  """0-d arrays become numpy scalars (or str/bytes); other values are unchanged."""
  if isinstance(x, np.ndarray) and x.ndim == 0:
    return x[()]
  return x


def conform(episode: Episode, casters: Casters) -> Episode:
  """Adds an all-None custom data column to an episode finished before its spec was known."""
  if casters.custom_data is not None and 'custom_data' not in episode.columns:
    n = episode.num_steps
    episode.columns['custom_data'] = [
      casters.custom_data.stack(i, [z] * n) for i, z in enumerate(casters.custom_data.zeros())
    ]
    episode.has_custom_data = np.zeros(n, dtype=bool)
  return episode


# ----------------------------------------------------------------------------
# The inverse (the Reader's side).


def _getter(caster: specs_lib.LeafCaster, cols: list[np.ndarray]):
  """A function k -> the field's value at step k (array leaves copied, so the
  caller cannot modify a cached or stored episode through them)."""

  def leaf(col):
    if col.ndim > 1:
      return lambda k: col[k].copy()
    return col.__getitem__

  getters = [leaf(c) for c in cols]
  if len(getters) == 1 and specs_lib.is_leaf_spec(caster.spec):
    return getters[0]
  unflatten = caster.unflatten
  return lambda k: unflatten([g(k) for g in getters])


def iter_step_data(episode: Episode, casters: Casters, indexes: range) -> Iterator[StepData]:
  """The StepData of recorded RLDS steps `indexes` of `episode` (see `to_step_data`).

  `episode` may be a window of a longer episode (a decoded range of its
  steps): the step types come from its `is_first`/`is_last` flags, and a step
  other than the episode's first needs the window's previous row (the action,
  reward and discount that led to it).
  """
  if episode.native_steps is not None:
    steps = episode.native_steps
    n = len(steps)
    for k in indexes:
      if not -n <= k < n:
        raise IndexError(f'step {k} out of range for an episode of {n} steps')
      yield steps[k]
    return
  n = episode.num_steps
  if (
    isinstance(indexes, range)
    and indexes.step == 1
    and len(indexes) > 2
    and 0 <= indexes[0] < indexes[-1] < n
  ):
    yield from _iter_window(episode, casters, indexes)
    return
  cols = episode.columns
  obs = _getter(casters.observation, cols['observation'])
  reward = _getter(casters.reward, cols['reward'])
  discount = _getter(casters.discount, cols['discount'])
  action = _getter(casters.action, cols['action'])
  mask = episode.has_custom_data
  custom = _getter(casters.custom_data, cols['custom_data']) if mask is not None else None
  firsts, lasts = episode.is_first, episode.is_last
  last_type = dm_env.StepType.MID if episode.cut_short else dm_env.StepType.LAST
  first, mid = dm_env.StepType.FIRST, dm_env.StepType.MID
  time_step, step_data = dm_env.TimeStep, StepData
  for k in indexes:
    if not -n <= k < n:
      raise IndexError(f'step {k} out of range for an episode of {n} steps')
    k %= n
    c = custom(k) if mask is not None and mask[k] else None
    if firsts[k]:
      yield step_data(time_step(first, None, None, obs(k)), None, c)
    elif k == 0:
      raise ValueError('a window of an episode must start at the first step or one step earlier')
    else:
      step_type = last_type if lasts[k] else mid
      ts = time_step(step_type, reward(k - 1), discount(k - 1), obs(k))
      yield step_data(ts, action(k - 1), c)


def _rows(caster: specs_lib.LeafCaster, cols: list[np.ndarray]) -> list[Any]:
  """Every step's value of a field, as a list (array leaves from one fresh copy)."""
  leaf_rows = [list(c.copy()) if c.ndim > 1 else list(c) for c in cols]
  if len(leaf_rows) == 1 and specs_lib.is_leaf_spec(caster.spec):
    return leaf_rows[0]
  unflatten = caster.unflatten
  return [unflatten(list(values)) for values in zip(*leaf_rows)]


def _iter_window(episode: Episode, casters: Casters, indexes: range) -> Iterator[StepData]:
  """iter_step_data for a run of consecutive steps: the columns are split into
  per-step lists once (C loops) instead of indexing every array at every step,
  which halves the cost per step of a sequential pass."""
  cols = episode.columns
  obs = _rows(casters.observation, cols['observation'])
  reward = _rows(casters.reward, cols['reward'])
  discount = _rows(casters.discount, cols['discount'])
  action = _rows(casters.action, cols['action'])
  mask = episode.has_custom_data
  custom = _rows(casters.custom_data, cols['custom_data']) if mask is not None else None
  has_custom = mask.tolist() if mask is not None else [False] * episode.num_steps
  firsts, lasts = episode.is_first.tolist(), episode.is_last.tolist()
  last_type = dm_env.StepType.MID if episode.cut_short else dm_env.StepType.LAST
  first, mid = dm_env.StepType.FIRST, dm_env.StepType.MID
  time_step, step_data = dm_env.TimeStep, StepData
  for k in indexes:
    c = custom[k] if has_custom[k] else None
    if firsts[k]:
      yield step_data(time_step(first, None, None, obs[k]), None, c)
    elif k == 0:
      raise ValueError('a window of an episode must start at the first step or one step earlier')
    else:
      ts = time_step(last_type if lasts[k] else mid, reward[k - 1], discount[k - 1], obs[k])
      yield step_data(ts, action[k - 1], c)


def to_step_data(episode: Episode, k: int, casters: Casters) -> StepData:
  """Returns the StepData the logger saw for recorded RLDS step `k` of `episode`.

  Step 0 is a FIRST timestep with `reward`, `discount` and `action` None (as
  `dm_env.restart` gives). The last step is a LAST timestep unless the episode
  was cut short (then MID). The other steps are MID timesteps whose action,
  reward and discount are those RLDS stores at step k-1.
  """
  return next(iter_step_data(episode, casters, (k,)))
