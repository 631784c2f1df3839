"""How fast `envlogger.Reader` reads logs in DeepMind's envlogger 1.3 Riegeli layout.

Run from the repository root with the dev venv:

  python benchmarks/bench_riegeli.py                # 1000 Catch episodes (10k steps)
  python benchmarks/bench_riegeli.py --quick        # 400 episodes
  python benchmarks/bench_riegeli.py --episodes 2000 --json benchmarks/results_riegeli.json

One run writes a Catch log (10x5 float32 board, 3 actions, 10-step episodes)
twice: in envlogger 1.3's Riegeli layout (`riegeli_log.write_catch_log`:
transposed brotli chunks of ~3050 steps, as the original writes them) and with
this package's own `EnvLogger` (default TFDS backend), replaying the same
StepData. It then reads both with `envlogger.Reader` the same way and prints,
for each:

* open: `Reader(dir)` then `close()` (median and fastest of 7);
* sequential: `for step in reader.steps` over the whole log, in steps/s: the
  whole pass, and the median episode (each episode timed alone). A
  steps.riegeli chunk (~3050 steps) is decoded when its first step is read,
  which the median episode leaves out: "median episode + chunk decodes" adds
  the decode time per step (the least CPU time of 9 decodes of the chunk of the
  time split below, each on a fresh reader);
* columnar: `reader.episodes[e].as_rlds()` for every episode, the same ways;
* random step: `reader.steps[i]` latency (median, wall and CPU time; and the
  fastest) at random steps, each in another chunk than the previous one (and
  not in a recently read episode), and at random steps of the chunk read last;

plus, for the Riegeli log, where a sequential pass's time goes, per step,
on the episodes of one steps chunk: the chunk decode (`RecordReader.read_at`
of a new chunk: data hash, brotli, the transposed decoder), the records of a
decoded chunk, the proto decode (`storage.decode_step`), the episode metadata
read, the RLDS columns (the rest of `read_episode`) and the StepData
iteration, each stage timed alone, episode by episode (median episode).
Ratios compare the two logs measured in the same run; the target is the
original's C++-backed reader, which reads such a log at 12k-31k steps/s on
this machine.

This machine is shared and stalls processes (often for up to a second): a
whole pass is stretched by the load, in wall time and, on this VM, in CPU
time too, while the median of small units (an episode, ~1 ms) stays close to
the work's own cost. The run reports the stretch of a fixed ~1 ms work unit
(mean / median) at its start and end; the medians are the figures to quote.
The default (1000 episodes) takes about 1 CPU-minute (1.5-2.5 minutes on 2
busy cores); `--episodes 2000` (20k steps) about twice that.

Both logs are read back and compared with the generated steps (every StepData
of the sequential passes, the RLDS columns of the two logs against each other).
"""

from __future__ import annotations

import argparse
import bisect
import collections
import cProfile
import io
import json
import os
import platform
import pstats
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import dm_env
import numpy as np
import riegeli_log

import envlogger
from envlogger._riegeli import records as records_lib
from envlogger._riegeli import storage, transpose
from envlogger._riegeli.highwayhash import riegeli_hash
from envlogger.testing.catch_env import Catch

ORIGINAL_STEPS_PER_S = (12_000, 31_000)  # envlogger 1.3's own reader on this machine (C++ riegeli + pybind)
_START = time.perf_counter()


def _progress(msg: str) -> None:
  print(f'  [{time.perf_counter() - _START:5.1f} s] {msg}', file=sys.stderr, flush=True)


class _Clock:
  """Wall and CPU time of a block: `with _Clock() as c: ...; c.wall, c.cpu`."""

  def __enter__(self) -> _Clock:
    self._w = time.perf_counter()
    self._c = time.process_time()
    return self

  def __exit__(self, *exc: Any) -> None:
    self.wall = time.perf_counter() - self._w
    self.cpu = time.process_time() - self._c


# -- The TFDS copy of the log ----------------------------------------------------------------------------


