"""Training data from a log without TensorFlow: transitions and windows as numpy arrays.

`Transitions` and `Windows` are random-access views of a log, built from the
Reader's RLDS episode columns (see docs/alignment.md and docs/loaders.md):

  transitions = Transitions('/tmp/logs')
  len(transitions)            # number of (o, a, r, d, o') transitions
  transitions[7]              # one transition: dict of numpy arrays
  transitions[[3, 9, 4]]      # a batch: the same dict, every leaf stacked
  for batch in transitions.batches(256, seed=0): ...   # an epoch of batches

Batches are dicts (observations keep the nest of their spec: dicts, tuples,
lists) of C-contiguous numpy arrays with a leading batch dimension, so
`jax.numpy.asarray`, `torch.from_numpy` and numpy take every numeric leaf as
it is. `StringArray` leaves are numpy object arrays.

Opening builds an index from `Reader.episode_lengths()` (no decoding). A
batch decodes the episodes its items come from at once: short ones together
(one `Reader.as_columns` call), of long ones only the steps its items need
(see `_EpisodeView._sources`); the last few episodes decoded whole are kept.
The views pickle (they hold the log's directory and reopen it in each
process), so they work in multi-worker `torch.utils.data.DataLoader` (see
`envlogger.torch`) and `multiprocessing` pools. This module imports neither
TensorFlow nor PyTorch.
"""

from __future__ import annotations

import abc
import collections
import os
import threading
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import tree

from envlogger import _schema
from envlogger.reader import Reader

Source = str | os.PathLike | Reader
# Episodes up to this many raw bytes of steps are decoded in batches (see `_sources`).
BATCH_EPISODE_BYTES = 64 << 10
# A longer episode a batch needs fewer than 1/SPARSE_ROWS of the steps of has only those decoded.
SPARSE_ROWS = 4

_RLDS_STEP_FIELDS = (
  _schema.OBSERVATION,
  _schema.ACTION,
  _schema.REWARD,
  _schema.DISCOUNT,
  _schema.IS_FIRST,
  _schema.IS_LAST,
  _schema.IS_TERMINAL,
)


def _reader_directory(reader: Reader) -> str | None:
  """The directory a Reader can be reopened from (None for an in-memory log)."""
  source = reader._source  # the Reader has no public directory attribute
  for attr in ('dataset_dir', 'data_directory'):
    path = getattr(source, attr, None)
    if isinstance(path, (str, os.PathLike)):
      return os.fspath(path)
  return None


class _Columns:
  """Decoded steps (of one episode or of several, concatenated): every RLDS
  step field as (nest structure, leaf columns)."""

  def __init__(self, steps: dict[str, Any] | None = None):
    self.fields: dict[str, tuple[Any, list[np.ndarray]]] = {
      name: (value, tree.flatten(value)) for name, value in (steps or {}).items()
    }

  def rows(self, a: int, b: int, copy: bool) -> _Columns:
    """Rows a..b-1 (copies, or views that keep the whole arrays alive)."""
    out = _Columns()
    out.fields = {
      name: (structure, [leaf[a:b].copy() if copy else leaf[a:b] for leaf in leaves])
      for name, (structure, leaves) in self.fields.items()
    }
    return out


