"""envlogger.loaders and envlogger.torch: transitions and windows of real logs.

Logs are written through EnvLogger (terminations, truncations, episodes cut
short, nested specs with strings and custom step fields); every transition and
every window is checked against the StepData the Reader gives back, through
numpy, pickling, a forked child, and a multi-worker torch DataLoader.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import shutil
import sys

import numpy as np
import pytest
import tree
from conftest import REPO, nest_equal, run_python
from dm_env import specs

import envlogger
from envlogger import loaders
from envlogger import specs as specs_lib
from envlogger.testing import catch_env, spec_env

# ---------------------------------------------------------------------------
# Logs.

# ('episode', None): until LAST; ('cut', n): n steps, then the next reset (or
# close) cuts the episode short.
_SCRIPT = (
  ('episode', None),
  ('cut', 2),
  ('episode', None),
  ('cut', 0),  # a 1-step episode: no transition
  ('episode', None),
  ('episode', None),
  ('cut', 3),
)


def _record(env, directory, policy, script=_SCRIPT, **kwargs) -> None:
  rng = np.random.default_rng(0)
  with envlogger.EnvLogger(env, data_directory=str(directory), **kwargs) as logged:
    for _kind, n in script:
      ts = logged.reset()
      count = 0
      while not ts.last() and (n is None or count < n):
        ts = logged.step(policy(rng))
        count += 1


def _nested_env():
  obs = {
    'pixels': specs.BoundedArray((4, 3, 3), np.uint8, 0, 255),
    'state': (specs.Array((3,), np.float64), specs.Array((), np.int32)),
    'text': specs.StringArray(()),
    'flags': specs.Array((2,), np.bool_),
    'empty': specs.Array((0, 2), np.float32),
  }
  action = {
    'move': specs.BoundedArray((2,), np.float32, -1.0, 1.0),
    'grip': specs.DiscreteArray(2, dtype=np.int32),
  }
  return spec_env.SpecEnv(
    obs,
    action,
    episode_lengths=(3, 1, 4, 6),
    terminations=(True, False, True),  # the 1-step episode and every third one are truncated
    reward_spec=specs.Array((2,), np.float32),
    discount_spec=specs.BoundedArray((2,), np.float32, 0.0, 1.0),
    seed=3,
  )


def _nested_step_fn(ts, action, env):
  if ts.first():
    return None  # no step data at reset: has_custom_data False
  return {'score': float(np.sum(ts.reward)), 'tag': f'step-{int(ts.observation["state"][1])}'}


@pytest.fixture(scope='module')
def catch_log(tmp_path_factory):
  directory = tmp_path_factory.mktemp('catch') / 'log'
  _record(catch_env.Catch(rows=6, seed=2), directory, lambda rng: int(rng.integers(3)))
  return str(directory)


@pytest.fixture(scope='module')
def nested_log(tmp_path_factory):
  directory = tmp_path_factory.mktemp('nested') / 'log'
  script = (('episode', None),) * 6 + (('cut', 2), ('episode', None), ('cut', 1))
  _record(
    _nested_env(),
    directory,
    lambda rng: {'move': rng.uniform(-1, 1, size=2), 'grip': int(rng.integers(2))},
    script,
    step_fn=_nested_step_fn,
  )
  return str(directory)


@pytest.fixture
def riegeli_log():
  """A log of DeepMind's envlogger 1.3 (Riegeli files): the Reader opens it, so do the loaders."""
  return os.path.join(REPO, 'tests', 'fixtures', 'envlogger13', 'catch_riegeli', 'data')


@pytest.fixture(params=['catch', 'nested', 'riegeli'])
def log(request):
  return request.getfixturevalue(f'{request.param}_log')


# ---------------------------------------------------------------------------
# What each item must hold, built from the StepData the Reader gives back.


def _episodes(reader):
  """Per episode: (its StepData, whether it ended in termination)."""
  out = []
  for ep in reader.episodes:
    steps = list(ep)
    last = steps[-1].timestep
    terminated = last.last() and all(np.all(np.asarray(d) == 0) for d in tree.flatten(last.discount))
    out.append((steps, terminated))
  return out


def _to_numpy(nest):
  def convert(x):
    if type(x).__module__.startswith('torch'):
      return x.numpy()
    return x

  return tree.map_structure(convert, nest)


