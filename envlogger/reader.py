"""`Reader`: random access to the episodes and steps of a log."""

from __future__ import annotations

import abc
import bisect
import os
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from envlogger import _schema, rlds
from envlogger.backends import source as source_lib
from envlogger.step_data import StepData

# A sequential pass over a log that decodes in batches reads this much ahead.
READ_AHEAD_BYTES = 4 << 20  # of raw steps
READ_AHEAD_EPISODES = 256


class NoLogError(FileNotFoundError):
  """The directory holds no envlogger log."""


class _LazySequence(Sequence):
  """A read-only sequence whose items are produced on demand."""

  def __init__(self, length: int, getter, indexes: range | None = None):
    self._indexes = range(length) if indexes is None else indexes
    self._get = getter

  def __len__(self) -> int:
    return len(self._indexes)

  def __getitem__(self, i):
    if isinstance(i, slice):
      return _LazySequence(0, self._get, self._indexes[i])
    if isinstance(i, (int, np.integer)):
      return self._get(self._indexes[int(i)])  # range raises IndexError
    raise TypeError(f'indices must be integers or slices, not {type(i).__name__}')

  def __iter__(self) -> Iterator[Any]:
    for i in self._indexes:
      yield self._get(i)

  def __repr__(self) -> str:
    return f'<lazy sequence of {len(self)} items>'


class _ReaderSequence(_LazySequence):
  """A lazy sequence of a Reader's items whose slices keep their class (and its iteration)."""

  def __init__(self, reader: Reader, indexes: range | None = None):
    super().__init__(*self._items(reader), indexes)
    self._reader = reader

  @staticmethod
  @abc.abstractmethod
  def _items(reader: Reader) -> tuple[int, Any]:
    """(number of items, item getter)."""

  def __getitem__(self, i):
    if isinstance(i, slice):
      return type(self)(self._reader, self._indexes[i])
    return super().__getitem__(i)


class _StepSequence(_ReaderSequence):
  """Reader.steps: iteration walks episode by episode (or blocks of them) instead of step by step."""

  @staticmethod
  def _items(reader: Reader) -> tuple[int, Any]:
    return int(reader._starts[-1]), reader._step

  def __iter__(self) -> Iterator[StepData]:
    idx = self._indexes
    if idx.step != 1 or not idx:
      yield from super().__iter__()
      return
    reader = self._reader
    source, starts = reader._source, reader._starts_list
    first = bisect.bisect_right(starts, idx.start) - 1
    stop = bisect.bisect_left(starts, idx.stop)  # one past the last episode wanted
    for e, k, batch in reader._blocks(first, stop):
      rows = range(max(idx.start, starts[e]) - starts[e], min(idx.stop, starts[e + k]) - starts[e])
      if batch is not None:  # a block of episodes decoded at once, iterated row by row
        yield from rlds.iter_batch_step_data(batch, source.casters, rows)
      else:
        yield from rlds.iter_step_data(source.read_episode(e), source.casters, rows)


class _EpisodeSequence(_ReaderSequence):
  """Reader.episodes: iteration reads ahead in blocks where the log decodes in batches."""

  @staticmethod
  def _items(reader: Reader) -> tuple[int, Any]:
    return len(reader._lengths), reader._episode

  def __iter__(self) -> Iterator[Episode]:
    idx, reader = self._indexes, self._reader
    if idx.step != 1 or not idx:
      yield from super().__iter__()
      return
    casters = reader._source.casters
    for e, _, batch in reader._blocks(idx.start, idx.stop):
      if batch is None:
        yield reader._episode(e)
      else:
        for ep in rlds.split_batch(batch):
          yield Episode(ep, casters)