class _ReplayEnv(dm_env.Environment):
  """Returns recorded timesteps in order (the actions passed in are the recorded ones)."""

  def __init__(self, steps: list[envlogger.StepData]) -> None:
    self._steps = steps
    self._next = 0
    self._specs = Catch()

  def current(self) -> envlogger.StepData:
    return self._steps[self._next - 1]

  def reset(self) -> dm_env.TimeStep:
    ts = self._steps[self._next].timestep
    self._next += 1
    return ts

  def step(self, action: Any) -> dm_env.TimeStep:
    data = self._steps[self._next]
    if data.action != action:
      raise AssertionError('replay out of step')
    self._next += 1
    return data.timestep

  def observation_spec(self):
    return self._specs.observation_spec()

  def action_spec(self):
    return self._specs.action_spec()


def write_tfds_log(directory: str, log: riegeli_log.CatchLog) -> None:
  """The same trajectories through this package's `EnvLogger` (default TFDS backend)."""
  env = _ReplayEnv(log.steps)
  user = {k: v for k, v in log.metadata.items() if k != 'environment_specs'}
  ret = [0.0]

  def episode_fn(timestep: dm_env.TimeStep, action: Any, _env: Any) -> float:
    ret[0] = 0.0 if timestep.first() else ret[0] + timestep.reward
    return ret[0]

  with envlogger.EnvLogger(
    env,
    data_directory=directory,
    metadata=user,
    step_fn=lambda ts, a, e: env.current().custom_data,
    episode_fn=episode_fn,
  ) as logger:
    for start in log.episode_starts:
      ts = logger.reset()
      i = start
      while not ts.last():
        i += 1
        ts = logger.step(log.steps[i].action)


# -- Measurements ----------------------------------------------------------------------------------------


def _rate(steps: int, seconds: float) -> float:
  return steps / seconds if seconds > 0 else float('nan')


def _groups(log: riegeli_log.CatchLog) -> list[list[int]]:
  """Episodes grouped by the steps.riegeli chunk holding their first step (one chunk decode per group)."""
  bounds = []
  total = 0
  for shard in log.step_chunks:
    for _, n in shard:
      bounds.append(total)
      total += n
  groups: dict[int, list[int]] = collections.defaultdict(list)
  for e, start in enumerate(log.episode_starts):
    groups[bisect.bisect_right(bounds, start) - 1].append(e)
  return [groups[g] for g in sorted(groups)]


def _median_episode_rate(times: list[float], lengths: np.ndarray) -> float:
  return float(np.median([lengths[e] / t for e, t in enumerate(times) if t > 0]))


def sequential_pass(directory: str, lengths: np.ndarray) -> tuple[list[Any], _Clock, list[float]]:
  """`for step in reader.steps`, with a timestamp after the last step of each episode."""
  ends = set((np.cumsum(lengths) - 1).tolist())
  stamps: list[float] = []
  out: list[Any] = []
  add, stamp, clock = out.append, stamps.append, time.perf_counter
  with envlogger.Reader(directory) as r, _Clock() as c:
    if r.problems:
      raise AssertionError(f'{directory}: reader.problems: {r.problems}')
    t0 = clock()
    for i, step in enumerate(r.steps):
      add(step)
      if i in ends:
        stamp(clock())
  times = np.diff([t0, *stamps]).tolist()
  return out, c, times


def columnar_pass(directory: str, n: int) -> tuple[list[Any], _Clock, list[float]]:
  """`reader.episodes[e].as_rlds()` for every episode, each timed."""
  out: list[Any] = []
  times: list[float] = []
  clock = time.perf_counter
  with envlogger.Reader(directory) as r:
    episodes = r.episodes
    with _Clock() as c:
      for e in range(n):
        t0 = clock()
        out.append(episodes[e].as_rlds())
        times.append(clock() - t0)
  return out, c, times


