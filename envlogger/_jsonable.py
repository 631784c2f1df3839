"""Lossless JSON form for metadata values (dicts, tuples, numpy arrays, bytes).

Dataset metadata is stored as JSON so that any tool can read it. Plain JSON
loses tuples, bytes and numpy dtypes; this module tags them so that
`decode(encode(x))` equals `x`, and rejects what it cannot store with an error
that names the offending field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np


class MetadataError(ValueError):
  """A metadata value cannot be stored."""


def encode(value: Any, where: str = 'metadata') -> Any:
  """Returns a JSON-compatible form of `value`; raises MetadataError if impossible."""
  if value is None or isinstance(value, (bool, str)):
    return value
  if isinstance(value, int) and not isinstance(value, np.generic):
    return value
  if isinstance(value, float) and not isinstance(value, np.generic):
    if math.isfinite(value):
      return value
    return {'__float__': repr(value)}
  if isinstance(value, bytes):
    return {'__bytes__': value.hex()}
  if isinstance(value, (np.ndarray, np.generic)):
    a = np.asarray(value)
    if a.dtype.kind in 'US':
      return {'__strarray__': {'dtype': a.dtype.str, 'shape': list(a.shape), 'items': a.ravel().tolist()}}
    if a.dtype.kind not in 'biufc':
      raise MetadataError(f'{where}: numpy arrays of dtype {a.dtype} cannot be stored.')
    tag = '__ndarray__' if isinstance(value, np.ndarray) else '__npscalar__'
    return {tag: {'dtype': a.dtype.str, 'shape': list(a.shape), 'hex': a.tobytes().hex()}}
  if isinstance(value, Mapping):
    out = {}
    for k, v in value.items():
      if not isinstance(k, str):
        raise MetadataError(f'{where}: dict keys must be strings, got {k!r}.')
      if k.startswith('__') and k.endswith('__'):
        raise MetadataError(f'{where}: dict key {k!r} is reserved.')
      out[k] = encode(v, f'{where}/{k}')
    return out
  if isinstance(value, tuple):
    return {'__tuple__': [encode(v, f'{where}/{i}') for i, v in enumerate(value)]}
  if isinstance(value, list):
    return [encode(v, f'{where}/{i}') for i, v in enumerate(value)]
  raise MetadataError(
    f'{where}: values of type {type(value).__name__} cannot be stored '
    '(use dicts, lists, tuples, str, bytes, numbers, bools, None or numpy arrays).'
  )


def decode(data: Any) -> Any:
  """Inverse of `encode`."""
  if isinstance(data, list):
    return [decode(v) for v in data]
  if not isinstance(data, dict):
    return data
  if len(data) == 1:
    ((tag, body),) = data.items()
    if tag == '__tuple__':
      return tuple(decode(v) for v in body)
    if tag == '__bytes__':
      return bytes.fromhex(body)
    if tag == '__float__':
      return float(body)
    if tag in ('__ndarray__', '__npscalar__'):
      a = np.frombuffer(bytes.fromhex(body['hex']), dtype=np.dtype(body['dtype']))
      a = a.reshape(body['shape']).copy()
      return a[()] if tag == '__npscalar__' else a
    if tag == '__strarray__':
      return np.array(body['items'], dtype=np.dtype(body['dtype'])).reshape(body['shape'])
  return {k: decode(v) for k, v in data.items()}
