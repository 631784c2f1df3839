"""The compact format: a TFDS dataset of ArrayRecord shards, zstd-compressed across episodes.

The default format compresses each large observation on its own (zlib per
step, as TFDS's `Encoding.ZLIB` reads it), so nothing is shared between steps
or episodes. The compact format stores every numeric leaf raw
(`Encoding.BYTES`) and lets ArrayRecord compress groups of whole episodes
together with zstd: a 10-step Catch episode goes from about 78 to about 5
bytes per step, a 200-step episode of 84x84x3 frames shares the background
between frames.

It is written whole, by `envlogger convert --format array_record` (or
`envlogger.convert(..., file_format='array_record')`), never appended to
while logging: an ArrayRecord file is readable only once it is closed (its
index is in its footer), so a logger killed mid-shard would lose the shard.
The layout is the default one with other shards and encodings:

  <dataset_name>-<split>.array_record-00000     one tf.train.Example (RLDS
                                                episode) per record
  envlogger_index/<shard>.jsonl                 one line: the records' step
                                                counts, run-length encoded as
                                                a JSON list of [steps, count]
                                                (written once the shard is
                                                closed)

Readers: `envlogger.Reader` (random access, columnar `as_rlds()`), and TFDS's
TF-free random access (`tfds.builder_from_directory(dir).as_data_source()`,
`tfds.data_source`). `tfds.load`'s `tf.data` path does not read ArrayRecord
datasets (TFDS raises NotImplementedError for `as_dataset()`), nor does
`Reader.as_tf_dataset()`; the default format is the one for `tf.data`.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from typing import Any

from envlogger import _files
from envlogger.backends import _tfds_codec, tfds

FILE_FORMAT = 'array_record'
# zstd level 12 on groups of about 128 KiB of serialized episodes. On 10k
# Catch-like episodes (random actions, all files): level 9 on 64 KiB groups
# gave 7.2 B/step, level 12 on 128 KiB 5.3. On 200k steps of the same
# records, 64-episode groups: level 3 7.9, 9 5.2, 12 4.9, 19 3.9 B/step,
# level 19 writing about 40x slower than 12. Larger groups compress better
# and make a random read decompress more (a whole group for one episode).
# Figures: benchmarks/ (`compact` rows) and docs/format.md.
ZSTD_LEVEL = 12
GROUP_RAW_BYTES = 1 << 17
MAX_GROUP_SIZE = 256
# Shards: ArrayRecord pads each file to a multiple of 64 KiB (128 KiB at
# least), so compact shards hold many episodes.
MAX_EPISODES_PER_SHARD = 10_000
MAX_SHARD_RAW_BYTES = 1 << 30


def compact_encodings(encodings: dict[str, str]) -> dict[str, str]:
  """The default encodings with every zlib leaf stored raw (zstd compresses the groups)."""
  return {k: (_tfds_codec.BYTES if v == _tfds_codec.ZLIB else v) for k, v in encodings.items()}


def writer_options(record_bytes: int, level: int = ZSTD_LEVEL) -> str:
  """ArrayRecord writer options for records of about `record_bytes` (serialized)."""
  group = max(1, min(MAX_GROUP_SIZE, GROUP_RAW_BYTES // max(1, record_bytes)))
  return f'group_size:{group},zstd:{level}'


def _module():
  # array_record's extension (10 MB, Riegeli and Abseil linked in) loads only
  # where a compact log is written or read.
  from array_record.python import array_record_module  # noqa: PLC0415

  return array_record_module


def open_reader(path: str):
  """An ArrayRecordReader on `path`, or OSError if the file is not a whole ArrayRecord file."""
  if not os.path.isfile(path):
    raise FileNotFoundError(path)
  try:
    reader = _module().ArrayRecordReader(path)
  except (RuntimeError, ValueError) as e:
    raise OSError(f'{path}: not a readable ArrayRecord file ({e})') from None
  if not reader.ok():
    with contextlib.suppress(RuntimeError):  # closing reports the same damage again
      reader.close()
    raise OSError(f'{path}: not a readable ArrayRecord file (cut short, damaged, or still being written)')
  return reader


def read_shard(dataset_dir: str, fname: str, problems: list[str] | None = None) -> list[list[int]]:
  """A compact shard's records: [[record, length, steps], ...] (steps -1: not in the index).

  An unreadable shard (cut, damaged) gives no record and a line in `problems`.
  """
  path = os.path.join(dataset_dir, fname)
  try:
    reader = open_reader(path)
  except OSError as e:
    if problems is not None:
      problems.append(f'{e}; its episodes are skipped')
    return []
  try:
    count = reader.num_records()
  finally:
    reader.close()
  index_path = os.path.join(dataset_dir, tfds.INDEX_DIR, f'{fname}.jsonl')
  try:
    with open(index_path, 'rb') as f:
      steps = _run_length_decode(json.loads(f.read()), count)
  except (OSError, ValueError) as e:
    if problems is not None:
      problems.append(f'{index_path}: unreadable ({e}); step counts taken from the records')
    steps = [-1] * count
  return [[k, 0, n] for k, n in enumerate(steps)]


def _run_length_encode(values: list[int]) -> list[list[int]]:
  runs: list[list[int]] = []
  for v in values:
    if runs and runs[-1][0] == v:
      runs[-1][1] += 1
    else:
      runs.append([v, 1])
  return runs


def _run_length_decode(runs: Any, records: int) -> list[int]:
  """[[steps, count], ...] -> the step counts of `records` records; ValueError if it is not that."""
  if not isinstance(runs, list):
    raise ValueError('not a list of [steps, count]')
  for run in runs:
    if not (isinstance(run, list) and len(run) == 2 and all(type(x) is int and x > 0 for x in run)):
      raise ValueError(f'{run!r} is not [steps, count]')
  listed = sum(count for _, count in runs)
  if listed != records:
    raise ValueError(f'it lists {listed} records, the shard holds {records}')
  return [steps for steps, count in runs for _ in range(count)]


class ShardReaders:
  """Random access to records of compact shards, one open reader per shard."""

  def __init__(self):
    self._readers: dict[str, Any] = {}
    self._lock = threading.Lock()

  def read(self, path: str, record: int) -> bytes:
    return self.read_many(path, [record])[0]

  def read_many(self, path: str, records: list[int]) -> list[bytes]:
    """Records `records` of one shard, in one call (ArrayRecord reads each group once).

    Raises:
      OSError: the shard cannot be opened, or a record cannot be read.
    """
    with self._lock:  # one reader per shard, shared by the threads of a Reader
      reader = self._readers.get(path)
      if reader is None:
        reader = self._readers[path] = open_reader(path)
      try:
        return reader.read(records)
      except (RuntimeError, IndexError, ValueError) as e:
        which = f'record {records[0]}' if len(records) == 1 else f'one of records {records[0]}..{records[-1]}'
        raise OSError(f'{which} cannot be read ({e})') from None

  def close(self) -> None:
    with self._lock:
      for reader in self._readers.values():
        reader.close()
      self._readers.clear()


class CompactWriter(tfds.TFDSBackendWriter):
  """Writes a new dataset in the compact format (see the module docstring).

  Used by `envlogger.convert(..., file_format='array_record')`. Episodes are
  encoded and written in the calling thread; the shard's index lines and the
  TFDS metadata are written when a shard is closed. The dataset directory
  must not hold a log yet.

  Args:
    data_directory: as for `TFDSBackendWriter`.
    zstd_level: zstd compression level of the shards.
    **kwargs: dataset_name, version, split_name, max_episodes_per_file,
      description (as for `TFDSBackendWriter`).
  """

  def __init__(self, data_directory: str, *, zstd_level: int = ZSTD_LEVEL, **kwargs: Any):
    kwargs.setdefault('max_episodes_per_file', MAX_EPISODES_PER_SHARD)
    super().__init__(data_directory, async_writes=False, journal=False, flush_every_seconds=None, **kwargs)
    self._file_format = FILE_FORMAT
    self._zstd_level = int(zstd_level)
    self._writer = None
    self._steps: list[int] = []  # of the episodes in the open shard
    self._shard_raw = 0

  def _on_init(self) -> None:
    if os.path.exists(os.path.join(self.dataset_dir, tfds.LOG_FILE)):
      raise FileExistsError(
        f'{self.dataset_dir} already holds a log; compact datasets are written whole, into a new directory.'
      )
    super()._on_init()

  def _new_codec(self, encodings: dict[str, str] | None) -> _tfds_codec.Codec:
    if encodings is None:
      encodings = compact_encodings(_tfds_codec.Codec(self._schema).encodings)
    return _tfds_codec.Codec(self._schema, encodings)

  def _write_episode(self, episode) -> None:
    if self._codec is None:
      self._fix_schema()
    data = self._codec.encode(episode)
    full = len(self._steps) >= self._max_per_shard or self._shard_raw >= MAX_SHARD_RAW_BYTES
    if self._writer is None or full:
      self._close_shard()
      self._open_shard(len(data))
    try:
      self._writer.write(data)
    except RuntimeError as e:
      raise OSError(f'cannot write {os.path.join(self.dataset_dir, self._shard_name)}: {e}') from None
    self._steps.append(episode.num_steps)
    self._shard_raw += len(data)

  def _open_shard(self, record_bytes: int) -> None:
    name, self._shard_fd, self._index_fd = tfds._create_shard(
      self.dataset_dir, self.dataset_name, self.split_name, FILE_FORMAT
    )
    self._shard_name = name
    # The file was claimed (O_EXCL) and locked by _create_shard; the writer
    # opens it again by name and writes from its start.
    path = os.path.join(self.dataset_dir, name)
    self._writer = _module().ArrayRecordWriter(path, writer_options(record_bytes, self._zstd_level))
    if not self._writer.ok():
      raise OSError(f'cannot write {path}')
    self._steps, self._shard_raw = [], 0

  def _close_shard(self) -> None:
    writer, self._writer = self._writer, None
    try:
      if writer is not None:
        try:
          writer.close()  # writes the footer: from here on the shard is readable
        except RuntimeError as e:  # a full disk, say: ArrayRecord reports write errors here
          raise OSError(
            f'cannot write {os.path.join(self.dataset_dir, self._shard_name)}: {e}. The source is intact; '
            'delete the destination and convert again.'
          ) from None
        _files.write_all(self._index_fd, json.dumps(_run_length_encode(self._steps)).encode() + b'\n')
    finally:
      super()._close_shard()

  def _close(self) -> None:
    try:
      self._close_shard()
    finally:
      if self._codec is not None:
        self.publish()