def random_reads(directory: str, picks: list[int]) -> tuple[list[float], list[float]]:
  """Wall and CPU time of `reader.steps[i]` for each i, in order, on one reader."""
  clock, cpu = time.perf_counter, time.process_time
  walls, cpus = [], []
  with envlogger.Reader(directory) as r:
    steps = r.steps
    steps[0]  # the first read pays lazy set-up
    for i in picks:
      t0, c0 = clock(), cpu()
      steps[i]
      walls.append(clock() - t0)
      cpus.append(cpu() - c0)
  return walls, cpus


def calibration(units: int = 300) -> dict[str, float]:
  """How this machine stretches a fixed ~1 ms pure-Python work unit: mean / median, wall and CPU time.

  1.0 on an idle machine; a busy one stretches whole passes by these factors
  while medians of small units stay close to the work's own cost.
  """
  clock, cpu = time.perf_counter, time.process_time
  walls, cpus = [], []
  for _ in range(units):
    t0, c0 = clock(), cpu()
    x = 0
    for i in range(20_000):
      x += i * i
    walls.append(clock() - t0)
    cpus.append(cpu() - c0)
  return {
    'unit_ms': float(np.median(walls)) * 1e3,
    'wall_stretch': float(np.mean(walls) / np.median(walls)),
    'cpu_stretch': float(np.mean(cpus) / np.median(cpus)),
  }


def _random_picks(
  log: riegeli_log.CatchLog, n: int, rng: np.random.RandomState
) -> tuple[list[int], list[int]]:
  """Random steps each in another chunk than the previous one, and random steps within one chunk.

  Both avoid episodes among the 16 last read (the Reader caches 8 decoded episodes).
  """
  bounds = [0]
  for shard in log.step_chunks:
    for _, k in shard:
      bounds.append(bounds[-1] + k)
  starts = np.asarray(log.episode_starts)
  recent: collections.deque[int] = collections.deque(maxlen=16)
  other, same = [], []
  chunk = -1
  while len(other) < n:
    c = int(rng.randint(len(bounds) - 1))
    if c == chunk and len(bounds) > 2:
      continue
    i = int(rng.randint(bounds[c], bounds[c + 1]))
    e = int(np.searchsorted(starts, i, side='right') - 1)
    if e in recent:
      continue
    recent.append(e)
    other.append(i)
    chunk = c
  c = int(np.argmax(np.diff(bounds)))  # the largest chunk
  recent.clear()
  while len(same) < n:
    i = int(rng.randint(bounds[c], bounds[c + 1]))
    e = int(np.searchsorted(starts, i, side='right') - 1)
    if e in recent and len(recent) < bounds[c + 1] - bounds[c]:
      continue
    recent.append(e)
    same.append(i)
  return other, [same[0], *same]  # the first read of the chunk decodes it: dropped below


def open_times(directory: str, repeats: int = 7) -> tuple[float, float]:
  """`Reader(directory)` then `close()`: (median, fastest) wall time of `repeats`."""
  walls = []
  for _ in range(repeats):
    with _Clock() as c:
      envlogger.Reader(directory).close()
    walls.append(c.wall)
  return float(np.median(walls)), min(walls)


def _min_clock(fn: Callable[[], Any], repeats: int) -> _Clock:
  """The fastest of `repeats` runs (wall and CPU time each at their minimum): stalls only add time."""
  walls, cpus = [], []
  for _ in range(repeats):
    with _Clock() as c:
      fn()
    walls.append(c.wall)
    cpus.append(c.cpu)
  best = _Clock()
  best.wall, best.cpu = min(walls), min(cpus)
  return best


def _median_time(fn: Callable[[int], Any], units: list[int]) -> float:
  """Median wall time of fn(u) over the units."""
  clock = time.perf_counter
  times = []
  for u in units:
    t0 = clock()
    fn(u)
    times.append(clock() - t0)
  return float(np.median(times))