class Episode(Sequence):
  """One recorded episode: a sequence of `StepData`, plus its metadata.

  Steps are decoded from the episode's columns on access; `as_rlds()` gives the
  columns themselves (numpy arrays with a leading step dimension).
  """

  def __init__(self, episode: rlds.Episode, casters: rlds.Casters, indexes: range | None = None):
    self._ep = episode
    self._casters = casters
    self._indexes = range(episode.num_steps) if indexes is None else indexes

  def __len__(self) -> int:
    return len(self._indexes)

  def __getitem__(self, i):
    if isinstance(i, slice):
      return Episode(self._ep, self._casters, self._indexes[i])
    if isinstance(i, (int, np.integer)):
      return rlds.to_step_data(self._ep, self._indexes[int(i)], self._casters)
    raise TypeError(f'indices must be integers or slices, not {type(i).__name__}')

  def __iter__(self) -> Iterator[StepData]:
    return rlds.iter_step_data(self._ep, self._casters, self._indexes)

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
  def invalid(self) -> bool:
    """True if the episode was marked invalid while it was recorded."""
    return self._ep.invalid

  @property
  def cut_short(self) -> bool:
    """True if the episode was cut short (no LAST timestep was recorded)."""
    return self._ep.cut_short

  def as_rlds(self) -> dict[str, Any]:
    """The whole episode as RLDS: {'steps': {field: array nest}, metadata...}.

    The arrays are the caller's (fresh copies): modifying them changes nothing
    the Reader returns later.
    """
    ep = self._ep
    steps = _rlds_steps(ep, self._casters)
    sl = slice(self._indexes.start, self._indexes.stop, self._indexes.step)
    steps = _slice_nest(steps, sl)
    return {
      _schema.STEPS: steps,
      _schema.EPISODE_ID: ep.episode_id,
      _schema.RUN_ID: ep.run_id,
      _schema.CUT_SHORT: ep.cut_short,
      _schema.INVALID: ep.invalid,
      _schema.EPISODE_METADATA: ep.metadata,
    }

  def __repr__(self) -> str:
    return f'<Episode {self.episode_id!r}: {len(self)} steps>'


def _rlds_steps(ep: rlds.Episode | rlds.EpisodeBatch, c: rlds.Casters) -> dict[str, Any]:
  """The RLDS step fields of decoded columns (those decoded: a batch may hold
  some fields only): {field: array nest with a leading step axis}."""
  steps = {
    name: c.field(name).unflatten(ep.columns[name])
    for name in (_schema.OBSERVATION, _schema.ACTION, _schema.REWARD, _schema.DISCOUNT)
    if name in ep.columns
  }
  steps[_schema.IS_FIRST] = ep.is_first
  steps[_schema.IS_LAST] = ep.is_last
  steps[_schema.IS_TERMINAL] = ep.is_terminal
  if ep.has_custom_data is not None and 'custom_data' in ep.columns:
    custom = c.custom_data.unflatten(ep.columns['custom_data'])
    if c.schema.custom_data_layout == _schema.FIELDS:
      steps.update(custom)
    else:
      steps[_schema.CUSTOM_DATA] = custom
    steps[_schema.HAS_CUSTOM_DATA] = ep.has_custom_data
  return steps


def _slice_nest(nest, sl):
  if isinstance(nest, dict):
    return {k: _slice_nest(v, sl) for k, v in nest.items()}
  if isinstance(nest, (tuple, list)):
    return type(nest)(_slice_nest(v, sl) for v in nest)
  return nest[sl].copy()  # the caller's own array: writing into it cannot reach the cache


