"""Converting a log to this package's RLDS/TFDS format.

The source is anything `envlogger.Reader` opens: a log written by DeepMind's
envlogger (Riegeli files), or a log of this package (to copy it with other
shard sizes, say). The destination is written by the TFDS backend, so
`tfds.load`, `tfds.builder_from_directory` and `envlogger.Reader` read it.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Any

from envlogger.reader import Reader


@dataclasses.dataclass
class ConvertResult:
  """What `convert` wrote."""

  episodes: int
  steps: int
  dataset_dir: str
  problems: list[str]


def convert(
  src: str | os.PathLike,
  dst: str | os.PathLike,
  *,
  dataset_name: str = 'envlogger',
  split_name: str = 'train',
  max_episodes_per_file: int = 1000,
  progress: bool | None = None,
  verify: bool = False,
) -> ConvertResult:
  """Writes every episode of the log in `src` to a TFDS dataset under `dst`.

  Steps are replayed through the TFDS backend exactly as the logger saw them
  (`StepData`), with each episode's metadata; an episode of the source that
  was cut short stays cut short. The dataset metadata keeps the source's user
  keys (its 'environment_specs' become the dataset's specs). Episodes get new
  ids (`<run id>/<n>`, in the source's order). If `dst` already holds a log of
  that name, the episodes are appended to it (its specs must match).

  Args:
    src: a log directory `envlogger.Reader` opens.
    dst: the destination `data_directory`.
    dataset_name, split_name, max_episodes_per_file: as for
      `TFDSBackendWriter`.
    progress: show a progress bar on stderr (default: when stderr is a terminal).
    verify: open the source with `Reader(verify=True)`: damaged episodes are
      skipped and reported instead of stopping the conversion.

  Returns:
    The counts written, the dataset directory, and the source's problems.

  Raises:
    NoLogError: `src` holds no log.
    DamagedEpisodeError: a source episode cannot be read (without `verify`);
      the episodes before it are written and the destination stays readable.
  """
  from tqdm.auto import tqdm  # noqa: PLC0415 (tqdm comes with tensorflow-datasets)

  from envlogger.backends.tfds import TFDSBackendWriter  # noqa: PLC0415

  if os.path.abspath(os.fspath(src)) == os.path.abspath(os.fspath(dst)):
    raise ValueError(f'convert: the source and the destination are the same directory ({src}).')
  if progress is None:
    progress = sys.stderr.isatty()
  with Reader(src, verify=verify) as reader:
    metadata = reader.metadata()
    user = {k: v for k, v in metadata.items() if k != 'environment_specs'}
    schema = reader._source.schema
    backend = TFDSBackendWriter(
      os.fspath(dst),
      dataset_name=dataset_name,
      split_name=split_name,
      max_episodes_per_file=max_episodes_per_file,
      flush_every_seconds=None,
    )
    episodes = steps = 0
    try:
      backend.init_log(
        {
          'observation_spec': reader.observation_spec(),
          'action_spec': reader.action_spec(),
          'reward_spec': reader.reward_spec(),
          'discount_spec': reader.discount_spec(),
        },
        metadata=_storable(user),
        expects_custom_data=schema.custom_data_spec is not None,
        expects_episode_metadata=schema.episode_metadata_spec is not None,
      )
      with tqdm(total=len(reader.steps), unit='step', desc='convert', disable=not progress) as bar:
        for episode in reader.episodes:
          n = 0
          for n, step in enumerate(episode, 1):
            backend.record_step(step, is_new_episode=n == 1)
            if n == 1 and episode.metadata is not None:
              backend.set_episode_metadata(episode.metadata)
          episodes += 1
          steps += n
          bar.update(n)
    finally:
      backend.close()
    return ConvertResult(episodes, steps, backend.dataset_dir, reader.problems)


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