def _check_flag(actual, expected, where):
  actual = np.asarray(actual)
  assert actual.dtype == np.bool_ and actual.shape == (), f'{where}: {actual!r}'
  assert bool(actual) == expected, f'{where}: {actual!r} != {expected}'


def _check_transition(item, reader, episodes, custom=None):
  """Checks a transition against the log; `custom` maps custom step fields to item keys."""
  item = _to_numpy(item)
  e, k = int(item['episode_index']), int(item['step_index'])
  steps, terminated = episodes[e]
  assert 0 <= k < len(steps) - 1
  where = f'transition (episode {e}, step {k})'
  now, nxt = steps[k], steps[k + 1]
  nest_equal(item['observation'], now.timestep.observation, reader.observation_spec(), f'{where} observation')
  nest_equal(item['action'], nxt.action, reader.action_spec(), f'{where} action')
  nest_equal(item['reward'], nxt.timestep.reward, reader.reward_spec(), f'{where} reward')
  nest_equal(item['discount'], nxt.timestep.discount, reader.discount_spec(), f'{where} discount')
  nest_equal(
    item['next_observation'], nxt.timestep.observation, reader.observation_spec(), f'{where} next_observation'
  )
  is_last = k + 1 == len(steps) - 1
  _check_flag(item['last'], is_last, f'{where} last')
  _check_flag(item['terminal'], is_last and terminated, f'{where} terminal')
  for name, key in (custom or {}).items():
    if name == 'has_custom_data':
      _check_flag(item[key], now.custom_data is not None, f'{where} {name}')
    elif now.custom_data is not None:
      np.testing.assert_array_equal(np.asarray(item[key]), np.asarray(now.custom_data[name]), err_msg=where)
  return e, k


def _rlds_row(reader, steps, terminated, j):
  """RLDS step j of an episode, from its StepData (docs/alignment.md)."""
  n = len(steps)
  zeros = lambda spec: tree.map_structure(specs_lib.zeros_for, spec)  # noqa: E731
  if j < n - 1:
    action, reward, discount = (
      steps[j + 1].action,
      steps[j + 1].timestep.reward,
      steps[j + 1].timestep.discount,
    )
  else:
    action, reward, discount = (
      zeros(reader.action_spec()),
      zeros(reader.reward_spec()),
      zeros(reader.discount_spec()),
    )
  return {
    'observation': steps[j].timestep.observation,
    'action': action,
    'reward': reward,
    'discount': discount,
    'is_first': j == 0,
    'is_last': j == n - 1,
    'is_terminal': j == n - 1 and terminated,
  }


def _check_window(item, reader, episodes, size):
  item = _to_numpy(item)
  e, s = int(item['episode_index']), int(item['start_index'])
  steps, terminated = episodes[e]
  n = len(steps)
  assert item['mask'].dtype == np.bool_ and item['mask'].shape == (size,)
  for i in range(size):
    where = f'window (episode {e}, start {s}) row {i}'
    steps_only = {k: v for k, v in item.items() if k not in ('mask', 'episode_index', 'start_index')}
    row = tree.map_structure(lambda x, i=i: x[i], steps_only)
    assert bool(item['mask'][i]) == (s + i < n), where
    expected = _rlds_row(reader, steps, terminated, min(s + i, n - 1))  # padding repeats the last step
    for field, spec in (
      ('observation', reader.observation_spec()),
      ('action', reader.action_spec()),
      ('reward', reader.reward_spec()),
      ('discount', reader.discount_spec()),
    ):
      nest_equal(row[field], expected[field], spec, f'{where} {field}')
    for flag in ('is_first', 'is_last', 'is_terminal'):
      _check_flag(row[flag], expected[flag], f'{where} {flag}')
  return e, s


def _expected_transition_keys(reader):
  return [(e, k) for e, length in enumerate(reader.episode_lengths()) for k in range(length - 1)]


# ---------------------------------------------------------------------------
# numpy


