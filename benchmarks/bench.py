"""Benchmarks of envlogger: logging overhead, disk use, Reader speed, imports.

Run from the repository root with the dev venv:

  python benchmarks/bench.py --quick                  # well under a minute
  python benchmarks/bench.py --json benchmarks/results.json
  python benchmarks/bench.py --workloads catch,mujoco

All figures come from one run, so compare them as ratios: the machine may be
shared and noisy. The measurements run in one subprocess, which logs every
workload, checks whether that imported TensorFlow, then reads the logs back.
The bare-env loop, the logged loop and the numpy baseline run in turn,
`repeats` times; ratios and differences are taken per repeat, then the median.
Whole loops are timed in wall time and in the process's CPU time (which leaves
out the time spent waiting for a CPU, not time a hypervisor steals); per-call
latencies in wall time (`time.perf_counter_ns`), summarized by percentiles,
which the rare long stalls of a busy machine move little. See
benchmarks/README.md for what each metric is.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import itertools
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import dm_env
import envs
import numpy as np

import envlogger
from envlogger import loaders
from envlogger.convert import convert


@dataclasses.dataclass(frozen=True)
class Params:
  """Sizes of one workload's run."""

  episodes: int  # whole episodes per timed loop: one reset(), then episodes * length - 1 step() calls
  repeats: int  # timed loops of each kind (bare, logged, numpy) and Reader passes
  hot_repeats: int  # loops timed call by call (bare and logged)
  samples: int  # random step reads
  episode_samples: int  # random episode reads


# Steps per loop: catch 10, atari 200, mujoco 1000 per episode. Every log has
# at least 9 episodes, so random reads are not served by the Reader's cache
# (see RECENT).
FULL = {
  'catch': Params(episodes=2000, repeats=5, hot_repeats=2, samples=1000, episode_samples=300),
  'atari': Params(episodes=20, repeats=5, hot_repeats=2, samples=1000, episode_samples=100),
  'mujoco': Params(episodes=20, repeats=5, hot_repeats=2, samples=1000, episode_samples=100),
}
QUICK = {
  'catch': Params(episodes=200, repeats=3, hot_repeats=1, samples=200, episode_samples=50),
  'atari': Params(episodes=9, repeats=3, hot_repeats=1, samples=30, episode_samples=10),
  'mujoco': Params(episodes=9, repeats=3, hot_repeats=1, samples=200, episode_samples=10),
}
# Write modes whose whole-loop overhead is measured beside the default's.
FORCED = {'async_writes=True': {'async_writes': True}, 'async_writes=False': {'async_writes': False}}
# Workloads also logged with observations that never repeat (envs.NeverRepeating).
NEVER_REPEATING = ('catch',)
CHUNK_STEPS = 5000
LOADER_ITEMS = 20_000  # shuffled transitions read in batches of 256, at most  # as_columns() and Reader.steps passes timed over chunks of this many steps
IMPORT_REPEATS = {'full': 5, 'quick': 1}
# The Reader keeps a few decoded episodes (a small LRU cache). Random reads are
# spread so that each one's episode is not among the last RECENT episodes read
# (RECENT is capped at the number of episodes - 1): with more than 8 episodes
# in the log, every read decodes its episode, as with a log larger than the
# cache.
RECENT = 16
_START = time.perf_counter()


# ----------------------------------------------------------------------------
# Results.


@dataclasses.dataclass
class Metric:
  workload: str
  name: str
  value: Any  # median (wall time where it is a time)
  unit: str
  lo: float | None = None  # min and max over repeats
  hi: float | None = None
  n: int = 1  # repeats
  cpu: float | None = None  # the same figure from CPU time, where it applies


def _summary(workload, name, values, unit, scale=1.0, cpu_values=None) -> Metric:
  v = np.asarray(values, dtype=np.float64) * scale
  cpu = None if cpu_values is None else float(np.median(np.asarray(cpu_values, dtype=np.float64) * scale))
  return Metric(workload, name, float(np.median(v)), unit, float(v.min()), float(v.max()), len(v), cpu)


@dataclasses.dataclass
class Times:
  """Wall and CPU seconds of repeated runs."""

  wall: np.ndarray
  cpu: np.ndarray


def _timed(fn: Callable[[], Any]) -> tuple[float, float]:
  w0, c0 = time.perf_counter(), time.process_time()
  fn()
  return time.perf_counter() - w0, time.process_time() - c0


def _repeat(fn: Callable[[], Any], n: int) -> Times:
  runs = [_timed(fn) for _ in range(n)]
  return Times(np.array([w for w, _ in runs]), np.array([c for _, c in runs]))


# ----------------------------------------------------------------------------
# Helpers.