class _EpisodeView(abc.ABC):
  """Shared machinery of `Transitions` and `Windows`: the index, the Reader, pickling.

  Subclasses define `_counts(lengths)` (items per episode), `_steps(j, lengths)`
  (the first RLDS step of item j of an episode), `_gather_episode(...)` (items
  from decoded columns) and `_output_names()`.
  """

  def __init__(
    self,
    source: Source,
    *,
    episodes: Sequence[int] | np.ndarray | None = None,
    fields: bool | Sequence[str] | Mapping[str, str] = False,
    cache_episodes: int | None = 4,
    dataset_name: str | None = None,
    version: str | None = None,
    verify: bool = False,
  ):
    if cache_episodes is not None and cache_episodes < 1:
      raise ValueError(f'cache_episodes must be at least 1 (or None: no limit), got {cache_episodes}')
    self._fields: tuple[tuple[str, str], ...] | None
    if isinstance(fields, bool):
      self._fields = None if fields else ()
    elif isinstance(fields, str):
      raise TypeError(f'fields takes a sequence of field names (or True), not the string {fields!r}')
    elif isinstance(fields, Mapping):
      self._fields = tuple((str(k), str(v)) for k, v in fields.items())
    else:
      self._fields = tuple((str(f), str(f)) for f in fields)
    self._warned = False
    if isinstance(source, Reader):
      if dataset_name is not None or version is not None or verify:
        raise ValueError(
          'dataset_name, version and verify are for opening a directory; pass them to the Reader.'
        )
      reader, self._owns_reader = source, False
      self._path = _reader_directory(source)
    else:
      reader, self._owns_reader = (
        Reader(data_directory=source, dataset_name=dataset_name, version=version, verify=verify),
        True,
      )
      self._path = os.fspath(source)
    self._dataset_name = dataset_name
    self._version = version
    self._verify = verify
    self._problems = sorted(reader.problems)
    all_lengths = reader.episode_lengths()
    if episodes is None:
      selected = np.arange(len(all_lengths), dtype=np.int64)
    else:
      selected = np.asarray(episodes, dtype=np.int64).reshape(-1)
      bad = (selected < 0) | (selected >= len(all_lengths))
      if bad.any():
        if self._owns_reader:
          reader.close()
        raise IndexError(
          f'episodes {selected[bad][:5].tolist()} out of range: the log has {len(all_lengths)}'
        )
    self._episodes = selected
    self._lengths = all_lengths[selected].astype(np.int64)
    counts = self._counts(self._lengths).astype(np.int64)
    self._offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    self._cache_size = None if cache_episodes is None else int(cache_episodes)
    self._attach(reader)

  # -- the Reader, per process --------------------------------------------------

  def _attach(self, reader: Reader | None) -> None:
    self._reader = reader
    self._pid = os.getpid()
    self._cache: collections.OrderedDict[int, _Columns] = collections.OrderedDict()
    self._lock = threading.Lock()

  @property
  def reader(self) -> Reader:
    """The Reader this view reads from (reopened after unpickling or a fork)."""
    if self._pid != os.getpid():  # a forked child: own file handles and cache
      inherited = self._reader
      self._attach(None)
      if self._path is None:  # an in-memory log: the child's copy of it is fine
        self._reader = inherited
      elif inherited is not None and self._owns_reader:
        inherited.close()  # the child's copies of the parent's descriptors
    if self._reader is None:
      self._reader = self._reopen()
      self._owns_reader = True
    return self._reader

  def _reopen(self) -> Reader:
    reader = Reader(
      data_directory=self._path, dataset_name=self._dataset_name, version=self._version, verify=self._verify
    )
    if sorted(reader.problems) != self._problems:
      reader.close()
      raise RuntimeError(
        f'The log at {self._path} opens with other problems than when this {type(self).__name__} was '
        f'built ({self._problems} then, {reader.problems} now: damage found, repaired, or skipped by '
        'Reader(verify=True)), so its episode indexes may differ. Build it again (from the directory, '
        'with verify=True to skip damaged episodes).'
      )
    lengths = reader.episode_lengths()
    if len(self._episodes) and (
      self._episodes.max() >= len(lengths) or np.any(lengths[self._episodes] != self._lengths)
    ):
      reader.close()
      raise RuntimeError(
        f'The log at {self._path} is not the one this {type(self).__name__} was built on: its episodes '
        'have other lengths (was the log rewritten or recovered?). Build it again.'
      )
    return reader

  def __getstate__(self) -> dict[str, Any]:
    if self._path is None:
      raise TypeError(
        f'This {type(self).__name__} reads an in-memory log and cannot be pickled; '
        'log to a data_directory and build it from that directory.'
      )
    state = self.__dict__.copy()
    for key in ('_reader', '_cache', '_lock', '_pid'):
      del state[key]
    return state

  def __setstate__(self, state: dict[str, Any]) -> None:
    self.__dict__.update(state)
    self._owns_reader = True
    self._attach(None)

  def close(self) -> None:
    """Closes the Reader if this view opened it (it reopens if used again)."""
    with self._lock:
      self._cache.clear()
      if self._reader is not None and self._owns_reader and self._pid == os.getpid():
        self._reader.close()
        self._reader = None

  def __enter__(self):
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  # -- the index ------------------------------------------------------------------

  @abc.abstractmethod
  def _counts(self, lengths: np.ndarray) -> np.ndarray:
    """Defined by each view."""

  @abc.abstractmethod
  def _steps(self, j: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Defined by each view."""

  def __len__(self) -> int:
    return int(self._offsets[-1])

  @property
  def episodes(self) -> np.ndarray:
    """The Reader's indexes of the episodes this view draws from, in order."""
    return self._episodes.copy()

  @property
  def episode_lengths(self) -> np.ndarray:
    """The recorded steps of each of `episodes`."""
    return self._lengths.copy()

  def _normalize(self, indices: Any) -> np.ndarray:
    n = len(self)
    idx = np.asarray(indices)
    if idx.dtype == np.bool_ or not (idx.size == 0 or np.issubdtype(idx.dtype, np.integer)):
      raise TypeError(f'indices must be integers, got {idx.dtype}')
    idx = idx.astype(np.int64).reshape(-1)
    out = np.where(idx < 0, idx + n, idx)
    bad = (out < 0) | (out >= n)
    if bad.any():
      raise IndexError(f'index {int(idx[bad][0])} out of range for {n} items')
    return out

  def locate(self, indices: Any) -> tuple[np.ndarray, np.ndarray]:
    """The (Reader episode index, first RLDS step) of each item in `indices`."""
    idx = self._normalize(indices)
    pos = np.searchsorted(self._offsets, idx, side='right') - 1
    return self._episodes[pos], self._steps(idx - self._offsets[pos], self._lengths[pos])

  # -- access ---------------------------------------------------------------------

  def _extra_fields(self, cols: _Columns) -> tuple[tuple[str, str], ...]:
    """(custom step field, output key) pairs."""
    if self._fields is None:
      outputs = self._output_names()
      return tuple((f, f) for f in cols.fields if f not in _RLDS_STEP_FIELDS and f not in outputs)
    return self._fields

  def _check_fields(self, cols: _Columns) -> None:
    available = [f for f in cols.fields if f not in _RLDS_STEP_FIELDS]
    if self._fields is None:
      clash = [f for f in available if f in self._output_names()]
      if clash and not self._warned:
        self._warned = True
        warnings.warn(
          f'custom step fields {clash} have the names of {type(self).__name__} outputs and are left out; '
          f"rename them: fields={{{clash[0]!r}: 'logged_{clash[0]}', ...}}",
          stacklevel=4,
        )
      return
    unknown = [src for src, _ in self._fields if src not in available]
    if unknown:
      raise KeyError(f'fields {unknown} are not custom step fields of this log; it has {available}')
    clash = [dst for _, dst in self._fields if dst in self._output_names()]
    if clash:
      raise ValueError(
        f'custom step fields {clash} have the names of {type(self).__name__} outputs; '
        f"rename them: fields={{{clash[0]!r}: 'logged_{clash[0]}'}}"
      )

  @abc.abstractmethod
  def _output_names(self) -> tuple[str, ...]:
    """Defined by each view."""

  def batch(self, indices: Any) -> dict[str, Any]:
    """Items `indices` (ints, negative ones from the end) stacked on a leading axis.

    Returns:
      A dict of the items' fields, each a nest of numpy arrays of shape
      (len(indices), ...), in the order of `indices`. The arrays are fresh:
      writing into them changes nothing this view returns later.
    """
    idx = self._normalize(indices)
    if len(self) == 0:
      raise IndexError(f'this {type(self).__name__} is empty')
    if idx.size == 0:  # shapes and dtypes: those of item 0, none of its rows
      return tree.map_structure(lambda x: x[:0], self.batch([0]))
    pos = np.searchsorted(self._offsets, idx, side='right') - 1
    lengths = self._lengths[pos]
    starts = self._steps(idx - self._offsets[pos], lengths)
    # parts: (which items, columns, their first rows there, where their episodes end there)
    parts = []
    for items, cols, base in self._sources(self._episodes[pos], lengths, starts):
      parts.append((items, cols, base + starts[items], base + lengths[items]))
    if len(parts) == 1:
      _, cols, rows, ends = parts[0]
      return self._gather_episode(cols, rows, ends)
    gathered = [self._gather_episode(cols, rows, ends) for _, cols, rows, ends in parts]
    flat_parts = [tree.flatten(g) for g in gathered]
    out = []
    for i, first in enumerate(flat_parts[0]):
      leaf = np.empty((len(idx), *first.shape[1:]), dtype=first.dtype)
      for (items, *_), flat in zip(parts, flat_parts):
        leaf[items] = flat[i]
      out.append(leaf)
    return tree.unflatten_as(gathered[0], out)

  def _sources(
    self, episodes: np.ndarray, lengths: np.ndarray, starts: np.ndarray
  ) -> list[tuple[np.ndarray, _Columns, np.ndarray]]:
    """Where the steps of the items are: (items, columns, for each item the row
    of its episode's step 0 there, so that its first step is at that row plus
    its start). `episodes`, `lengths`, `starts`: each item's Reader episode,
    its length and the item's first step.

    Cached episodes are their own sources. Short episodes not cached (up to
    BATCH_EPISODE_BYTES of raw steps) are decoded together by one
    `Reader.as_columns` call (records decoded in batches: 1.6x (default
    format) to 5x (compact) faster per step than one by one on Catch-like
    episodes). Of a longer episode, only the steps the items need are decoded
    when that is less than 1/SPARSE_ROWS of it (random batches from logs of
    long episodes: 2 steps of 200 frames per transition); else it is decoded
    whole. The last `cache_episodes` episodes decoded whole are cached.
    """
    reader = self.reader  # first: in a forked child, this resets the cache and the lock
    unique, where, inverse = np.unique(episodes, return_index=True, return_inverse=True)
    sizes = (lengths[where] * max(1, sum(reader._source.casters.step_nbytes))).tolist()
    span = self._span()
    order = np.argsort(inverse, kind='stable')  # the items of unique[u]: order[bounds[u]:bounds[u + 1]]
    bounds = np.searchsorted(inverse[order], np.arange(len(unique) + 1)).tolist()
    sources = []
    with self._lock:  # the Reader is not thread-safe: threads decode one at a time
      short, decoded = [], []
      for u, e in enumerate(unique.tolist()):
        items = order[bounds[u] : bounds[u + 1]]
        cols = self._cache.get(e)
        if cols is not None:
          self._cache.move_to_end(e)
        elif sizes[u] <= BATCH_EPISODE_BYTES:
          short.append(u)
          continue
        else:
          n = int(lengths[where[u]])
          rows = np.unique(np.minimum(starts[items, None] + np.arange(span), n - 1))
          if len(rows) * SPARSE_ROWS < n:  # only the steps needed, at rows 0..len(rows)-1
            cols = _Columns(reader._rlds_rows(e, rows))
            self._check_fields(cols)
            first = starts[items]
            sources.append((items, cols, np.searchsorted(rows, first) - first))
            continue
          cols = _Columns(reader.episodes[e].as_rlds()[_schema.STEPS])
          self._check_fields(cols)
          decoded.append((e, cols))
        sources.append((items, cols, np.zeros(len(items), dtype=np.int64)))
      if short:
        block = reader.as_columns(unique[short])
        cols = _Columns(block[_schema.STEPS])
        self._check_fields(cols)
        n = block['episode_lengths']
        first = np.zeros(len(unique), dtype=np.int64)
        first[short] = np.cumsum(n) - n
        items = np.flatnonzero(np.isin(inverse, short))
        sources.append((items, cols, first[inverse[items]]))
        # Cached: copies (a view would keep the whole block alive), unless the cache keeps everything.
        copy = self._cache_size is not None
        recent = list(zip(short, n.tolist()))[-self._cache_size :] if copy else zip(short, n.tolist())
        decoded += [(int(unique[u]), cols.rows(int(first[u]), int(first[u]) + k, copy)) for u, k in recent]
      for e, cols in decoded:
        self._cache[e] = cols
        self._cache.move_to_end(e)
      while self._cache_size is not None and len(self._cache) > self._cache_size:
        self._cache.popitem(last=False)
    return sources

  @abc.abstractmethod
  def _span(self) -> int:
    """Steps an item covers from its first step (defined by each view)."""

  @abc.abstractmethod
  def _gather_episode(self, cols: _Columns, rows: np.ndarray, ends: np.ndarray) -> dict[str, Any]:
    """The items whose first RLDS steps are rows `rows` of `cols`, their
    episodes ending before rows `ends` (defined by each view)."""

  def __getitem__(self, index: Any) -> dict[str, Any]:
    """`view[i]`: one item (arrays without the batch axis); a slice, list or
    integer array gives a batch (see `batch`)."""
    if isinstance(index, (int, np.integer)):
      return tree.map_structure(lambda x: x.reshape(x.shape[1:]), self.batch([int(index)]))
    if isinstance(index, slice):
      return self.batch(np.arange(len(self))[index])
    return self.batch(index)

  def __iter__(self) -> Iterator[dict[str, Any]]:
    for i in range(len(self)):
      yield self[i]

  def permutation(
    self, *, seed: int | np.random.Generator | None = None, episodes_per_block: int | None = None
  ) -> np.ndarray:
    """A random order of every item index, for shuffled training.

    Args:
      seed: seed or generator of the order.
      episodes_per_block: None for a uniform permutation. Else the episodes
        are shuffled and cut into blocks of this many; all the items of a
        block come before those of the next, shuffled within the block. With
        a block no larger than `cache_episodes`, each episode is decoded once
        per pass instead of once per batch or so: much faster on logs larger
        than the cache, at the price of batches drawn from a few episodes.
    """
    rng = np.random.default_rng(seed)
    n = len(self)
    if episodes_per_block is None:
      return rng.permutation(n)
    if episodes_per_block < 1:
      raise ValueError(f'episodes_per_block must be at least 1, got {episodes_per_block}')
    counts = np.diff(self._offsets)
    rank = np.empty(len(counts), dtype=np.int64)
    rank[rng.permutation(len(counts))] = np.arange(len(counts))
    keys = np.repeat(rank // episodes_per_block, counts) + rng.random(n)  # block, then a random place in it
    return np.argsort(keys, kind='stable')

  def batches(
    self,
    batch_size: int,
    *,
    shuffle: bool = True,
    seed: int | np.random.Generator | None = None,
    episodes_per_block: int | None = None,
    drop_last: bool = False,
  ) -> Iterator[dict[str, Any]]:
    """One pass over every item, in batches (see `batch`).

    Args:
      batch_size: items per batch.
      shuffle: visit the items in a random order (else in index order).
      seed: seed or generator of the order.
      episodes_per_block: shuffle episode blocks of this size (see
        `permutation`) rather than all the items.
      drop_last: skip a last batch smaller than `batch_size`.
    """
    if batch_size < 1:
      raise ValueError(f'batch_size must be at least 1, got {batch_size}')
    if shuffle:
      order = self.permutation(seed=seed, episodes_per_block=episodes_per_block)
    else:
      order = np.arange(len(self))
    stop = len(order) - len(order) % batch_size if drop_last else len(order)
    for lo in range(0, stop, batch_size):
      yield self.batch(order[lo : lo + batch_size])

  def _describe(self) -> str:
    return ''

  def __repr__(self) -> str:
    where = self._path if self._path is not None else 'an in-memory log'
    return f'<{type(self).__name__}{self._describe()}: {len(self)} items from {len(self._episodes)} episodes of {where}>'


def _take(field: tuple[Any, list[np.ndarray]], rows: np.ndarray) -> Any:
  structure, leaves = field
  return tree.unflatten_as(structure, [leaf[rows] for leaf in leaves])


class Transitions(_EpisodeView):
  """The (o, a, r, d, o') transitions of a log, with random and batched access.

  Within each episode of n recorded steps, RLDS steps k and k+1 (k = 0 .. n-2)
  give transition k: the observation o_k, the action a_k taken at it, the
  reward r_k and discount d_k that followed, and the next observation o_{k+1}.
  The last RLDS step starts no transition (no action followed it), so an
  episode of n steps has n-1 transitions and one of 1 step has none; no
  transition crosses an episode boundary. Items are numbered episode by
  episode (in the order of `episodes`), step by step.

  Each item is a dict:
    'observation': o_k (a nest of the observation spec's structure).
    'action': a_k.
    'reward': r_k, as stored (RLDS step k's reward).
    'discount': d_k, as stored: 0 when o_{k+1} is terminal (bootstrap with
      `reward + gamma * discount * V(next_observation)`).
    'next_observation': o_{k+1}.
    'terminal': bool, o_{k+1} is terminal (the episode ended with discount 0;
      RLDS `is_terminal` of step k+1).
    'last': bool, o_{k+1} is the last recorded observation of its episode
      (terminated, truncated, or cut short; RLDS `is_last` of step k+1).
      `last and not terminal` is a truncation.
    'episode_index', 'step_index': int64, the Reader's episode index and k.
    and the custom step fields chosen with `fields`, from RLDS step k (the
    values `step_fn` returned at o_k).

  In a thinned log (a step scheduler skipped steps), transitions join
  consecutive *recorded* steps: o_{k+1} is then not the observation a_k led
  to (see docs/alignment.md).

  Args:
    source: a log's directory (as `Reader` takes it) or an open `Reader`. A
      Reader of an in-memory log works, but the view then does not pickle.
    episodes: the Reader's indexes of the episodes to use, in this order
      (a train/test split); all episodes by default.
    fields: custom step fields to add: names of RLDS step fields written by
      `step_fn` ('custom_data' for non-dict values, 'has_custom_data'), a
      dict {field: output key} to rename them (a field named like an output,
      such as 'step_index', must be renamed), or True for all of them (but
      those named like an output, left out with a warning).
    cache_episodes: decoded episodes kept in memory (per process); None keeps
      every episode once decoded (for a log that fits in memory).
    dataset_name, version: choose a log in a directory holding several.
    verify: open the log with `Reader(verify=True)` (here and in every
      process it is reopened in): damaged episodes are skipped, at the cost
      of reading the whole log at each opening.
  """

  _OUTPUTS = (
    _schema.OBSERVATION,
    _schema.ACTION,
    _schema.REWARD,
    _schema.DISCOUNT,
    'next_observation',
    'terminal',
    'last',
    'episode_index',
    'step_index',
  )

  def _counts(self, lengths: np.ndarray) -> np.ndarray:
    return np.maximum(lengths - 1, 0)

  def _steps(self, j: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    return j

  def _output_names(self) -> tuple[str, ...]:
    return self._OUTPUTS

  def _span(self) -> int:
    return 2  # o_k and o_{k+1}

  def _gather_episode(self, cols: _Columns, rows: np.ndarray, ends: np.ndarray) -> dict[str, Any]:
    f = cols.fields
    k, k1 = rows, rows + 1
    out = {
      _schema.OBSERVATION: _take(f[_schema.OBSERVATION], k),
      _schema.ACTION: _take(f[_schema.ACTION], k),
      _schema.REWARD: _take(f[_schema.REWARD], k),
      _schema.DISCOUNT: _take(f[_schema.DISCOUNT], k),
      'next_observation': _take(f[_schema.OBSERVATION], k1),
      'terminal': _take(f[_schema.IS_TERMINAL], k1),
      'last': _take(f[_schema.IS_LAST], k1),
    }
    for src, dst in self._extra_fields(cols):
      out[dst] = _take(f[src], k)
    return out

  def batch(self, indices: Any) -> dict[str, Any]:
    out = super().batch(indices)
    episode, step = self.locate(indices)
    out['episode_index'], out['step_index'] = episode, step
    return out


class Windows(_EpisodeView):
  """Windows of `size` consecutive RLDS steps inside episodes, with random access.

  Window j of an episode of n recorded steps covers RLDS steps
  s, s+1, .., s+size-1 with s = j * stride. No window crosses an episode
  boundary. Without `pad`, windows lie inside the episode
  (s + size <= n; an episode shorter than `size` has none). With `pad`, every
  s = 0, stride, 2*stride, .. < n starts a window, and the steps past the
  episode's end repeat its last step (whose action, reward and discount are
  zeros) with `mask` False.

  Each item is a dict of arrays with a leading axis of `size`, one row per
  step, in the RLDS alignment (row i holds observation o_{s+i}, the action
  taken at it, and the reward and discount that followed):
    'observation', 'action', 'reward', 'discount', 'is_first', 'is_last',
    'is_terminal': the RLDS step fields (the last step of an episode holds
      the final observation and zeros for action, reward and discount);
    'mask': bool, True for the episode's steps, False for padding;
    'episode_index', 'start_index': int64, the Reader's episode index and s;
    and the custom step fields chosen with `fields`.

  Args:
    source: a log's directory (as `Reader` takes it) or an open `Reader`.
    size: steps per window (>= 1).
    stride: steps between the starts of consecutive windows of an episode.
    pad: also start windows that run past the episode's end (padded, masked).
    episodes, fields, cache_episodes, dataset_name, version, verify: as `Transitions`.
  """

  _OUTPUTS = (*_RLDS_STEP_FIELDS, 'mask', 'episode_index', 'start_index')

  def __init__(
    self,
    source: Source,
    size: int,
    *,
    stride: int = 1,
    pad: bool = False,
    episodes: Sequence[int] | np.ndarray | None = None,
    fields: bool | Sequence[str] | Mapping[str, str] = False,
    cache_episodes: int | None = 4,
    dataset_name: str | None = None,
    version: str | None = None,
    verify: bool = False,
  ):
    if int(size) < 1 or int(stride) < 1:
      raise ValueError(f'size and stride must be at least 1, got size={size}, stride={stride}')
    self.size, self.stride, self.pad = int(size), int(stride), bool(pad)
    super().__init__(
      source,
      episodes=episodes,
      fields=fields,
      cache_episodes=cache_episodes,
      dataset_name=dataset_name,
      version=version,
      verify=verify,
    )

  def _counts(self, lengths: np.ndarray) -> np.ndarray:
    if self.pad:
      return (lengths + self.stride - 1) // self.stride
    return np.where(lengths >= self.size, (lengths - self.size) // self.stride + 1, 0)

  def _steps(self, j: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    return j * self.stride

  def _output_names(self) -> tuple[str, ...]:
    return self._OUTPUTS

  def _span(self) -> int:
    return self.size

  def _gather_episode(self, cols: _Columns, rows: np.ndarray, ends: np.ndarray) -> dict[str, Any]:
    rows = rows[:, None] + np.arange(self.size)
    mask = rows < ends[:, None]
    rows = np.minimum(rows, ends[:, None] - 1)
    f = cols.fields
    out = {name: _take(f[name], rows) for name in _RLDS_STEP_FIELDS}
    out['mask'] = mask
    for src, dst in self._extra_fields(cols):
      out[dst] = _take(f[src], rows)
    return out

  def batch(self, indices: Any) -> dict[str, Any]:
    out = super().batch(indices)
    episode, start = self.locate(indices)
    out['episode_index'], out['start_index'] = episode, start
    return out

  def _describe(self) -> str:
    return f'(size={self.size}, stride={self.stride}, pad={self.pad})'