def test_every_transition_matches_the_log(log, riegeli_log):
  with envlogger.Reader(data_directory=log) as reader, loaders.Transitions(log) as transitions:
    episodes = _episodes(reader)
    expected = _expected_transition_keys(reader)
    assert len(transitions) == len(expected)
    seen = [_check_transition(transitions[i], reader, episodes) for i in range(len(transitions))]
    assert seen == expected  # numbered episode by episode, step by step
    # Terminations, and episodes that end without one (truncated, cut short).
    batch = transitions[:]
    ended = [t for steps, t in episodes if len(steps) > 1]
    assert batch['terminal'].sum() == sum(ended)
    assert (batch['last'] & ~batch['terminal']).sum() == len(ended) - sum(ended)
    assert not (batch['terminal'] & ~batch['last']).any()
    if log != riegeli_log:
      assert 0 < sum(ended) < len(ended)


def test_batches_are_stacked_items(log):
  with loaders.Transitions(log) as transitions:
    n = len(transitions)
    idx = np.random.default_rng(0).integers(-n, n, size=40)  # duplicates and negative indexes
    batch = transitions.batch(idx)
    assert batch.keys() == transitions[0].keys()
    for b, i in enumerate(idx):
      one = transitions[int(i)]
      tree.map_structure(lambda x, y, b=b: np.testing.assert_array_equal(x[b], y), batch, one)
    assert np.array_equal(transitions[idx.tolist()]['step_index'], batch['step_index'])
    # Slices, empty batches.
    sl = transitions[3:11:2]
    np.testing.assert_array_equal(sl['step_index'], transitions.batch(np.arange(3, 11, 2))['step_index'])
    empty = transitions[[]]
    tree.map_structure(
      lambda x, y: (x.shape[0] == 0 and x.shape[1:] == y.shape[1:]) or pytest.fail(), empty, batch
    )


def test_arrays_are_plain_numpy(nested_log):
  """Numeric leaves are fresh, writable, C-contiguous arrays (jnp.asarray /
  torch.from_numpy take them as they are); strings are object arrays."""
  with loaders.Transitions(nested_log, fields=True) as transitions:
    batch = transitions[[0, 5, 2]]
    assert isinstance(batch['observation'], dict) and isinstance(batch['observation']['state'], tuple)
    for path, leaf in tree.flatten_with_path(batch):
      assert isinstance(leaf, np.ndarray) and leaf.shape[0] == 3, path
      assert leaf.flags.c_contiguous and leaf.flags.writeable, path
    assert batch['observation']['pixels'].dtype == np.uint8
    assert batch['observation']['pixels'].shape == (3, 4, 3, 3)
    assert batch['observation']['empty'].shape == (3, 0, 2)
    assert batch['observation']['text'].dtype == object
    # Writing into what was handed out changes nothing read later.
    before = transitions[[0, 5, 2]]
    batch['observation']['pixels'][...] = 7
    batch['reward'][...] = 99
    tree.map_structure(np.testing.assert_array_equal, transitions[[0, 5, 2]], before)


def test_jax_takes_batches_as_they_are(catch_log):
  jnp = pytest.importorskip('jax.numpy', reason='jax is not installed')
  with loaders.Transitions(catch_log) as transitions:
    batch = transitions[[1, 2, 3]]
    for leaf in tree.flatten(batch):
      np.testing.assert_array_equal(np.asarray(jnp.asarray(leaf)), leaf)


_NESTED_CUSTOM = {'score': 'score', 'tag': 'tag', 'has_custom_data': 'has_custom_data'}


def test_custom_fields(nested_log):
  with envlogger.Reader(data_directory=nested_log) as reader:
    episodes = _episodes(reader)
    everything = loaders.Transitions(reader, fields=True)
    item = everything[0]
    assert {'score', 'tag', 'has_custom_data'} <= item.keys()
    for i in range(len(everything)):
      _check_transition(everything[i], reader, episodes, custom=_NESTED_CUSTOM)
    only = loaders.Transitions(reader, fields=['score'])
    assert 'score' in only[0] and 'tag' not in only[0]
    assert 'score' not in loaders.Transitions(reader)[0]
    with pytest.raises(KeyError, match='score'):
      loaders.Transitions(reader, fields=['nope'])[0]


def _one_episode(env) -> None:
  ts = env.reset()
  while not ts.last():
    ts = env.step(0)


