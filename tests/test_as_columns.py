"""Reader.as_columns() on logs whose records decode in groups (see `_batch_decode`).

The conformance suite checks as_columns() on every backend and workload; these
tests cover what only larger logs reach: groups of same-layout records mixed
with records of other layouts (longer varints, other lengths), custom data,
several shards, damaged records and a killed writer's journal.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tree
from dm_env import specs

import envlogger
from envlogger.backends import _batch_decode, _batch_walk
from envlogger.backends import tfds as tfds_backend
from envlogger.convert import convert
from envlogger.testing import spec_env

OBS = {'vec': specs.Array((3,), np.float32), 'flags': specs.Array((2,), np.bool_)}
ACTION = specs.DiscreteArray(300, dtype=np.int32)
LENGTHS = (4, 4, 4, 4, 4, 6, 6, 6, 6, 6, 2)


def _policy(episode: int, rng: np.random.Generator) -> int:
  # Every seventh episode acts with values >= 128: two-byte varints, another record layout.
  return int(rng.integers(128, 300)) if episode % 7 == 3 else int(rng.integers(3))


def _env() -> spec_env.SpecEnv:
  return spec_env.SpecEnv(OBS, ACTION, episode_lengths=LENGTHS, terminations=(True, False, True), seed=1)


def _log(directory, episodes: int = 60, step_fn=None) -> None:
  env = _env()
  rng = np.random.default_rng(0)
  with envlogger.EnvLogger(env, data_directory=str(directory), step_fn=step_fn) as logger:
    for e in range(episodes):
      ts = logger.reset()
      while not ts.last():
        ts = logger.step(_policy(e, rng))


def _note(ts, action, env):
  return None if ts.first() else np.float32(ts.reward)


def _expected(r: envlogger.Reader, idx) -> dict:
  eps = [r.episodes[int(i)].as_rlds() for i in idx]
  return {
    'steps': tree.map_structure(lambda *c: np.concatenate(c), *[e['steps'] for e in eps]),
    'episode_id': [e['episode_id'] for e in eps],
    'cut_short': [e['cut_short'] for e in eps],
  }


def _assert_equal(got: dict, want: dict, ids: bool = True) -> None:
  tree.assert_same_structure(got['steps'], want['steps'])
  for g, w in zip(tree.flatten(got['steps']), tree.flatten(want['steps'])):
    assert g.dtype == w.dtype and g.shape == w.shape
    np.testing.assert_array_equal(g, w)
  if ids:
    assert got['episode_id'] == want['episode_id']
  np.testing.assert_array_equal(got['cut_short'], want['cut_short'])


@pytest.fixture
def group_decodes(monkeypatch):
  """Counts the records decoded in groups (to show a test reaches that path)."""
  counts = []
  decode = _batch_decode._Plan.decode

  def counting(self, arr, codec, fields=None):
    counts.append(len(arr))
    return decode(self, arr, codec, fields)

  monkeypatch.setattr(_batch_decode._Plan, 'decode', counting)
  return counts


@pytest.mark.parametrize('file_format', ['tfrecord', 'array_record'])
@pytest.mark.parametrize('with_custom_data', [False, True], ids=['plain', 'custom'])
def test_groups_and_other_layouts_decode_as_episode_by_episode(
  tmp_path, file_format, with_custom_data, group_decodes
):
  _log(tmp_path / 'log', step_fn=_note if with_custom_data else None)
  path = tmp_path / 'log'
  if file_format == 'array_record':
    convert(path, tmp_path / 'c', file_format=file_format, max_episodes_per_file=25, progress=False)
    path = tmp_path / 'c'
  with envlogger.Reader(path) as r:
    n = len(r.episodes)
    rng = np.random.default_rng(5)
    for idx in (np.arange(n), rng.permutation(n), rng.integers(0, n, size=40), np.arange(n)[::3]):
      _assert_equal(r.as_columns(idx), _expected(r, idx))
    cols = r.as_columns()
    if with_custom_data:
      assert 'has_custom_data' in cols['steps']
      assert not cols['steps']['has_custom_data'][cols['steps']['is_first']].any()
    # The two-byte actions are there, read back exactly.
    assert (cols['steps']['action'] >= 128).any()
  # Most records were decoded in groups; the others (two-byte actions, rare lengths) one by one.
  assert sum(group_decodes) > 0


def test_damaged_records_raise_and_verify_skips_them(tmp_path):
  _log(tmp_path / 'log', episodes=600)  # three ArrayRecord groups of about 240 episodes
  convert(tmp_path / 'log', tmp_path / 'c', file_format='array_record', progress=False)
  shard = next((tmp_path / 'c').glob('*/*/*.array_record-00000'))
  data = bytearray(shard.read_bytes())
  data[50_000] ^= 0x10  # inside the second group of episodes (248-495; the first ends near 33 KB)
  shard.write_bytes(bytes(data))
  with envlogger.Reader(tmp_path / 'c') as r:
    damaged = []
    for i in range(len(r.episodes)):
      try:
        r.episodes[i].as_rlds()
      except envlogger.DamagedEpisodeError:
        damaged.append(i)
    assert damaged and damaged[0] > 0  # a later group: sequential passes read good episodes first
    with pytest.raises(envlogger.DamagedEpisodeError, match=f'record {damaged[0]}'):
      r.as_columns()
    kept = [i for i in range(len(r.episodes)) if i not in damaged]
    _assert_equal(r.as_columns(kept), _expected(r, kept))
    # Sequential passes (which read ahead in blocks) yield everything before the damage first.
    seen = []
    with pytest.raises(envlogger.DamagedEpisodeError, match=f'record {damaged[0]}'):
      seen.extend(r.steps)
    assert len(seen) == int(r.episode_lengths()[: damaged[0]].sum())
    episodes = []
    with pytest.raises(envlogger.DamagedEpisodeError, match=f'record {damaged[0]}'):
      episodes.extend(r.episodes)
    assert len(episodes) == damaged[0]
  with pytest.warns(UserWarning, match=f'{len(damaged)} problem'):
    verified = envlogger.Reader(tmp_path / 'c', verify=True)
  with verified as r, envlogger.Reader(tmp_path / 'log') as src:
    # The same steps as the source's episodes (a conversion gives them other ids).
    _assert_equal(r.as_columns(), src.as_columns(kept), ids=False)


def test_a_killed_writers_journal_reads_with_the_stored_episodes(tmp_path, group_decodes):
  """Episodes a killed writer left in its journal come back with the ones in its shards."""
  child = textwrap.dedent(
    f"""
    import os, signal, sys
    import numpy as np
    import envlogger
    sys.path.insert(0, {__file__.rsplit('/', 1)[0]!r})
    import test_as_columns as t
    env = t._env()
    rng = np.random.default_rng(0)
    logger = envlogger.EnvLogger(env, data_directory=sys.argv[1])
    for e in range(50):
      ts = logger.reset()
      while not ts.last():
        ts = logger.step(t._policy(e, rng))
      if e == 29:
        logger.backend.flush()  # episodes 0-29 into a shard; the rest only in the journal
    os.kill(os.getpid(), signal.SIGKILL)
    """
  )
  out = subprocess.run([sys.executable, '-c', child, str(tmp_path / 'log')], capture_output=True, timeout=120)
  assert out.returncode == -9, out.stderr
  _log(tmp_path / 'same', episodes=50)  # what the killed writer logged, written by a whole run
  with envlogger.Reader(tmp_path / 'log') as r, envlogger.Reader(tmp_path / 'same') as same:
    assert len(r.episodes) == 50
    src = r._source
    in_journal = sum(src._in_journal(i) for i in range(50))
    assert 0 < in_journal < 50  # some episodes were flushed to shards, the rest only journaled
    got = r.as_columns()
    assert sum(group_decodes) > 0  # the stored episodes were decoded in groups
    _assert_equal(got, _expected(r, range(50)))
    # The same values as a writer that was not killed (ids differ: other runs).
    for g, w in zip(tree.flatten(got['steps']), tree.flatten(same.as_columns()['steps'])):
      np.testing.assert_array_equal(g, w)


def _same_step(a: envlogger.StepData, b: envlogger.StepData) -> None:
  assert a.timestep.step_type == b.timestep.step_type
  for x, y in zip(
    tree.flatten((a.timestep, a.action, a.custom_data)), tree.flatten((b.timestep, b.action, b.custom_data))
  ):
    assert type(x) is type(y)
    np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize('file_format', ['tfrecord', 'array_record'])
def test_sequential_passes_read_ahead_and_give_what_random_access_gives(tmp_path, file_format, monkeypatch):
  """Iterating steps and episodes decodes blocks of episodes at once (on logs that
  decode in batches); every step equals the one random access gives."""
  _log(tmp_path / 'log', episodes=80, step_fn=_note)
  path = tmp_path / 'log'
  if file_format == 'array_record':
    convert(path, tmp_path / 'c', file_format=file_format, progress=False)
    path = tmp_path / 'c'
  monkeypatch.setattr(envlogger.reader, 'READ_AHEAD_EPISODES', 16)  # several blocks
  with envlogger.Reader(path) as r, envlogger.Reader(path) as ref:
    blocks = []  # the episodes of each read_batch call
    read_batch = r._source.read_batch
    monkeypatch.setattr(r._source, 'read_batch', lambda i: blocks.append(len(i)) or read_batch(i))
    n = len(r.steps)
    for window in (slice(None), slice(3, n - 7), slice(n // 2, n // 2 + 5)):
      got = list(r.steps[window])
      want = [ref.steps[i] for i in range(n)[window]]
      assert len(got) == len(want)
      for a, b in zip(got, want):
        _same_step(a, b)
    for e, episode in enumerate(r.episodes[5:]):
      single = ref.episodes[5 + e]
      assert (episode.episode_id, episode.cut_short, len(episode)) == (
        single.episode_id,
        single.cut_short,
        len(single),
      )
      for a, b in zip(episode, single):
        _same_step(a, b)
  assert blocks and max(blocks) == 16


def test_reads_in_chunks_give_the_same_columns(tmp_path, monkeypatch):
  """read_batch bounds the records it holds and stacks at once; the result is the same."""
  _log(tmp_path / 'log', episodes=60)
  convert(tmp_path / 'log', tmp_path / 'c', file_format='array_record', progress=False)
  with envlogger.Reader(tmp_path / 'c') as r:
    whole = r.as_columns()
    monkeypatch.setattr(tfds_backend, 'BATCH_RECORDS', 7)
    _assert_equal(r.as_columns(), whole)
    monkeypatch.setattr(tfds_backend, 'BATCH_BYTES', 300)  # about two episodes' raw steps
    _assert_equal(r.as_columns(), whole)
    idx = np.random.default_rng(2).permutation(len(r.episodes))
    _assert_equal(r.as_columns(idx), _expected(r, idx))
    monkeypatch.setattr(_batch_decode, 'GROUP_BYTES', 1500)  # groups stacked a few records at a time
    _assert_equal(r.as_columns(idx), _expected(r, idx))
    _assert_equal(r.as_columns(), whole)


def test_logs_of_deepminds_envlogger_read_as_columns():
  """The original's Riegeli logs (tests/fixtures/envlogger13): episode by episode, same result."""
  fixtures = Path(__file__).parent / 'fixtures' / 'envlogger13'
  with envlogger.Reader(fixtures / 'catch_riegeli' / 'data') as r:
    n = len(r.episodes)
    assert n > 1
    idx = [n - 1, 0, n - 1]
    _assert_equal(r.as_columns(idx), _expected(r, idx))
    _assert_equal(r.as_columns(), _expected(r, range(n)))


