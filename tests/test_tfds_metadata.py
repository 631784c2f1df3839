"""The hand-written TFDS metadata equals what TFDS itself writes for the same features."""

from __future__ import annotations

import json

import numpy as np
import pytest
from dm_env import specs

from envlogger import _schema as S
from envlogger.backends import _tfds_codec as codec
from envlogger.backends import _tfds_metadata

tfds = pytest.importorskip('tensorflow_datasets')


def _tfds_features(schema: S.Schema, encodings: dict[str, str]):
  """Reference: the same features built with TFDS's own classes."""

  def conv(prefix, nest):
    if isinstance(nest, specs.Array):
      kind = codec.leaf_kind(nest)
      if kind in ('str', 'bytes'):
        return tfds.features.Tensor(shape=tuple(nest.shape), dtype=np.object_)
      if kind == 'bool':
        return tfds.features.Tensor(shape=tuple(nest.shape), dtype=np.bool_)
      return tfds.features.Tensor(
        shape=tuple(nest.shape), dtype=np.dtype(nest.dtype), encoding=encodings[prefix]
      )
    items = nest.items() if isinstance(nest, dict) else ((str(i), v) for i, v in enumerate(nest))
    return tfds.features.FeaturesDict({k: conv(f'{prefix}/{k}' if prefix else k, v) for k, v in items})

  flag = tfds.features.Tensor(shape=(), dtype=np.bool_)
  steps = {}
  for field, prefix in codec.step_field_prefixes(schema):
    spec = getattr(schema, f'{field}_spec')
    if prefix == S.STEPS:
      steps.update({k: conv(f'steps/{k}', v) for k, v in spec.items()})
    else:
      steps[prefix.split('/')[1]] = conv(prefix, spec)
  steps.update(is_first=flag, is_last=flag, is_terminal=flag)
  if schema.custom_data_spec is not None:
    steps['has_custom_data'] = flag
  top = {
    'steps': tfds.features.Dataset(steps),
    'episode_id': tfds.features.Tensor(shape=(), dtype=np.object_),
    'run_id': tfds.features.Tensor(shape=(), dtype=np.object_),
    'cut_short': flag,
    'invalid': flag,
  }
  if schema.episode_metadata_spec is not None:
    prefix = codec.metadata_prefix(schema)
    if prefix:
      top[prefix] = conv(prefix, schema.episode_metadata_spec)
    else:
      top.update({k: conv(k, v) for k, v in schema.episode_metadata_spec.items()})
    top['has_episode_metadata'] = flag
  return tfds.features.FeaturesDict(top)


SCHEMAS = {
  'catch': S.Schema(
    specs.BoundedArray((10, 5), np.float32, 0, 1),
    specs.DiscreteArray(3),
    specs.Array((), np.float64),
    specs.BoundedArray((), np.float64, 0, 1),
  ),
  'nested': S.Schema(
    {'img': specs.Array((84, 84, 3), np.uint8), 's': (specs.StringArray(()), specs.Array((2,), np.bool_))},
    [specs.Array((3,), np.float32), specs.Array((), np.uint64)],
    specs.Array((2,), np.float32),
    specs.Array((2,), np.float32),
    custom_data_spec={'a': specs.Array((), np.int16), 'b': {'c': specs.StringArray((2,), string_type=bytes)}},
    custom_data_layout=S.FIELDS,
    episode_metadata_spec={'ok': specs.Array((), np.bool_), 'x': specs.Array((40,), np.float64)},
    episode_metadata_layout=S.FIELDS,
  ),
  'values': S.Schema(
    specs.Array((0, 3), np.float16),
    specs.Array((), np.int8),
    specs.Array((), np.float64),
    specs.Array((), np.float64),
    custom_data_spec=specs.Array((64,), np.float64),
    episode_metadata_spec=specs.StringArray(()),
  ),
}


@pytest.mark.parametrize('name', sorted(SCHEMAS))
def test_features_json_matches_tfds(name, tmp_path):
  schema = SCHEMAS[name]
  encodings = codec.Codec(schema).encodings
  features = _tfds_features(schema, encodings)
  ours = _tfds_metadata.features_json(schema, encodings)
  features.save_config(str(tmp_path))  # what DatasetInfo.write_to_directory writes
  theirs = json.loads((tmp_path / 'features.json').read_text())
  assert ours == theirs


def test_dataset_info_matches_tfds(tmp_path):
  from tensorflow_datasets.core import naming  # noqa: PLC0415

  schema = SCHEMAS['catch']
  d = tmp_path / 'ref'
  d.mkdir()
  ident = tfds.core.DatasetIdentity(
    name='my_ds', version=tfds.core.Version('1.2.3'), data_dir=str(d), module_name='envlogger'
  )
  info = tfds.core.DatasetInfo(
    builder=ident, features=_tfds_features(schema, codec.Codec(schema).encodings), description='desc'
  )
  info.set_file_format('tfrecord')
  template = naming.ShardedFileTemplate(
    data_dir=str(d),
    template='{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_INDEX}',
    dataset_name='my_ds',
    split='sp',
    filetype_suffix='tfrecord',
  )
  info.set_splits(
    tfds.core.SplitDict(
      [tfds.core.SplitInfo(name='sp', shard_lengths=[3, 1], num_bytes=77, filename_template=template)]
    )
  )
  info.write_to_directory(str(d))
  theirs = json.loads((d / 'dataset_info.json').read_text())
  ours = _tfds_metadata.dataset_info_json('my_ds', '1.2.3', 'sp', [3, 1], 77, 'desc')
  assert ours == theirs
