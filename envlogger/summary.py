"""What a log holds (`info`) and whether it is sound RLDS (`validate`), for the command line."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import tree

from envlogger import specs as specs_lib
from envlogger.reader import Reader


def _dir_bytes(path: str) -> int:
  total = 0
  for root, _, files in os.walk(path):
    for f in files:
      with contextlib.suppress(OSError):  # a file removed while walking
        total += os.path.getsize(os.path.join(root, f))
  return total


def info(data_directory: str | os.PathLike) -> dict[str, Any]:
  """A summary of a log from its index (no episode is decoded): format,
  counts, episode lengths, specs, metadata, runs, size on disk, problems."""
  with Reader(data_directory) as r:
    src = r._source
    lengths = r.episode_lengths()
    fmt = src.log_info.get('format')
    if fmt == 'riegeli':
      fmt = 'DeepMind envlogger (Riegeli)'
    elif getattr(src, 'file_format', None) == 'array_record':
      fmt = 'envlogger RLDS/TFDS, compact (ArrayRecord + zstd)'
    else:
      fmt = 'envlogger RLDS/TFDS'
    out: dict[str, Any] = {
      'directory': os.fspath(data_directory),
      'format': fmt,
      'dataset': getattr(src, 'dataset_dir', os.fspath(data_directory)),
      'episodes': len(lengths),
      'steps': int(lengths.sum()),
      'episode length (min/median/max)': (
        f'{int(lengths.min())} / {float(np.median(lengths)):g} / {int(lengths.max())}'
        if len(lengths)
        else '-'
      ),
      'size on disk': _human(_dir_bytes(os.fspath(data_directory))),
      'observation_spec': r.observation_spec(),
      'action_spec': r.action_spec(),
      'reward_spec': r.reward_spec(),
      'discount_spec': r.discount_spec(),
      'custom data spec': src.schema.custom_data_spec,
      'episode metadata spec': src.schema.episode_metadata_spec,
      'metadata': {k: v for k, v in r.metadata().items() if k != 'environment_specs'},
      'runs': len(r.runs()),
      'problems': r.problems,
    }
  return out


def _human(n: int) -> str:
  for unit in ('B', 'KiB', 'MiB', 'GiB'):
    if n < 1024 or unit == 'GiB':
      return f'{n:.0f} {unit}' if unit == 'B' else f'{n:.1f} {unit}'
    n /= 1024
  return str(n)


def format_table(rows: dict[str, Any]) -> str:
  """Two columns, keys left, values right (multi-line values indented)."""
  width = max(len(k) for k in rows)
  lines = []
  for key, value in rows.items():
    text = str(value) if not isinstance(value, list) else ('\n'.join(map(str, value)) or '[]')
    first, *rest = text.splitlines() or ['']
    lines.append(f'{key:<{width}}  {first}')
    lines += [f'{"":<{width}}  {line}' for line in rest]
  return '\n'.join(lines)


def validate(data_directory: str | os.PathLike) -> list[str]:
  """Checks a log: every record readable (checksums) and every episode sound
  RLDS (flags, dtypes and shapes of every field as the specs say, step types).

  Returns:
    One line per problem, naming the episode (empty: the log is sound).
  """
  problems: list[str] = []
  import warnings  # noqa: PLC0415

  with warnings.catch_warnings():
    warnings.simplefilter('ignore')  # the problems are listed below instead
    reader = Reader(data_directory, verify=True)
  with reader as r:
    problems += r.problems
    schema = r._source.schema
    field_specs = {
      'observation': schema.observation_spec,
      'action': schema.action_spec,
      'reward': schema.reward_spec,
      'discount': schema.discount_spec,
    }
    for e, episode in enumerate(r.episodes):
      problems += [
        f'episode {e} ({episode.episode_id}): {p}' for p in _episode_problems(episode, field_specs)
      ]
  return problems


def _episode_problems(episode, field_specs: dict[str, Any]) -> Iterator[str]:
  ep = episode.as_rlds()
  steps = ep['steps']
  n = len(steps['is_first'])
  if n == 0:
    yield 'no steps'
    return
  first, last, terminal = (np.asarray(steps[k], dtype=bool) for k in ('is_first', 'is_last', 'is_terminal'))
  if not first[0] or first[1:].any():
    yield f'is_first is not True exactly at step 0: {np.nonzero(first)[0].tolist()}'
  if not last[-1] or last[:-1].any():
    yield f'is_last is not True exactly at the last step: {np.nonzero(last)[0].tolist()}'
  if terminal[:-1].any():
    yield f'is_terminal set before the last step: {np.nonzero(terminal)[0].tolist()}'
  if terminal[-1] and ep['cut_short']:
    yield 'cut short but is_terminal'
  for field, spec in field_specs.items():
    for (path, leaf_spec), column in zip(specs_lib.flatten_with_names(spec), tree.flatten(steps[field])):
      name = f'{field}/{path}' if path else field
      column = np.asarray(column)
      if column.shape != (n, *leaf_spec.shape):
        yield f'{name}: shape {column.shape[1:]} per step, spec {leaf_spec.shape}'
      elif column.dtype != leaf_spec.dtype and column.dtype != object:
        yield f'{name}: dtype {column.dtype}, spec {leaf_spec.dtype}'
  step_types = [int(s.timestep.step_type) for s in episode]
  if step_types[0] != 0 or any(t == 0 for t in step_types[1:]):
    yield f'step types {step_types}: FIRST only at step 0'
  if not ep['cut_short'] and step_types[-1] != 2:
    yield 'not cut short, but the last step is not LAST'