def _dir_bytes(path: str) -> int:
  total = 0
  for root, _, files in os.walk(path):
    total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
  return total


def _obs_bytes(spec) -> int:
  if isinstance(spec, dict):
    return sum(_obs_bytes(s) for s in spec.values())
  return int(np.prod(spec.shape)) * np.dtype(spec.dtype).itemsize


def _make_actions(env: dm_env.Environment, n: int, seed: int = 0) -> list:
  rng = np.random.RandomState(seed)
  spec = env.action_spec()
  if isinstance(spec, dm_env.specs.DiscreteArray):
    return list(rng.randint(spec.num_values, size=n).astype(spec.dtype))
  return list(rng.uniform(spec.minimum, spec.maximum, size=(n, *spec.shape)).astype(spec.dtype))


def _copy_obs(obs):
  if isinstance(obs, dict):
    return {k: v.copy() for k, v in obs.items()}
  return obs.copy()


def _save_episode(path: str, observations: list) -> None:
  """One .npy per episode: a stacked array, or a structured array for dicts."""
  first = observations[0]
  if isinstance(first, dict):
    arr = np.empty(len(observations), dtype=[(k, v.dtype, v.shape) for k, v in first.items()])
    for k in first:
      arr[k] = np.stack([o[k] for o in observations])
  else:
    arr = np.stack(observations)
  np.save(path, arr)


def _episode_sums(ns: np.ndarray, last: np.ndarray) -> np.ndarray:
  """Total time of each whole episode: the calls after a LAST up to the next LAST."""
  ends = np.flatnonzero(last)
  cum = np.concatenate([[0], np.cumsum(ns)])
  return cum[ends[1:] + 1] - cum[ends[:-1] + 1]


def _spread_reads(lengths: np.ndarray, n: int, rng: np.random.RandomState) -> list[tuple[int, int]]:
  """n random (episode, step) pairs, each episode not among the last RECENT picked."""
  recent: collections.deque[int] = collections.deque(maxlen=max(0, min(RECENT, len(lengths) - 1)))
  out = []
  while len(out) < n:
    e = int(rng.randint(len(lengths)))
    if e in recent:
      continue
    recent.append(e)
    out.append((e, int(rng.randint(lengths[e]))))
  return out


# ----------------------------------------------------------------------------
# The loops being timed.


def loop_bare(env: dm_env.Environment, actions: list) -> None:
  env.reset()
  step = env.step
  for a in actions:
    step(a)
  env.close()


def loop_logged(env: dm_env.Environment, actions: list, data_dir: str, **kwargs: Any) -> None:
  """From the logger's construction to the end of its close()."""
  logger = envlogger.EnvLogger(env, data_directory=data_dir, **kwargs)
  logger.reset()
  step = logger.step
  for a in actions:
    step(a)
  logger.close()


def loop_numpy(env: dm_env.Environment, actions: list, out_dir: str) -> None:
  """The baseline: copies of the observations, one .npy file per episode."""
  os.makedirs(out_dir, exist_ok=True)
  episode = 0
  buf = [_copy_obs(env.reset().observation)]
  for a in actions:
    ts = env.step(a)
    buf.append(_copy_obs(ts.observation))
    if ts.last():
      _save_episode(os.path.join(out_dir, f'episode_{episode:06d}.npy'), buf)
      episode += 1
      buf = []
  if buf:
    _save_episode(os.path.join(out_dir, f'episode_{episode:06d}.npy'), buf)
  env.close()


def loop_per_call(step: Callable, actions: list) -> tuple[np.ndarray, np.ndarray]:
  """Nanoseconds of each step() call, and which calls returned a LAST timestep."""
  ns = np.empty(len(actions), dtype=np.int64)
  last = np.zeros(len(actions), dtype=bool)
  clock = time.perf_counter_ns
  for i, a in enumerate(actions):
    t0 = clock()
    ts = step(a)
    ns[i] = clock() - t0
    last[i] = ts.step_type is dm_env.StepType.LAST
  return ns, last


# ----------------------------------------------------------------------------
# The measurements (in the child process).


