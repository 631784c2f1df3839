"""The default backend: an RLDS dataset in TFDS format, readable by `tfds.load`.

Layout of `data_directory` (the dataset is `<dataset_name>/<version>/`, so
`tfds.load(dataset_name, data_dir=data_directory)` finds it):

  <data_directory>/<dataset_name>/<version>/
    dataset_info.json, features.json, metadata.json   TFDS metadata
    <dataset_name>-<split>.tfrecord-00000             shards: one tf.train.Example
    ...                                               (RLDS episode) per record
    envlogger_log.json                                format version and schema
    envlogger_runs/<run_id>.json                      one per logger: dataset
                                                      metadata, specs, times
    envlogger_index/<shard>.jsonl                     per shard: one line
                                                      [offset, length, steps]
                                                      per episode
    envlogger_journal/<run_id>.<n>.journal            finished episodes, raw,
                                                      until they are in a shard

Records are written with TFRecord framing (length and CRC32C checksums) by
this package, without TensorFlow. By default the step that finishes an
episode journals it raw (`_journal`), and a background thread encodes it and
appends it to the shard with the episodes after it (whole frames, in one
`write` per MiB or per second, then their index lines in one more), so a
process killed at any moment loses no finished episode; a shard's index
can always be rebuilt from its frames. TFDS metadata is
published at the first episode, when a shard is rotated, on close(), on the
flush policy (`flush_every_episodes`, `flush_every_seconds`,
`flush_scheduler`) and by `envlogger recover`.

Several processes may write one dataset at once (see `envlogger._locks`):
each appends to shards of its own, and they take turns to publish.
"""

from __future__ import annotations

import contextlib
import datetime
import glob
import json
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from envlogger import _files, _jsonable, _locks, _schema, _tfrecord, _version, rlds
from envlogger import specs as specs_lib
from envlogger.backends import _batch_decode, _batch_walk, _journal, _tfds_codec, _tfds_metadata, base, source

LOG_FILE = 'envlogger_log.json'
RUNS_DIR = 'envlogger_runs'
INDEX_DIR = 'envlogger_index'
DEFAULT_DATASET_NAME = 'envlogger'
DEFAULT_VERSION = '1.0.0'
DEFAULT_SPLIT = 'train'
FILE_FORMATS = ('tfrecord',)
BATCH_RECORDS, BATCH_BYTES = 512, 64 << 20  # records read_batch decodes together, at most
AUTO_ASYNC_MAX_STEP_BYTES = 4096  # async_writes=None: the background writer up to this raw step size
# Journaled episodes are written to the shard together, when they reach this
# size or the oldest this age (see `TFDSBackendWriter._write_episode`).
UNWRITTEN_MAX_BYTES, UNWRITTEN_MAX_SECONDS = 1 << 20, 1.0
_NAME_RE = re.compile(r'^[a-z][a-z0-9_]*$')


def _now() -> str:
  return datetime.datetime.now(datetime.timezone.utc).isoformat()


def shard_pattern(name: str, split: str, file_format: str = 'tfrecord') -> str:
  return f'{name}-{split}.{file_format}-'


def _log_shard_pattern(log: dict[str, Any]) -> str:
  return shard_pattern(log['dataset_name'], log['split'], _file_format(log))


def _file_format(log: dict[str, Any]) -> str:
  """'tfrecord' (the default, written while logging) or 'array_record' (the compact format)."""
  return log.get('file_format', 'tfrecord')


