"""TFDS's dataset_info.json / features.json / metadata.json, written by hand.

Why by hand: `tfds.core.DatasetInfo` writes these files, but importing
`tensorflow_datasets` costs ~0.6 s and hundreds of modules in every actor
process (and its features layer another ~1 ms per publication). The JSON
layout below is what TFDS 4.9 writes for the features we use (Tensor,
FeaturesDict, Dataset); `tests/test_tfds_metadata.py` builds the same
features with TFDS and checks that the files are identical.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from envlogger import _files
from envlogger import _schema as S
from envlogger import specs as specs_lib
from envlogger.backends import _tfds_codec as codec

_TENSOR = 'tensorflow_datasets.core.features.tensor_feature.Tensor'
_DICT = 'tensorflow_datasets.core.features.features_dict.FeaturesDict'
_DATASET = 'tensorflow_datasets.core.features.dataset_feature.Dataset'


def _tensor(shape, dtype: str, encoding: str = 'none') -> dict[str, Any]:
  shape_json = {'dimensions': [str(int(d)) for d in shape]} if len(shape) else {}
  return {
    'pythonClassName': _TENSOR,
    'tensor': {'shape': shape_json, 'dtype': dtype, 'encoding': encoding},
  }


def _features_dict(features: dict[str, Any]) -> dict[str, Any]:
  return {'pythonClassName': _DICT, 'featuresDict': {'features': features}}


def _nest(prefix: str, spec: Any, encodings: dict[str, str]) -> dict[str, Any]:
  if specs_lib.is_leaf_spec(spec):
    kind = codec.leaf_kind(spec)
    if kind in ('str', 'bytes'):
      return _tensor(spec.shape, 'string')
    if kind == 'bool':
      return _tensor(spec.shape, 'bool')
    encoding = encodings.get(prefix) or codec.default_encoding(spec)
    return _tensor(spec.shape, np.dtype(spec.dtype).name, encoding)
  items = spec.items() if isinstance(spec, dict) else ((str(i), v) for i, v in enumerate(spec))
  return _features_dict({k: _nest(f'{prefix}/{k}' if prefix else k, v, encodings) for k, v in items})


def features_json(schema: S.Schema, encodings: dict[str, str]) -> dict[str, Any]:
  """The content of features.json for episodes of `schema`."""
  flag = _tensor((), 'bool')
  steps: dict[str, Any] = {}
  for field, prefix in codec.step_field_prefixes(schema):
    spec = getattr(schema, f'{field}_spec')
    if prefix == S.STEPS:  # a dict's keys are step fields of their own
      for k, v in spec.items():
        steps[k] = _nest(f'{S.STEPS}/{k}', v, encodings)
    else:
      steps[prefix.split('/', 1)[1]] = _nest(prefix, spec, encodings)
  steps.update({S.IS_FIRST: flag, S.IS_LAST: flag, S.IS_TERMINAL: flag})
  if schema.custom_data_spec is not None:
    steps[S.HAS_CUSTOM_DATA] = flag
  top: dict[str, Any] = {}
  if schema.episode_metadata_spec is not None:
    prefix = codec.metadata_prefix(schema)
    if prefix:
      top[prefix] = _nest(prefix, schema.episode_metadata_spec, encodings)
    else:
      for k, v in schema.episode_metadata_spec.items():
        top[k] = _nest(k, v, encodings)
    top[S.HAS_EPISODE_METADATA] = flag
  top[S.STEPS] = {
    'pythonClassName': _DATASET,
    'sequence': {'feature': _features_dict(steps), 'length': '-1'},
  }
  top.update(
    {S.EPISODE_ID: _tensor((), 'string'), S.RUN_ID: _tensor((), 'string'), S.CUT_SHORT: flag, S.INVALID: flag}
  )
  return _features_dict(dict(sorted(top.items())))


def dataset_info_json(
  name: str,
  version: str,
  split: str,
  shard_lengths: list[int],
  num_bytes: int,
  description: str,
  file_format: str = 'tfrecord',
) -> dict[str, Any]:
  """The content of dataset_info.json (TFDS's DatasetInfo proto as JSON)."""
  return {
    'description': description,
    'fileFormat': file_format,
    'moduleName': 'envlogger',
    'name': name,
    'splits': [
      {
        'filepathTemplate': '{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_INDEX}',
        'name': split,
        'numBytes': str(int(num_bytes)),
        'shardLengths': [str(int(n)) for n in shard_lengths],
      }
    ],
    'version': version,
  }


METADATA_FILE = 'metadata.json'


def write(dataset_dir: str, features: dict, info: dict, metadata: dict) -> None:
  """Publishes the three files, each atomically (features first: info refers to them)."""
  _files.write_json_atomic(os.path.join(dataset_dir, 'features.json'), features)
  _files.write_json_atomic(os.path.join(dataset_dir, METADATA_FILE), metadata)
  _files.write_json_atomic(os.path.join(dataset_dir, 'dataset_info.json'), info)