def test_one_step_episodes_stacked_one_at_a_time_are_the_callers(tmp_path, monkeypatch):
  """A group stacked one record at a time, of one-step episodes: the arrays are still fresh."""
  with envlogger.EnvLogger(_env(), data_directory=str(tmp_path / 'log')) as logger:
    for _ in range(8):
      logger.reset()  # each episode is cut short after its first step by the next reset
  convert(tmp_path / 'log', tmp_path / 'c', file_format='array_record', progress=False)
  monkeypatch.setattr(_batch_decode, 'GROUP_BYTES', 1)
  with envlogger.Reader(tmp_path / 'c') as r:
    cols = r.as_columns()
    assert cols['episode_lengths'].tolist() == [1] * 8
    for leaf in tree.flatten(cols['steps']):
      leaf[...] = 1  # writable, and not the Reader's
    _assert_equal(r.as_columns(), _expected(r, range(8)))


BOARD_OBS = {'board': specs.Array((8, 5), np.float32), 'name': specs.StringArray(())}  # 160 B: zlib


def _log_boards(tmp_path, file_format: str, episodes: int, seed: int, **logger_kwargs):
  """A log of BOARD_OBS episodes (zlib boards, strings), in `file_format`; its path."""
  env = spec_env.SpecEnv(BOARD_OBS, ACTION, episode_lengths=LENGTHS, terminations=(True, False), seed=seed)
  rng = np.random.default_rng(seed)
  path = tmp_path / 'log'
  with envlogger.EnvLogger(env, data_directory=str(path), **logger_kwargs) as logger:
    for e in range(episodes):
      ts = logger.reset()
      while not ts.last():
        ts = logger.step(_policy(e, rng))
  if file_format == 'array_record':
    convert(path, tmp_path / 'c', file_format=file_format, progress=False)
    path = tmp_path / 'c'
  return path