class Reader:
  """Reads a log written by `EnvLogger`.

  Example:
    with envlogger.Reader(data_directory='/tmp/logs') as r:
      for episode in r.episodes:
        for step in episode:
          step.timestep.observation, step.action, step.custom_data

  `episodes` and `steps` are lazy sequences (len, int and negative indexes,
  slices, iteration); indexing decodes only the episode that holds the item,
  iteration may decode blocks of episodes ahead. `as_columns()` reads many
  episodes at once as concatenated numpy columns.

  Args:
    data_directory: the logger's `data_directory`, or the dataset directory
      itself (`<data_directory>/<dataset_name>/<version>`).
    dataset_name, version: choose a dataset when the directory holds several.
    backend: read an in-memory log instead: an `InMemoryBackendWriter`.
    verify: read and check every record when opening (checksums, decoding)
      and skip damaged episodes; costs a full read of the log. Without it,
      opening reads only the index, and a damaged record raises
      `DamagedEpisodeError` (naming the file and offset) when it is read.

  Damage found when opening (a torn shard tail, index lines that do not
  match their shard, an unreadable run file, with `verify` damaged records)
  is worked around, listed in `problems` (one line per file, naming it) and
  reported once with `warnings.warn`; everything else reads normally.

  A Reader opened on a directory pickles (for multiprocessing workers): the
  copy reopens the directory in the unpickling process, with its own file
  handles, and sees episodes appended since. Unpickling raises RuntimeError if
  the episodes the Reader had no longer have the same lengths, or the log
  opens with other problems (rewritten, recovered, or damaged since), as its
  indexes could then mean other episodes. A Reader of an in-memory log does
  not pickle (TypeError).

  Raises:
    NoLogError: the directory holds no envlogger log.
  """

  _open_args: dict[str, Any] | None = None

  def __init__(
    self,
    data_directory: str | os.PathLike | None = None,
    *,
    dataset_name: str | None = None,
    version: str | None = None,
    backend: Any = None,
    verify: bool = False,
    _source: source_lib.LogSource | None = None,
  ):
    if _source is None:
      _source = _open_source(data_directory, dataset_name, version, backend, verify)
      if _source.problems:
        warnings.warn(
          f'envlogger.Reader: {len(_source.problems)} problem(s) in the log, worked around '
          '(see reader.problems):\n  ' + '\n  '.join(_source.problems),
          stacklevel=2,
        )
      if backend is None:  # what pickling needs to open the same log in another process
        self._open_args = {
          'data_directory': os.path.abspath(os.fspath(data_directory)),
          'dataset_name': dataset_name,
          'version': version,
          'verify': verify,
        }
    self._source = _source
    self._lengths = np.asarray(_source.episode_lengths(), dtype=np.int64)
    self._starts = np.concatenate([[0], np.cumsum(self._lengths)]).astype(np.int64)
    self._starts_list = self._starts.tolist()
    self.episodes: Sequence[Episode] = _EpisodeSequence(self)
    self.steps: Sequence[StepData] = _StepSequence(self)

  # -- access -----------------------------------------------------------------

  def _episode(self, i: int) -> Episode:
    return Episode(self._source.read_episode(i), self._source.casters)

  def _read_ahead(self, e: int, stop: int) -> int:
    """How many episodes from `e` (before `stop`) a sequential pass decodes at
    once: up to READ_AHEAD_BYTES of raw steps where the log decodes in
    batches, else 1."""
    if not self._source.decodes_in_batches:
      return 1
    step_bytes = max(1, sum(self._source.casters.step_nbytes))
    limit = self._starts_list[e] + READ_AHEAD_BYTES // step_bytes
    last = bisect.bisect_right(self._starts_list, limit, lo=e + 1) - 1  # episodes ending by the limit
    return max(1, min(last - e, stop - e, READ_AHEAD_EPISODES))

  def _blocks(self, e: int, stop: int) -> Iterator[tuple[int, int, rlds.EpisodeBatch | None]]:
    """(first episode, count, batch) covering episodes e..stop-1 in order, for a
    sequential pass: batches of several episodes where the log decodes in
    batches, else one episode at a time with batch None (read it yourself)."""
    one_by_one_until = e
    while e < stop:
      k = self._read_ahead(e, stop) if e >= one_by_one_until else 1
      batch = None
      if k > 1:
        try:
          batch = self._source.read_batch(range(e, e + k))
        except source_lib.DamagedEpisodeError:
          # One by one through this block: the episodes before the damaged one come first.
          one_by_one_until, k = e + k, 1
      yield e, k, batch
      e += k

  def _rlds_rows(self, episode: int, rows: np.ndarray) -> dict[str, Any]:
    """RLDS step fields of steps `rows` (indexes, in that order) of an episode,
    decoding only those steps where the log's format allows (for the loaders)."""
    return _rlds_steps(self._source.read_rows(episode, rows), self._source.casters)

  def _step(self, i: int) -> StepData:
    e = bisect.bisect_right(self._starts_list, i) - 1
    ep, k = self._source.read_step(e, i - self._starts_list[e])
    return rlds.to_step_data(ep, k, self._source.casters)

  @property
  def problems(self) -> list[str]:
    """Damage found when opening the log and worked around, one line per problem."""
    return list(self._source.problems)

  def episode_metadata(self) -> Sequence[Any]:
    """A lazy sequence of every episode's metadata (None where there is none)."""
    return _LazySequence(len(self._lengths), self._source.read_episode_metadata)

  def metadata(self) -> dict[str, Any]:
    """Dataset metadata, as the original EnvLogger returns it.

    For a log written by one logger: its `metadata` dict plus
    'environment_specs' (the env's four specs). For a log that several loggers
    appended to, the user keys come from the first run; every run's metadata is
    in `runs()`.
    """
    stored = self._source.dataset_metadata()
    if stored is not None:  # a Riegeli log: the metadata record, as the original returns it
      return stored
    runs = self._source.runs()
    user = dict(runs[0]['metadata']) if runs else {}
    user['environment_specs'] = self._source.schema.env_specs()
    return user

  def runs(self) -> list[dict[str, Any]]:
    """One record per logger that wrote to this log: run_id, created, metadata."""
    return self._source.runs()

  def as_columns(
    self,
    episodes: slice | Sequence[int] | np.ndarray | None = None,
    fields: Sequence[str] | None = None,
  ) -> dict[str, Any]:
    """Many episodes at once, their steps concatenated: the fast columnar read.

    `r.as_columns()['steps']` holds what `np.concatenate` of every episode's
    `as_rlds()['steps']` would, field by field, without building an episode
    object per episode. Logs written here decode many records at once with
    numpy: records of one layout in groups (the compact format; default logs
    of small leaves), others walked together (zlib-compressed boards and
    frames); millions of steps per second on small observations. DeepMind's
    Riegeli logs decode episode by episode.

    Args:
      episodes: which episodes, in the order given: None for all, a slice, or
        a sequence or array of indexes (negative ones count from the end;
        repeats allowed).
      fields: the step fields to read, among 'observation', 'action',
        'reward', 'discount' and (in logs with a step_fn) 'custom_data'; None
        for all. The others are not decoded: returns of a log of frames are
        read without inflating a frame. The step flags (is_first, is_last,
        is_terminal) always come back, and has_custom_data with custom_data.

    Returns:
      {'steps': {field: array nest of shape (total_steps, ...)}, as in
      `Episode.as_rlds()`; 'episode_lengths': int64 array (num_episodes,),
      episode i's steps are rows `starts[i]:starts[i] + lengths[i]` with
      `starts` the running sum of the lengths; 'episode_id', 'run_id':
      lists of str; 'cut_short', 'invalid': bool arrays (num_episodes,);
      'episode_metadata': list (None where there is none)}. The arrays are
      fresh (the caller's). Everything asked for is decoded into memory at
      once: read a large log in slices of episodes.

    Raises:
      IndexError: an index is out of range.
      ValueError: `fields` names a field the log does not have.
      DamagedEpisodeError: an episode cannot be read back.
    """
    wanted = None if fields is None else self._step_fields(fields)
    n = len(self._lengths)
    if episodes is None:
      idx = np.arange(n, dtype=np.int64)
    elif isinstance(episodes, slice):
      idx = np.arange(n, dtype=np.int64)[episodes]
    else:
      if isinstance(episodes, (str, bytes)) or np.ndim(episodes) != 1:
        raise TypeError(f'episodes takes None, a slice or a sequence of indexes, not {episodes!r}')
      idx = np.asarray(episodes)
      if idx.size and idx.dtype.kind not in 'iu':
        raise TypeError(f'episode indexes must be integers, not {idx.dtype}')
      idx = idx.astype(np.int64)
      bad = (idx < -n) | (idx >= n)
      if bad.any():
        raise IndexError(f'episodes {idx[bad][:5].tolist()} out of range: the log has {n}')
      idx = np.where(idx < 0, idx + n, idx)
    batch = self._source.read_batch(idx, wanted)
    return {
      _schema.STEPS: _rlds_steps(batch, self._source.casters),
      'episode_lengths': batch.lengths,
      _schema.EPISODE_ID: batch.episode_id,
      _schema.RUN_ID: batch.run_id,
      _schema.CUT_SHORT: batch.cut_short,
      _schema.INVALID: batch.invalid,
      _schema.EPISODE_METADATA: batch.metadata,
    }

  def _step_fields(self, fields: Sequence[str]) -> frozenset[str]:
    """`fields` checked against the log's step fields."""
    if isinstance(fields, (str, bytes)):
      raise TypeError(f'fields takes a sequence of field names, such as [{fields!r}], not a string')
    have = [f for f in rlds.STEP_FIELDS if self._source.casters.field(f) is not None]
    unknown = [f for f in fields if f not in have]
    if unknown:
      raise ValueError(f'fields {unknown} are not step fields of this log; it has {have}')
    return frozenset(fields)

  def episode_lengths(self) -> np.ndarray:
    """Number of recorded steps of every episode (no decoding)."""
    return self._lengths.copy()

  def observation_spec(self):
    return self._source.schema.observation_spec

  def action_spec(self):
    return self._source.schema.action_spec

  def reward_spec(self):
    return self._source.schema.reward_spec

  def discount_spec(self):
    return self._source.schema.discount_spec

  def copy(self) -> Reader:
    """An independent reader (own file handles) sharing this one's index."""
    copy = Reader(_source=self._source.copy())
    copy._open_args = self._open_args
    return copy

  def __reduce__(self):
    if self._open_args is None:
      raise TypeError(
        'This Reader reads an in-memory log (backend=...) and cannot be pickled; log to a '
        'data_directory and open a Reader on it.'
      )
    return _reopen, (self._open_args, self._lengths, sorted(self._source.problems))

  def as_tf_dataset(self, split: str | None = None, **kwargs):
    """The log's RLDS episodes as a `tf.data.Dataset` (imports TensorFlow).

    Equivalent to `tfds.builder_from_directory(dir).as_dataset(split=...)`.
    """
    from envlogger.backends import tfds as tfds_backend  # noqa: PLC0415

    if not isinstance(self._source, tfds_backend.TFDSLogSource):
      raise TypeError('as_tf_dataset() needs a log written by the TFDS backend.')
    if self._source.file_format != 'tfrecord':
      raise TypeError(
        'as_tf_dataset() reads the default (tfrecord) format: TFDS has no tf.data reader for '
        'ArrayRecord datasets. Use tfds.builder_from_directory(dir).as_data_source() for random '
        'access, or `envlogger convert` this log into the default format.'
      )
    import tensorflow_datasets as tfds  # noqa: PLC0415

    builder = tfds.builder_from_directory(self._source.dataset_dir)
    return builder.as_dataset(split=split or self._source.log_info['split'], **kwargs)

  # -- lifecycle --------------------------------------------------------------

  def close(self) -> None:
    self._source.close()

  def __enter__(self) -> Reader:
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  def __repr__(self) -> str:
    return f'<envlogger.Reader: {len(self.episodes)} episodes, {len(self.steps)} steps>'


