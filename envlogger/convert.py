"""Converting, merging and filtering logs into this package's RLDS/TFDS format.

The source is anything `envlogger.Reader` opens: a log written by DeepMind's
envlogger (Riegeli files), or a log of this package (to copy it with other
shard sizes, say). The destination is written by the TFDS backend, so
`tfds.load`, `tfds.builder_from_directory` and `envlogger.Reader` read it;
or, with `file_format='array_record'`, in the compact format
(`envlogger.backends.compact`: about 15x smaller on small observations, read
by `envlogger.Reader` and TFDS's `as_data_source()`, not by `tfds.load`).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from envlogger import specs as specs_lib
from envlogger.reader import Episode, Reader


@dataclasses.dataclass
class ConvertResult:
  """What `convert` wrote."""

  episodes: int
  steps: int
  dataset_dir: str
  problems: list[str]


Select = Callable[[int, Episode], bool]
FILE_FORMATS = ('tfrecord', 'array_record')


def convert(src: str | os.PathLike, dst: str | os.PathLike, **kwargs: Any) -> ConvertResult:
  """Writes every episode of the log in `src` to a TFDS dataset under `dst`.

  Steps are replayed through the TFDS backend exactly as the logger saw them
  (`StepData`), with each episode's metadata and invalid mark; an episode of
  the source that was cut short stays cut short. The dataset metadata keeps
  the source's user keys (its 'environment_specs' become the dataset's specs).
  Episodes get new ids (`<run id>/<n>`, in the source's order). If `dst`
  already holds a log of that name, the episodes are appended to it (its
  specs must match).

  Args:
    src: a log directory `envlogger.Reader` opens (this package's, or
      DeepMind's envlogger Riegeli logs).
    dst: the destination `data_directory`.
    **kwargs: as for `copy_episodes`.

  Returns:
    The counts written, the dataset directory, and the source's problems.

  Raises:
    NoLogError: `src` holds no log.
    DamagedEpisodeError: a source episode cannot be read (without `verify`);
      the episodes before it are written and the destination stays readable.
  """
  return copy_episodes([src], dst, **kwargs)


def copy_episodes(
  sources: Sequence[str | os.PathLike],
  dst: str | os.PathLike,
  *,
  select: Select | None = None,
  dataset_name: str = 'envlogger',
  split_name: str = 'train',
  max_episodes_per_file: int | None = None,
  progress: bool | None = None,
  verify: bool = False,
  file_format: str = 'tfrecord',
) -> ConvertResult:
  """Writes the episodes of several logs (those `select` keeps) to one dataset under `dst`.

  The sources are never modified: merging, filtering, deleting and resharding
  all write a new dataset. The sources must record the same specs; the
  dataset metadata is the first source's (each source's is in its own
  `Reader.runs()`).

  Args:
    sources: log directories `envlogger.Reader` opens.
    dst: the destination `data_directory` (must differ from every source).
    select: `select(index, episode) -> bool`, index counting episodes over
      all sources in order; None keeps every episode.
    dataset_name, split_name, max_episodes_per_file: as for
      `TFDSBackendWriter` (None: 1000 episodes per shard, 10000 in the
      compact format).
    progress: show a progress bar on stderr (default: when stderr is a terminal).
    verify: open the sources with `Reader(verify=True)`: damaged episodes are
      skipped and reported instead of stopping the copy.
    file_format: 'tfrecord' (the format the logger writes; appends to a log
      already in `dst`) or 'array_record' (the compact format; `dst` must not
      hold that log yet).

  Raises:
    NoLogError: a source holds no log.
    ValueError: no source, a source is `dst`, the sources' specs differ, or
      an unknown `file_format`.
    FileExistsError: `file_format='array_record'` and `dst` holds that log already.
  """
  from tqdm.auto import tqdm  # noqa: PLC0415 (tqdm comes with tensorflow-datasets)

  from envlogger.backends.compact import CompactWriter  # noqa: PLC0415
  from envlogger.backends.tfds import TFDSBackendWriter  # noqa: PLC0415

  if not sources:
    raise ValueError('no source log given.')
  if file_format not in FILE_FORMATS:
    raise ValueError(f'file_format must be one of {FILE_FORMATS}, got {file_format!r}.')
  for src in sources:
    if os.path.abspath(os.fspath(src)) == os.path.abspath(os.fspath(dst)):
      raise ValueError(f'the source and the destination are the same directory ({src}); write elsewhere.')
  if progress is None:
    progress = sys.stderr.isatty()
  readers = []
  try:
    for src in sources:
      readers.append(Reader(src, verify=verify))
    first = readers[0]
    specs = _env_specs(first)
    for src, r in zip(sources[1:], readers[1:]):
      if not specs_lib.specs_equal(list(_env_specs(r).values()), list(specs.values())):
        raise ValueError(f'{src} does not record the same specs as {sources[0]}: {_env_specs(r)} vs {specs}')
    schema = first._source.schema
    user = {k: v for k, v in first.metadata().items() if k != 'environment_specs'}
    options = {'dataset_name': dataset_name, 'split_name': split_name}
    if max_episodes_per_file is not None:
      options['max_episodes_per_file'] = max_episodes_per_file
    if file_format == 'array_record':
      backend = CompactWriter(os.fspath(dst), **options)
    else:
      backend = TFDSBackendWriter(os.fspath(dst), flush_every_seconds=None, **options)
    episodes = steps = 0
    try:
      backend.init_log(
        specs,
        metadata=_storable(user),
        expects_custom_data=any(r._source.schema.custom_data_spec is not None for r in readers),
        expects_episode_metadata=schema.episode_metadata_spec is not None,
      )
      total = sum(len(r.steps) for r in readers)
      index = 0
      with tqdm(total=total, unit='step', desc='copy', disable=not progress) as bar:
        for reader in readers:
          for episode in reader.episodes:
            index += 1
            if select is not None and not select(index - 1, episode):
              bar.update(len(episode))
              continue
            n = 0
            for n, step in enumerate(episode, 1):
              backend.record_step(step, is_new_episode=n == 1)
              if n == 1:
                if episode.metadata is not None:
                  backend.set_episode_metadata(episode.metadata)
                if episode.invalid:
                  backend.mark_episode_invalid()
            episodes += 1
            steps += n
            bar.update(n)
    finally:
      backend.close()
    return ConvertResult(episodes, steps, backend.dataset_dir, [p for r in readers for p in r.problems])
  finally:
    for r in readers:
      r.close()


def _env_specs(reader: Reader) -> dict[str, Any]:
  return {
    'observation_spec': reader.observation_spec(),
    'action_spec': reader.action_spec(),
    'reward_spec': reader.reward_spec(),
    'discount_spec': reader.discount_spec(),
  }


def _storable(metadata: dict[str, Any]) -> dict[str, Any]:
  """The metadata with numpy values as Python/JSON ones where the log cannot store them as they are."""
  from envlogger import _jsonable  # noqa: PLC0415

  try:
    _jsonable.encode(metadata, 'metadata')
    return metadata
  except _jsonable.MetadataError:
    return {k: _jsonable_value(v) for k, v in metadata.items()}


def _jsonable_value(value: Any) -> Any:
  import numpy as np  # noqa: PLC0415

  if isinstance(value, np.ndarray):
    return value.tolist()
  if isinstance(value, np.generic):
    return value.item()
  if isinstance(value, dict):
    return {str(k): _jsonable_value(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_jsonable_value(v) for v in value]
  return value