def measure_logging(w: str, p: Params, work: str) -> tuple[list[Metric], dict[str, Any]]:
  """Logging overhead, hot-path latencies, numpy baseline, bytes on disk."""
  make_env = envs.ENVS[w]
  probe = make_env()
  calls = p.episodes * make_env.EPISODE_LENGTH  # one reset(), then step() calls
  actions = _make_actions(probe, calls - 1)
  metrics: list[Metric] = []

  def add(name, values, unit, scale=1.0, cpu_values=None):
    metrics.append(_summary(w, name, values, unit, scale, cpu_values))

  def one(name, value, unit):
    metrics.append(Metric(w, name, value, unit))

  # Fixed cost of a logger: construction, reset() and close() (which writes a
  # one-step episode and the TFDS metadata).
  counter = itertools.count()
  fixed = _repeat(
    lambda: loop_logged(make_env(), [], os.path.join(work, f'{w}_fixed_{next(counter)}')), p.repeats
  )
  add('logger fixed cost (construct, reset, close)', fixed.wall, 'ms', 1e3, fixed.cpu)

  # Whole loops in turn: bare env, through EnvLogger (the default, and each
  # write mode forced), numpy baseline.
  # Catch boards repeat; the same loops with boards that never do show what
  # the logger's memos of repeated values save (on its own bare loop: the
  # wrapper's copy per step is the env's cost).
  unique = w in NEVER_REPEATING
  extra = ('bare, never repeating', 'never repeating') if unique else ()
  runs: dict[str, list[tuple[float, float]]] = {k: [] for k in ('bare', 'logged', 'numpy', *FORCED, *extra)}
  log_dir = npy_dir = ''
  for r in range(p.repeats):
    for d in (log_dir, npy_dir):
      if d:
        shutil.rmtree(d)
    log_dir, npy_dir = os.path.join(work, f'{w}_log_{r}'), os.path.join(work, f'{w}_npy_{r}')
    kinds = [
      ('bare', lambda: loop_bare(make_env(), actions)),
      ('logged', lambda d=log_dir: loop_logged(make_env(), actions, d)),
      ('numpy', lambda d=npy_dir: loop_numpy(make_env(), actions, d)),
    ]
    for label, kwargs in FORCED.items():
      d = os.path.join(work, f'{w}_forced_{len(runs[label])}')

      def forced(d=d, kwargs=kwargs):
        loop_logged(make_env(), actions, d, **kwargs)
        shutil.rmtree(d)

      kinds.append((label, forced))
    if unique:
      d = os.path.join(work, f'{w}_never_repeating_{r}')

      def never_repeating(d=d):
        loop_logged(envs.NeverRepeating(make_env()), actions, d)
        shutil.rmtree(d)

      kinds.append(('bare, never repeating', lambda: loop_bare(envs.NeverRepeating(make_env()), actions)))
      kinds.append(('never repeating', never_repeating))
    for kind, fn in kinds[r % len(kinds) :] + kinds[: r % len(kinds)]:
      runs[kind].append(_timed(fn))
  t = {k: Times(np.array([x for x, _ in v]), np.array([c for _, c in v])) for k, v in runs.items()}
  bare, logged, npy = t['bare'], t['logged'], t['numpy']

  def per_step(f):
    return f(bare.wall, logged.wall, npy.wall), f(bare.cpu, logged.cpu, npy.cpu)

  for name, unit, scale, f in [
    ('bare env loop', 'us/step', 1e6, lambda b, lg, n: b / calls),
    ('logged loop (construction..close)', 'us/step', 1e6, lambda b, lg, n: lg / calls),
    ('logging overhead', 'us/step', 1e6, lambda b, lg, n: (lg - b) / calls),
    ('logged / bare', 'x', 1, lambda b, lg, n: lg / b),
    ('numpy baseline loop', 'us/step', 1e6, lambda b, lg, n: n / calls),
    ('numpy baseline overhead', 'us/step', 1e6, lambda b, lg, n: (n - b) / calls),
    ('logging overhead / numpy overhead', 'x', 1, lambda b, lg, n: (lg - b) / (n - b)),
  ]:
    wall, cpu = per_step(f)
    add(name, wall, unit, scale, cpu)
  for label in FORCED:
    forced = t[label]
    add(
      f'logging overhead, {label}',
      (forced.wall - bare.wall) / calls,
      'us/step',
      1e6,
      (forced.cpu - bare.cpu) / calls,
    )
  if unique:
    nr, nr_bare = t['never repeating'], t['bare, never repeating']
    add(
      'logging overhead, observations that never repeat',
      (nr.wall - nr_bare.wall) / calls,
      'us/step',
      1e6,
      (nr.cpu - nr_bare.cpu) / calls,
    )

  # Hot path: each step() call timed alone, in each write mode: 'logged' is
  # the default (async_writes=None: journal and background writer for steps
  # up to 4 KiB raw, else in the step); 'journal' forces the journal and the
  # background writer (async_writes=True); 'in-step' encodes and writes in the
  # step that ends an episode (async_writes=False); 'no journal' keeps finished
  # episodes in memory for the background writer (journal=False).
  modes = {
    'logged': {},
    'journal': {'async_writes': True},
    'in-step': {'async_writes': False},
    'no journal': {'async_writes': True, 'journal': False},
  }
  lat: dict[str, list[np.ndarray]] = {k: [] for k in ['bare', *modes]}
  last_lat: dict[str, list[np.ndarray]] = {k: [] for k in modes}
  ep_sums: dict[str, list[np.ndarray]] = {k: [] for k in ['bare', *modes]}
  for r in range(p.hot_repeats):
    env = make_env()
    env.reset()
    ns, last = loop_per_call(env.step, actions)
    lat['bare'].append(ns)
    ep_sums['bare'].append(_episode_sums(ns, last))
    for kind, kwargs in modes.items():
      d = os.path.join(work, f'{w}_hot_{kind.replace(" ", "_")}_{r}')
      logger = envlogger.EnvLogger(make_env(), data_directory=d, **kwargs)
      logger.reset()
      ns, last = loop_per_call(logger.step, actions)
      logger.close()
      shutil.rmtree(d)
      lat[kind].append(ns)
      last_lat[kind].append(ns[last])
      ep_sums[kind].append(_episode_sums(ns, last))
  us = {k: np.concatenate(v) / 1e3 for k, v in lat.items()}
  for kind in ('bare', 'logged'):
    one(f'step() p50, {kind}', float(np.percentile(us[kind], 50)), 'us')
    one(f'step() p99, {kind}', float(np.percentile(us[kind], 99)), 'us')
  # Agents often give actions of another dtype than the spec's (np.argmax's
  # int64 for an int32 spec, float64 for float32): cast on the hot path.
  spec_dtype = np.dtype(probe.action_spec().dtype)
  pair = (np.float64, np.float32) if spec_dtype.kind == 'f' else (np.int32, np.int64)
  other = pair[0] if spec_dtype != pair[0] else pair[1]
  d = os.path.join(work, f'{w}_hot_other_dtype')
  logger = envlogger.EnvLogger(make_env(), data_directory=d)
  logger.reset()
  ns, _ = loop_per_call(
    logger.step, [np.asarray(a).astype(other)[()] for a in actions]
  )  # scalars stay scalars
  logger.close()
  shutil.rmtree(d)
  one(f'step() p50, logged, actions as {np.dtype(other).name}', float(np.median(ns)) / 1e3, 'us')
  ep = {k: float(np.median(np.concatenate(v))) / 1e3 / make_env.EPISODE_LENGTH for k, v in ep_sums.items()}
  labels = {
    'logged': 'default',
    'journal': 'async_writes=True',
    'in-step': 'async_writes=False',
    'no journal': 'async_writes=True, journal=False',
  }
  for kind, label in labels.items():
    one(f'{label}: step() returning LAST, p50', float(np.median(np.concatenate(last_lat[kind]))) / 1e3, 'us')
    one(f'{label}: steady-state overhead (median episode)', ep[kind] - ep['bare'], 'us/step')
  one('default: steady-state logged / bare (median episode)', ep['logged'] / ep['bare'], 'x')

  # Peak memory, in runs of their own (tracing allocations slows every call):
  # tracemalloc counts numpy's buffers too. Beside it, the raw size of one
  # episode: in-step writing holds one episode in flight; the background
  # writer adds the batch being filled and the queued batches (8 MiB each at most).
  # (The default is one of the two: see the rows above.)
  mem_calls = min(len(actions), 8 * make_env.EPISODE_LENGTH)
  for kind, kwargs in (
    ('async_writes=True', {'async_writes': True}),
    ('async_writes=False', {'async_writes': False}),
  ):
    d = os.path.join(work, f'{w}_mem_{kind}')
    env = make_env()  # before tracing: the env's own precomputed frames are not the logger's
    tracemalloc.start()
    logger = envlogger.EnvLogger(env, data_directory=d, **kwargs)
    logger.reset()
    for a in actions[:mem_calls]:
      logger.step(a)
    logger.close()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    shutil.rmtree(d)
    one(f'{kind}: peak memory while logging (tracemalloc)', peak / 2**20, 'MiB')
  one(
    'one episode, raw observations',
    _obs_bytes(probe.observation_spec()) * make_env.EPISODE_LENGTH / 2**20,
    'MiB',
  )

  # Disk use, from the last repeat (every env call is recorded: the Reader checks it).
  one('observation size (raw)', _obs_bytes(probe.observation_spec()), 'bytes/step')
  one('on disk, envlogger (all files)', _dir_bytes(log_dir) / calls, 'bytes/step')
  one('on disk, numpy baseline (.npy)', _dir_bytes(npy_dir) / calls, 'bytes/step')
  shutil.rmtree(npy_dir)
  return metrics, {'log_dir': log_dir, 'steps': calls, 'episodes': p.episodes}


