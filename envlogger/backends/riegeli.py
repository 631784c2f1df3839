"""Reading logs written by DeepMind's envlogger with its Riegeli backend (read only).

Layout (see docs/format.md and the envlogger 1.3 fixtures in tests/fixtures):

  <data_directory>/metadata.riegeli        one Data record: the user metadata plus
                                           'environment_specs'
  <data_directory>/<UTC timestamp>/        one shard directory per 10k episodes,
    steps.riegeli                          one Data record per timestep (StepData)
    step_offsets.riegeli                   Datum int64 arrays: record positions of the steps
    episode_index.riegeli                  Datum (k, 2) rows: [first step (local), metadata
                                           record position or -1]
    episode_metadata.riegeli               Data records: episode_fn values

Shards are read in name order (chronological), as the original does; a shard
whose step_offsets.riegeli holds nothing (a writer that never flushed) is
skipped and reported. Steps come back exactly as the original's Reader returns
them (`StepData` of the decoded values: Python ints stay ints, rewards
np.float64, ...); the RLDS columns (`Episode.as_rlds()`, converting, the TFDS
builder) cast them to specs: the env specs stored in the metadata, and specs
of `step_fn`/`episode_fn` values inferred from the first ones in the log.
"""

from __future__ import annotations

import datetime
import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from envlogger import _schema, rlds
from envlogger import specs as specs_lib
from envlogger._riegeli import records as records_lib
from envlogger._riegeli import storage
from envlogger._riegeli.layout import (
  EPISODE_INDEX_FILE,
  EPISODE_METADATA_FILE,
  METADATA_FILE,
  STEP_OFFSETS_FILE,
  STEPS_FILE,
  shard_dirs,
)
from envlogger.backends import source
from envlogger.step_data import StepData


class _Shard:
  """One shard directory: step positions and episode boundaries (no steps read)."""

  def __init__(self, path: str, problems: list[str]):
    self.path = path
    self.name = os.path.basename(path)
    positions = [storage.decode_datum(r) for r in self._records(STEP_OFFSETS_FILE, problems)]
    self.step_positions = _int_array(positions, (-1,))
    rows = [storage.decode_datum(r) for r in self._records(EPISODE_INDEX_FILE, problems)]
    index = _int_array(rows, (-1, 2))
    n = len(self.step_positions)
    starts = index[:, 0]
    # Rows past the steps the offsets cover belong to steps that were never
    # indexed (no flush before the writer died): the original drops them too.
    keep = (starts >= 0) & (starts < n)
    if not np.all(np.diff(starts[keep]) > 0):
      raise records_lib.RiegeliError(f'{path}/{EPISODE_INDEX_FILE}: episode starts are not increasing')
    if not keep.all():
      problems.append(f'{path}: {int((~keep).sum())} episode(s) start past the last indexed step; skipped')
    self.starts = starts[keep]
    self.metadata_positions = index[keep, 1]
    ends = np.append(self.starts[1:], n)
    self.lengths = ends - self.starts
    if len(self.starts) and self.starts[0] != 0:
      problems.append(f'{path}: the first {int(self.starts[0])} steps belong to no episode; skipped')

  def _records(self, fname: str, problems: list[str]) -> list[bytes]:
    path = os.path.join(self.path, fname)
    if not os.path.exists(path):
      return []
    with records_lib.RecordReader(path) as r:
      out = list(r)
      problems += r.problems
    return out


def _int_array(arrays: list[Any], shape: tuple[int, ...]) -> np.ndarray:
  parts = [np.asarray(a, dtype=np.int64).reshape(shape) for a in arrays if a is not None]
  return np.concatenate(parts) if parts else np.zeros((0, *shape[1:]), np.int64)


class _NativeSteps(Sequence):
  """An episode's steps as the original returns them, decoded on each access
  (fresh objects: what a caller does to them cannot reach a cache)."""

  def __init__(self, records: list[bytes], damaged: Callable[[int, Exception], Exception]):
    self._records = records
    self._damaged = damaged  # (k, error) -> the exception naming the record

  def __len__(self) -> int:
    return len(self._records)

  def __getitem__(self, k):
    try:
      return StepData(*storage.decode_step(self._records[k]))
    except storage.StorageError as e:
      raise self._damaged(k, e) from None


