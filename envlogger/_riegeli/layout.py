"""Where the files of an envlogger Riegeli log are (cheap to import: the Reader
checks every directory it opens against this before importing the decoders)."""

from __future__ import annotations

import os

METADATA_FILE = 'metadata.riegeli'
STEPS_FILE = 'steps.riegeli'
STEP_OFFSETS_FILE = 'step_offsets.riegeli'
EPISODE_INDEX_FILE = 'episode_index.riegeli'
EPISODE_METADATA_FILE = 'episode_metadata.riegeli'


def is_riegeli_log(data_directory: str) -> bool:
  """True if the directory looks like an envlogger Riegeli log (its metadata or a shard)."""
  if os.path.isfile(os.path.join(data_directory, METADATA_FILE)):
    return True
  return bool(shard_dirs(data_directory))


def shard_dirs(data_directory: str) -> list[str]:
  """Names of the shard directories (holding a step_offsets.riegeli), in reading order."""
  try:
    names = sorted(os.listdir(data_directory))
  except OSError:
    return []
  return [n for n in names if os.path.isfile(os.path.join(data_directory, n, STEP_OFFSETS_FILE))]