def measure_reading(w: str, p: Params, log_dir: str, info: dict[str, Any], prefix: str = '') -> list[Metric]:
  """Reader: open, sequential and columnar passes, random step and episode reads.

  `prefix` starts every row's name (e.g. 'compact: ' for the compact format).
  """
  metrics: list[Metric] = []

  def open_close():
    envlogger.Reader(log_dir).close()

  def sequential():
    with envlogger.Reader(log_dir) as r:
      for episode in r.episodes:
        for _ in episode:
          pass

  def columnar():
    with envlogger.Reader(log_dir) as r:
      for episode in r.episodes:
        episode.as_rlds()

  def bulk():
    with envlogger.Reader(log_dir) as r:
      r.as_columns()

  with envlogger.Reader(log_dir) as r:
    recorded = len(r.steps)
    lengths = r.episode_lengths()
  if (recorded, len(lengths)) != (info['steps'], info['episodes']):
    raise AssertionError(f'{w}: the log has {recorded} steps in {len(lengths)} episodes, expected {info}')
  opened = _repeat(open_close, p.repeats)
  metrics.append(_summary(w, prefix + 'Reader open', opened.wall, 'ms', 1e3, opened.cpu))
  passes = (
    ('Reader sequential, StepData', sequential),
    ('Reader columnar, as_rlds()', columnar),
    ('Reader columnar, as_columns() (whole log)', bulk),
  )
  for name, fn in passes:
    t = _repeat(fn, p.repeats)
    metrics.append(_summary(w, prefix + name, recorded / t.wall, 'steps/s', cpu_values=recorded / t.cpu))

  # The same passes timed episode by episode: the median episode's rate is
  # what a machine without stalls would sustain (whole passes here include
  # every stall of the host).
  clock = time.perf_counter_ns
  per_ep: dict[str, list[float]] = {'seq': [], 'col': []}
  with envlogger.Reader(log_dir) as r:
    for _ in range(max(1, p.hot_repeats)):
      for e in range(len(lengths)):
        t0 = clock()
        for _ in r.episodes[e]:
          pass
        t1 = clock()
        r._source._cache.clear()  # the columnar read below decodes again
        r.episodes[e].as_rlds()
        t2 = clock()
        per_ep['seq'].append(lengths[e] / (t1 - t0) * 1e9)
        per_ep['col'].append(lengths[e] / (t2 - t1) * 1e9)
  metrics.append(
    Metric(
      w, prefix + 'Reader sequential, StepData (median episode)', float(np.median(per_ep['seq'])), 'steps/s'
    )
  )
  metrics.append(
    Metric(
      w, prefix + 'Reader columnar, as_rlds() (median episode)', float(np.median(per_ep['col'])), 'steps/s'
    )
  )

  # as_columns() over chunks of about CHUNK_STEPS steps, timed chunk by chunk (as above).
  bounds = np.searchsorted(np.cumsum(lengths), np.arange(CHUNK_STEPS, int(lengths.sum()), CHUNK_STEPS))
  chunks = [c for c in np.split(np.arange(len(lengths)), np.unique(bounds + 1)) if len(c)]
  # and a sequential pass over the same chunks (Reader.steps reads ahead).
  starts = np.concatenate([[0], np.cumsum(lengths)])
  rates: dict[str, list[float]] = {'col': [], 'seq': [], 'rew': []}
  with envlogger.Reader(log_dir) as r:
    for chunk in chunks:  # untimed: the first pass grows the process's memory (slow on a VM)
      r.as_columns(chunk)
    for _ in range(max(1, p.hot_repeats)):
      for chunk in chunks:
        n = int(lengths[chunk].sum())
        t0 = clock()
        r.as_columns(chunk)
        t1 = clock()
        for _ in r.steps[starts[chunk[0]] : starts[chunk[-1] + 1]]:
          pass
        t2 = clock()
        r.as_columns(chunk, fields=['reward'])
        t3 = clock()
        rates['col'].append(n / (t1 - t0) * 1e9)
        rates['seq'].append(n / (t2 - t1) * 1e9)
        rates['rew'].append(n / (t3 - t2) * 1e9)
  for key, name in (
    ('seq', 'Reader sequential, Reader.steps'),
    ('col', 'Reader columnar, as_columns()'),
    ('rew', "Reader columnar, as_columns(fields=['reward'])"),
  ):
    label = f'{prefix}{name} (median {CHUNK_STEPS}-step chunk)'
    metrics.append(Metric(w, label, float(np.median(rates[key])), 'steps/s'))

  # Training batches: shuffled Transitions, 256 at a time (a pass over the
  # log, at most LOADER_ITEMS transitions), timed batch by batch.
  rates = []
  with loaders.Transitions(log_dir) as transitions:
    order = np.random.default_rng(0).permutation(len(transitions))[:LOADER_ITEMS]
    for lo in range(0, len(order) - 255, 256):
      t0 = clock()
      transitions.batch(order[lo : lo + 256])
      rates.append(256 / (clock() - t0) * 1e9)
  metrics.append(
    Metric(w, prefix + 'Transitions.batch(256), shuffled (median batch)', float(np.median(rates)), 'items/s')
  )

  rng = np.random.RandomState(1)
  with envlogger.Reader(log_dir) as r:
    steps, episodes = r.steps, r.episodes
    lat = []
    for e, k in _spread_reads(lengths, p.samples, rng):
      i = int(starts[e] + k)
      t0 = clock()
      steps[i]
      lat.append(clock() - t0)
    metrics.append(Metric(w, prefix + 'Reader random step, p50', float(np.median(lat)) / 1e3, 'us'))
    lat = []
    for e, _ in _spread_reads(lengths, p.episode_samples, rng):
      t0 = clock()
      episodes[e]
      lat.append(clock() - t0)
    metrics.append(Metric(w, prefix + 'Reader random episode, p50', float(np.median(lat)) / 1e3, 'us'))
  return metrics


