"""dm_env specs: (de)serialization, inference from values, and value checking.

The env's specs are the schema of a log. They are stored once per dataset as
JSON (`spec_to_json`/`spec_from_json` round-trip `Array`, `BoundedArray`,
`DiscreteArray`, `StringArray` and nests of dicts, tuples and lists exactly),
and the Reader hands back equal spec objects.

Values are checked and cast against a leaf spec by `cast_to_spec`, under these
rules (documented in docs/format.md):

* numbers are cast to the spec's dtype under numpy's `same_kind` rule: a
  float64 action for a float32 spec is fine, a float into an integer spec or
  text into a number is an error;
* integers may change width or signedness when every value fits the target
  type (agents often pass Python or int64 ints for uint8/int32 specs);
* the shape must equal the spec's shape;
* strings (`str` or `bytes`) go only into `StringArray` specs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import tree
from dm_env import specs

SpecTree = Any  # a spec, or a dict/tuple/list nest of specs


class SpecError(ValueError):
  """A value does not match the spec of the field it is recorded into."""


# ----------------------------------------------------------------------------
# Structure helpers.


def is_leaf_spec(x: Any) -> bool:
  return isinstance(x, specs.Array)


def flatten_with_names(nest: Any) -> list[tuple[str, Any]]:
  """Flattens a nest into `(name, leaf)` pairs; names join keys with '/'.

  Dict keys are visited in sorted order (dm-tree's order) and sequence items by
  position, so a spec nest and a value nest of the same structure line up.
  """
  out = []
  for path, leaf in tree.flatten_with_path(nest):
    out.append(('/'.join(str(p) for p in path), leaf))
  return out


def _check_dict_keys(nest: Any, where: str) -> None:
  if isinstance(nest, Mapping):
    for k, v in nest.items():
      if not isinstance(k, str):
        raise SpecError(f'{where}: dict keys must be strings, got {k!r}.')
      if '/' in k or not k:
        raise SpecError(f"{where}: dict key {k!r} may not be empty or contain '/'.")
      _check_dict_keys(v, f'{where}/{k}')
  elif isinstance(nest, (tuple, list)):
    for i, v in enumerate(nest):
      _check_dict_keys(v, f'{where}/{i}')


# ----------------------------------------------------------------------------
# Serialization.


def _leaf_to_json(spec: specs.Array) -> dict[str, Any]:
  d: dict[str, Any] = {'shape': list(spec.shape), 'name': spec.name}
  if isinstance(spec, specs.StringArray):
    d['kind'] = 'StringArray'
    d['string_type'] = 'bytes' if spec.string_type is bytes else 'str'
    return d
  d['dtype'] = np.dtype(spec.dtype).str
  if isinstance(spec, specs.DiscreteArray):
    d['kind'] = 'DiscreteArray'
    d['num_values'] = int(spec.num_values)
  elif isinstance(spec, specs.BoundedArray):
    d['kind'] = 'BoundedArray'
    d['minimum'] = _array_to_json(spec.minimum)
    d['maximum'] = _array_to_json(spec.maximum)
  else:
    d['kind'] = 'Array'
  return d


def _array_to_json(a: np.ndarray) -> dict[str, Any]:
  a = np.asarray(a)
  # Hex of the raw bytes keeps every value exact (inf, nan, float64 bits).
  return {'dtype': a.dtype.str, 'shape': list(a.shape), 'hex': a.tobytes().hex()}


def _array_from_json(d: Mapping[str, Any]) -> np.ndarray:
  a = np.frombuffer(bytes.fromhex(d['hex']), dtype=np.dtype(d['dtype']))
  return a.reshape(d['shape']).copy()


def _leaf_from_json(d: Mapping[str, Any]) -> specs.Array:
  shape = tuple(d['shape'])
  name = d.get('name')
  kind = d['kind']
  if kind == 'StringArray':
    return specs.StringArray(shape, string_type=bytes if d['string_type'] == 'bytes' else str, name=name)
  dtype = np.dtype(d['dtype'])
  if kind == 'DiscreteArray':
    return specs.DiscreteArray(num_values=d['num_values'], dtype=dtype, name=name)
  if kind == 'BoundedArray':
    return specs.BoundedArray(
      shape, dtype, _array_from_json(d['minimum']), _array_from_json(d['maximum']), name=name
    )
  if kind == 'Array':
    return specs.Array(shape, dtype, name=name)
  raise ValueError(f'Unknown spec kind {kind!r} in stored specs.')


def spec_to_json(nest: SpecTree) -> Any:
  """Serializes a nest of dm_env specs (or `None`) to JSON-compatible data."""
  if nest is None:
    return None
  if is_leaf_spec(nest):
    return {'spec': _leaf_to_json(nest)}
  if isinstance(nest, Mapping):
    return {'dict': [[k, spec_to_json(v)] for k, v in nest.items()]}
  if isinstance(nest, tuple):
    return {'tuple': [spec_to_json(v) for v in nest]}
  if isinstance(nest, list):
    return {'list': [spec_to_json(v) for v in nest]}
  raise SpecError(f'Cannot store spec of type {type(nest).__name__}: {nest!r}.')


def spec_from_json(data: Any) -> SpecTree:
  """Inverse of `spec_to_json`."""
  if data is None:
    return None
  if 'spec' in data:
    return _leaf_from_json(data['spec'])
  if 'dict' in data:
    return {k: spec_from_json(v) for k, v in data['dict']}
  if 'tuple' in data:
    return tuple(spec_from_json(v) for v in data['tuple'])
  if 'list' in data:
    return [spec_from_json(v) for v in data['list']]
  raise ValueError(f'Malformed stored spec: {data!r}.')


def specs_equal(a: SpecTree, b: SpecTree) -> bool:
  """True if two spec nests describe the same data (same JSON form)."""
  return spec_to_json(a) == spec_to_json(b)


# ----------------------------------------------------------------------------
# Inference from values (step_fn / episode_fn / reward / discount).


def infer_spec(value: Any, where: str) -> SpecTree:
  """Infers a spec nest from a value, as `step_fn`/`episode_fn` returned it.

  Python `int` becomes int64, `float` float64, `bool` bool, `str`/`bytes` a
  scalar `StringArray`, numpy arrays and scalars keep their dtype and shape.

  Raises:
    SpecError: if a leaf cannot be stored (objects, mixed-type lists, None
      inside a nest), naming the field.
  """
  _check_dict_keys(value, where)

  def leaf(path, v):
    name = '/'.join([where, *(str(p) for p in path)])
    if v is None:
      raise SpecError(f'{name}: None inside a nested value cannot be stored.')
    if isinstance(v, (str, bytes, np.str_, np.bytes_)):
      return specs.StringArray((), string_type=bytes if isinstance(v, bytes) else str, name=None)
    if isinstance(v, bool):
      return specs.Array((), np.bool_)
    if isinstance(v, int):
      return specs.Array((), np.int64)
    if isinstance(v, float):
      return specs.Array((), np.float64)
    a = np.asarray(v)
    if a.dtype.kind in 'US':
      return specs.StringArray(a.shape, string_type=bytes if a.dtype.kind == 'S' else str)
    if a.dtype.kind == 'O' and a.size and all(isinstance(x, (str, bytes)) for x in a.flat):
      first = next(iter(a.flat))
      return specs.StringArray(a.shape, string_type=type(first))
    if a.dtype.kind not in 'biufc':
      raise SpecError(f'{name}: values of type {type(v).__name__} ({a.dtype}) cannot be stored.')
    if a.dtype.kind == 'c':
      raise SpecError(f'{name}: complex values cannot be stored.')
    return specs.Array(a.shape, a.dtype)

  return tree.map_structure_with_path(leaf, value)


# ----------------------------------------------------------------------------
# Checking and casting values.


def cast_to_spec(value: Any, spec: specs.Array, name: str) -> np.ndarray:
  """Returns `value` as an array of `spec`'s dtype and shape, or raises SpecError.

  Strings are returned as a numpy object array of `str`/`bytes`.
  """
  if isinstance(spec, specs.StringArray):
    if isinstance(value, (str, bytes, np.str_, np.bytes_)):
      arr = np.empty((), dtype=object)
      arr[()] = value
    else:
      arr = np.array(value, dtype=object)  # a copy: callers may reuse buffers
    if arr.shape != tuple(spec.shape):
      raise SpecError(f'{name}: expected shape {tuple(spec.shape)}, got {arr.shape}.')
    for x in arr.flat:
      if not isinstance(x, (str, bytes)):
        raise SpecError(f'{name}: expected text ({spec.string_type.__name__}), got {type(x).__name__} {x!r}.')
    return arr
  target = np.dtype(spec.dtype)
  if isinstance(value, (str, bytes)):
    raise SpecError(f'{name}: expected {target} values, got text {value!r}.')
  if isinstance(value, (bool, int, float)) and not isinstance(value, np.generic):
    arr = _cast_python_scalar(value, target, name)
  else:
    arr = np.array(value)  # a copy: envs and agents reuse buffers
    if arr.dtype != target:
      arr = _cast_array(arr, target, name)
  if arr.shape != tuple(spec.shape):
    raise SpecError(f'{name}: expected shape {tuple(spec.shape)}, got {arr.shape}.')
  return arr


def _cast_python_scalar(value: Any, target: np.dtype, name: str) -> np.ndarray:
  kind = target.kind
  if isinstance(value, bool):
    if kind in 'biuf':
      return np.asarray(value, dtype=target)
  elif isinstance(value, int):
    if kind in 'iu':
      info = np.iinfo(target)
      if not info.min <= value <= info.max:
        raise SpecError(f'{name}: {value} does not fit in {target}.')
      return np.asarray(value, dtype=target)
    if kind == 'f':
      return np.asarray(value, dtype=target)
  elif isinstance(value, float) and kind == 'f':
    return np.asarray(value, dtype=target)
  raise SpecError(f'{name}: cannot store {type(value).__name__} {value!r} as {target} (unsafe cast).')


def _cast_array(arr: np.ndarray, target: np.dtype, name: str) -> np.ndarray:
  src = arr.dtype
  if src.kind in 'iub' and target.kind in 'iu' and arr.size:
    info = np.iinfo(target)
    lo, hi = arr.min(), arr.max()
    if lo < info.min or hi > info.max:
      raise SpecError(f'{name}: values in [{lo}, {hi}] do not fit in {target}.')
    return arr.astype(target)
  if src.kind in 'iub' and target.kind in 'iu':
    return arr.astype(target)
  if not np.can_cast(src, target, casting='same_kind'):
    raise SpecError(f'{name}: cannot cast {src} to {target} (unsafe cast).')
  return arr.astype(target)


# ----------------------------------------------------------------------------
# Nests of values against nests of specs.


_FLOAT_SCALARS = (np.float16, np.float32, np.float64)  # exactly representable as a Python float


class _LeafCast:
  """Checks and casts the values of one leaf spec; the hot path of logging.

  `view` returns a value that `np.asarray(values, dtype)` stacks exactly:
  arrays of the leaf's dtype and shape as they are (not copied: callers copy
  them, see `owned`), scalar leaves as Python or numpy scalars (immutable).
  Everything else goes through `cast_to_spec` (a fresh array).
  """

  __slots__ = ('spec', 'name', 'dtype', 'shape', 'kind', 'scalar', 'lo', 'hi', 'nbytes')

  def __init__(self, spec: specs.Array, name: str):
    self.spec = spec
    self.name = name
    self.shape = tuple(spec.shape)
    self.scalar = self.shape == ()
    if isinstance(spec, specs.StringArray):
      self.kind = 'S'
      self.dtype = np.dtype(object)
    else:
      self.dtype = np.dtype(spec.dtype)
      self.kind = self.dtype.kind
    # Bytes per value (8 per string: the size of a reference).
    self.nbytes = int(np.prod(self.shape, dtype=np.int64)) * (8 if self.kind == 'S' else self.dtype.itemsize)
    self.lo = self.hi = None
    if self.kind in 'iu':
      info = np.iinfo(self.dtype)
      self.lo, self.hi = int(info.min), int(info.max)

  def view(self, value: Any) -> Any:
    t = type(value)
    if t is np.ndarray:
      if value.dtype == self.dtype and value.shape == self.shape and self.kind != 'S':
        return value[()] if self.scalar else value  # a 0-d array's value: immutable
      if self.scalar and value.shape == () and self.kind in 'iuf':  # another dtype: its scalar, checked below
        value = value[()]
        t = type(value)
      elif self.kind == 'f' and value.shape == self.shape and value.dtype.kind in 'biuf':
        return value.astype(self.dtype)  # a same-kind cast, as cast_to_spec's (one copy, not two)
    if self.scalar and t is not np.ndarray:
      kind = self.kind
      if t is float:
        if kind == 'f':
          return value
      elif t is int:
        if kind in 'iu':
          if self.lo <= value <= self.hi:
            return value
        elif kind == 'f':
          return value
      elif t is bool:
        if kind == 'b':
          return value
      elif isinstance(value, np.generic) and value.dtype == self.dtype or kind == 'S' and t is str:
        return value
      elif kind in 'iu' and isinstance(value, np.integer):
        # Another integer dtype (np.argmax's int64 for an int32 DiscreteArray):
        # the value as a Python int if it fits (4.7 us through cast_to_spec).
        v = int(value)
        if self.lo <= v <= self.hi:
          return v
      elif kind == 'f' and t in _FLOAT_SCALARS:
        return float(value)  # exact: the column's dtype rounds it once, as a cast would
    out = cast_to_spec(value, self.spec, self.name)
    return out[()] if self.scalar else out


def _flattener(spec: Any, name: str, casts: list[_LeafCast]):
  """Builds a function that appends the checked leaves of a value to a list
  (`_LeafCast.view`: arrays of the right dtype and shape are not copied)."""
  if is_leaf_spec(spec):
    cast = _LeafCast(spec, name)
    casts.append(cast)
    cast = cast.view

    def leaf(value, out):
      out.append(cast(value))

    return leaf
  if isinstance(spec, Mapping):
    keys = sorted(spec)  # tree.flatten order
    children = [_flattener(spec[k], f'{name}/{k}', casts) for k in keys]
    pairs = list(zip(keys, children))

    def mapping(value, out):
      if not isinstance(value, Mapping) or len(value) != len(keys):
        raise SpecError(f'{name}: {_structure_difference(spec, value)}')
      try:
        for k, child in pairs:
          child(value[k], out)
      except KeyError:
        raise SpecError(f'{name}: {_structure_difference(spec, value)}') from None

    return mapping
  children = [_flattener(v, f'{name}/{i}', casts) for i, v in enumerate(spec)]

  def sequence(value, out):
    if not isinstance(value, (tuple, list)) or len(value) != len(children):
      raise SpecError(f'{name}: {_structure_difference(spec, value)}')
    for child, v in zip(children, value):
      child(v, out)

  return sequence


class LeafCaster:
  """Flattens and casts values of one spec nest; built once per field.

  `__call__(value)` returns the leaves in `tree.flatten` order, each checked
  and cast (see `_LeafCast`), raising SpecError (naming the field and the
  leaf) if the structure, a shape or a dtype does not match. `stack` turns
  a list of such leaves, one per step, into an array of the leaf's dtype.
  """

  def __init__(self, spec: SpecTree, name: str):
    self.spec = spec
    self.name = name
    self.leaves = tree.flatten(spec)
    self._casts: list[_LeafCast] = []
    self._flatten = _flattener(spec, name, self._casts)
    self._is_leaf = is_leaf_spec(spec)
    self._single = self._casts[0] if self._is_leaf else None
    self._dict_keys = sorted(spec) if isinstance(spec, Mapping) else None
    self._dict_of_leaves = self._dict_keys is not None and all(is_leaf_spec(v) for v in spec.values())
    self._zeros: list[np.ndarray] | None = None

  def __call__(self, value: Any) -> list[Any]:
    return owned(self.view(value))

  def view(self, value: Any) -> list[Any]:
    """Like calling the caster, but arrays that already have the leaf's dtype
    and shape are returned uncopied (valid only until the caller's next step:
    envs and agents reuse buffers)."""
    if self._single is not None:
      return [self._single.view(value)]
    out: list[Any] = []
    self._flatten(value, out)
    return out

  @property
  def single(self) -> _LeafCast | None:
    """The cast of a spec that is one leaf (not a nest), else None."""
    return self._single

  @property
  def casts(self) -> list[_LeafCast]:
    """The leaf casts, in `tree.flatten` order."""
    return self._casts

  def stack(self, index: int, values: list[Any]) -> np.ndarray:
    """Stacks the values of leaf `index` (one per step) into one array."""
    cast = self._casts[index]
    if cast.kind == 'S':
      out = np.empty((len(values), *cast.shape), dtype=object)
      for i, v in enumerate(values):
        out[i, ...] = v
      return out
    if not values:
      return np.zeros((0, *cast.shape), dtype=cast.dtype)
    if cast.scalar:
      return np.array(values, dtype=cast.dtype)
    return np.stack(values)

  def zeros(self) -> list[np.ndarray]:
    """A zero value per leaf (read-only arrays, shared between calls)."""
    if self._zeros is None:
      self._zeros = [zeros_for(s) for s in self.leaves]
      for z in self._zeros:
        z.flags.writeable = False
    return self._zeros

  def unflatten(self, leaves: list[Any]) -> Any:
    if self._is_leaf:
      return leaves[0]
    if self._dict_of_leaves:
      return dict(zip(self._dict_keys, leaves))
    return tree.unflatten_as(self.spec, leaves)


def owned(leaves: list[Any]) -> list[Any]:
  """Leaves from `LeafCaster.view` with their arrays copied (the env or agent
  may reuse its buffers; scalars are immutable)."""
  return [x.copy() if type(x) is np.ndarray else x for x in leaves]


def zeros_for(spec: specs.Array) -> np.ndarray:
  if isinstance(spec, specs.StringArray):
    return np.full(spec.shape, '' if spec.string_type is str else b'', dtype=object)
  return np.zeros(spec.shape, dtype=spec.dtype)


def _structure_difference(spec: Any, value: Any, path: str = '') -> str:
  """Describes the first structural difference between a spec nest and a value."""
  where = path or 'value'
  if isinstance(spec, Mapping):
    if not isinstance(value, Mapping):
      return f'{where}: expected a dict with keys {sorted(spec)}, got {type(value).__name__}.'
    missing = sorted(set(spec) - set(value))
    extra = sorted(set(value) - set(spec), key=str)
    if missing or extra:
      return f'{where}: missing keys {missing}, unexpected keys {extra}.'
    for k in spec:
      d = _structure_difference(spec[k], value[k], f'{path}/{k}' if path else k)
      if d:
        return d
    return ''
  if isinstance(spec, (tuple, list)):
    if not isinstance(value, (tuple, list)) or len(value) != len(spec):
      return f'{where}: expected a sequence of {len(spec)} items, got {value!r:.80}.'
    for i, (s, v) in enumerate(zip(spec, value)):
      d = _structure_difference(s, v, f'{path}/{i}' if path else str(i))
      if d:
        return d
    return ''
  if isinstance(value, Mapping):
    return f'{where}: expected a single array, got a dict.'
  return f'{where}: structure does not match the spec.'
