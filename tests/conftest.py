"""Shared helpers: run an env through EnvLogger while capturing the ground truth."""

from __future__ import annotations

import dataclasses
import json
import os
import select
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
import tree
from dm_env import specs

import envlogger
from envlogger import rlds
from envlogger.backends import _batch_decode, _batch_walk
from envlogger.convert import convert
from envlogger.step_data import StepData
from envlogger.testing import catch_env

BACKENDS = ('tfds', 'in_memory')
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclasses.dataclass
class Truth:
  """What the logger saw, captured outside it."""

  episodes: list[list[StepData]] = dataclasses.field(default_factory=list)
  metadata: list[Any] = dataclasses.field(default_factory=list)
  cut_short: list[bool] = dataclasses.field(default_factory=list)

  @property
  def steps(self) -> list[StepData]:
    return [s for ep in self.episodes for s in ep]


class Recorder:
  """Drives a logged env and records the ground truth of every call."""

  def __init__(self, logged_env, step_fn=None, episode_fn=None, raw_env=None):
    self.env = logged_env
    self.raw = raw_env
    self.step_fn = step_fn
    self.episode_fn = episode_fn
    self.truth = Truth()
    self._meta = None
    self._open = False

  def _note(self, ts, action):
    custom = self.step_fn(ts, action, self.raw) if self.step_fn else None
    meta = self.episode_fn(ts, action, self.raw) if self.episode_fn else None
    if ts.first():
      if self._open:
        self.truth.cut_short.append(True)
        self.truth.metadata.append(self._meta)
      self.truth.episodes.append([])
      self._meta = None
      self._open = True
      action = None
    if meta is not None:
      self._meta = meta
    self.truth.episodes[-1].append(StepData(ts, action, custom))
    if ts.last():
      self.truth.cut_short.append(False)
      self.truth.metadata.append(self._meta)
      self._open = False

  def reset(self):
    ts = self.env.reset()
    self._note(ts, None)
    return ts

  def step(self, action):
    ts = self.env.step(action)
    self._note(ts, action)
    return ts

  def close(self):
    self.env.close()
    if self._open:
      self.truth.cut_short.append(True)
      self.truth.metadata.append(self._meta)
      self._open = False


def make_logger(env, backend: str, tmp_path, **kwargs) -> envlogger.EnvLogger:
  """An EnvLogger on `backend`: 'tfds', 'in_memory', or 'compact' (written as 'tfds',
  converted to the compact format by `open_reader`)."""
  if backend in ('tfds', 'compact'):
    return envlogger.EnvLogger(env, data_directory=str(tmp_path / 'log'), **kwargs)
  return envlogger.EnvLogger(env, backend=backend, **kwargs)


def open_reader(logger: envlogger.EnvLogger, backend: str, tmp_path) -> envlogger.Reader:
  if backend == 'tfds':
    return envlogger.Reader(data_directory=str(tmp_path / 'log'))
  if backend == 'compact':
    dst = tmp_path / 'compact'
    if not dst.exists():
      convert(str(tmp_path / 'log'), str(dst), file_format='array_record')
    return envlogger.Reader(data_directory=str(dst))
  return envlogger.Reader(backend=logger.backend)


def _leaf_equal(actual, expected, spec, where):
  if expected is None:
    assert actual is None, f'{where}: expected None, got {actual!r}'
    return
  assert actual is not None, f'{where}: got None, expected {expected!r}'

  if isinstance(spec, specs.StringArray):
    np.testing.assert_array_equal(np.asarray(actual, dtype=object), np.asarray(expected, dtype=object))
    return
  exp = np.asarray(expected).astype(spec.dtype)
  act = np.asarray(actual)
  assert act.dtype == np.dtype(spec.dtype), f'{where}: dtype {act.dtype} != spec {spec.dtype}'
  assert act.shape == exp.shape, f'{where}: shape {act.shape} != {exp.shape}'
  # Bit-exact comparison (NaNs included).
  assert act.tobytes() == exp.tobytes(), f'{where}: {act!r} != {exp!r}'


def nest_equal(actual, expected, spec, where):
  if expected is None or actual is None:
    assert actual is None and expected is None, f'{where}: {actual!r} vs {expected!r}'
    return
  tree.assert_same_structure(spec, expected, check_types=False)
  flat_spec = tree.flatten(spec)
  flat_act = tree.flatten_up_to(spec, actual, check_types=False)
  flat_exp = tree.flatten_up_to(spec, expected, check_types=False)
  for a, e, s in zip(flat_act, flat_exp, flat_spec):
    _leaf_equal(a, e, s, where)


def assert_step_equal(actual: StepData, expected: StepData, reader: envlogger.Reader, custom_spec=None):
  at, et = actual.timestep, expected.timestep
  assert at.step_type == et.step_type, f'step_type {at.step_type} != {et.step_type}'
  nest_equal(at.observation, et.observation, reader.observation_spec(), 'observation')
  if et.first():
    assert at.reward is None and at.discount is None and actual.action is None
  else:
    nest_equal(at.reward, et.reward, reader.reward_spec(), 'reward')
    nest_equal(at.discount, et.discount, reader.discount_spec(), 'discount')
    nest_equal(actual.action, expected.action, reader.action_spec(), 'action')
  if expected.custom_data is None:
    assert actual.custom_data is None, f'custom_data: expected None, got {actual.custom_data!r}'
  else:
    assert actual.custom_data is not None
    tree.assert_same_structure(actual.custom_data, expected.custom_data, check_types=False)
    for a, e in zip(tree.flatten(actual.custom_data), tree.flatten(expected.custom_data)):
      np.testing.assert_array_equal(np.asarray(a), np.asarray(e))