def measure_compact(w: str, p: Params, log_dir: str, info: dict[str, Any], work: str) -> list[Metric]:
  """The compact format (ArrayRecord + zstd across episodes): converting the log, its size, reading it."""
  dst = os.path.join(work, f'{w}_compact')
  wall, cpu = _timed(lambda: convert(log_dir, dst, file_format='array_record', progress=False))
  steps = info['steps']
  metrics = [
    Metric(
      w,
      'compact: convert the log (envlogger convert --format array_record)',
      steps / wall,
      'steps/s',
      cpu=steps / cpu,
    ),
    Metric(w, 'compact: on disk (all files)', _dir_bytes(dst) / steps, 'bytes/step'),
  ]
  return metrics + measure_reading(w, p, dst, info, prefix='compact: ')


LARGE_LOG_EPISODES = 10_000


def measure_open_large(work: str, repeats: int) -> list[Metric]:
  """Opening a log of 10k Catch-like episodes (index read, no decoding), imports excluded."""
  log_dir = os.path.join(work, 'large')
  env = envs.ENVS['catch']()
  actions = iter(_make_actions(env, LARGE_LOG_EPISODES * envs.CatchLike.EPISODE_LENGTH))
  with envlogger.EnvLogger(env, data_directory=log_dir) as logger:
    for _ in range(LARGE_LOG_EPISODES):
      ts = logger.reset()
      while not ts.last():
        ts = logger.step(next(actions))
  with envlogger.Reader(log_dir) as r:
    if len(r.episodes) != LARGE_LOG_EPISODES:
      raise AssertionError(f'the large log has {len(r.episodes)} episodes')
  opened = _repeat(lambda: envlogger.Reader(log_dir).close(), repeats)
  metrics = [_summary('catch', 'Reader open, 10k-episode log', opened.wall, 'ms', 1e3, opened.cpu)]
  # Sizes on a log large enough that ArrayRecord's padding (each file is
  # padded to 64 KiB blocks, 128 KiB at least) weighs little.
  steps = LARGE_LOG_EPISODES * envs.CatchLike.EPISODE_LENGTH
  compact = os.path.join(work, 'large_compact')
  convert(log_dir, compact, file_format='array_record', progress=False)
  metrics.append(
    Metric('catch', 'on disk, 10k-episode log (all files)', _dir_bytes(log_dir) / steps, 'bytes/step')
  )
  metrics.append(
    Metric(
      'catch', 'compact: on disk, 10k-episode log (all files)', _dir_bytes(compact) / steps, 'bytes/step'
    )
  )
  opened = _repeat(lambda: envlogger.Reader(compact).close(), repeats)
  metrics.append(
    _summary('catch', 'compact: Reader open, 10k-episode log', opened.wall, 'ms', 1e3, opened.cpu)
  )
  return metrics