def _reopen(open_args: dict[str, Any], lengths: np.ndarray, problems: list[str]) -> Reader:
  """Unpickles a Reader: opens its directory again and checks it still holds the same episodes."""
  reader = Reader(**open_args)
  now = reader.episode_lengths()
  if sorted(reader.problems) != problems:
    reader.close()
    raise RuntimeError(
      f'The log at {open_args["data_directory"]} opens with other problems than when this Reader was '
      f'pickled ({problems} then, {reader.problems} now), so its episode indexes may differ.'
    )
  if len(now) < len(lengths) or np.any(now[: len(lengths)] != lengths):
    reader.close()
    raise RuntimeError(
      f'The log at {open_args["data_directory"]} no longer holds the episodes this Reader was pickled '
      'with (other lengths or fewer episodes: was it rewritten or recovered?).'
    )
  return reader


def _open_source(data_directory, dataset_name, version, backend, verify) -> source_lib.LogSource:
  if backend is not None:
    if not hasattr(backend, 'as_source'):
      raise TypeError(f'Cannot read from backend {backend!r}: it has no as_source().')
    return backend.as_source()
  if data_directory is None:
    raise ValueError('Reader needs data_directory= (or backend= for an in-memory log).')
  from envlogger._riegeli import layout as riegeli_layout  # noqa: PLC0415
  from envlogger.backends import tfds as tfds_backend  # noqa: PLC0415

  data_directory = os.fspath(data_directory)
  if not os.path.isdir(data_directory):
    raise NoLogError(f'{data_directory} does not exist or is not a directory.')
  if riegeli_layout.is_riegeli_log(data_directory):
    from envlogger.backends import riegeli as riegeli_backend  # noqa: PLC0415

    return riegeli_backend.RiegeliLogSource(data_directory, verify=verify)
  dirs = tfds_backend.find_dataset_dirs(data_directory)
  if dataset_name is not None:
    dirs = [d for d in dirs if os.path.basename(os.path.dirname(d)) == dataset_name]
  if version is not None:
    dirs = [d for d in dirs if os.path.basename(d) == version]
  if not dirs:
    raise NoLogError(
      f'{data_directory} holds no envlogger log (no {tfds_backend.LOG_FILE} in it or in '
      '<dataset_name>/<version>/ below it).'
    )
  if len(dirs) > 1:
    raise ValueError(f'{data_directory} holds several logs: {dirs}; pass dataset_name= and/or version=.')
  return tfds_backend.TFDSLogSource(dirs[0], verify=verify)