def time_split(log: riegeli_log.CatchLog, group: list[int], repeats: int = 9) -> dict[str, Any]:
  """Where a sequential pass over the Riegeli log spends its time, per step, stage by stage.

  On the episodes of `group` (those whose first steps are in one steps.riegeli
  chunk), each stage timed alone, episode by episode on a fresh reader (the
  median episode), except the chunk decode, which the pass pays once per chunk
  (in the first episode read from it): it and its parts are the least CPU
  time of `repeats` decodes of that chunk, spread over its records.

  Returns:
    {stage: microseconds per step}, with 'sequential pass' their sum as the pass
    pays it: median episode + chunk decode.
  """
  probe = envlogger.Reader(log.directory)
  shards = probe._source._state['shards']
  probe.close()
  if len(shards) != 1:
    raise AssertionError('the split assumes one shard')
  shard = shards[0]
  path = os.path.join(shard.path, 'steps.riegeli')
  starts = log.episode_starts
  lengths = np.diff(np.append(starts, len(log.steps)))
  length = float(np.median(lengths[group]))

  def fresh_reader() -> envlogger.Reader:
    r = envlogger.Reader(log.directory)
    r._source._cache_size = 0  # every episode read decodes (the pass reads each once anyway)
    return r

  # The chunk, decoded alone: data hash, brotli + header, record rebuild.
  with records_lib.RecordReader(path, verify_data_hashes=False) as rr:
    begin = rr._find_chunk_containing(int(shard.step_positions[starts[group[0]]]))
    chunk = rr._read_chunk(begin, rr._size(), with_data=True)
  data, n, size = bytes(chunk.data), chunk.info.num_records, chunk.info.decoded_data_size
  limit = 4 * size + 16 * n + (1 << 20)
  per_step = 1e6 / n
  hashing = _min_clock(lambda: riegeli_hash(data), repeats).cpu * per_step
  parsing = _min_clock(lambda: transpose._Machine(data, limit), repeats).cpu * per_step
  rebuilding = _min_clock(
    lambda: transpose._Decoding(transpose._Machine(data, limit), n, size).run(), repeats
  ).cpu
  rebuilding = rebuilding * per_step - parsing

  def chunk_read() -> None:
    with records_lib.RecordReader(path) as rr:
      rr.read_at(begin)

  chunk_total = _min_clock(chunk_read, repeats).cpu * per_step

  # Per episode, with the chunk decoded (each reader reads the group's first episode first).
  us = 1e6 / length
  with fresh_reader() as r:
    src = r._source
    src.read_episode(group[0])
    seq = _median_time(lambda e: [None for _ in r.episodes[e]], group[1:]) * us
    records = _median_time(lambda e: src._step_records(e), group[1:]) * us
    recs = {e: src._step_records(e) for e in group}
    decode = _median_time(lambda e: [storage.decode_step(x) for x in recs[e]], group[1:]) * us
    meta = _median_time(src.read_episode_metadata, group[1:]) * us
    read_episode = _median_time(src.read_episode, group[1:]) * us
  return {
    'sequential pass (median episode + chunk decode)': seq + chunk_total,
    'steps chunk decode (read_at of a new chunk)': chunk_total,
    '  of which data hash': hashing,
    '  of which brotli + header': parsing,
    '  of which transposed record rebuild': rebuilding,
    'records of a decoded chunk (read_at)': records,
    'proto decode (decode_step), once': decode,
    'episode metadata read': meta,
    'RLDS columns (rest of read_episode)': read_episode - records - decode - meta,
    'StepData (2nd decode_step per step, iteration)': seq - read_episode,
    '_episodes': len(group),
    '_chunk_records': n,
  }


def profile_pass(directory: str, episodes: int) -> str:
  """cProfile of a sequential pass over the first `episodes` episodes: top functions by own time."""
  prof = cProfile.Profile()
  with envlogger.Reader(directory) as r:
    n = int(sum(r.episode_lengths()[:episodes]))
    prof.enable()
    for _ in r.steps[:n]:
      pass
    prof.disable()
  s = io.StringIO()
  pstats.Stats(prof, stream=s).sort_stats('tottime').print_stats(15)
  return s.getvalue()


# -- Validation -----------------------------------------------------------------------------------------


