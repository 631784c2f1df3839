"""What to build: `BuildConfig`, loadable from a JSON file."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Any

_NAME_RE = re.compile(r'^[a-z][a-z0-9_]*$')


@dataclasses.dataclass
class BuildConfig:
  """An RLDS dataset assembled from envlogger logs.

  Attributes:
    name: the TFDS dataset name (snake_case): `tfds.load(name, data_dir=...)`.
    version: 'X.Y.Z'.
    sources: log directories (a logger's `data_directory` or a dataset
      directory under it), or glob patterns of them.
    splits: split name -> fraction of the episodes, e.g. {'train': 0.9,
      'test': 0.1}: episodes are ordered by a hash of their id and cut at
      these fractions (whole episodes; the same sources always give the same
      splits, whatever their order); or, with `split_by='run'`, split name -> list of run id
      glob patterns (see `Reader.runs()`).
    split_by: 'episode' (fractions) or 'run'.
    description, citation, homepage: for the dataset card and DatasetInfo.
    on_damage: 'fail' (default) or 'skip' a source whose log reports damage.
    image_encoding: None (default: images stay zlib-compressed tensors,
      lossless), 'png' (lossless) or 'jpeg' (lossy, smaller): observation
      leaves of dtype uint8 and shape (H, W, C), C in 1, 3, 4, become
      `tfds.features.Image`, as in Open X-Embodiment datasets.
    max_shard_bytes: the largest shard TFDS writes (default: TFDS's 1 GiB).
    episodes_per_shard: about this many episodes per shard instead (TFDS
      takes one shard count for all splits: it is computed from the largest).
  """

  name: str
  version: str = '1.0.0'
  sources: list[str] = dataclasses.field(default_factory=list)
  splits: dict[str, Any] = dataclasses.field(default_factory=lambda: {'train': 1.0})
  split_by: str = 'episode'
  description: str = ''
  citation: str = ''
  homepage: str = ''
  on_damage: str = 'fail'
  image_encoding: str | None = None
  max_shard_bytes: int | None = None
  episodes_per_shard: int | None = None

  def __post_init__(self):
    if not _NAME_RE.match(self.name or ''):
      raise ValueError(f'name must be snake_case (like "my_dataset"), got {self.name!r}.')
    if not re.match(r'^\d+\.\d+\.\d+$', self.version):
      raise ValueError(f"version must look like '1.0.0', got {self.version!r}.")
    if isinstance(self.sources, str):
      self.sources = [self.sources]
    if not self.sources:
      raise ValueError('sources is empty: give the log directories (or globs) to build from.')
    if self.split_by not in ('episode', 'run'):
      raise ValueError(f"split_by must be 'episode' or 'run', got {self.split_by!r}.")
    if not self.splits:
      raise ValueError('splits is empty.')
    for split in self.splits:
      if not re.match(r'^[a-zA-Z0-9_]+$', split):
        raise ValueError(f'split names must be alphanumeric, got {split!r}.')
    if self.split_by == 'episode':
      fractions = list(self.splits.values())
      if any(not isinstance(f, (int, float)) or f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-9:
        raise ValueError(f'with split_by="episode", splits are fractions that sum to 1, got {self.splits}.')
    else:
      for split, patterns in self.splits.items():
        if isinstance(patterns, str):
          self.splits[split] = [patterns]
    if self.image_encoding not in (None, 'png', 'jpeg'):
      raise ValueError(f"image_encoding must be None, 'png' or 'jpeg', got {self.image_encoding!r}.")
    if self.max_shard_bytes is not None and self.episodes_per_shard is not None:
      raise ValueError('give max_shard_bytes or episodes_per_shard, not both.')
    for field in ('max_shard_bytes', 'episodes_per_shard'):
      value = getattr(self, field)
      if value is not None and (not isinstance(value, int) or value < 1):
        raise ValueError(f'{field} must be a positive integer, got {value!r}.')
    if self.on_damage not in ('fail', 'skip'):
      raise ValueError(f"on_damage must be 'fail' or 'skip', got {self.on_damage!r}.")

  @classmethod
  def from_file(cls, path: str | os.PathLike) -> BuildConfig:
    """Reads a JSON file of the attributes; relative sources are taken from its directory."""
    with open(path) as f:
      data = json.load(f)
    unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
      raise ValueError(f'{path}: unknown keys {unknown}.')
    base = os.path.dirname(os.path.abspath(path))
    sources = data.get('sources', [])
    data['sources'] = [s if ('://' in s or os.path.isabs(s)) else os.path.join(base, s) for s in
                       ([sources] if isinstance(sources, str) else sources)]  # fmt: skip
    return cls(**data)