def _progress(msg: str) -> None:
  print(f'  [{time.perf_counter() - _START:5.1f} s] {msg}', file=sys.stderr, flush=True)


def run_child(params: dict[str, Params], root: str | None) -> dict[str, Any]:
  """All workloads' logging, the TensorFlow check, then all workloads' reading."""
  work = tempfile.mkdtemp(prefix='envlogger_bench_', dir=root)
  try:
    # The first logger of a process also pays the lazy imports (TFDS).
    make_env = envs.ENVS[next(iter(params))]
    wall, cpu = _timed(lambda: loop_logged(make_env(), [], os.path.join(work, 'first')))
    name = 'first logger in a process (construct, reset, close; lazy imports)'
    metrics = [Metric('-', name, wall * 1e3, 'ms', cpu=cpu * 1e3)]
    infos, log_dirs = {}, {}
    for w, p in params.items():
      _progress(f'{w}: logging ({p.episodes} episodes x {p.repeats})')
      m, info = measure_logging(w, p, work)
      metrics += m
      log_dirs[w] = info.pop('log_dir')
      infos[w] = info
    logging_tf = 'tensorflow' in sys.modules
    logging_tfds = 'tensorflow_datasets' in sys.modules
    for w, p in params.items():
      _progress(f'{w}: reading')
      metrics += measure_reading(w, p, log_dirs[w], infos[w])
    for w, p in params.items():
      _progress(f'{w}: compact format (convert, read)')
      metrics += measure_compact(w, p, log_dirs[w], infos[w], work)
    if 'catch' in params:
      _progress(f'catch: opening a log of {LARGE_LOG_EPISODES} episodes')
      metrics += measure_open_large(work, params['catch'].repeats)
    _progress('done')
    metrics += [
      Metric('-', 'TensorFlow imported by logging', logging_tf, 'bool'),
      Metric('-', 'TensorFlow imported by logging + reading', 'tensorflow' in sys.modules, 'bool'),
    ]
    flags = {
      'tensorflow_datasets_after_logging': logging_tfds,
      'tensorflow_after_logging': logging_tf,
      'tensorflow_after_reading': 'tensorflow' in sys.modules,
    }
    return {'metrics': [dataclasses.asdict(m) for m in metrics], 'workloads': infos, 'tf_imports': flags}
  finally:
    shutil.rmtree(work, ignore_errors=True)