class _LazyColumnsEpisode(rlds.Episode):
  """An rlds.Episode whose `columns` and `has_custom_data` are built on first
  access (a sequential StepData pass over a Riegeli log never builds them)."""

  def __init__(self, build: Callable[[], rlds.Episode], **fields: Any):
    self.__dict__.update(fields)
    self._build = build

  def __getattr__(self, name: str) -> Any:  # only for attributes not set yet
    if name in ('columns', 'has_custom_data'):
      built = self._build()
      self.columns, self.has_custom_data = built.columns, built.has_custom_data
      return self.__dict__[name]
    raise AttributeError(name)


class RiegeliLogSource(source.LogSource):
  """Random access to the episodes of an envlogger (Riegeli backend) log.

  Args:
    data_directory: the directory the original EnvLogger wrote.
    verify: decode every step record when opening, reporting and skipping
      episodes that do not read back (costs a full read of the log).

  Raises:
    RiegeliError (a ValueError): the directory holds no readable Riegeli log.
  """

  def __init__(self, data_directory: str, verify: bool = False, cache_size: int = 8, *, _state=None):
    self.data_directory = data_directory
    state = _state if _state is not None else self._load(data_directory)
    self._state = state
    self._readers: dict[int, records_lib.RecordReader] = {}
    self._metadata_readers: dict[int, records_lib.RecordReader] = {}
    self._cache: OrderedDict[int, rlds.Episode] = OrderedDict()
    self._cache_size = cache_size
    if state['schema'] is None:
      state['schema'] = _infer_schema(self)
    super().__init__(state['schema'])
    self.problems = state['problems']
    if verify and _state is None:
      self._verify()

  @staticmethod
  def _load(data_directory: str) -> dict[str, Any]:
    problems: list[str] = []
    metadata = None
    meta_path = os.path.join(data_directory, METADATA_FILE)
    if os.path.exists(meta_path):
      with records_lib.RecordReader(meta_path) as r:
        records = list(r)
        problems += r.problems
      if records:
        metadata = storage.decode(records[0])
    shards = []
    for name in shard_dirs(data_directory):
      shard = _Shard(os.path.join(data_directory, name), problems)
      if not len(shard.step_positions):
        problems.append(f'{shard.path}: no indexed steps (the writer was not closed?); skipped')
        continue
      shards.append(shard)
    if not shards and metadata is None:
      raise records_lib.RiegeliError(f'{data_directory}: no envlogger Riegeli log in it')
    episodes = [(s, e) for s, shard in enumerate(shards) for e in range(len(shard.starts))]
    state = {
      'metadata': metadata,
      'shards': shards,
      'episodes': episodes,
      'lengths': np.asarray([shards[s].lengths[e] for s, e in episodes], dtype=np.int64),
      'problems': problems,
      'schema': None,
    }
    return state

  def _verify(self) -> None:
    state, bad = self._state, []
    for i in range(len(state['episodes'])):
      try:
        self._cache.clear()
        self.read_episode(i)
      except source.DamagedEpisodeError as e:
        bad.append(i)
        state['problems'].append(f'{e}; skipped')
    self._cache.clear()
    if bad:
      keep = np.ones(len(state['episodes']), dtype=bool)
      keep[bad] = False
      state['episodes'] = [ep for ep, k in zip(state['episodes'], keep) if k]
      state['lengths'] = state['lengths'][keep]

  # -- LogSource ----------------------------------------------------------------

  @property
  def dataset_dir(self) -> str:
    """The log's directory (named as for TFDS logs, for tools that take both)."""
    return self.data_directory

  @property
  def log_info(self) -> dict[str, Any]:
    return {'format': 'riegeli', 'encodings': {}}

  def num_episodes(self) -> int:
    return len(self._state['episodes'])

  def episode_lengths(self) -> np.ndarray:
    return self._state['lengths']

  def dataset_metadata(self) -> dict[str, Any] | None:
    """The metadata record exactly as the original's Reader returns it."""
    return self._state['metadata']

  def runs(self) -> list[dict[str, Any]]:
    meta = self._state['metadata']
    user = {k: v for k, v in meta.items() if k != 'environment_specs'} if isinstance(meta, dict) else {}
    return [{'run_id': s.name, 'created': _created(s.name), 'metadata': user} for s in self._state['shards']]

  def _step_records(self, index: int, lo: int = 0, hi: int | None = None) -> list[bytes]:
    s, e = self._state['episodes'][index]
    shard = self._state['shards'][s]
    start = int(shard.starts[e])
    n = int(shard.lengths[e])
    hi = n if hi is None else hi
    reader = self._reader(s)
    try:
      return [reader.read_at(int(p)) for p in shard.step_positions[start + lo : start + hi]]
    except records_lib.RiegeliError as e:
      raise self._damaged(index, e) from None

  def _record_damaged(self, index: int, k: int, err: Exception) -> source.DamagedEpisodeError:
    s, e = self._state['episodes'][index]
    shard = self._state['shards'][s]
    position = int(shard.step_positions[int(shard.starts[e]) + k])
    return self._damaged(index, f'{STEPS_FILE} record at position {position} (step {k}): {err}')

  def _reader(self, s: int) -> records_lib.RecordReader:
    reader = self._readers.get(s)
    if reader is None:
      path = os.path.join(self._state['shards'][s].path, STEPS_FILE)
      # Chunk data hashes are checked (a pure-Python HighwayHash, ~2 us per Catch
      # step, ~0.1 s per stored MB of pixels): without them, flipped bits that
      # still decompress give wrong records silently.
      reader = self._readers[s] = records_lib.RecordReader(path)
    return reader

  def _damaged(self, index: int, e: Exception) -> source.DamagedEpisodeError:
    s, e_local = self._state['episodes'][index]
    return source.DamagedEpisodeError(
      f'{self._state["shards"][s].path}: episode {e_local} of the shard (episode {index} of the log) is '
      f'damaged ({e}). Reader(..., verify=True) skips damaged episodes and lists them in reader.problems'
    )

  def read_episode(self, index: int) -> rlds.Episode:
    ep = self._cache.get(index)
    if ep is not None:
      self._cache.move_to_end(index)
      return ep
    records = self._step_records(index)
    steps = _NativeSteps(records, lambda k, err: self._record_damaged(index, k, err))
    s, e = self._state['episodes'][index]
    name = self._state['shards'][s].name
    n = len(records)
    last = steps[n - 1] if n else None  # one decode: the flags need only the last step
    cut_short = last is None or not last.timestep.last()
    is_first, is_last, is_terminal = (np.zeros(n, dtype=bool) for _ in range(3))
    if n:
      is_first[0] = is_last[-1] = True
      is_terminal[-1] = not cut_short and bool(np.all(np.asarray(last.timestep.discount) == 0))
    ep = _LazyColumnsEpisode(
      lambda: self._columns(index, steps),
      is_first=is_first,
      is_last=is_last,
      is_terminal=is_terminal,
      metadata=self.read_episode_metadata(index),
      episode_id=f'{name}/{e}',
      run_id=name,
      cut_short=cut_short,
      invalid=False,
      native_steps=steps,
    )
    self._cache[index] = ep
    if len(self._cache) > self._cache_size:
      self._cache.popitem(last=False)
    return ep

  def _columns(self, index: int, steps: _NativeSteps) -> rlds.Episode:
    """The RLDS columns of an episode (built when first asked for: iterating
    StepData does not need them)."""
    builder = rlds.EpisodeBuilder(self.casters, '', '')
    last = None
    for k, step in enumerate(steps):
      if step.custom_data is not None and self.casters.custom_data is None:
        raise specs_lib.SpecError(
          f'{self._where(index)}: step {k} has custom data, but the log has no custom data field (the first '
          'episode had none); its steps read as StepData, not as RLDS columns'
        )
      builder.add(step, record=True)
      last = step
    return builder.finish(cut_short=last is None or not last.timestep.last())

  def read_step(self, index: int, k: int) -> tuple[rlds.Episode, int]:
    ep = self._cache.get(index)
    if ep is not None:
      return ep, k
    # The original stores each timestep whole: one record is one step.
    window = rlds.Episode(
      columns={},
      is_first=np.zeros(1, bool),
      is_last=np.zeros(1, bool),
      is_terminal=np.zeros(1, bool),
      has_custom_data=None,
      metadata=None,
      episode_id='',
      run_id='',
      cut_short=False,
      native_steps=_NativeSteps(
        self._step_records(index, k, k + 1), lambda _, err: self._record_damaged(index, k, err)
      ),
    )
    return window, 0

  def read_episode_metadata(self, index: int) -> Any:
    s, e = self._state['episodes'][index]
    shard = self._state['shards'][s]
    position = int(shard.metadata_positions[e])
    if position <= 0:  # the original reads metadata only at positions > 0
      return None
    try:
      reader = self._metadata_readers.get(s)
      if reader is None:  # one per shard: its last decoded chunk is kept for the next episodes
        path = os.path.join(shard.path, EPISODE_METADATA_FILE)
        reader = self._metadata_readers[s] = records_lib.RecordReader(path)
      return storage.decode(reader.read_at(position))
    except (records_lib.RiegeliError, storage.StorageError, OSError) as err:
      raise self._damaged(index, f'episode metadata: {err}') from None

  def read_episode_id(self, index: int) -> str:
    s, e = self._state['episodes'][index]
    return f'{self._state["shards"][s].name}/{e}'

  def _where(self, index: int) -> str:
    s, e = self._state['episodes'][index]
    return f'{self._state["shards"][s].path} episode {e}'

  def copy(self) -> RiegeliLogSource:
    return RiegeliLogSource(self.data_directory, cache_size=self._cache_size, _state=self._state)

  def close(self) -> None:
    for r in (*self._readers.values(), *self._metadata_readers.values()):
      r.close()
    self._readers.clear()
    self._metadata_readers.clear()
    self._cache.clear()