def test_custom_field_named_like_an_output():
  env = envlogger.EnvLogger(
    catch_env.Catch(rows=4), backend='in_memory', step_fn=lambda ts, a, e: {'mask': 1}
  )
  _one_episode(env)
  reader = envlogger.Reader(backend=env.backend)
  with pytest.warns(UserWarning, match='mask'):
    assert loaders.Windows(reader, 2, fields=True)[0]['mask'].dtype == np.bool_  # the output, not the field
  with pytest.raises(ValueError, match='mask'):
    loaders.Windows(reader, 2, fields=['mask'])[0]
  renamed = loaders.Windows(reader, 2, fields={'mask': 'logged_mask'})[0]
  np.testing.assert_array_equal(renamed['logged_mask'], [1, 1])
  assert loaders.Transitions(reader, fields=True)[0]['mask'] == 1  # no clash there
  env.close()


def test_every_window_matches_the_log(log):
  with envlogger.Reader(data_directory=log) as reader:
    episodes = _episodes(reader)
    lengths = reader.episode_lengths()
    for size, stride, pad in ((1, 1, False), (3, 1, False), (2, 3, False), (4, 2, True), (3, 1, True)):
      windows = loaders.Windows(reader, size, stride=stride, pad=pad)
      if pad:
        expected = [(e, s) for e, n in enumerate(lengths) for s in range(0, n, stride)]
      else:
        expected = [(e, s) for e, n in enumerate(lengths) for s in range(0, n - size + 1, stride)]
      assert len(windows) == len(expected), (size, stride, pad)
      seen = [_check_window(windows[i], reader, episodes, size) for i in range(len(windows))]
      assert seen == expected, (size, stride, pad)
      if pad and size > 1:
        assert not windows[:]['mask'].all()
      # Batched access equals item access.
      idx = np.random.default_rng(size).integers(0, len(windows), size=9)
      batch = windows[idx]
      for b, i in enumerate(idx):
        tree.map_structure(lambda x, y, b=b: np.testing.assert_array_equal(x[b], y), batch, windows[int(i)])


@pytest.mark.parametrize('cache_episodes', [1, 3, None])
def test_batches_decoded_together_equal_items_read_alone(log, cache_episodes, monkeypatch):
  """A batch reads its uncached short episodes with one as_columns call; of the
  longer ones (here: every episode, BATCH_EPISODE_BYTES lowered) only the steps
  its items need (SPARSE_ROWS 0: always), or whole ones (SPARSE_ROWS huge).
  Each way, and with cached episodes mixed in, items equal those read one at a
  time with the defaults (checked against the log by the tests above)."""
  views = {
    'transitions': lambda **kw: loaders.Transitions(log, **kw),
    'windows': lambda **kw: loaders.Windows(log, 3, pad=True, **kw),
  }
  expected = {}
  for name, make in views.items():
    with make(cache_episodes=1) as alone:
      expected[name] = [alone[i] for i in range(len(alone))]
  rng = np.random.default_rng(4)
  sparse_reads = []
  rlds_rows = envlogger.Reader._rlds_rows
  monkeypatch.setattr(
    envlogger.Reader, '_rlds_rows', lambda r, e, rows: sparse_reads.append(e) or rlds_rows(r, e, rows)
  )
  for batch_bytes, sparse_rows in ((loaders.BATCH_EPISODE_BYTES, loaders.SPARSE_ROWS), (0, 0), (0, 10**9)):
    monkeypatch.setattr(loaders, 'BATCH_EPISODE_BYTES', batch_bytes)
    monkeypatch.setattr(loaders, 'SPARSE_ROWS', sparse_rows)
    sparse_reads.clear()
    for name, make in views.items():
      with make(cache_episodes=cache_episodes) as view:
        n = len(view)
        for idx in (np.arange(n), rng.integers(0, n, size=25), rng.permutation(n)[:7]):
          batch = view.batch(idx)
          for b, i in enumerate(idx.tolist()):
            tree.map_structure(
              lambda x, y, b=b: np.testing.assert_array_equal(x[b], y), batch, expected[name][i]
            )
    assert bool(sparse_reads) == (sparse_rows == 0)  # the path under test was taken


def test_episode_selection_and_index(catch_log):
  with envlogger.Reader(data_directory=catch_log) as reader:
    lengths = reader.episode_lengths()
    episodes = _episodes(reader)
    chosen = [4, 0, 2]
    transitions = loaders.Transitions(reader, episodes=chosen)
    np.testing.assert_array_equal(transitions.episodes, chosen)
    np.testing.assert_array_equal(transitions.episode_lengths, lengths[chosen])
    assert len(transitions) == sum(lengths[e] - 1 for e in chosen)
    seen = [_check_transition(t, reader, episodes) for t in transitions]
    assert seen == [(e, k) for e in chosen for k in range(lengths[e] - 1)]
    ep, step = transitions.locate([0, -1])
    assert (ep.tolist(), step.tolist()) == ([4, 2], [0, lengths[2] - 2])
    with pytest.raises(IndexError):
      loaders.Transitions(reader, episodes=[len(lengths)])