# ----------------------------------------------------------------------------
# The parent: imports, the child, the table.

# Run with `python -c`: times the imports in a fresh interpreter, then (given
# the benchmarks directory and arguments) runs the measurements there.
_BOOT = """
import json, sys, time
t0 = time.perf_counter()
import numpy, dm_env, tree
t1 = time.perf_counter()
import envlogger
t2 = time.perf_counter()
imports = {'deps': t1 - t0, 'total': t2 - t0, 'tensorflow': 'tensorflow' in sys.modules}
if len(sys.argv) > 1:
  sys.path.insert(0, sys.argv[1])
  import bench
  bench.child_main(imports, sys.argv[2:])
else:
  print(json.dumps(imports))
"""


def import_metrics(samples: list[dict[str, Any]]) -> list[Metric]:
  """Import times from fresh interpreters (`_BOOT`), and whether TF came along."""
  return [
    _summary('-', 'import envlogger (fresh interpreter)', [s['total'] for s in samples], 'ms', 1e3),
    _summary('-', '  of which numpy, dm_env, tree', [s['deps'] for s in samples], 'ms', 1e3),
    Metric('-', 'TensorFlow imported by import envlogger', any(s['tensorflow'] for s in samples), 'bool'),
  ]


def _import_sample() -> dict[str, Any]:
  proc = subprocess.run([sys.executable, '-c', _BOOT], capture_output=True, text=True, check=True)
  return json.loads(proc.stdout.strip().splitlines()[-1])


def child_main(imports: dict[str, Any], argv: list[str]) -> None:
  """The subprocess's entry point (see `_BOOT`)."""
  params_json, out_path, root = argv
  result = run_child({w: Params(**p) for w, p in json.loads(params_json).items()}, root or None)
  result['imports'] = imports
  with open(out_path, 'w') as f:
    json.dump(result, f)


def _run_child(params: dict[str, Params], root: str | None) -> dict[str, Any]:
  fd, out_path = tempfile.mkstemp(prefix='envlogger_bench_', suffix='.json')
  os.close(fd)
  try:
    arg = json.dumps({w: dataclasses.asdict(p) for w, p in params.items()})
    here = os.path.dirname(os.path.abspath(__file__))
    # Progress lines go to stderr.
    proc = subprocess.run([sys.executable, '-c', _BOOT, here, arg, out_path, root or ''])
    if proc.returncode != 0:
      raise SystemExit(f'the benchmark subprocess failed (exit code {proc.returncode})')
    with open(out_path) as f:
      return json.load(f)
  finally:
    os.remove(out_path)


def _fmt(value: Any) -> str:
  if isinstance(value, bool):
    return 'yes' if value else 'no'
  if value is None:
    return ''
  v = float(value)
  a = abs(v)
  if a >= 100:
    return f'{v:,.0f}'
  if a >= 10:
    return f'{v:.1f}'
  if a >= 1:
    return f'{v:.2f}'
  return f'{v:.3f}'