class TFDSBackendWriter(base.BackendWriter):
  """Writes episodes as an RLDS dataset in TFDS format.

  Args:
    data_directory: root directory; created if missing. The dataset lives in
      `<data_directory>/<dataset_name>/<version>/`.
    dataset_name: TFDS dataset name (snake_case). Default 'envlogger'.
    version: TFDS version string 'X.Y.Z'. Default '1.0.0'.
    split_name: TFDS split the episodes go to. Default 'train'.
    max_episodes_per_file: episodes per shard before a new shard is started.
    file_format: only 'tfrecord' (what `tfds.load` reads).
    scheduler: what to record (see `envlogger.schedulers`).
    flush_scheduler: optional `StepData -> bool`, asked after each step; True
      flushes: republishes the TFDS metadata (dataset_info.json) so
      `tfds.load` sees every episode written so far.
    flush_every_episodes: also flush after this many episodes (None: never).
    flush_every_seconds: also flush at the end of the first episode this many
      seconds after the last flush (default 60; None: never). Publishing
      reads every index file of the dataset (about 1 ms per 1000 episodes).
    fsync: also `fsync` each finished episode before the step that finished
      it returns (its journal entry, or with `async_writes=False` its frame
      and index line): durable against power loss and kernel crashes, at the
      cost of a disk flush per episode. Without it, a finished episode
      survives the death of the process but not of the machine.
    description: text stored in dataset_info.json.
    max_episode_bytes, max_queued_batches: see `BackendWriter`.
    async_writes: True encodes and writes episodes into the shards in a
      background thread, so the env loop does not wait for encoding; write
      errors are raised by the next step. False does it in the step that
      finishes each episode. None (default) chooses by the raw size of a step
      (observation, action, reward and discount, from the specs): True up to
      `AUTO_ASYNC_MAX_STEP_BYTES` (4 KiB), False above. Both are crash-safe;
      the choice is for speed: a journal write copies the raw episode into
      new page-cache pages, which costs more than compressing it on large
      observations (the step ending a 200-step episode of 84x84x3 frames, on
      a 2-core VM: 14.6 ms with the journal, 2.6 ms encoding and writing in
      the step; 10-step episodes of 10x5 boards: 30 against 46 us). In all,
      False costs a little less on such boards (9.4 against 11.1-11.4 us per
      step, the whole loop): the writer thread's work and the env loop take
      turns holding the GIL, and the journal write is extra.
    journal: with `async_writes`, the step that finishes an episode first
      writes its raw columns to a journal file (`envlogger_journal/`, a few
      microseconds), so a process killed at any moment loses no finished
      episode: readers and `envlogger recover` take the journal's episodes
      that are not in the shards yet. Journal files are deleted once their
      episodes are in shards. False (the original's trade-off) keeps finished
      episodes in memory until the background writer stores them, in batches
      of up to 64 episodes or 8 MiB: those are lost if the process dies.
  """

  def __init__(
    self,
    data_directory: str,
    *,
    dataset_name: str = DEFAULT_DATASET_NAME,
    version: str = DEFAULT_VERSION,
    split_name: str = DEFAULT_SPLIT,
    max_episodes_per_file: int = 1000,
    file_format: str = 'tfrecord',
    scheduler=None,
    flush_scheduler=None,
    flush_every_episodes: int | None = None,
    flush_every_seconds: float | None = 60.0,
    fsync: bool = False,
    description: str | None = None,
    max_episode_bytes: int = base.DEFAULT_MAX_EPISODE_BYTES,
    async_writes: bool | None = None,
    journal: bool = True,
    max_queued_batches: int = 2,
  ):
    super().__init__(
      scheduler=scheduler,
      max_episode_bytes=max_episode_bytes,
      async_writes=bool(async_writes),
      max_queued_batches=max_queued_batches,
    )
    self._async_choice = async_writes  # None: chosen from the specs, in init_log
    if not data_directory:
      raise ValueError('data_directory is required for the TFDS backend.')
    if not _NAME_RE.match(dataset_name):
      raise ValueError(f'dataset_name must be snake_case (like "my_dataset"), got {dataset_name!r}.')
    if not re.match(r'^\d+\.\d+\.\d+$', version):
      raise ValueError(f"version must look like '1.0.0', got {version!r}.")
    if not re.match(r'^[a-zA-Z0-9_]+$', split_name):
      raise ValueError(f'split_name must be alphanumeric, got {split_name!r}.')
    if int(max_episodes_per_file) < 1:
      raise ValueError(f'max_episodes_per_file must be >= 1, got {max_episodes_per_file!r}.')
    if flush_every_episodes is not None and int(flush_every_episodes) < 1:
      raise ValueError(f'flush_every_episodes must be >= 1 or None, got {flush_every_episodes!r}.')
    if flush_every_seconds is not None and not float(flush_every_seconds) >= 0:
      raise ValueError(f'flush_every_seconds must be >= 0 or None, got {flush_every_seconds!r}.')
    if file_format not in FILE_FORMATS:
      raise ValueError(f'file_format must be one of {FILE_FORMATS}, got {file_format!r}.')
    self.data_directory = os.fspath(data_directory)
    self.dataset_name = dataset_name
    self.version = version
    self.split_name = split_name
    self.dataset_dir = os.path.join(self.data_directory, dataset_name, version)
    self._max_per_shard = int(max_episodes_per_file)
    self._flush_scheduler = flush_scheduler
    self._flush_every_episodes = None if flush_every_episodes is None else int(flush_every_episodes)
    self._flush_every_seconds = None if flush_every_seconds is None else float(flush_every_seconds)
    self._fsync = bool(fsync)
    self._episodes_since_flush = 0
    self._last_flush = time.monotonic()
    self._description = description
    self._shard_fd: int | None = None
    self._index_fd: int | None = None
    self._shard_name = ''
    self._shard_offset = self._shard_written = 0  # the next frame's offset; bytes on disk
    self._index_offset = self._index_written = 0
    self._shard_count = 0
    # Encoded episodes not written yet: (frame, index line, journal entry, episode id).
    self._unwritten: list[tuple[bytes, bytes, _journal.Entry | None, str]] = []
    self._unwritten_bytes = 0
    self._unwritten_since = 0.0
    self._worker.after_batch = self._after_batch
    self._codec: _tfds_codec.Codec | None = None
    self._published = False
    self._created = _now()
    self._journal_wanted = bool(journal)
    self._journal: _journal.JournalWriter | None = None
    self._journal_stopped = False  # an episode failed to reach a shard: the rest stay in the journal
    self._entry: _journal.Entry | None = None  # the journaled episode being written
    self._prev_shard: str | None = None
    self._file_format = 'tfrecord'

  # -- set-up -----------------------------------------------------------------

  @property
  def _use_journal(self) -> bool:
    return self._journal_wanted and self._worker.asynchronous

  def _on_init(self) -> None:
    if self._async_choice is None:
      self._worker.asynchronous = sum(self._casters.step_nbytes) <= AUTO_ASYNC_MAX_STEP_BYTES
    os.makedirs(os.path.join(self.dataset_dir, RUNS_DIR), exist_ok=True)
    os.makedirs(os.path.join(self.dataset_dir, INDEX_DIR), exist_ok=True)
    log_path = os.path.join(self.dataset_dir, LOG_FILE)
    with _locks.dataset_lock(self.dataset_dir):
      if os.path.exists(log_path):
        existing = _read_log_file(log_path)
        stored = _schema.Schema.from_json(existing['schema'])
        _check_env_specs(stored, self._schema)
        if existing.get('schema_fixed'):
          self._set_schema(stored)
          self._schema_fixed = True
        # Appending: finish what writers that died left behind (torn tails,
        # missing index lines, journaled episodes), so the next publication is loadable.
        repair_shards(self.dataset_dir, locked=True)
        if existing.get('schema_fixed'):
          fold_journals(self.dataset_dir)
      else:
        self._write_log_file(fixed=False)
    _files.write_json_atomic(
      os.path.join(self.dataset_dir, RUNS_DIR, f'{self.run_id}.json'),
      {
        'run_id': self.run_id,
        'created': self._created,
        'package_version': _version.__version__,
        'metadata': _jsonable.encode(self.metadata, 'metadata'),
        'env_specs': {k: specs_lib.spec_to_json(v) for k, v in self._schema.env_specs().items()},
      },
    )

  def _write_log_file(self, fixed: bool, encodings: dict[str, str] | None = None) -> None:
    _files.write_json_atomic(
      os.path.join(self.dataset_dir, LOG_FILE),
      {
        'format_version': _version.FORMAT_VERSION,
        'package_version': _version.__version__,
        'created': self._created,
        'dataset_name': self.dataset_name,
        'version': self.version,
        'split': self.split_name,
        'file_format': self._file_format,
        'schema': self._schema.to_json(),
        'schema_fixed': fixed,
        'encodings': encodings or {},
      },
    )

  # -- writing ----------------------------------------------------------------

  def _submit(self, finish: Callable[[], rlds.Episode], episode_id: str, nbytes: int) -> None:
    if not self._use_journal:
      super()._submit(finish, episode_id, nbytes)
      return
    if self._journal is None:
      if self._codec is None:
        self._fix_schema()  # here, not in the writer thread: journal entries need the log's schema fixed
      self._journal = _journal.JournalWriter(self.dataset_dir, self.run_id, self._casters, fsync=self._fsync)
    episode = rlds.conform(finish(), self._casters)
    entry = self._journal.append(episode)  # raises OSError at this step
    self._worker.submit(
      lambda: self._write_journaled(episode, entry), f'writing episode {episode_id}', nbytes=nbytes
    )

  def _write_journaled(self, episode: rlds.Episode, entry: _journal.Entry) -> None:
    """Stores a journaled episode in a shard (in the writer thread)."""
    if self._journal_stopped:
      return  # an earlier episode failed: this one stays in the journal, after it
    self._entry = entry
    try:
      self._write_episode(episode)
    except BaseException as e:
      if self._journal_stopped:  # a write failed, and said where the episodes are
        raise
      self._journal_stopped = True
      self._journal.keep_all()
      with contextlib.suppress(OSError):
        self._write_unwritten()  # the episodes before this one
      if isinstance(e, OSError):
        raise OSError(
          e.errno,
          f'{e.strerror or e} This episode and the ones after it stay in the journal '
          f'({entry.file.path}); readers see them, and `envlogger recover` stores them in shards.',
        ) from e
      raise
    finally:
      self._entry = None

  def _write_episode(self, episode: rlds.Episode) -> None:
    """Encodes an episode for the shard; writes it now unless it is journaled.

    A journaled episode's frame is held (`_unwritten`) and written with the
    ones after it, in one write each to the shard and its index, once they
    hold `UNWRITTEN_MAX_BYTES` or the oldest is `UNWRITTEN_MAX_SECONDS` old
    (see `_after_batch`), or before the metadata is published, a shard is
    rotated, the log is flushed or closed. Why: each write releases the GIL,
    and the writer thread then waits for the env loop to hand it back (up to
    the interpreter's 5 ms switch interval): writing each 10-step Catch
    episode on its own cost 2-5 us per step in all. The journal holds the
    episodes meanwhile, so a killed process loses none of them.
    """
    if self._codec is None:
      self._fix_schema()
    data = self._codec.encode(episode)
    if self._shard_fd is None or self._shard_count >= self._max_per_shard:
      self._rotate_shard()
    framed = _tfrecord.frame(data)
    line = _index_line(self._shard_offset, len(data), episode.num_steps)
    entry = self._entry
    if entry is not None:
      self._journal.before_write(entry, self._prev_shard, self._shard_name)
    if not self._unwritten:
      self._unwritten_since = time.monotonic()
    self._unwritten.append((framed, line, entry, episode.episode_id))
    self._unwritten_bytes += len(framed)
    self._shard_offset += len(framed)
    self._index_offset += len(line)
    self._shard_count += 1
    self._episodes_since_flush += 1
    if entry is None or self._unwritten_bytes >= UNWRITTEN_MAX_BYTES:
      self._write_unwritten()
    if not self._published or self._flush_due():
      self.flush_now()

  def _write_unwritten(self) -> None:
    """Appends the encoded episodes not written yet to the shard and its index."""
    batch = self._unwritten
    if not batch:
      return
    self._unwritten, self._unwritten_bytes = [], 0
    frames = b''.join([b[0] for b in batch]) if len(batch) > 1 else batch[0][0]
    lines = b''.join([b[1] for b in batch]) if len(batch) > 1 else batch[0][1]
    try:
      _files.write_all(self._shard_fd, frames)
      _files.write_all(self._index_fd, lines)
      if self._fsync:
        os.fsync(self._shard_fd)
        os.fsync(self._index_fd)
    except OSError as e:
      # Leave the files as they were before these episodes (a torn frame in
      # the middle of a shard would stop tfds.load), then report.
      self._undo_partial_write()
      self._shard_offset, self._index_offset = self._shard_written, self._index_written
      self._shard_count -= len(batch)
      self._episodes_since_flush = max(0, self._episodes_since_flush - len(batch))
      ids = batch[0][3] if len(batch) == 1 else f'{batch[0][3]} to {batch[-1][3]} ({len(batch)} episodes)'
      message = (
        f'Could not write episode {ids} ({len(frames)} bytes) to '
        f'{os.path.join(self.dataset_dir, self._shard_name)}: {e.strerror or e}. '
        'Episodes written before it are intact.'
      )
      first_entry = batch[0][2]
      if first_entry is not None:
        self._journal_stopped = True
        self._journal.keep_all()
        message += (
          f' This episode and the ones after it stay in the journal ({first_entry.file.path}); '
          'readers see them, and `envlogger recover` stores them in shards.'
        )
      raise OSError(e.errno, message) from e
    self._shard_written += len(frames)
    self._index_written += len(lines)
    for i, (_, _, entry, _) in enumerate(batch):  # each journal file's last entry tells it all
      if entry is not None and (i + 1 == len(batch) or batch[i + 1][2].file is not entry.file):
        self._journal.written(entry)

  def _after_batch(self) -> None:
    """In the writer thread, after each batch of jobs and when idle: writes
    held episodes once the oldest is `UNWRITTEN_MAX_SECONDS` old."""
    if self._unwritten and time.monotonic() - self._unwritten_since >= UNWRITTEN_MAX_SECONDS:
      self._write_unwritten()

  def flush(self) -> None:
    """Waits until every finished episode is in a shard; raises a pending write error."""
    if not self._closed:  # (close() wrote them)
      self._worker.submit(self._write_unwritten, 'writing episodes to the shard')
    super().flush()

  def _undo_partial_write(self) -> None:
    for fd, size in ((self._shard_fd, self._shard_written), (self._index_fd, self._index_written)):
      try:
        os.ftruncate(fd, size)
        os.lseek(fd, size, os.SEEK_SET)
      except OSError:
        pass  # the reader ignores a torn tail; `envlogger recover` moves it aside

  def _flush_due(self) -> bool:
    n, t = self._flush_every_episodes, self._flush_every_seconds
    if n is not None and self._episodes_since_flush >= n:
      return True
    return t is not None and time.monotonic() - self._last_flush >= t

  def flush_now(self) -> None:
    """Publishes the TFDS metadata now (with `fsync`, episodes are synced as written)."""
    self.publish()
    self._episodes_since_flush = 0
    self._last_flush = time.monotonic()

  def _after_step(self, data) -> None:
    if self._flush_scheduler is not None and self._flush_scheduler(data):
      self._worker.submit(self.flush_now, 'publishing TFDS metadata')

  def _fix_schema(self) -> None:
    with _locks.dataset_lock(self.dataset_dir):
      self._fix_schema_locked()

  def _fix_schema_locked(self) -> None:
    log_path = os.path.join(self.dataset_dir, LOG_FILE)
    existing = _read_log_file(log_path)
    if existing.get('schema_fixed'):
      stored = _schema.Schema.from_json(existing['schema'])
      if stored.to_json() != self._schema.to_json():
        raise specs_lib.SpecError(
          f'The data of this run does not match the log in {self.dataset_dir}: '
          f'stored schema {stored.to_json()} vs this run {self._schema.to_json()}.'
        )
      self._codec = self._new_codec(existing.get('encodings'))
    else:
      self._codec = self._new_codec(None)
      self._write_log_file(fixed=True, encodings=self._codec.encodings)

  def _new_codec(self, encodings: dict[str, str] | None) -> _tfds_codec.Codec:
    """The codec of the log (`encodings`: as stored; None: this writer's defaults)."""
    return _tfds_codec.Codec(self._schema, encodings)

  def _rotate_shard(self) -> None:
    self._write_unwritten()
    if self._shard_fd is not None and self._shard_count:
      self._prev_shard = self._shard_name
    self._close_shard()
    name, self._shard_fd, self._index_fd = _create_shard(self.dataset_dir, self.dataset_name, self.split_name)
    self._shard_name = name
    self._shard_offset = self._shard_written = 0
    self._index_offset = self._index_written = 0
    self._shard_count = 0
    if self._published:
      self.publish()

  def _close_shard(self) -> None:
    for fd in (self._shard_fd, self._index_fd):
      if fd is not None:
        os.close(fd)
    self._shard_fd = self._index_fd = None

  def _close(self) -> None:
    try:
      self._write_unwritten()
      if self._codec is not None:
        self.publish()
    finally:
      self._close_shard()
      if self._journal is not None:
        self._journal.close()

  # -- TFDS metadata ----------------------------------------------------------

  def publish(self) -> None:
    """Rewrites dataset_info.json/features.json to list every episode on disk."""
    if self._codec is None:
      return
    self._write_unwritten()
    with _locks.dataset_lock(self.dataset_dir):
      publish_tfds_metadata(self.dataset_dir, description=self._description)
    self._published = True