def _episode_end(ts, action, env):
  return {'return': np.float32(ts.reward), 'tag': 'end'} if ts.last() else None


@pytest.mark.parametrize('file_format', ['tfrecord', 'array_record'])
def test_records_of_other_lengths_are_walked_together(tmp_path, file_format, walked):
  """Logs the groups do not cover (zlib leaves, strings, episode metadata) are walked
  many records at once (`_batch_walk`) and their leaves decoded together; two-byte
  actions and custom data in some records only: the same columns as episode by episode."""
  path = _log_boards(tmp_path, file_format, 40, seed=2, step_fn=_note, episode_fn=_episode_end)
  with envlogger.Reader(path) as r:
    n = len(r.episodes)
    for idx in (np.arange(n), np.random.default_rng(3).permutation(n)[:25]):
      got = r.as_columns(idx)
      _assert_equal(got, _expected(r, idx))
      assert got['episode_metadata'] == [r.episodes[int(i)].metadata for i in idx]
    assert (r.as_columns()['steps']['action'] >= 128).any()
    # A sequential pass (blocks of records walked together) gives what random access gives.
    with envlogger.Reader(path) as ref:
      steps = list(r.steps)
      assert len(steps) == len(ref.steps)
      for i, step in enumerate(steps):
        _same_step(step, ref.steps[i])
  assert max(walked) >= 25