def test_bad_indexes(catch_log):
  with loaders.Transitions(catch_log) as transitions:
    n = len(transitions)
    transitions[-n]
    for bad in (n, -n - 1, [0, n]):
      with pytest.raises(IndexError):
        transitions[bad]
    with pytest.raises(TypeError):
      transitions[1.5]
    with pytest.raises(TypeError):
      transitions[np.ones(n, dtype=bool)]
  with pytest.raises(ValueError):
    loaders.Windows(catch_log, 0)
  with pytest.raises(TypeError):
    loaders.Transitions(catch_log, fields='score')


def test_batches_cover_every_item_once(catch_log):
  with loaders.Transitions(catch_log) as transitions:
    n = len(transitions)
    got = np.concatenate(
      [b['step_index'] * 1000 + b['episode_index'] for b in transitions.batches(7, seed=1)]
    )
    everything = transitions[:]
    assert sorted(got.tolist()) == sorted(
      (everything['step_index'] * 1000 + everything['episode_index']).tolist()
    )
    assert (
      got.tolist() != (everything['step_index'] * 1000 + everything['episode_index']).tolist()
    )  # shuffled
    sizes = [len(b['reward']) for b in transitions.batches(7, shuffle=False, drop_last=True)]
    assert sizes == [7] * (n // 7)


def test_block_permutation(catch_log):
  with loaders.Transitions(catch_log) as transitions:
    n = len(transitions)
    for block in (1, 2, 3):
      order = transitions.permutation(seed=block, episodes_per_block=block)
      assert sorted(order.tolist()) == list(range(n))
      episodes, _ = transitions.locate(order)
      # Each episode's items lie in a span of the order that holds at most
      # `block` episodes (its block); with blocks of 1, episodes come one by one.
      for e in set(episodes.tolist()):
        where = np.flatnonzero(episodes == e)
        assert len(set(episodes[where[0] : where[-1] + 1].tolist())) <= block
        if block == 1:
          assert where[-1] - where[0] + 1 == len(where)
    assert not np.array_equal(transitions.permutation(seed=0), np.arange(n))
    got = np.concatenate([b['step_index'] for b in transitions.batches(4, seed=0, episodes_per_block=2)])
    assert len(got) == n


# ---------------------------------------------------------------------------
# Processes


def test_pickle_round_trip(nested_log):
  transitions = loaders.Transitions(nested_log, fields=True)
  windows = loaders.Windows(nested_log, 3, stride=2, pad=True)
  for view in (transitions, windows):
    idx = np.arange(len(view))[::-1]
    before = view[idx]  # opened, cache filled
    data = pickle.dumps(view)
    assert b'Reader' not in data  # the directory, not an open Reader
    copy = pickle.loads(data)
    assert len(copy) == len(view) and repr(copy) == repr(view)
    tree.map_structure(np.testing.assert_array_equal, copy[idx], before)
    copy.close()
    view.close()
    tree.map_structure(np.testing.assert_array_equal, view[idx], before)  # reopens after close()
    view.close()


def test_in_memory_log_does_not_pickle():
  env = envlogger.EnvLogger(catch_env.Catch(rows=4), backend='in_memory')
  _one_episode(env)
  transitions = loaders.Transitions(envlogger.Reader(backend=env.backend))
  assert len(transitions) == 3
  with pytest.raises(TypeError, match='in-memory'):
    pickle.dumps(transitions)
  env.close()


def test_a_rewritten_log_is_refused(tmp_path):
  directory = tmp_path / 'log'
  _record(catch_env.Catch(rows=5), directory, lambda rng: 1, (('episode', None),) * 2)
  data = pickle.dumps(loaders.Transitions(str(directory)))
  shutil.rmtree(directory)
  _record(catch_env.Catch(rows=4), directory, lambda rng: 1, (('episode', None),) * 2)
  with pytest.raises(RuntimeError, match='not the one'):
    pickle.loads(data)[0]


def test_a_reader_that_skipped_damage_is_not_reopened_silently(tmp_path):
  """Reader(verify=True) skips a damaged episode; a reopened Reader would not
  (its episode indexes shift), so an unpickled view refuses to read."""
  directory = tmp_path / 'log'
  _record(catch_env.Catch(rows=5), directory, lambda rng: 1, (('episode', None),) * 4)  # 4 equal lengths
  ds = directory / 'envlogger' / '1.0.0'
  index = (ds / 'envlogger_index' / 'envlogger-train.tfrecord-00000.jsonl').read_text().splitlines()
  offset, length, _ = json.loads(index[1])
  shard = ds / 'envlogger-train.tfrecord-00000'
  data = bytearray(shard.read_bytes())
  data[offset + 12 + length // 2] ^= 0xFF  # inside episode 1's record: its checksum fails
  shard.write_bytes(bytes(data))
  with pytest.warns(UserWarning, match='problem'):
    reader = envlogger.Reader(data_directory=str(directory), verify=True)
  transitions = loaders.Transitions(reader)
  assert len(transitions.episodes) == 3
  transitions[:]  # in this process: the Reader it was given
  with pytest.raises(RuntimeError, match='other problems'):
    pickle.loads(pickle.dumps(transitions))[0]
  reader.close()
  with pytest.warns(UserWarning, match='problem'):
    verified = loaders.Transitions(str(directory), verify=True)  # reopened with verify too
  with pytest.warns(UserWarning, match='problem'):
    tree.map_structure(np.testing.assert_array_equal, pickle.loads(pickle.dumps(verified))[:], verified[:])


def _child(view, indices, conn):
  conn.send(view[indices])
  conn.close()


def test_forked_child_opens_the_log_itself(catch_log):
  transitions = loaders.Transitions(catch_log)
  idx = list(range(len(transitions)))
  expected = transitions[idx]  # the parent's reader is open, its cache filled
  ctx = multiprocessing.get_context('fork')
  parent, child = ctx.Pipe(duplex=False)
  proc = ctx.Process(target=_child, args=(transitions, idx, child))
  proc.start()
  got = parent.recv()
  proc.join(60)
  assert proc.exitcode == 0
  tree.map_structure(np.testing.assert_array_equal, got, expected)
  tree.map_structure(np.testing.assert_array_equal, transitions[idx], expected)  # the parent's still works
  transitions.close()


@pytest.mark.slow
def test_loaders_import_neither_tensorflow_nor_torch(catch_log):
  code = f"""
import sys
from envlogger import loaders
t = loaders.Transitions({catch_log!r})
w = loaders.Windows({catch_log!r}, 3, pad=True)
for b in t.batches(8, seed=0):
  pass
w[:]
bad = [m for m in ('tensorflow', 'torch', 'jax') if m in sys.modules]
assert not bad, bad
print('ok', len(t), len(w))
"""
  proc = run_python(code, timeout=120)
  assert proc.returncode == 0, proc.stderr
  assert proc.stdout.startswith('ok')


# ---------------------------------------------------------------------------
# PyTorch


def test_missing_torch_names_the_extra(monkeypatch):
  monkeypatch.delitem(sys.modules, 'envlogger.torch', raising=False)
  monkeypatch.setitem(sys.modules, 'torch', None)  # import torch raises ImportError
  with pytest.raises(ImportError, match=r'envlogger-rlds\[torch\]'):
    import envlogger.torch  # noqa: F401, PLC0415


@pytest.fixture(scope='module')
def torch():
  return pytest.importorskip('torch', reason="PyTorch is not installed (pip install 'envlogger-rlds[torch]')")


def _unbatch(batch):
  batch = _to_numpy(batch)
  n = len(batch['episode_index'])
  return [tree.map_structure(lambda x, b=b: x[b], batch) for b in range(n)]


def test_dataset_items_are_tensors(torch, nested_log):
  from envlogger.torch import TransitionDataset, WindowDataset  # noqa: PLC0415

  dataset = TransitionDataset(nested_log, fields=['score'])
  item = dataset[3]
  assert isinstance(item['observation']['pixels'], torch.Tensor)
  assert item['observation']['pixels'].dtype == torch.uint8
  assert item['reward'].dtype == torch.float32 and item['reward'].shape == (2,)
  assert item['terminal'].dtype == torch.bool
  assert isinstance(item['observation']['text'], np.ndarray)  # strings have no tensor type
  tree.map_structure(np.testing.assert_array_equal, _to_numpy(item), dataset.view[3])
  whole = dataset[[0, 4, 1]]  # a list of indices: one batch (DataLoader with batch_size=None)
  assert whole['action']['move'].shape == (3, 2)
  windows = WindowDataset(nested_log, 4, stride=2, pad=True)
  assert windows[0]['mask'].shape == (4,)
  assert len(windows) == len(windows.view)


def test_dataloader_two_workers_every_transition(torch, log):
  """A DataLoader with 2 worker processes: every transition checked against the log."""
  from torch.utils.data import DataLoader  # noqa: PLC0415

  from envlogger.torch import TransitionDataset, collate  # noqa: PLC0415

  if 'nested' in log:
    custom = _NESTED_CUSTOM
  elif 'riegeli' in log:  # DeepMind's example logs a 'step_index': renamed
    custom = {'step_index': 'logged_step_index', 'has_custom_data': 'has_custom_data'}
  else:
    custom = {}
  dataset = TransitionDataset(log, fields=custom)
  dataset[0]  # the parent has the log open: workers must open their own
  loader = DataLoader(
    dataset, batch_size=5, shuffle=True, num_workers=2, multiprocessing_context='fork', collate_fn=collate
  )
  with envlogger.Reader(data_directory=log) as reader:
    episodes = _episodes(reader)
    seen = []
    for batch in loader:
      assert isinstance(batch['reward'], torch.Tensor)
      seen += [_check_transition(item, reader, episodes, custom) for item in _unbatch(batch)]
    assert sorted(seen) == _expected_transition_keys(reader)


def test_dataloader_whole_batches_and_windows(torch, catch_log):
  from torch.utils.data import BatchSampler, DataLoader, RandomSampler  # noqa: PLC0415

  from envlogger.torch import WindowDataset  # noqa: PLC0415

  dataset = WindowDataset(catch_log, 3, pad=True)
  sampler = BatchSampler(RandomSampler(dataset), batch_size=4, drop_last=False)
  loader = DataLoader(
    dataset, batch_size=None, sampler=sampler, num_workers=2, multiprocessing_context='fork'
  )
  with envlogger.Reader(data_directory=catch_log) as reader:
    episodes = _episodes(reader)
    seen = []
    for batch in loader:
      assert batch['observation'].shape[1:] == (3, 6, 5)
      seen += [_check_window(item, reader, episodes, 3) for item in _unbatch(batch)]
    lengths = reader.episode_lengths()
    assert sorted(seen) == [(e, s) for e, n in enumerate(lengths) for s in range(n)]


def test_episode_block_sampler(torch, catch_log):
  from torch.utils.data import DataLoader  # noqa: PLC0415

  from envlogger.torch import EpisodeBlockSampler, TransitionDataset  # noqa: PLC0415

  dataset = TransitionDataset(catch_log, cache_episodes=2)
  sampler = EpisodeBlockSampler(dataset, episodes_per_block=2, seed=0)
  assert len(sampler) == len(dataset)
  first, second = list(sampler), list(sampler)
  assert (
    sorted(first) == sorted(second) == list(range(len(dataset))) and first != second
  )  # new order each epoch
  with envlogger.Reader(data_directory=catch_log) as reader:
    episodes = _episodes(reader)
    seen = [
      _check_transition(item, reader, episodes)
      for batch in DataLoader(dataset, batch_size=3, sampler=sampler)
      for item in _unbatch(batch)
    ]
    assert sorted(seen) == _expected_transition_keys(reader)


@pytest.mark.slow
def test_dataloader_spawned_workers(torch, catch_log):
  """Spawned workers (the default start method on macOS and Windows) get the dataset by pickle."""
  from torch.utils.data import DataLoader  # noqa: PLC0415

  from envlogger.torch import TransitionDataset  # noqa: PLC0415

  dataset = TransitionDataset(catch_log)
  loader = DataLoader(dataset, batch_size=8, num_workers=2, multiprocessing_context='spawn')
  with envlogger.Reader(data_directory=catch_log) as reader:
    episodes = _episodes(reader)
    seen = [_check_transition(item, reader, episodes) for batch in loader for item in _unbatch(batch)]
    assert seen == _expected_transition_keys(reader)
