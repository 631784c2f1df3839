"""RLDS episodes <-> TFDS features and serialized `tf.train.Example`s.

Each episode is one Example in the layout TFDS gives a
`FeaturesDict({'steps': Dataset({...}), ...})`:

* numeric leaves (every dtype but bool) are `Tensor(encoding=BYTES)`: one
  bytes entry per step holding the raw array, so every value (float64 too)
  reads back bit-exact and uint8 frames are stored as bytes, not integer lists;
* bool leaves are plain `Tensor(bool)` (an int64 list);
* string leaves are `Tensor(object)` (a bytes list, UTF-8 for `str` specs);
* nested dicts are nested `FeaturesDict`s; tuples and lists (which TFDS lacks)
  become `FeaturesDict`s keyed '0', '1', ... and are restored from the stored
  specs on read.

We build and parse the Example ourselves, whole columns at a time, instead of
TFDS's per-step `encode_example`: that path costs 40-80 us per step in Python
(stack.md §7) and is what made the original's TFDS backend slow. Tests check
that TFDS's own decoder (`tfds.load`) reads what we write.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from dm_env import specs
from tensorflow_datasets.proto import tf_example_pb2

from envlogger import _schema as S
from envlogger import rlds
from envlogger import specs as specs_lib


def _leaf_kind(spec: specs.Array) -> str:
  if isinstance(spec, specs.StringArray):
    return 'str' if spec.string_type is str else 'bytes'
  if np.dtype(spec.dtype) == np.bool_:
    return 'bool'
  return 'raw'


def features_for(schema: S.Schema):
  """Returns the `tfds.features.FeaturesDict` of episodes with this schema."""
  import tensorflow_datasets as tfds  # noqa: PLC0415 (heavy; only when publishing)

  def conv(nest):
    if specs_lib.is_leaf_spec(nest):
      kind = _leaf_kind(nest)
      if kind in ('str', 'bytes'):
        return tfds.features.Tensor(shape=tuple(nest.shape), dtype=np.object_)
      if kind == 'bool':
        return tfds.features.Tensor(shape=tuple(nest.shape), dtype=np.bool_)
      return tfds.features.Tensor(
        shape=tuple(nest.shape), dtype=np.dtype(nest.dtype), encoding=tfds.features.Encoding.BYTES
      )
    if isinstance(nest, dict):
      return tfds.features.FeaturesDict({k: conv(v) for k, v in nest.items()})
    return tfds.features.FeaturesDict({str(i): conv(v) for i, v in enumerate(nest)})

  flag = tfds.features.Tensor(shape=(), dtype=np.bool_)
  steps = {name: conv(spec) for name, spec in schema.step_fields().items()}
  steps.update({S.IS_FIRST: flag, S.IS_LAST: flag, S.IS_TERMINAL: flag})
  if schema.custom_data_spec is not None:
    steps[S.HAS_CUSTOM_DATA] = flag
  top = {name: conv(spec) for name, spec in schema.episode_fields().items()}
  top.update(
    {
      S.STEPS: tfds.features.Dataset(steps),
      S.EPISODE_ID: tfds.features.Tensor(shape=(), dtype=np.object_),
      S.RUN_ID: tfds.features.Tensor(shape=(), dtype=np.object_),
      S.CUT_SHORT: flag,
    }
  )
  if schema.episode_metadata_spec is not None:
    top[S.HAS_EPISODE_METADATA] = flag
  return tfds.features.FeaturesDict(top)


class Codec:
  """Encodes and decodes episodes of one schema."""

  def __init__(self, schema: S.Schema):
    self.schema = schema
    self.casters = rlds.Casters(schema)
    # field -> [(example key, leaf spec, kind)] in tree.flatten order.
    self.step_keys: dict[str, list[tuple[str, Any, str]]] = {}
    for field, prefix in self._step_field_prefixes():
      spec = getattr(schema, f'{field}_spec')
      self.step_keys[field] = _keys(prefix, spec)
    self.meta_keys: list[tuple[str, Any, str]] = []
    if schema.episode_metadata_spec is not None:
      if schema.episode_metadata_layout == S.FIELDS:
        self.meta_keys = _keys('', schema.episode_metadata_spec)
      else:
        self.meta_keys = _keys(S.EPISODE_METADATA, schema.episode_metadata_spec)

  def _step_field_prefixes(self):
    yield 'observation', f'{S.STEPS}/{S.OBSERVATION}'
    yield 'action', f'{S.STEPS}/{S.ACTION}'
    yield 'reward', f'{S.STEPS}/{S.REWARD}'
    yield 'discount', f'{S.STEPS}/{S.DISCOUNT}'
    if self.schema.custom_data_spec is not None:
      if self.schema.custom_data_layout == S.FIELDS:
        yield 'custom_data', S.STEPS
      else:
        yield 'custom_data', f'{S.STEPS}/{S.CUSTOM_DATA}'

  # -- encoding ---------------------------------------------------------------

  def encode(self, episode: rlds.Episode) -> bytes:
    ex = tf_example_pb2.Example()
    feats = ex.features.feature
    n = episode.num_steps
    for field, keys in self.step_keys.items():
      for (key, _spec, kind), col in zip(keys, episode.columns[field]):
        _put_column(feats[key], col, kind, n)
    for key, flags in (
      (S.IS_FIRST, episode.is_first),
      (S.IS_LAST, episode.is_last),
      (S.IS_TERMINAL, episode.is_terminal),
    ):
      feats[f'{S.STEPS}/{key}'].int64_list.value.extend(flags.astype(np.int64).tolist())
    if self.schema.custom_data_spec is not None:
      mask = episode.has_custom_data
      if mask is None:
        mask = np.zeros(n, dtype=bool)
      feats[f'{S.STEPS}/{S.HAS_CUSTOM_DATA}'].int64_list.value.extend(mask.astype(np.int64).tolist())
    feats[S.EPISODE_ID].bytes_list.value.append(episode.episode_id.encode())
    feats[S.RUN_ID].bytes_list.value.append(episode.run_id.encode())
    feats[S.CUT_SHORT].int64_list.value.append(int(episode.cut_short))
    if self.schema.episode_metadata_spec is not None:
      has = episode.metadata is not None
      feats[S.HAS_EPISODE_METADATA].int64_list.value.append(int(has))
      leaves = (
        self.casters.episode_metadata(episode.metadata) if has else self.casters.episode_metadata.zeros()
      )
      for (key, _spec, kind), leaf in zip(self.meta_keys, leaves):
        _put_column(feats[key], leaf[None], kind, 1)
    return ex.SerializeToString()

  # -- decoding ---------------------------------------------------------------

  def decode(self, data: bytes, fields=None) -> rlds.Episode:
    """Decodes an Example; `fields` limits which step fields are decoded."""
    ex = tf_example_pb2.Example()
    ex.ParseFromString(data)
    feats = ex.features.feature
    is_first = _flags(feats[f'{S.STEPS}/{S.IS_FIRST}'])
    n = len(is_first)
    columns = {}
    for field, keys in self.step_keys.items():
      if fields is not None and field not in fields:
        continue
      columns[field] = [_get_column(feats[key], spec, kind, n) for key, spec, kind in keys]
    has_custom = None
    if self.schema.custom_data_spec is not None:
      has_custom = _flags(feats[f'{S.STEPS}/{S.HAS_CUSTOM_DATA}'])
    return rlds.Episode(
      columns=columns,
      is_first=is_first,
      is_last=_flags(feats[f'{S.STEPS}/{S.IS_LAST}']),
      is_terminal=_flags(feats[f'{S.STEPS}/{S.IS_TERMINAL}']),
      has_custom_data=has_custom,
      metadata=self._decode_metadata(feats),
      episode_id=feats[S.EPISODE_ID].bytes_list.value[0].decode(),
      run_id=feats[S.RUN_ID].bytes_list.value[0].decode(),
      cut_short=bool(feats[S.CUT_SHORT].int64_list.value[0]),
    )

  def decode_metadata(self, data: bytes) -> Any:
    ex = tf_example_pb2.Example()
    ex.ParseFromString(data)
    return self._decode_metadata(ex.features.feature)

  def _decode_metadata(self, feats) -> Any:
    if self.schema.episode_metadata_spec is None:
      return None
    if not feats[S.HAS_EPISODE_METADATA].int64_list.value[0]:
      return None
    leaves = [_get_column(feats[key], spec, kind, 1)[0] for key, spec, kind in self.meta_keys]
    return self.casters.episode_metadata.unflatten([scalarize(x) for x in leaves])


def scalarize(x: Any) -> Any:
  """0-d arrays become numpy scalars (or str/bytes); others are unchanged."""
  if isinstance(x, np.ndarray) and x.ndim == 0:
    return x[()]
  return x


def _keys(prefix: str, spec: Any) -> list[tuple[str, Any, str]]:
  out = []
  for path, leaf in specs_lib.flatten_with_names(spec):
    key = '/'.join(p for p in (prefix, path) if p)
    out.append((key, leaf, _leaf_kind(leaf)))
  return out


def _put_column(feature, col: np.ndarray, kind: str, n: int) -> None:
  if kind == 'raw':
    col = np.ascontiguousarray(col)
    buf = col.tobytes()
    step = len(buf) // n if n else 0
    feature.bytes_list.value.extend([buf[i * step : (i + 1) * step] for i in range(n)])
  elif kind == 'bool':
    feature.int64_list.value.extend(col.astype(np.int64).ravel().tolist())
  elif kind == 'str':
    feature.bytes_list.value.extend([s.encode('utf-8') for s in col.ravel()])
  else:
    feature.bytes_list.value.extend(list(col.ravel()))


def _get_column(feature, spec: specs.Array, kind: str, n: int) -> np.ndarray:
  shape = (n, *spec.shape)
  if kind == 'raw':
    buf = bytearray().join(feature.bytes_list.value)  # writable, one copy
    return np.frombuffer(buf, dtype=np.dtype(spec.dtype)).reshape(shape)
  if kind == 'bool':
    return np.asarray(feature.int64_list.value, dtype=bool).reshape(shape)
  out = np.empty(int(np.prod(shape)), dtype=object)
  values = feature.bytes_list.value
  if kind == 'str':
    out[:] = [v.decode('utf-8') for v in values]
  else:
    out[:] = list(values)
  return out.reshape(shape)


def _flags(feature) -> np.ndarray:
  return np.asarray(feature.int64_list.value, dtype=bool)