@pytest.mark.parametrize('file_format', ['tfrecord', 'array_record'])
def test_fields_reads_only_the_fields_asked_for(tmp_path, file_format, monkeypatch):
  """as_columns(fields=...) gives those fields as a full read does, and does not
  decode the others (no board is inflated for rewards)."""
  path = _log_boards(tmp_path, file_format, 60, seed=4, step_fn=_note)
  flags = {'is_first', 'is_last', 'is_terminal'}
  with envlogger.Reader(path) as r:
    whole = r.as_columns()
    for fields in (['reward'], ['action', 'discount'], ['observation'], ['custom_data', 'reward'], []):
      for idx in (None, np.random.default_rng(1).permutation(60)[:50]):
        got = r.as_columns(idx, fields=fields)
        want = whole if idx is None else r.as_columns(idx)
        extra = {'has_custom_data'} if 'custom_data' in fields else set()
        custom = (
          set(whole['steps']) - {'observation', 'action', 'reward', 'discount', 'has_custom_data'} - flags
        )
        names = {f for f in fields if f != 'custom_data'} | (custom if 'custom_data' in fields else set())
        assert set(got['steps']) == names | flags | extra
        for name in got['steps']:
          for g, w in zip(tree.flatten(got['steps'][name]), tree.flatten(want['steps'][name])):
            assert g.dtype == w.dtype
            np.testing.assert_array_equal(g, w)
        np.testing.assert_array_equal(got['episode_lengths'], want['episode_lengths'])
        assert got['episode_id'] == want['episode_id']
    inflated = []
    monkeypatch.setattr(_batch_walk.C, 'inflate_column', lambda *a: inflated.append(1))
    r._source._cache.clear()
    r.as_columns(fields=['reward', 'action'])
    assert inflated == []
    with pytest.raises(ValueError, match='not step fields'):
      r.as_columns(fields=['rewards'])
    with pytest.raises(TypeError, match='not a string'):
      r.as_columns(fields='reward')


def test_fields_of_a_log_without_custom_data(tmp_path):
  _log(tmp_path / 'log', episodes=10)
  with envlogger.Reader(tmp_path / 'log') as r:
    with pytest.raises(ValueError, match='custom_data'):
      r.as_columns(fields=['custom_data'])
    got = r.as_columns(fields=['reward'])
    np.testing.assert_array_equal(got['steps']['reward'], r.as_columns()['steps']['reward'])
