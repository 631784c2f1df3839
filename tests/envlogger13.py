"""Helpers for the envlogger 1.3 fixtures (tests/fixtures/envlogger13): expected.json's typed JSON
(see the fixture README) turned into Python values, and exact comparisons (types all the way down)."""

from __future__ import annotations

import base64
import math
import pathlib
from typing import Any

import numpy as np
from dm_env import specs

FIXTURES = pathlib.Path(__file__).parent / 'fixtures' / 'envlogger13'


# -- expected.json's typed JSON -> Python ------------------------------------------------------------


def from_typed(x: Any) -> Any:
  """Turns expected.json's typed JSON (see the fixture README) into the Python value it stands for."""
  if x is None or isinstance(x, (bool, str, int, float)):  # bare numbers: step_type, num_values
    return x
  if isinstance(x, list):
    return [from_typed(v) for v in x]
  assert isinstance(x, dict), x
  if len(x) == 1:
    ((tag, body),) = x.items()
    if tag == '$int':
      return int(body)
    if tag == '$float':
      return float(body)
    if tag == '$scalar':
      return np.dtype(body['dtype']).type(body['value'])
    if tag == '$ndarray':
      dtype = np.dtype(body['dtype'])
      if dtype.kind == 'O':
        flat = np.empty(len(body['data']), dtype=object)
        flat[:] = [from_typed(v) for v in body['data']]
      else:
        flat = np.array(body['data'], dtype=dtype)
      return flat.reshape(body['shape'])
    if tag == '$tuple':
      return tuple(from_typed(v) for v in body)
    if tag == '$bytes':
      return base64.b64decode(body)
    if tag == '$dict_kvs':
      return {from_typed(k): from_typed(v) for k, v in body}
    if tag == '$spec':
      return spec_from_typed(body)
  assert not any(k.startswith('$') for k in x), x
  return {k: from_typed(v) for k, v in x.items()}


def spec_from_typed(body: dict[str, Any]) -> specs.Array:
  cls = body['class']
  if cls == 'DiscreteArray':
    return specs.DiscreteArray(num_values=body['num_values'], dtype=body['dtype'], name=body['name'])
  if cls == 'BoundedArray':
    return specs.BoundedArray(
      shape=tuple(body['shape']),
      dtype=body['dtype'],
      minimum=from_typed(body['minimum']),
      maximum=from_typed(body['maximum']),
      name=body['name'],
    )
  assert cls == 'Array', cls
  return specs.Array(shape=tuple(body['shape']), dtype=body['dtype'], name=body['name'])


# -- exact comparison ---------------------------------------------------------------------------------


def assert_same(actual: Any, want: Any, path: str = 'value') -> None:
  """Same types all the way down (type(a) is type(b)), same dtypes, shapes and values (NaN == NaN)."""
  assert type(actual) is type(want), f'{path}: {type(actual)} is not {type(want)} ({actual!r} vs {want!r})'
  if isinstance(want, np.ndarray):
    assert actual.dtype == want.dtype, f'{path}: dtype {actual.dtype} != {want.dtype}'
    assert actual.shape == want.shape, f'{path}: shape {actual.shape} != {want.shape}'
    if want.dtype == object:
      for i, (a, w) in enumerate(zip(actual.ravel(), want.ravel())):
        assert_same(a, w, f'{path}.flat[{i}]')
    else:
      assert np.array_equal(actual, want, equal_nan=want.dtype.kind in 'fc'), f'{path}: {actual} != {want}'
  elif isinstance(want, np.generic):
    assert actual.dtype == want.dtype, f'{path}: dtype {actual.dtype} != {want.dtype}'
    assert (actual == want) or (np.isnan(want) and np.isnan(actual)), f'{path}: {actual!r} != {want!r}'
  elif isinstance(want, (list, tuple)):
    assert len(actual) == len(want), f'{path}: length {len(actual)} != {len(want)}'
    for i, (a, w) in enumerate(zip(actual, want)):
      assert_same(a, w, f'{path}[{i}]')
  elif isinstance(want, dict):
    assert set(actual) == set(want), f'{path}: keys {sorted(map(repr, actual))} != {sorted(map(repr, want))}'
    for k in want:
      assert_same(actual[k], want[k], f'{path}[{k!r}]')
  elif isinstance(want, float):
    assert actual == want or (math.isnan(want) and math.isnan(actual)), f'{path}: {actual!r} != {want!r}'
  else:
    assert actual == want, f'{path}: {actual!r} != {want!r}'


def assert_same_spec(actual: Any, want: Any, path: str = 'spec') -> None:
  assert type(actual) is type(want), f'{path}: {type(actual)} is not {type(want)}'
  if isinstance(want, specs.Array):
    assert actual == want, f'{path}: {actual!r} != {want!r}'
    assert actual.shape == want.shape and actual.dtype == want.dtype and actual.name == want.name, path
    if isinstance(want, specs.BoundedArray):
      assert_same(actual.minimum, want.minimum, f'{path}.minimum')
      assert_same(actual.maximum, want.maximum, f'{path}.maximum')
    if isinstance(want, specs.DiscreteArray):
      assert_same(actual.num_values, want.num_values, f'{path}.num_values')
  elif isinstance(want, (list, tuple)):
    assert len(actual) == len(want), path
    for i, (a, w) in enumerate(zip(actual, want)):
      assert_same_spec(a, w, f'{path}[{i}]')
  elif isinstance(want, dict):
    assert set(actual) == set(want), path
    for k in want:
      assert_same_spec(actual[k], want[k], f'{path}[{k!r}]')
  else:
    assert actual is None and want is None, f'{path}: {actual!r} vs {want!r}'