def check_steps(name: str, got: list[Any], log: riegeli_log.CatchLog) -> None:
  if len(got) != len(log.steps):
    raise AssertionError(f'{name}: {len(got)} steps read, {len(log.steps)} written')
  for i, (a, b) in enumerate(zip(got, log.steps)):
    if not riegeli_log.same_value(tuple(a), tuple(b)):
      raise AssertionError(f'{name}: step {i} read {a!r}, written {b!r}')


def check_columns(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> None:
  """The RLDS episodes of the two logs hold the same steps and metadata (ids aside)."""
  for e, (x, y) in enumerate(zip(a, b, strict=True)):
    for k in set(x['steps']) | set(y['steps']):
      u, v = x['steps'].get(k), y['steps'].get(k)
      if not (
        isinstance(u, np.ndarray)
        and isinstance(v, np.ndarray)
        and u.dtype == v.dtype
        and np.array_equal(u, v)
      ):
        raise AssertionError(f'episode {e}: RLDS column {k!r} differs: {u!r} vs {v!r}')
    if not riegeli_log.same_value(x['episode_metadata'], y['episode_metadata']):
      raise AssertionError(f'episode {e}: metadata {x["episode_metadata"]!r} vs {y["episode_metadata"]!r}')


# -- Output ---------------------------------------------------------------------------------------------


def _fmt(v: Any) -> str:
  if v is None or (isinstance(v, float) and np.isnan(v)):
    return '-'
  a = abs(v)
  if a >= 100:
    return f'{v:,.0f}'
  if a >= 10:
    return f'{v:.1f}'
  if a >= 1:
    return f'{v:.2f}'
  return f'{v:.3f}'


def print_table(rows: list[dict[str, Any]]) -> None:
  head = ('metric', 'unit', 'riegeli', 'tfds', 'riegeli/tfds')
  table = [head]
  for r in rows:
    ratio = r['riegeli'] / r['tfds'] if r.get('tfds') else None
    table.append((r['metric'], r['unit'], _fmt(r['riegeli']), _fmt(r.get('tfds')), _fmt(ratio)))
  widths = [max(len(t[i]) for t in table) for i in range(len(head))]
  align = ['<', '<', '>', '>', '>']
  for j, t in enumerate(table):
    print('  '.join(f'{c:{a}{w}}' for c, a, w in zip(t, align, widths)).rstrip())
    if j == 0:
      print('=' * (sum(widths) + 2 * (len(widths) - 1)))


def _cpu_pressure() -> float | None:
  try:
    with open('/proc/pressure/cpu') as f:
      return float(f.readline().split()[1].split('=')[1])
  except (OSError, IndexError, ValueError):
    return None


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
  parser.add_argument('--episodes', type=int, help='Catch episodes of 10 steps (default 1000; --quick 400)')
  parser.add_argument('--quick', action='store_true', help='a small log (400 episodes), fewer random reads')
  parser.add_argument('--random', type=int, help='random step reads per kind (default 20; --quick 8)')
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument(
    '--profile', type=int, default=0, metavar='EPISODES', help='also cProfile a pass over that many episodes'
  )
  parser.add_argument('--json', metavar='PATH', help='write every figure and the run set-up as JSON')
  parser.add_argument('--dir', help='where the logs are written (default: the system temp dir)')
  parser.add_argument('--keep', action='store_true', help='keep the logs (their directory is printed)')
  args = parser.parse_args(argv)
  episodes = args.episodes or (400 if args.quick else 1000)
  n_random = args.random or (8 if args.quick else 20)
  load = [os.getloadavg()[0]]
  pressure = [_cpu_pressure()]
  stretch = [calibration()]
  work = tempfile.mkdtemp(prefix='bench_riegeli_', dir=args.dir)
  rdir, tdir = os.path.join(work, 'riegeli'), os.path.join(work, 'tfds')
  results: dict[str, Any] = {}
  try:
    _progress(f'writing {episodes} Catch episodes in the Riegeli layout')
    with _Clock() as c:
      log = riegeli_log.write_catch_log(rdir, episodes, args.seed)
    results['write_riegeli_s'] = c.wall
    _progress(f'writing the same {len(log.steps)} steps with EnvLogger (TFDS backend)')
    with _Clock() as c:
      write_tfds_log(tdir, log)
    results['write_tfds_s'] = c.wall
    lengths = np.diff(np.append(log.episode_starts, len(log.steps)))
    groups = _groups(log)
    nsteps = len(log.steps)
    rows: list[dict[str, Any]] = []
    measured: dict[str, dict[str, Any]] = {}
    rng = np.random.RandomState(args.seed + 1)
    other, same = _random_picks(log, n_random, rng)
    columns = {}
    for name, d in (('riegeli', rdir), ('tfds', tdir)):
      m: dict[str, Any] = {}
      _progress(f'{name}: open')
      m['open'] = open_times(d)
      _progress(f'{name}: sequential pass')
      steps_read, seq, times = sequential_pass(d, lengths)
      check_steps(f'{name} sequential', steps_read, log)
      del steps_read
      m['seq'], m['seq_episode'] = seq, _median_episode_rate(times, lengths)
      _progress(f'{name}: columnar pass')
      cols, col, times = columnar_pass(d, len(lengths))
      columns[name] = cols
      m['col'], m['col_episode'] = col, _median_episode_rate(times, lengths)
      _progress(f'{name}: {2 * n_random} random steps')
      walls, cpus = random_reads(d, other)
      m['rand_other'], m['rand_other_cpu'] = float(np.median(walls)), float(np.median(cpus))
      m['rand_other_min'] = min(walls)
      walls, cpus = random_reads(d, same)
      m['rand_same'] = float(np.median(walls[1:]))
      m['chunk_cost'] = 0.0
      measured[name] = m
    check_columns(columns['riegeli'], columns['tfds'])
    del columns
    _progress('riegeli: time split of a sequential pass, stage by stage')
    split = time_split(log, max(groups, key=len))
    measured['riegeli']['chunk_cost'] = split['steps chunk decode (read_at of a new chunk)'] * 1e-6

    def row(metric: str, unit: str, f: Callable[[dict[str, Any]], float | None]) -> None:
      rows.append(
        {'metric': metric, 'unit': unit, 'riegeli': f(measured['riegeli']), 'tfds': f(measured['tfds'])}
      )

    def with_chunks(rate: float, m: dict[str, Any]) -> float:
      return 1 / (1 / rate + m['chunk_cost'])

    row('open, median of 7', 'ms', lambda m: m['open'][0] * 1e3)
    row('open, fastest of 7', 'ms', lambda m: m['open'][1] * 1e3)
    row('sequential, whole pass', 'steps/s', lambda m: _rate(nsteps, m['seq'].wall))
    row('sequential, whole pass, CPU time', 'steps/s', lambda m: _rate(nsteps, m['seq'].cpu))
    row('sequential, median episode', 'steps/s', lambda m: m['seq_episode'])
    row('sequential, median episode + chunk decodes', 'steps/s', lambda m: with_chunks(m['seq_episode'], m))
    row('columnar as_rlds(), whole pass', 'steps/s', lambda m: _rate(nsteps, m['col'].wall))
    row('columnar as_rlds(), whole pass, CPU time', 'steps/s', lambda m: _rate(nsteps, m['col'].cpu))
    row('columnar as_rlds(), median episode', 'steps/s', lambda m: m['col_episode'])
    row('columnar, median episode + chunk decodes', 'steps/s', lambda m: with_chunks(m['col_episode'], m))
    row('random step, other chunk, median', 'ms', lambda m: m['rand_other'] * 1e3)
    row('random step, other chunk, median CPU time', 'ms', lambda m: m['rand_other_cpu'] * 1e3)
    row('random step, other chunk, fastest', 'ms', lambda m: m['rand_other_min'] * 1e3)
    row('random step, chunk read last, median', 'ms', lambda m: m['rand_same'] * 1e3)
    row('steps.riegeli chunk decode, per step (CPU)', 'us', lambda m: m['chunk_cost'] * 1e6 or None)

    profile = profile_pass(rdir, args.profile) if args.profile else None
  finally:
    if args.keep:
      print(f'logs kept in {work}')
    else:
      shutil.rmtree(work, ignore_errors=True)
  load.append(os.getloadavg()[0])
  pressure.append(_cpu_pressure())
  stretch.append(calibration())

  chunks = [n for shard in log.step_chunks for _, n in shard]
  print()
  print(
    f'Catch log: {episodes} episodes, {nsteps} steps; Riegeli: {len(chunks)} steps chunks '
    f'({min(chunks)}..{max(chunks)} records), {log.flushes} random flushes; written in '
    f'{results["write_riegeli_s"]:.0f} s (Riegeli) and {results["write_tfds_s"]:.0f} s (TFDS)'
  )
  print(
    f'python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load {load[0]:.1f} -> {load[1]:.1f}'
    + (f', CPU pressure {pressure[0]:.0f}% -> {pressure[1]:.0f}%' if None not in pressure else '')
    + f', run {time.perf_counter() - _START:.0f} s'
  )
  print(
    'machine stretch (mean / median time of a fixed ~1 ms Python work unit, start -> end): wall '
    f'{stretch[0]["wall_stretch"]:.1f} -> {stretch[1]["wall_stretch"]:.1f}, CPU time '
    f'{stretch[0]["cpu_stretch"]:.1f} -> {stretch[1]["cpu_stretch"]:.1f} (1.0 = idle; whole passes are '
    'stretched as much, medians of small units hardly)'
  )
  print()
  print_table(rows)
  lo, hi = ORIGINAL_STEPS_PER_S
  by_name = {r['metric']: r['riegeli'] for r in rows}
  print(f'\nthe original (C++ reader): {lo:,}-{hi:,} steps/s. This reader, sequential, Riegeli log:')
  for name in (
    'sequential, whole pass',
    'sequential, median episode',
    'sequential, median episode + chunk decodes',
  ):
    print(f'  {name:<45} {by_name[name]:>9,.0f} steps/s = {by_name[name] / hi:6.1%} of {hi:,}')
  total = split['sequential pass (median episode + chunk decode)']
  print(
    f'\nRiegeli sequential pass, where the time goes, per step: stages timed alone on the {split["_episodes"]} '
    f'episodes of one {split["_chunk_records"]}-record steps chunk (median episode; the chunk decode: '
    'least CPU time of 9, spread over its records):'
  )
  print(f'  {"stage":<52} {"us/step":>8} {"share":>6}')
  for k, v in split.items():
    if k.startswith('_'):
      continue
    share = '' if k.startswith(('sequential', '  ')) else f'{v / total:.0%}'
    print(f'  {k:<52} {v:8.1f} {share:>6}')
  if profile:
    print(f'\ncProfile, sequential pass over {args.profile} episodes:\n{profile}')

  if args.json:
    setup = {
      'episodes': episodes,
      'steps': nsteps,
      'steps_chunks': chunks,
      'random_flushes': log.flushes,
      'random_reads': n_random,
      'seed': args.seed,
      'python': sys.version.split()[0],
      'numpy': np.__version__,
      'envlogger': envlogger.__version__,
      'platform': platform.platform(),
      'cpus': os.cpu_count(),
      'loadavg_1min': load,
      'cpu_pressure_avg10': pressure,
      'machine_stretch': stretch,
      'elapsed_s': time.perf_counter() - _START,
      **results,
    }
    with open(args.json, 'w') as f:
      json.dump(
        {'setup': setup, 'metrics': rows, 'time_split': split, 'original_steps_per_s': ORIGINAL_STEPS_PER_S},
        f,
        indent=1,
      )
    print(f'\nwrote {args.json}')


if __name__ == '__main__':
  main()