def _create_shard(
  dataset_dir: str, name: str, split: str, file_format: str = 'tfrecord'
) -> tuple[str, int, int]:
  """A new shard after the last on disk, locked by this process: (file name, fd, index fd)."""
  prefix = shard_pattern(name, split, file_format)
  index = max((i for _, i in _list_shards(dataset_dir, prefix)), default=-1) + 1
  while True:
    fname = f'{prefix}{index:05d}'
    try:
      fd = os.open(os.path.join(dataset_dir, fname), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
      break
    except FileExistsError:
      index += 1
  _locks.lock_shard(fd)  # held until the shard is closed (or the process dies)
  index_fd = os.open(
    os.path.join(dataset_dir, INDEX_DIR, f'{fname}.jsonl'), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644
  )
  return fname, fd, index_fd


def _index_line(offset: int, length: int, steps: int) -> bytes:
  """A shard index line: [offset, length, steps], as `json.dumps` writes it."""
  return f'[{offset}, {length}, {steps}]\n'.encode()


def _read_log_file(path: str) -> dict[str, Any]:
  try:
    data = _files.read_json(path)
  except (OSError, ValueError) as e:
    raise OSError(f'Cannot read {path}: {e}') from e
  if int(data.get('format_version', 0)) > _version.FORMAT_VERSION:
    raise OSError(
      f'{path} has format version {data["format_version"]}, newer than this envlogger '
      f'({_version.__version__}) reads ({_version.FORMAT_VERSION}); upgrade envlogger.'
    )
  return data


def _read_log_or_fallback(dataset_dir: str, problems: list[str]) -> dict[str, Any]:
  """envlogger_log.json, or what metadata.json (written at each publication) keeps of it."""
  path = os.path.join(dataset_dir, LOG_FILE)
  try:
    log = _read_log_file(path)
    _schema.Schema.from_json(log['schema'])
    return log
  except (OSError, ValueError, KeyError, TypeError) as e:
    if 'newer than this envlogger' in str(e):
      raise
    first_error = e
  try:
    meta = _files.read_json(os.path.join(dataset_dir, _tfds_metadata.METADATA_FILE))['envlogger']
    _schema.Schema.from_json(meta['schema'])
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise OSError(
      f'{path} is unreadable ({first_error}), and so is the copy of its schema in '
      f'{_tfds_metadata.METADATA_FILE} ({e}): cannot tell how to decode this log.'
    ) from None
  problems.append(
    f'{path}: unreadable ({first_error}); used the schema kept in {_tfds_metadata.METADATA_FILE}'
  )
  name = os.path.basename(os.path.dirname(dataset_dir))
  splits = {
    os.path.basename(p)[len(name) + 1 :].split('.tfrecord-')[0]
    for p in glob.glob(os.path.join(glob.escape(dataset_dir), f'{glob.escape(name)}-*.tfrecord-*'))
  }
  return {
    'format_version': meta.get('format_version', _version.FORMAT_VERSION),
    'created': meta.get('created', ''),
    'dataset_name': name,
    'version': os.path.basename(dataset_dir),
    'split': sorted(splits)[0] if splits else DEFAULT_SPLIT,
    'schema': meta['schema'],
    'encodings': {},
  }


def _check_env_specs(stored: _schema.Schema, new: _schema.Schema) -> None:
  diffs = []
  for key, spec in new.env_specs().items():
    old = stored.env_specs()[key]
    if not specs_lib.specs_equal(old, spec):
      diffs.append(f'{key}: log has {old!r}, this env has {spec!r}')
  if diffs:
    raise specs_lib.SpecError(
      'The env specs do not match the log being appended to:\n  ' + '\n  '.join(diffs)
    )


def _list_shards(dataset_dir: str, prefix: str) -> list[tuple[str, int]]:
  out = []
  for path in glob.glob(os.path.join(glob.escape(dataset_dir), glob.escape(prefix) + '*')):
    suffix = os.path.basename(path)[len(prefix) :]
    if suffix.isdigit():
      out.append((os.path.basename(path), int(suffix)))
  return sorted(out, key=lambda x: x[1])


def publish_tfds_metadata(dataset_dir: str, description: str | None = None) -> None:
  """Writes TFDS's dataset_info.json/features.json/metadata.json for the shards on disk."""
  log = _read_log_file(os.path.join(dataset_dir, LOG_FILE))
  schema = _schema.Schema.from_json(log['schema'])
  name, split = log['dataset_name'], log['split']
  shards = _shard_entries(dataset_dir, log)
  runs = _read_runs(dataset_dir)
  metadata = {
    'envlogger': {
      'format_version': log['format_version'],
      'package_version': _version.__version__,
      'created': log['created'],
      'published': _now(),
      'schema': log['schema'],
      'runs': [{k: r[k] for k in ('run_id', 'created', 'metadata') if k in r} for r in runs],
    }
  }
  info = _tfds_metadata.dataset_info_json(
    name=name,
    version=log['version'],
    split=split,
    shard_lengths=[len(entries) for _, _, entries in shards],
    num_bytes=sum(os.path.getsize(os.path.join(dataset_dir, f)) for f, _, _ in shards),
    description=description or 'Episodes recorded with envlogger (RLDS format).',
    file_format=_file_format(log),
  )
  features = _tfds_metadata.features_json(schema, log.get('encodings') or {})
  _tfds_metadata.write(dataset_dir, features, info, metadata)


def _read_runs(dataset_dir: str, problems: list[str] | None = None) -> list[dict[str, Any]]:
  runs = []
  for path in glob.glob(os.path.join(glob.escape(dataset_dir), RUNS_DIR, '*.json')):
    try:
      run = _files.read_json(path)
      if not isinstance(run, dict):
        raise ValueError('not a JSON object')
      runs.append(run)
    except (OSError, ValueError) as e:
      if problems is not None:
        problems.append(f'{path}: unreadable ({e}); that run is missing from runs()')
      continue
  return sorted(runs, key=lambda r: (r.get('created', ''), r.get('run_id', '')))


def _shard_entries(dataset_dir: str, log: dict[str, Any]) -> list[tuple[str, int, list[list[int]]]]:
  """(file, shard index, [[offset, length, steps], ...]) for every shard on disk."""
  out = []
  for fname, idx in _list_shards(dataset_dir, _log_shard_pattern(log)):
    out.append((fname, idx, _shard_records(dataset_dir, log, fname)))
  return out


def _shard_records(dataset_dir: str, log: dict[str, Any], fname: str, problems: list[str] | None = None):
  """A shard's [[offset or record number, length, steps], ...], in either file format."""
  if _file_format(log) == 'tfrecord':
    entries, *_ = _read_shard(dataset_dir, fname, problems)
    return entries
  from envlogger.backends import compact  # noqa: PLC0415 (it imports this module)

  return compact.read_shard(dataset_dir, fname, problems)


def _read_shard(
  dataset_dir: str, fname: str, problems: list[str] | None = None
) -> tuple[list[list[int]], int, int, int]:
  """A shard's records: ([[offset, length, steps], ...], index lines used, file size, index lines).

  Index lines are trusted if their frame lies inside the file; records after
  the last indexed one (written by a process that died before its index line,
  or whose index is damaged) are recovered by scanning the TFRecord frames
  (steps -1: unknown until decoded). Bytes after the last whole frame are a
  torn tail. What does not add up is described in `problems`, if given.
  """
  path = os.path.join(dataset_dir, fname)
  size = os.path.getsize(path)
  entries = []
  index_path = os.path.join(dataset_dir, INDEX_DIR, f'{fname}.jsonl')
  raw_lines: list[bytes] = []
  if os.path.exists(index_path):
    with open(index_path, 'rb') as f:
      raw_lines = f.read().splitlines(keepends=True)
  lines = len(raw_lines)
  try:  # one parse for the whole file (the common, undamaged case)
    rows = json.loads(b'[' + b','.join(raw_lines) + b']') if raw_lines else []
  except ValueError:
    rows = []
    for line in raw_lines:
      try:
        rows.append(json.loads(line))
      except ValueError:
        break
  end = 0
  for row in rows:  # each line must continue the previous record, inside the file
    try:
      offset, length, steps = (int(x) for x in row)
    except (ValueError, TypeError):
      break
    if offset != end or length < 0 or steps < 1 or offset + _tfrecord.framed_size(length) > size:
      break
    entries.append([offset, length, steps])
    end = offset + _tfrecord.framed_size(length)
  indexed = len(entries)
  end = _frames_end(entries)
  if end < size:
    with open(path, 'rb') as f:
      for offset, length in _tfrecord.scan(f, end):
        entries.append([offset, length, -1])
  if problems is not None:
    if indexed < lines:
      problems.append(
        f'{index_path}: {lines - indexed} of {lines} lines do not match {fname} (cut or damaged); '
        'its records after them were found by scanning the shard'
      )
    frames_end = _frames_end(entries)
    if frames_end < size:
      problems.append(
        f'{path}: {size - frames_end} bytes from offset {frames_end} are not whole records '
        '(a write cut short, or damage); skipped'
      )
  return entries, indexed, size, lines


RECOVERED_DIR = 'envlogger_recovered'


def repair_shards(dataset_dir: str, locked: bool = False) -> list[str]:
  """Finishes the shards of writers that died; returns what was done, one line each.

  For each shard no live process is writing (see `_locks`): bytes after its
  last whole frame (a frame cut by the crash) are moved, not deleted, to
  `envlogger_recovered/<shard>.<offset>.tail` and cut from the shard, and its
  index is rewritten to list every whole record. Idempotent: a second run
  finds nothing to do.
  """
  if not locked:
    with _locks.dataset_lock(dataset_dir):
      return repair_shards(dataset_dir, locked=True)
  log = _read_log_file(os.path.join(dataset_dir, LOG_FILE))
  report = []
  codec = None
  if _file_format(log) != 'tfrecord':
    return report  # compact datasets are written whole: no writer left a shard unfinished
  for fname, _ in _list_shards(dataset_dir, _log_shard_pattern(log)):
    path = os.path.join(dataset_dir, fname)
    if _locks.shard_in_use(path):
      continue  # a live writer's shard: it finishes it itself
    entries, indexed, size, lines = _read_shard(dataset_dir, fname)
    if indexed == len(entries) == lines and _frames_end(entries) == size:
      continue
    good = entries[:indexed]
    if len(entries) > indexed and codec is None:
      codec = _tfds_codec.Codec(_schema.Schema.from_json(log['schema']), log.get('encodings'))
    with open(path, 'rb') as f:
      for offset, length, _ in entries[indexed:]:  # scanned records: decode to count steps
        try:
          steps = codec.decode(_tfrecord.read_at(f, offset)).num_steps
        except (OSError, ValueError):
          break  # damaged: keep it (and what follows) aside with the tail
        good.append([offset, length, steps])
    end = _frames_end(good)
    if end < size:
      os.makedirs(os.path.join(dataset_dir, RECOVERED_DIR), exist_ok=True)
      kept = os.path.join(dataset_dir, RECOVERED_DIR, f'{fname}.{end}.tail')
      with open(path, 'rb') as src:
        src.seek(end)
        tail = src.read()
      with open(kept, 'wb') as dst:
        dst.write(tail)
        dst.flush()
        os.fsync(dst.fileno())
      os.truncate(path, end)
      report.append(f'{fname}: moved {len(tail)} bytes after its last whole record (offset {end}) to {kept}')
    lines = ''.join(json.dumps(e) + '\n' for e in good)
    _files.write_text_atomic(os.path.join(dataset_dir, INDEX_DIR, f'{fname}.jsonl'), lines)
    report.append(
      f'{fname}: index lists {len(good)} records ({len(good) - indexed} recovered from the frames)'
    )
  return report


def fold_journals(dataset_dir: str) -> list[str]:
  """Stores in shards the journaled episodes of writers that died; returns what
  was done, one line each. The caller holds the dataset lock.

  Each dead writer's journal file goes once its episodes are in shards; a
  file with damaged entries is moved to `envlogger_recovered/` instead (after
  its readable entries are stored). Idempotent, and safe to interrupt: the
  journal's header names the shard being filled, so a second run continues
  after the episodes already stored.
  """
  if not os.path.isdir(os.path.join(dataset_dir, _journal.JOURNAL_DIR)):
    return []
  log = _read_log_file(os.path.join(dataset_dir, LOG_FILE))
  codec = _tfds_codec.Codec(_schema.Schema.from_json(log['schema']), log.get('encodings'))
  report = []
  for path, entries, base_shard, whole in dead_journals(dataset_dir, codec):
    stored, damage = 0, None
    if entries:
      name, fd, index_fd = _create_shard(dataset_dir, log['dataset_name'], log['split'])
      try:
        jfd = os.open(path, os.O_RDWR)
        try:
          _journal.write_header(jfd, base_shard, name, fsync=True)  # a rerun continues after what is stored
        finally:
          os.close(jfd)
        offset = index_offset = 0
        with open(path, 'rb') as jf:
          for entry_offset, _, _ in entries:
            try:
              episode = _journal.decode(_tfrecord.read_at(jf, entry_offset), codec.casters)
            except (OSError, ValueError) as e:
              damage = f'entry at offset {entry_offset}: {e}'
              break
            data = codec.encode(episode)
            line = _index_line(offset, len(data), episode.num_steps)
            try:
              _files.write_all(fd, _tfrecord.frame(data))
              _files.write_all(index_fd, line)
            except OSError:
              os.ftruncate(fd, offset)  # no torn frame: the shard ends at its last whole episode
              os.ftruncate(index_fd, index_offset)
              raise
            offset += _tfrecord.framed_size(len(data))
            index_offset += len(line)
            stored += 1
        os.fsync(fd)
        os.fsync(index_fd)
      finally:
        os.close(fd)
        os.close(index_fd)
      report.append(f'{path}: stored {stored} episodes in {name}')
    if damage is None and whole:
      os.unlink(path)
      report.append(f'{path}: deleted (every episode in it is in a shard)')
    else:
      kept = os.path.join(dataset_dir, RECOVERED_DIR, os.path.basename(path))
      os.makedirs(os.path.dirname(kept), exist_ok=True)
      os.replace(path, kept)
      why = damage or 'its tail is not whole entries'
      report.append(f'{path}: moved to {kept} ({why})')
  return report


def recover(data_directory: str) -> list[str]:
  """Makes every log at or under `data_directory` whole after writers died.

  Repairs the shards no live writer holds (`repair_shards`) and republishes
  the TFDS metadata so `tfds.load` sees every whole episode. Never deletes
  recorded data; idempotent. Returns a report, one line per action.

  Raises:
    FileNotFoundError: no log at or under `data_directory`.
  """
  dirs = find_dataset_dirs(data_directory)
  if not dirs:
    raise FileNotFoundError(f'{data_directory} holds no envlogger log ({LOG_FILE} not found).')
  report = []
  for dataset_dir in dirs:
    with _locks.dataset_lock(dataset_dir):
      lines = repair_shards(dataset_dir, locked=True)
      lines += fold_journals(dataset_dir)
      log = _read_log_file(os.path.join(dataset_dir, LOG_FILE))
      shards = _shard_entries(dataset_dir, log)
      episodes = sum(len(entries) for _, _, entries in shards)
      if episodes:
        publish_tfds_metadata(dataset_dir)
      lines.append(f'published TFDS metadata: {episodes} episodes in {len(shards)} shards')
    report += [f'{dataset_dir}: {line}' for line in lines]
  return report


def _last_counter(dataset_dir: str, run_id: str, codec: _tfds_codec.Codec, shard: str) -> int | None:
  """Counter of the newest episode of run `run_id` in `shard` (None: the shard
  is missing or holds no readable episode of that run)."""
  if not os.path.exists(os.path.join(dataset_dir, shard)):
    return None
  entries, *_ = _read_shard(dataset_dir, shard)
  with open(os.path.join(dataset_dir, shard), 'rb') as f:
    for offset, length, _ in reversed(entries):  # the last one, unless damaged
      try:
        episode_id = codec.decode_episode_id(_tfrecord.pread_record(f.fileno(), offset, length))
      except (OSError, ValueError):
        continue
      run, _, counter = episode_id.rpartition('/')
      return int(counter) if run == run_id and counter.isdigit() else None
  return None


def dead_journals(
  dataset_dir: str, codec: _tfds_codec.Codec, problems: list[str] | None = None
) -> list[tuple[str, list[list[int]], str | None, bool]]:
  """The journal files no live writer holds, each with the entries no shard holds.

  Returns [(path, [[offset, length, steps], ...], shard holding the run's
  newest stored episode or None, True if the file has no torn or damaged
  tail)], oldest first within each run.
  """
  out = []
  for path in _journal.journal_paths(dataset_dir):
    if _locks.shard_in_use(path):
      continue  # a live writer's: it stores its entries itself
    run = _journal.run_of(path) or ''
    try:
      entries, base_shard, end, size = _journal.pending(
        path, lambda shard, run=run: _last_counter(dataset_dir, run, codec, shard)
      )
    except OSError as e:
      if problems is not None:
        problems.append(f'{path}: unreadable journal ({e}); skipped')
      continue
    if problems is not None and end < size:
      problems.append(
        f'{path}: {size - end} bytes from offset {end} are not whole journal entries '
        '(a write cut short, or damage); skipped'
      )
    out.append((path, entries, base_shard, end == size))
  return out


def _frames_end(entries: list[list[int]]) -> int:
  return entries[-1][0] + _tfrecord.framed_size(entries[-1][1]) if entries else 0


class TFDSLogSource(source.LogSource):
  """Random access to a log written by `TFDSBackendWriter`, without TensorFlow.

  Args:
    dataset_dir: the dataset directory (holding envlogger_log.json).
    verify: read and check every record when opening (CRC32C checksums and
      decoding), and skip the damaged ones; otherwise a damaged record is
      found when it is read, which raises `DamagedEpisodeError`.
  """

  def __init__(
    self, dataset_dir: str, _state: dict[str, Any] | None = None, cache_size: int = 8, verify: bool = False
  ):
    self.dataset_dir = dataset_dir
    if _state is None:
      _state = self._load(dataset_dir, verify)
    self._state = _state
    super().__init__(_state['schema'])
    self.problems = list(_state['problems'])
    self._codec = _tfds_codec.Codec(self.schema, _state['log'].get('encodings'))
    self._files: dict[int, int] = {}  # shard -> file descriptor (read with os.pread)
    self._compact = None  # compact.ShardReaders, for a log in the compact format
    if self.file_format != 'tfrecord':
      from envlogger.backends import compact  # noqa: PLC0415 (it imports this module)

      self._compact = compact.ShardReaders()
    self._cache: OrderedDict[int, rlds.Episode] = OrderedDict()
    self._cache_size = cache_size
    self._lock = threading.Lock()

  @staticmethod
  def _load(dataset_dir: str, verify: bool) -> dict[str, Any]:
    problems: list[str] = []
    log = _read_log_or_fallback(dataset_dir, problems)
    schema = _schema.Schema.from_json(log['schema'])
    files, rows = [], []
    for fname, _ in _list_shards(dataset_dir, _log_shard_pattern(log)):
      path = os.path.join(dataset_dir, fname)
      # A live writer's shard may end in a frame or index line being written:
      # not damage (it is read up to its last whole record, without a report).
      live = _locks.shard_in_use(path)
      entries = _shard_records(dataset_dir, log, fname, None if live else problems)
      files.append(path)
      rows += [(len(files) - 1, *entry) for entry in entries]
    # Episodes of writers that died, in their journals and not in shards yet.
    journals = []
    if os.path.isdir(os.path.join(dataset_dir, _journal.JOURNAL_DIR)):
      codec = _tfds_codec.Codec(schema, log.get('encodings'))
      for path, entries, *_ in dead_journals(dataset_dir, codec, problems):
        files.append(path)
        journals.append(len(files) - 1)
        rows += [(len(files) - 1, *entry) for entry in entries]
    table = np.asarray(rows, dtype=np.int64).reshape(-1, 4)
    state = {
      'log': log,
      'schema': schema,
      'files': files,
      'journal': np.isin(np.arange(len(files)), journals),
      'shard': table[:, 0].copy(),
      'offset': table[:, 1].copy(),
      'length': table[:, 2].copy(),
      'steps': table[:, 3].copy(),
      'runs': _read_runs(dataset_dir, problems),
      'problems': problems,
    }
    # Records found by scanning have no step count yet: decode them (and,
    # with `verify`, every record); drop the ones that do not read back.
    check = range(len(table)) if verify else np.nonzero(state['steps'] < 0)[0]
    if len(check):
      src = TFDSLogSource(dataset_dir, state)
      damaged = []
      for i in check:
        i = int(i)
        try:
          n = src._decode(i).num_steps
        except source.DamagedEpisodeError as e:
          damaged.append(i)
          problems.append(f'{e}; skipped')
          continue
        if state['steps'][i] >= 0 and state['steps'][i] != n:
          problems.append(
            f'{src._where(i)}: the index says {state["steps"][i]} steps, the record {n}; using {n}'
          )
        state['steps'][i] = n
      src.close()
      if damaged:
        keep = np.ones(len(table), dtype=bool)
        keep[damaged] = False
        for key in ('shard', 'offset', 'length', 'steps'):
          state[key] = state[key][keep]
    return state

  @property
  def log_info(self) -> dict[str, Any]:
    return self._state['log']

  @property
  def file_format(self) -> str:
    """'tfrecord' (the default) or 'array_record' (the compact format)."""
    return _file_format(self._state['log'])

  def num_episodes(self) -> int:
    return len(self._state['offset'])

  def episode_lengths(self) -> np.ndarray:
    return self._state['steps']

  def _where(self, index: int) -> str:
    shard = int(self._state['shard'][index])
    if self._compact is not None:
      return f'{self._state["files"][shard]} record {int(self._state["offset"][index])}'
    return f'{self._state["files"][shard]} at offset {int(self._state["offset"][index])}'

  def _read_record(self, index: int) -> bytes:
    shard = int(self._state['shard'][index])
    if self._compact is not None:
      try:
        return self._compact.read(self._state['files'][shard], int(self._state['offset'][index]))
      except OSError as e:
        raise self._damaged(index, e) from None
    fd = self._shard_fd(shard)
    try:
      return _tfrecord.pread_record(fd, int(self._state['offset'][index]), int(self._state['length'][index]))
    except _tfrecord.CorruptRecordError as e:
      raise self._damaged(index, e) from None

  def _shard_fd(self, shard: int) -> int:
    """The descriptor of a TFRecord shard, opened once (shared by threads)."""
    fd = self._files.get(shard)
    if fd is None:
      with self._lock:  # two threads opening one shard would leak a descriptor
        fd = self._files.get(shard)
        if fd is None:
          fd = self._files[shard] = os.open(self._state['files'][shard], os.O_RDONLY)
    return fd

  def _damaged(self, index: int, e: Exception) -> source.DamagedEpisodeError:
    return source.DamagedEpisodeError(
      f'{self._where(index)}: episode {index} is damaged ({e}). Reader(..., verify=True) skips '
      'damaged episodes and lists them in reader.problems'
    )

  def _parse(self, index: int, parse: Callable[[bytes], Any]) -> Any:
    """`parse` applied to episode `index`'s record; damage raises DamagedEpisodeError."""
    data = self._read_record(index)
    try:
      return parse(data)
    except ValueError as e:  # WireError, or values that do not fit the schema
      raise self._damaged(index, e) from None

  def _in_journal(self, index: int) -> bool:
    return bool(self._state['journal'][self._state['shard'][index]])

  def _decode(self, index: int, rows: tuple[int, int] | np.ndarray | None = None) -> rlds.Episode:
    if self._in_journal(index):
      ep = self._parse(index, lambda data: _journal.decode(data, self.casters, rows))
    else:
      ep = self._parse(index, lambda data: self._codec.decode(data, rows))
    expected = int(self._state['steps'][index])
    if rows is None and expected >= 0 and ep.num_steps != expected:
      raise self._damaged(index, f'the index says {expected} steps, the record holds {ep.num_steps}')
    return ep

  def read_episode(self, index: int) -> rlds.Episode:
    # The cache is shared by threads reading through one Reader: changed under the lock (decoding,
    # outside it, may run in two threads at once for one episode: both results are equal).
    with self._lock:
      ep = self._cache.get(index)
      if ep is not None:
        self._cache.move_to_end(index)
        return ep
    ep = self._decode(index)
    with self._lock:
      self._cache[index] = ep
      while len(self._cache) > self._cache_size:
        self._cache.popitem(last=False)
    return ep

  @property
  def decodes_in_batches(self) -> bool:
    return True  # _batch_decode: groups of one layout, records walked together, or parsed one by one

  def read_batch(self, indices: Sequence[int], fields: frozenset[str] | None = None) -> rlds.EpisodeBatch:
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    try:
      return self._read_batch(idx, fields)
    except (OSError, ValueError):  # damage: read one by one, for the error naming the episode
      return super().read_batch(idx, fields)

  def _read_batch(self, idx: np.ndarray, fields: frozenset[str] | None) -> rlds.EpisodeBatch:
    pieces: list[tuple[np.ndarray, rlds.EpisodeBatch]] = []
    journal = self._state['journal'][self._state['shard'][idx]].astype(bool)
    if journal.any():  # episodes still in a dead writer's journal: decoded one by one
      where = np.flatnonzero(journal)
      pieces.append((where, super().read_batch(idx[where], fields)))
    stored = np.flatnonzero(~journal)
    # Chunks bound the memory of the records held at once (the decoded steps are what was asked):
    # up to BATCH_RECORDS records and about BATCH_BYTES of raw steps.
    step_bytes = max(1, sum(self.casters.step_nbytes))
    ends = np.cumsum(np.maximum(self._state['steps'][idx[stored]], 1) * step_bytes)
    lo = 0
    while lo < len(stored):
      hi = int(np.searchsorted(ends, (ends[lo - 1] if lo else 0) + BATCH_BYTES, side='right'))
      hi = min(max(hi, lo + 1), lo + BATCH_RECORDS)
      where = stored[lo:hi]
      lo = hi
      batch = _batch_decode.decode_many(self._codec, self._read_records(idx[where]), fields)
      expected = self._state['steps'][idx[where]]
      if np.any((expected >= 0) & (expected != batch.lengths)):
        raise ValueError('an episode holds other steps than the index says')
      pieces.append((where, batch))
    return _batch_decode.assemble(len(idx), pieces, self.casters, fields)

  def _read_records(self, idx: np.ndarray) -> Sequence[bytes]:
    """The records of episodes `idx`, read shard by shard (adjacent frames of a
    TFRecord shard by one pread, into one buffer the walk reads in place);
    damage raises: the caller reads one by one."""
    shards = self._state['shard'][idx]
    if self._compact is not None:
      records: list[bytes] = [b''] * len(idx)
      for shard in np.unique(shards).tolist():
        where = np.flatnonzero(shards == shard)
        got = self._compact.read_many(self._state['files'][shard], self._state['offset'][idx[where]].tolist())
        for j, record in zip(where.tolist(), got):
          records[j] = record
      return records
    lengths = self._state['length'][idx].astype(np.int64)
    parts, starts, base = [], np.empty(len(idx), dtype=np.int64), 0
    for shard in np.unique(shards).tolist():
      where = np.flatnonzero(shards == shard)
      buf, at = _tfrecord.pread_joined(
        self._shard_fd(shard), self._state['offset'][idx[where]], lengths[where]
      )
      parts.append(buf)
      starts[where] = at + base
      base += len(buf)
    return _batch_walk.Joined(parts[0] if len(parts) == 1 else b''.join(parts), starts, lengths)

  def read_rows(self, index: int, rows: np.ndarray) -> rlds.Episode:
    ep = self._cache.get(index)
    if ep is not None or self._in_journal(index):  # a journal entry decodes whole (it is raw)
      return rlds.take_rows(ep if ep is not None else self.read_episode(index), rows)
    return self._decode(index, rows=np.asarray(rows, dtype=np.int64))

  def read_step(self, index: int, k: int) -> tuple[rlds.Episode, int]:
    ep = self._cache.get(index)
    if ep is not None:
      return ep, k
    lo = max(k - 1, 0)  # step k's action, reward and discount are in row k-1
    return self._decode(index, rows=(lo, k + 1)), k - lo

  def read_episode_id(self, index: int) -> str:
    """The id of episode `index` (parses its record; decodes no column)."""
    if self._in_journal(index):
      return self._parse(index, _journal.entry_episode_id)
    return self._parse(index, self._codec.decode_episode_id)

  def read_episode_metadata(self, index: int) -> Any:
    if self.schema.episode_metadata_spec is None:
      return None
    ep = self._cache.get(index)
    if ep is not None:
      return ep.metadata
    if self._in_journal(index):
      return self.read_episode(index).metadata
    return self._parse(index, self._codec.decode_metadata)

  def runs(self) -> list[dict[str, Any]]:
    return [{**r, 'metadata': _jsonable.decode(r.get('metadata', {}))} for r in self._state['runs']]

  def copy(self) -> TFDSLogSource:  # shares the opened state (and its problems)
    return TFDSLogSource(self.dataset_dir, self._state, self._cache_size)

  def close(self) -> None:
    for fd in self._files.values():
      os.close(fd)
    self._files.clear()
    if self._compact is not None:
      self._compact.close()
    self._cache.clear()


def find_dataset_dirs(data_directory: str) -> list[str]:
  """Dataset directories (holding envlogger_log.json) at or under `data_directory`."""
  root = os.fspath(data_directory)
  if os.path.exists(os.path.join(root, LOG_FILE)):
    return [root]
  found = glob.glob(os.path.join(glob.escape(root), '*', '*', LOG_FILE))
  return sorted(os.path.dirname(p) for p in found)