def print_table(metrics: list[Metric]) -> None:
  order = {w: i for i, w in enumerate(dict.fromkeys(m.workload for m in metrics))}
  metrics = sorted(metrics, key=lambda m: order[m.workload])  # stable: keeps metric order
  rows = [('workload', 'metric', 'median', 'unit', 'min..max (n)', 'cpu-time median')]
  for m in metrics:
    spread = f'{_fmt(m.lo)}..{_fmt(m.hi)} ({m.n})' if m.n > 1 else ''
    rows.append((m.workload, m.name, _fmt(m.value), m.unit, spread, _fmt(m.cpu)))
  widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
  align = ['<', '<', '>', '<', '<', '>']
  rule = sum(widths) + 2 * (len(widths) - 1)
  for j, row in enumerate(rows):
    if j > 1 and row[0] != rows[j - 1][0]:
      print('-' * rule)
    print('  '.join(f'{c:{a}{w}}' for c, a, w in zip(row, align, widths, strict=True)).rstrip())
    if j == 0:
      print('=' * rule)


def _cpu_pressure() -> float | None:
  """Share of time some task waited for a CPU over the last 10 s (Linux PSI), or None."""
  try:
    with open('/proc/pressure/cpu') as f:
      return float(f.readline().split()[1].split('=')[1])
  except (OSError, IndexError, ValueError):
    return None


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
  parser.add_argument('--quick', action='store_true', help='small run (well under a minute)')
  parser.add_argument('--json', metavar='PATH', help='write the results (and the run set-up) as JSON')
  parser.add_argument(
    '--workloads',
    default=','.join(envs.ENVS),
    help=f'comma-separated subset of {",".join(envs.ENVS)} (default: all)',
  )
  parser.add_argument('--repeats', type=int, help='override the number of timed repeats')
  parser.add_argument(
    '--dir',
    help='where the logs are written (default: the system temp dir); a tmpfs such as /dev/shm '
    'leaves the disk out of the figures',
  )
  args = parser.parse_args(argv)

  workloads = list(dict.fromkeys(w.strip() for w in args.workloads.split(',') if w.strip()))
  unknown = [w for w in workloads if w not in envs.ENVS]
  if unknown or not workloads:
    parser.error(f'unknown workloads {unknown}; choose from {list(envs.ENVS)}')
  mode = 'quick' if args.quick else 'full'
  params = {w: (QUICK if args.quick else FULL)[w] for w in workloads}
  if args.repeats:
    if args.repeats < 1:
      parser.error('--repeats must be >= 1')
    params = {
      w: dataclasses.replace(p, repeats=args.repeats, hot_repeats=min(p.hot_repeats, args.repeats))
      for w, p in params.items()
    }
  started = time.perf_counter()
  load = [os.getloadavg()[0]]
  pressure = [_cpu_pressure()]

  sizes = ', '.join(f'{w} {p.episodes} episodes x {p.repeats}' for w, p in params.items())
  print(f'[{mode}] logging, then reading, in a subprocess: {sizes}', flush=True)
  res = _run_child(params, args.dir)
  extra = (args.repeats or IMPORT_REPEATS[mode]) - 1
  if extra > 0:
    print(f'[{time.perf_counter() - started:.0f} s] {extra} more import timings', flush=True)
  imports = [res['imports']] + [_import_sample() for _ in range(extra)]
  metrics = import_metrics(imports) + [Metric(**m) for m in res['metrics']]
  elapsed = time.perf_counter() - started
  load.append(os.getloadavg()[0])
  pressure.append(_cpu_pressure())

  setup = {
    'mode': mode,
    'params': {w: dataclasses.asdict(p) for w, p in params.items()},
    'workloads': res['workloads'],
    'tf_imports': res['tf_imports'],
    'import_samples': imports,
    'python': sys.version.split()[0],
    'numpy': np.__version__,
    'envlogger': envlogger.__version__,
    'platform': platform.platform(),
    'cpus': os.cpu_count(),
    'loadavg_1min': load,
    'cpu_pressure_avg10': pressure,
    'elapsed_s': elapsed,
  }
  print()
  print(
    f'envlogger {envlogger.__version__}, {mode} run in {elapsed:.0f} s; python {setup["python"]}, '
    f'{setup["cpus"]} CPUs, load {load[0]:.1f} -> {load[1]:.1f}'
    + (f', CPU pressure {pressure[0]:.0f}% -> {pressure[1]:.0f}%' if None not in pressure else '')
  )
  for w, info in res['workloads'].items():
    print(f'  {w}: {info["steps"]} steps in {info["episodes"]} episodes per log')
  print()
  print_table(metrics)
  if args.json:
    with open(args.json, 'w') as f:
      json.dump({'setup': setup, 'metrics': [dataclasses.asdict(m) for m in metrics]}, f, indent=2)
    print(f'\nwrote {args.json}')


if __name__ == '__main__':
  main()
