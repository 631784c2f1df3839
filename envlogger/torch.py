"""PyTorch datasets over a log: transitions and windows as tensors, without TensorFlow.

  from torch.utils.data import DataLoader
  from envlogger.torch import TransitionDataset

  dataset = TransitionDataset('/tmp/logs')
  loader = DataLoader(dataset, batch_size=256, shuffle=True, num_workers=2)
  for batch in loader:
    batch['observation'], batch['action'], batch['reward'], batch['discount']
    batch['next_observation'], batch['terminal'], batch['last']

The datasets are map-style (`len`, random access) and wrap the numpy views of
`envlogger.loaders` (`Transitions`, `Windows`: see their docstrings for what
an item holds). They pickle (the log's directory, not an open Reader), so
multi-worker DataLoaders work with every start method (fork, spawn,
forkserver); each worker opens the log itself.

Needs PyTorch: `pip install 'envlogger-rlds[torch]'`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tree

try:
  import torch
  from torch.utils import data as torch_data
except ImportError as e:  # pragma: no cover (the extra is installed in the tests)
  raise ImportError(
    'envlogger.torch needs PyTorch, which could not be imported '
    f'({e}). Install it with: pip install "envlogger-rlds[torch]" '
    '(for the CPU-only build, first: pip install torch --index-url https://download.pytorch.org/whl/cpu).'
  ) from e

from envlogger import loaders

__all__ = ['EpisodeBlockSampler', 'TransitionDataset', 'WindowDataset', 'collate', 'to_torch']


def to_torch(nest: Any) -> Any:
  """numpy arrays of a nest as tensors (sharing memory); string (object) arrays stay numpy."""

  def convert(x):
    if isinstance(x, np.ndarray) and x.dtype != np.object_:
      return torch.from_numpy(x if x.flags.writeable else x.copy())
    return x

  return tree.map_structure(convert, nest)


def _collate_array(batch, *, collate_fn_map=None):
  if batch[0].dtype == np.object_:
    return np.stack(batch)
  return torch.stack([torch.as_tensor(b) for b in batch], 0)


def collate(samples: list[Any]) -> Any:
  """`default_collate` that also batches numpy object arrays (`StringArray` leaves).

  The datasets leave string leaves as numpy object arrays, which
  `default_collate` rejects; pass `collate_fn=envlogger.torch.collate` to a
  DataLoader over a log with string observations, actions or fields. String
  leaves come out as numpy object arrays of shape (batch, ...).
  """
  from torch.utils.data._utils.collate import collate as _collate  # noqa: PLC0415
  from torch.utils.data._utils.collate import default_collate_fn_map  # noqa: PLC0415

  fmap = dict(default_collate_fn_map)
  fmap[np.ndarray] = _collate_array
  return _collate(samples, collate_fn_map=fmap)


class _ViewDataset(torch_data.Dataset):
  """A map-style Dataset over a numpy view of `envlogger.loaders`."""

  def __init__(self, view: loaders.Transitions | loaders.Windows):
    self.view = view

  def __len__(self) -> int:
    return len(self.view)

  def __getitem__(self, index: int | Sequence[int] | np.ndarray) -> dict[str, Any]:
    """Item `index` as a dict of tensors; a list of indices gives a whole batch.

    A list comes from a DataLoader built with `batch_size=None` and
    `sampler=BatchSampler(...)`: the batch is gathered in one call (faster
    than item by item).
    """
    if isinstance(index, torch.Tensor):
      index = index.tolist()
    return to_torch(self.view[index])

  def close(self) -> None:
    self.view.close()

  def __repr__(self) -> str:
    return f'<{type(self).__name__} over {self.view!r}>'


class TransitionDataset(_ViewDataset):
  """The (o, a, r, d, o') transitions of a log as a map-style `torch.utils.data.Dataset`.

  Item i is `envlogger.loaders.Transitions(...)[i]` with numeric arrays as
  tensors: 'observation', 'action', 'reward', 'discount' (as stored: 0 at
  termination), 'next_observation', 'terminal', 'last', 'episode_index',
  'step_index', and the custom step fields chosen with `fields`. Within an
  episode of n recorded steps, transition k (k = 0 .. n-2) is RLDS steps k
  and k+1; none crosses an episode boundary.

  Args:
    source: a log's directory or an open `envlogger.Reader`.
    episodes, fields, cache_episodes, dataset_name, version, verify: as
      `envlogger.loaders.Transitions`.
  """

  def __init__(
    self,
    source: loaders.Source,
    *,
    episodes: Sequence[int] | np.ndarray | None = None,
    fields: bool | Sequence[str] | Mapping[str, str] = False,
    cache_episodes: int | None = 4,
    dataset_name: str | None = None,
    version: str | None = None,
    verify: bool = False,
  ):
    super().__init__(
      loaders.Transitions(
        source,
        episodes=episodes,
        fields=fields,
        cache_episodes=cache_episodes,
        dataset_name=dataset_name,
        version=version,
        verify=verify,
      )
    )


class WindowDataset(_ViewDataset):
  """Windows of `size` consecutive RLDS steps of a log as a map-style Dataset.

  Item i is `envlogger.loaders.Windows(...)[i]` with numeric arrays as
  tensors of leading dimension `size`: the RLDS step fields ('observation',
  'action', 'reward', 'discount', 'is_first', 'is_last', 'is_terminal'),
  'mask' (False on padding), 'episode_index', 'start_index' and the custom
  step fields chosen with `fields`. No window crosses an episode boundary.

  Args:
    source: a log's directory or an open `envlogger.Reader`.
    size, stride, pad, episodes, fields, cache_episodes, dataset_name,
      version, verify: as `envlogger.loaders.Windows`.
  """

  def __init__(
    self,
    source: loaders.Source,
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
    super().__init__(
      loaders.Windows(
        source,
        size,
        stride=stride,
        pad=pad,
        episodes=episodes,
        fields=fields,
        cache_episodes=cache_episodes,
        dataset_name=dataset_name,
        version=version,
        verify=verify,
      )
    )


class EpisodeBlockSampler(torch_data.Sampler):
  """Shuffles a dataset's items a block of episodes at a time (`Transitions.permutation`).

  A uniform shuffle (`shuffle=True`) touches a different episode at nearly
  every item, and on a log larger than `cache_episodes` each touch decodes a
  whole episode. This sampler visits the episodes in a random order, a block
  of `episodes_per_block` at a time, the items of a block in a random order:
  each worker decodes each episode about once per epoch. Every epoch draws a
  new order.

    loader = DataLoader(dataset, batch_size=256, num_workers=2,
                        sampler=EpisodeBlockSampler(dataset, episodes_per_block=4))

  Args:
    dataset: a `TransitionDataset` or `WindowDataset`.
    episodes_per_block: episodes per block; at most the dataset's
      `cache_episodes` to decode each episode once per worker and epoch.
    seed: seed of the orders (None: fresh entropy).
  """

  def __init__(self, dataset: _ViewDataset, episodes_per_block: int = 4, seed: int | None = None):
    if episodes_per_block < 1:
      raise ValueError(f'episodes_per_block must be at least 1, got {episodes_per_block}')
    self.dataset = dataset
    self.episodes_per_block = int(episodes_per_block)
    self._rng = np.random.default_rng(seed)

  def __iter__(self):
    order = self.dataset.view.permutation(seed=self._rng, episodes_per_block=self.episodes_per_block)
    return iter(order.tolist())

  def __len__(self) -> int:
    return len(self.dataset)