def metadata_equal(actual, expected):
  if expected is None:
    assert actual is None
    return
  tree.assert_same_structure(actual, expected, check_types=False)
  for a, e in zip(tree.flatten(actual), tree.flatten(expected)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(e))


def run_python(code: str, timeout: float = 300) -> subprocess.CompletedProcess:
  """Runs `code` in a fresh interpreter (same venv), returning the completed process."""
  return subprocess.run(
    [sys.executable, '-c', code], capture_output=True, text=True, timeout=timeout, cwd=REPO
  )


_SNIPPET_SERVER = r"""
import contextlib, io, json, sys, traceback
for line in sys.stdin:
  out, err = io.StringIO(), ''
  with contextlib.redirect_stdout(out):
    try:
      exec(compile(json.loads(line), '<snippet>', 'exec'), {'__name__': '__snippet__'})
    except BaseException:
      err = traceback.format_exc()
  sys.__stdout__.write(json.dumps({'out': out.getvalue(), 'err': err}) + '\n')
  sys.__stdout__.flush()
"""


class SharedInterpreter:
  """One more Python process (same venv), shared by the tests of a session.

  It imports neither envlogger nor tfds_builder, so what it runs shows what a
  plain TFDS user gets; sharing it imports TensorFlow once per test session
  (about 2 minutes on the 2-core CI machine) instead of once per check.
  Each snippet runs with fresh globals; modules stay imported between them.
  """

  def __init__(self):
    self._proc: subprocess.Popen | None = None

  def run(self, code: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Runs `code`; returncode 0 and its printed output, or 1 and the traceback in stderr."""
    if self._proc is None or self._proc.poll() is not None:
      self._proc = subprocess.Popen(
        [sys.executable, '-u', '-c', _SNIPPET_SERVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=REPO,
      )
    self._proc.stdin.write(json.dumps(code) + '\n')
    self._proc.stdin.flush()
    ready, _, _ = select.select([self._proc.stdout], [], [], timeout)
    if not ready:
      self.close()
      raise TimeoutError(f'the shared interpreter did not answer within {timeout} s')
    line = self._proc.stdout.readline()
    if not line:
      self.close()
      return subprocess.CompletedProcess(code, 1, '', 'the shared interpreter died')
    reply = json.loads(line)
    return subprocess.CompletedProcess(code, 1 if reply['err'] else 0, reply['out'], reply['err'])

  def close(self) -> None:
    if self._proc is not None:
      self._proc.kill()
      self._proc.wait()
      self._proc = None


@pytest.fixture(scope='session')
def shared_python():
  """A `SharedInterpreter` for checks that need TensorFlow without envlogger."""
  interp = SharedInterpreter()
  yield interp
  interp.close()


@pytest.fixture(params=BACKENDS)
def backend(request):
  return request.param


def log_catch_actor(directory, seed: int, episodes: int = 12, **kwargs) -> None:
  """A Catch log as one actor of a shared dataset writes it: metadata {'seed'}, a step field 'row' (the
  seed), episode metadata {'ret'} (the last reward); actions cycle from the seed. Used by the sharing
  tests (tfds_builder, its command line, remote storage)."""
  with envlogger.EnvLogger(
    catch_env.Catch(seed=seed),
    data_directory=str(directory),
    metadata={'seed': seed},
    step_fn=lambda ts, a, e: {'row': np.int32(seed)},
    episode_fn=lambda ts, a, e: {'ret': float(ts.reward)} if ts.last() else None,
    **kwargs,
  ) as env:
    for i in range(episodes):
      ts = env.reset()
      while not ts.last():
        ts = env.step((i + seed) % 3)


def steps_by_episode(sources, keys, episode_keys=()) -> dict[str, dict]:
  """{episode id: {key: list of every step's value} plus the episode metadata `episode_keys`} of logs,
  as envlogger's Reader reads them: what a dataset built from them must hold."""
  out = {}
  for d in sources:
    with envlogger.Reader(d) as r:
      for ep in r.episodes:
        steps = ep.as_rlds()['steps']
        out[ep.episode_id] = {k: steps[k].tolist() for k in keys}
        out[ep.episode_id].update({k: ep.metadata[k] for k in episode_keys})
  return out


@pytest.fixture
def walked(monkeypatch):
  """The number of records of each batch `_batch_walk` decoded (0: it left them
  to the parser); batches of 4 records or more are walked (not 48: test logs
  are small)."""
  monkeypatch.setattr(_batch_decode, 'MIN_WALK', 4)
  counts = []
  walk = _batch_walk.decode

  def counting(codec, records, fields=None):
    got = walk(codec, records, fields)
    counts.append(len(records) if isinstance(got, rlds.EpisodeBatch) else 0)
    return got

  monkeypatch.setattr(_batch_walk, 'decode', counting)
  return counts