def _created(name: str) -> str | None:
  try:
    return (
      datetime.datetime.strptime(name, '%Y%m%dT%H%M%S%f').replace(tzinfo=datetime.timezone.utc).isoformat()
    )
  except ValueError:
    return None


def _infer_schema(src: RiegeliLogSource) -> _schema.Schema:
  """Env specs from the metadata (inferred from the first steps when absent);
  specs of step_fn/episode_fn values inferred from the first episode's steps
  and the first episode metadata."""
  state, data_directory = src._state, src.data_directory
  steps, meta = [], None
  for i in range(len(state['episodes'])):  # the first episode that reads back
    try:
      steps = [StepData(*storage.decode_step(r)) for r in src._step_records(i)]
      break
    except (source.DamagedEpisodeError, storage.StorageError):
      continue  # reported when the episode itself is read
  for i in range(len(state['episodes'])):
    try:
      meta = src.read_episode_metadata(i)
    except source.DamagedEpisodeError:
      continue
    if meta is not None:
      break
  obs_spec, action_spec, reward_spec, discount_spec = storage.environment_specs(state['metadata'])
  if obs_spec is None:
    mid = next((s for s in steps if not s.timestep.first()), None)
    if not steps or mid is None:
      raise records_lib.RiegeliError(
        f'{data_directory}: the log has no environment_specs and no steps to infer them'
      )
    obs_spec = specs_lib.infer_spec(steps[0].timestep.observation, 'observation')
    action_spec = specs_lib.infer_spec(mid.action, 'action')
    reward_spec = specs_lib.infer_spec(mid.timestep.reward, 'reward')
    discount_spec = specs_lib.infer_spec(mid.timestep.discount, 'discount')
  custom = next((s.custom_data for s in steps if s.custom_data is not None), None)
  return _schema.Schema(
    observation_spec=obs_spec,
    action_spec=action_spec,
    reward_spec=reward_spec,
    discount_spec=discount_spec,
    custom_data_spec=None if custom is None else specs_lib.infer_spec(custom, 'custom data'),
    custom_data_layout=_schema.layout_for(custom),
    episode_metadata_spec=None if meta is None else specs_lib.infer_spec(meta, 'episode metadata'),
    episode_metadata_layout=_schema.layout_for(meta),
  )
