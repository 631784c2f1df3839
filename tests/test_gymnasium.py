"""envlogger.gym: gymnasium envs (single and vector) recorded and read back, every step checked."""

from __future__ import annotations

import copy
import pathlib
import re
from collections.abc import Mapping

import dm_env
import numpy as np
import pytest
from conftest import REPO, run_python
from dm_env import specs

import envlogger
from envlogger.specs import SpecError

gymnasium = pytest.importorskip('gymnasium', reason='envlogger.gym needs gymnasium (the gymnasium extra)')
from gymnasium import spaces  # noqa: E402

from envlogger import gym as eg  # noqa: E402

# ----------------------------------------------------------------------------
# Helpers: an env with every supported space, and a tape of the ground truth.


def rich_observation_space() -> spaces.Space:
  return spaces.Dict(
    {
      'pos': spaces.Box(np.array([-np.inf, 0.0]), np.array([np.inf, 1.0]), (2,), np.float64),
      'img': spaces.Box(0, 255, (3, 3), np.uint8),
      'grid': spaces.MultiDiscrete([[2, 3], [4, 5]], start=[[1, 1], [0, -1]]),
      'flags': spaces.MultiBinary(4),
      'mode': spaces.Discrete(3, start=-1),
      'pair': spaces.Tuple((spaces.Discrete(4), spaces.Text(8, min_length=0))),
      'mask': spaces.Box(0, 1, (2,), bool),
    }
  )


def rich_action_space() -> spaces.Space:
  return spaces.Tuple(
    (
      spaces.Box(-1.0, 1.0, (2,), np.float32),
      spaces.Discrete(5),
      spaces.MultiBinary((2, 2)),
      spaces.Dict({'word': spaces.Text(5), 'k': spaces.MultiDiscrete([3, 3])}),
    )
  )


class RichEnv(gymnasium.Env):
  """Random observations of every supported space; scripted episode lengths and endings.

  `schedule`: (number of steps, 'terminated' | 'truncated' | 'both') per episode, cycled.
  `ragged_info`: an info array changes shape between steps (vector envs cannot batch that).
  """

  metadata = {'render_modes': []}

  def __init__(self, schedule=((3, 'terminated'), (2, 'truncated'), (4, 'both')), ragged_info=True):
    self._ragged = ragged_info
    self.observation_space = rich_observation_space()
    self.action_space = rich_action_space()
    self._schedule = schedule
    self._episode = -1
    self._t = 0

  def reset(self, *, seed=None, options=None):
    super().reset(seed=seed)
    if seed is not None:
      self.observation_space.seed(seed)
    self._episode += 1
    self._t = 0
    return self.observation_space.sample(), {'seed': -1 if seed is None else seed, 'episode': self._episode}

  def step(self, action):
    self._t += 1
    length, ending = self._schedule[self._episode % len(self._schedule)]
    done = self._t >= length
    terminated = done and ending in ('terminated', 'both')
    truncated = done and ending in ('truncated', 'both')
    # Infos vary: keys, shapes and dtypes change between steps.
    info = {'t': self._t, 'v': np.arange(self._t % 3 if self._ragged else 2, dtype=np.int16)}
    if done:
      info['final'] = {'ret': 1.5, 'ok': True, 'name': 'é', 'pair': (1, b'\x00')}
    return self.observation_space.sample(), np.float32(self._t) / 4, terminated, truncated, info


class Tape(gymnasium.Wrapper):
  """Records what the wrapped env returned (deep copies), episode by episode."""

  def __init__(self, env):
    super().__init__(env)
    self.episodes: list[dict] = []
    self.last = None

  def reset(self, **kwargs):
    self.last = self.env.reset(**kwargs)
    self.episodes.append({'reset': copy.deepcopy(self.last), 'steps': []})
    return self.last

  def step(self, action):
    self.last = self.env.step(action)
    obs, reward, terminated, truncated, info = copy.deepcopy(self.last)
    self.episodes[-1]['steps'].append((copy.deepcopy(action), obs, reward, terminated, truncated, info))
    return self.last


def same(actual, expected, where='value'):
  """Nested equality: same dict keys, sequence lengths and leaf values (bit-exact floats)."""
  if isinstance(expected, Mapping):
    assert isinstance(actual, Mapping), f'{where}: {actual!r} is not a dict'
    assert set(actual) == set(expected), f'{where}: keys {sorted(actual)} != {sorted(expected)}'
    for k in expected:
      same(actual[k], expected[k], f'{where}/{k}')
  elif isinstance(expected, (tuple, list)):
    assert isinstance(actual, (tuple, list)) and len(actual) == len(expected), f'{where}: {actual!r}'
    for i, (a, e) in enumerate(zip(actual, expected)):
      same(a, e, f'{where}/{i}')
  elif isinstance(expected, (str, bytes)):
    assert actual == expected, f'{where}: {actual!r} != {expected!r}'
  else:
    a, e = np.asarray(actual), np.asarray(expected)
    assert a.shape == e.shape and np.array_equal(a, e), f'{where}: {actual!r} != {expected!r}'


def same_typed(actual, expected, where='info'):
  """`same`, and leaves of the same Python/numpy type and dtype (lossless info)."""
  same(actual, expected, where)
  if isinstance(expected, Mapping):
    for k in expected:
      same_typed(actual[k], expected[k], f'{where}/{k}')
  elif isinstance(expected, (tuple, list)):
    assert type(actual) is type(expected), f'{where}: {type(actual)} != {type(expected)}'
    for i, (a, e) in enumerate(zip(actual, expected)):
      same_typed(a, e, f'{where}/{i}')
  else:
    assert type(actual) is type(expected), f'{where}: {type(actual)} != {type(expected)}'
    if isinstance(expected, (np.ndarray, np.generic)):
      assert actual.dtype == expected.dtype, f'{where}: {actual.dtype} != {expected.dtype}'


def check_log(
  reader: envlogger.Reader, tape_episodes: list[dict], info: bool, exact_info: bool = True
) -> None:
  """Every step of every episode through envlogger.Reader and through GymReader.

  An episode whose last step did not end it must be cut short. `exact_info`:
  info leaves also keep their Python/numpy types.
  """
  same_info = same_typed if exact_info else same
  assert len(reader.episodes) == len(tape_episodes)
  gym_reader = eg.GymReader(reader=reader)
  assert len(gym_reader.episodes) == len(tape_episodes)
  for e, (episode, gym_episode, truth) in enumerate(zip(reader.episodes, gym_reader.episodes, tape_episodes)):
    steps, rlds = list(episode), episode.as_rlds()['steps']
    n = len(truth['steps'])
    ended = n > 0 and (truth['steps'][-1][3] or truth['steps'][-1][4])
    assert episode.cut_short == (not ended) == gym_episode.cut_short, f'episode {e}'
    assert len(steps) == n + 1 and len(gym_episode) == n
    # envlogger.Reader: dm_env terms.
    reset_obs, reset_info = truth['reset']
    assert steps[0].timestep.first() and steps[0].action is None and steps[0].timestep.reward is None
    same(steps[0].timestep.observation, reset_obs, 'reset observation')
    for k, (action, obs, reward, terminated, _, _) in enumerate(truth['steps'], 1):
      ts = steps[k].timestep
      last = k == n and ended
      assert ts.step_type == (dm_env.StepType.LAST if last else dm_env.StepType.MID)
      same(steps[k].action, action, f'episode {e} step {k} action')
      same(ts.observation, obs, f'episode {e} step {k} observation')
      assert ts.reward == np.float64(reward) and ts.reward.dtype == np.float64
      assert ts.discount == (0.0 if terminated else 1.0), f'episode {e} step {k}'
    assert rlds['is_terminal'].tolist() == [False] * n + [bool(ended and truth['steps'][-1][3])]
    assert rlds['is_last'].tolist() == [False] * n + [True]
    assert rlds['discount'].tolist() == [0.0 if t[3] else 1.0 for t in truth['steps']] + [0.0]
    # GymReader: gymnasium terms.
    same(gym_episode.reset_observation, reset_obs, 'reset observation')
    if info:
      same_info(gym_episode.reset_info, reset_info, 'reset info')
    else:
      assert gym_episode.reset_info == {}
    prev_obs = reset_obs
    for k, (t, (action, obs, reward, terminated, truncated, step_info)) in enumerate(
      zip(gym_episode, truth['steps'])
    ):
      same(t.observation, prev_obs, f'episode {e} transition {k} observation')
      same(t.action, action, f'episode {e} transition {k} action')
      same(t.next_observation, obs, f'episode {e} transition {k} next_observation')
      assert t.reward == np.float64(reward)
      # terminated and truncated together count as terminated.
      assert (t.terminated, t.truncated) == (bool(terminated), bool(truncated and not terminated))
      if info:
        same_info(t.info, step_info, f'episode {e} transition {k} info')
      else:
        assert t.info == {}
      prev_obs = obs
    assert gym_episode.terminated == bool(ended and truth['steps'][-1][3])
    assert gym_episode.truncated == bool(ended and not truth['steps'][-1][3])


# ----------------------------------------------------------------------------
# Spaces and specs.

SPACES = [
  spaces.Box(-1.0, 2.0, (3,), np.float32),
  spaces.Box(np.array([-np.inf, 0.0]), np.array([np.inf, np.inf]), (2,), np.float64),
  spaces.Box(0, 255, (4, 4, 3), np.uint8),
  spaces.Box(-5, 5, (2,), np.int32),  # integer Box stays a Box (not MultiDiscrete)
  spaces.Box(0, 1, (3,), bool),
  spaces.Discrete(4),
  spaces.Discrete(3, start=-1),
  spaces.MultiDiscrete([2, 3, 4]),
  spaces.MultiDiscrete([[2, 3], [4, 5]], dtype=np.int32, start=[[1, 1], [0, -1]]),
  spaces.MultiBinary(5),
  spaces.MultiBinary((2, 3)),
  spaces.Text(12, min_length=2),
  rich_observation_space(),
  rich_action_space(),
]


@pytest.mark.parametrize('space', SPACES, ids=lambda s: type(s).__name__)
def test_spaces_round_trip_through_specs(space):
  spec = eg.space_to_spec(space)
  back = eg.specs_to_space(spec)
  assert back == space, f'{back} != {space}'
  assert type(back) is type(space)


def test_space_to_spec_mapping():
  assert eg.space_to_spec(spaces.Discrete(4)) == specs.DiscreteArray(4, dtype=np.int64, name='Discrete')
  s = eg.space_to_spec(spaces.Discrete(3, start=-1))
  assert type(s) is specs.BoundedArray and (s.minimum, s.maximum) == (-1, 1) and s.dtype == np.int64
  s = eg.space_to_spec(spaces.MultiBinary(5))
  assert s.shape == (5,) and s.dtype == np.int8 and (s.minimum, s.maximum) == (0, 1)
  s = eg.space_to_spec(spaces.Box(-np.inf, np.inf, (2,), np.float32))
  assert type(s) is specs.BoundedArray and s.minimum == -np.inf and s.maximum == np.inf
  s = eg.space_to_spec(spaces.Text(7))
  assert type(s) is specs.StringArray and s.shape == () and s.string_type is str
  nest = eg.space_to_spec(rich_observation_space())
  assert isinstance(nest, dict) and isinstance(nest['pair'], tuple)


def test_specs_of_dm_env_logs_become_spaces():
  assert eg.specs_to_space(specs.Array((2,), np.float32)) == spaces.Box(-np.inf, np.inf, (2,), np.float32)
  assert eg.specs_to_space(specs.Array((), np.int8)) == spaces.Box(-128, 127, (), np.int8)
  assert eg.specs_to_space(specs.BoundedArray((), np.int64, 0, 2)) == spaces.Box(0, 2, (), np.int64)
  assert eg.specs_to_space(specs.DiscreteArray(3, dtype=np.int32)) == spaces.Discrete(3)
  assert eg.specs_to_space(specs.StringArray(())) == spaces.Text(eg.DEFAULT_TEXT_MAX_LENGTH, min_length=0)
  assert eg.specs_to_space([specs.Array((), bool)]) == spaces.Tuple((spaces.Box(0, 1, (), bool),))
  with pytest.raises(ValueError, match='scalar strings'):
    eg.specs_to_space(specs.StringArray((2,)))


def test_unsupported_spaces_are_named(tmp_path):
  space = spaces.Dict({'ok': spaces.Discrete(2), 'seq': spaces.Sequence(spaces.Discrete(2))})
  with pytest.raises(SpecError, match=r'space/seq: gymnasium space Sequence'):
    eg.space_to_spec(space)

  class SeqEnv(gymnasium.Env):
    observation_space = space
    action_space = spaces.Discrete(2)

  with pytest.raises(SpecError, match=r'observation_space/seq'):
    eg.GymLogger(SeqEnv(), data_directory=str(tmp_path / 'log'))
  assert not (tmp_path / 'log').exists()


# ----------------------------------------------------------------------------
# Single envs.


def test_cartpole_terminations_and_truncations_round_trip(tmp_path):
  tape = Tape(gymnasium.make('CartPole-v1', max_episode_steps=18))
  env = eg.GymLogger(tape, data_directory=str(tmp_path / 'log'), metadata={'agent': 'random'})
  env.action_space.seed(3)
  result = env.reset(seed=11)
  assert result is tape.last  # exactly what the wrapped env returned
  seeded = gymnasium.make('CartPole-v1').reset(seed=11)[0]
  np.testing.assert_array_equal(result[0], seeded)  # the seed went through
  endings = {'terminated': 0, 'truncated': 0}
  while min(endings.values()) < 3:
    result = env.step(env.action_space.sample())
    assert result is tape.last
    if result[2] or result[3]:
      endings['terminated' if result[2] else 'truncated'] += 1
      with pytest.raises(RuntimeError, match='call reset'):
        env.step(0)
      env.reset()
  for _ in range(4):  # an episode in flight at close(): cut short
    env.step(env.action_space.sample())
  env.close()
  with envlogger.Reader(data_directory=str(tmp_path / 'log')) as reader:
    check_log(reader, tape.episodes, info=False)
    meta = reader.metadata()
    assert meta['agent'] == 'random'
    assert meta['envlogger_gymnasium']['env_id'] == 'CartPole-v1'
    assert meta['envlogger_gymnasium']['info'] is None
  with eg.GymReader(str(tmp_path / 'log')) as gr:
    assert gr.observation_space == tape.observation_space
    assert gr.action_space == tape.action_space
    transitions = list(gr.transitions())
    assert len(transitions) == sum(len(ep['steps']) for ep in tape.episodes)
    assert sum(t.terminated for t in transitions) >= 3 and sum(t.truncated for t in transitions) >= 3


def test_every_space_with_info_round_trip(tmp_path):
  tape = Tape(RichEnv())
  env = eg.GymLogger(tape, data_directory=str(tmp_path / 'log'), record_info=True)
  env.action_space.seed(0)
  env.reset(seed=5)
  episodes = 0
  while episodes < 6:  # terminated, truncated, both, twice
    _, _, terminated, truncated, _ = env.step(env.action_space.sample())
    if terminated or truncated:
      episodes += 1
      env.reset()
  env.step(env.action_space.sample())
  env.reset()  # cuts the episode in flight short
  env.step(env.action_space.sample())
  env.close()
  with envlogger.Reader(data_directory=str(tmp_path / 'log')) as reader:
    check_log(reader, tape.episodes, info=True)
    assert [ep.cut_short for ep in reader.episodes[-2:]] == [True, True]
  with eg.GymReader(str(tmp_path / 'log')) as gr:
    assert gr.observation_space == tape.observation_space
    assert gr.action_space == tape.action_space
    endings = [(ep.terminated, ep.truncated) for ep in gr.episodes[:6]]
    assert endings == [(True, False), (False, True), (True, False)] * 2  # 'both' reads as terminated


class _Reordered:
  """A Reader whose episodes are a selection of another's (for check_log)."""

  def __init__(self, reader, order):
    self._reader = reader
    self.episodes = [reader.episodes[i] for i in order]

  def __getattr__(self, name):
    return getattr(self._reader, name)


def test_info_fn_step_fn_and_episode_fn(tmp_path):
  def info_fn(info):
    return {'t': info.get('t', 0), 'v3': np.resize(info.get('v', np.zeros(0, np.int16)), 3)}

  def step_fn(step, env):
    assert isinstance(env, gymnasium.Env)
    return {'first': step.is_first, 'r': 0.0 if step.reward is None else float(step.reward)}

  def episode_fn(step, env):
    return (
      {'end': 'terminated' if step.terminated else 'truncated'} if step.terminated or step.truncated else None
    )

  env = eg.GymLogger(
    RichEnv(((2, 'truncated'), (3, 'terminated'))),
    backend='in_memory',
    info_fn=info_fn,
    step_fn=step_fn,
    episode_fn=episode_fn,
  )
  env.action_space.seed(1)
  for _ in range(2):
    env.reset()
    done = False
    while not done:
      _, _, terminated, truncated, _ = env.step(env.action_space.sample())
      done = terminated or truncated
  env.close()
  with eg.GymReader(backend=env.backend) as gr:
    eps = list(gr.episodes)
    assert [ep.metadata for ep in eps] == [{'end': 'truncated'}, {'end': 'terminated'}]
    same(eps[0].reset_info, {'t': 0, 'v3': np.zeros(3, np.int16)})
    assert eps[0].reset_custom_data == {'first': True, 'r': 0.0}
    assert [int(t.info['t']) for t in eps[1]] == [1, 2, 3]
    assert eps[1][1].info['v3'].tolist() == [0, 1, 0]
    assert [t.custom_data for t in eps[1]] == [{'first': False, 'r': r} for r in (0.25, 0.5, 0.75)]
    rlds = gr.reader.episodes[1].as_rlds()['steps']
    assert rlds['info']['t'].tolist() == [0, 1, 2, 3] and rlds['r'].dtype == np.float64  # typed RLDS fields


def test_info_fn_shape_change_is_an_error_at_that_step(tmp_path):
  env = eg.GymLogger(
    RichEnv(((5, 'terminated'),)), backend='in_memory', info_fn=lambda info: {'v': info.get('v', np.zeros(0))}
  )
  env.reset()
  with pytest.raises(SpecError, match=r'^info_fn value/v: expected shape \(0,\), got \(1,\) \(info_fn must'):
    env.step(env.action_space.sample())  # v: shape (1,), unlike the reset's (0,)
  env.close()
  with eg.GymReader(backend=env.backend) as gr:  # what was recorded before is kept
    assert len(gr.episodes) == 1 and gr.episodes[0].cut_short and len(gr.episodes[0]) == 0


def test_unstorable_info_is_an_error_naming_the_key(tmp_path):
  class ObjEnv(RichEnv):
    def step(self, action):
      obs, reward, terminated, truncated, info = super().step(action)
      return obs, reward, terminated, truncated, {**info, 'thing': object()}

  env = eg.GymLogger(ObjEnv(), backend='in_memory', record_info=True)
  env.reset()
  with pytest.raises(SpecError, match=r'info/thing: values of type object.*info_fn'):
    env.step(env.action_space.sample())
  env.close()


def test_gym_reader_reads_a_dm_env_log():
  from envlogger.testing import catch_env  # noqa: PLC0415

  env = envlogger.EnvLogger(catch_env.Catch(), backend='in_memory', step_fn=lambda ts, a, e: {'n': 1})
  for _ in range(2):
    ts = env.reset()
    while not ts.last():
      ts = env.step(1)
  env.close()
  with eg.GymReader(backend=env.backend) as gr:
    assert gr.action_space == spaces.Discrete(3)
    assert gr.observation_space == spaces.Box(0.0, 1.0, (10, 5), np.float32)
    for ep in gr.episodes:
      assert len(ep) == 9 and ep.terminated and not ep.truncated and ep.env_index is None
      assert all(t.info == {} and t.custom_data == {'n': 1} for t in ep)
      assert [t.terminated for t in ep] == [False] * 8 + [True]


# ----------------------------------------------------------------------------
# Vector envs.


def vector_schedule(i):
  return (((2 + i, 'terminated'), (3, 'truncated')), ((1, 'both'), (4, 'terminated')), ((3, 'truncated'),))[i]


@pytest.mark.parametrize('mode', ['NextStep', 'SameStep', 'Disabled'])
def test_vector_env_one_episode_stream_per_sub_env(tmp_path, mode):
  n = 3
  fns = [lambda i=i: Tape(RichEnv(vector_schedule(i), ragged_info=False)) for i in range(n)]
  if hasattr(gymnasium.vector, 'AutoresetMode'):
    venv = gymnasium.vector.SyncVectorEnv(fns, autoreset_mode=gymnasium.vector.AutoresetMode(mode))
  elif mode == 'NextStep':
    venv = gymnasium.vector.SyncVectorEnv(fns)  # gymnasium 1.0: next-step autoreset only
  else:
    pytest.skip(f'gymnasium {gymnasium.__version__} has no {mode} autoreset mode')
  # The default mode writes n TFDS writers into one directory; the others (to save time) in memory.
  tfds = mode == 'NextStep'
  where = {'data_directory': str(tmp_path / 'log')} if tfds else {'backend': 'in_memory'}
  env = eg.VectorGymLogger(venv, record_info=True, **where)
  env.action_space.seed(2)
  env.reset(seed=4)
  for _ in range(14):
    result = env.step(env.action_space.sample())
    done = result[2] | result[3]
    if mode == 'Disabled' and done.any():
      env.reset(options={'reset_mask': done})
  env.close()
  tapes = [venv.envs[i] for i in range(n)]
  if tfds:
    readers = [envlogger.Reader(data_directory=str(tmp_path / 'log'))] * n
    assert len(readers[0].runs()) == n
  else:
    readers = [envlogger.Reader(backend=logger.backend) for logger in env.loggers]
  for i, reader in enumerate(readers):
    gr = eg.GymReader(reader=reader)
    mine = [k for k, ep in enumerate(gr.episodes) if ep.env_index == i]
    assert tfds or len(mine) == len(gr.episodes)
    mine.sort(key=lambda k: int(gr.episodes[k].episode_id.rsplit('/', 1)[1]))
    assert len(tapes[i].episodes) >= 3, f'sub-env {i}: too few episodes for the test'
    # A vector env batches infos: a sub-env's Python ints come back as numpy ints.
    check_log(_Reordered(reader, mine), tapes[i].episodes, info=True, exact_info=False)
    reader.close()


def test_vector_env_next_step_records_no_ignored_action(tmp_path):
  venv = gymnasium.vector.SyncVectorEnv(
    [lambda: RichEnv(((1, 'terminated'),), ragged_info=False) for _ in range(2)]
  )
  env = eg.VectorGymLogger(venv, backend=lambda **kw: envlogger.InMemoryBackendWriter(**kw))
  env.reset(seed=0)
  for _ in range(4):  # step, autoreset, step, autoreset
    env.step(env.action_space.sample())
  env.close()
  for logger in env.loggers:
    with eg.GymReader(backend=logger.backend) as gr:
      assert [len(ep) for ep in gr.episodes] == [1, 1, 0]
      assert [ep.terminated for ep in gr.episodes] == [True, True, False]
      assert gr.episodes[-1].cut_short


def test_vector_env_error_of_one_sub_env_leaves_the_others_recorded():
  def step_fn(step, env):
    assert isinstance(env, gymnasium.vector.VectorEnv)
    return {'x': np.zeros(1 if step.env_index == 1 and step.info.get('t') == 1 else 0)}  # bad once

  venv = gymnasium.vector.SyncVectorEnv([lambda: RichEnv(((2, 'terminated'),), ragged_info=False)] * 2)
  env = eg.VectorGymLogger(venv, backend='in_memory', step_fn=step_fn)
  env.reset(seed=0)
  with pytest.raises(SpecError, match=r'step_fn value/x: expected shape \(0,\), got \(1,\)'):
    env.step(env.action_space.sample())
  env.step(env.action_space.sample())  # both end their episode
  env.close()
  with eg.GymReader(backend=env.loggers[0].backend) as gr:
    assert [(len(ep), ep.terminated) for ep in gr.episodes] == [(2, True)]
  with eg.GymReader(backend=env.loggers[1].backend) as gr:  # all but the bad step
    assert [(len(ep), ep.terminated) for ep in gr.episodes] == [(1, True)]


def test_vector_env_refuses_a_backend_instance():
  venv = gymnasium.vector.SyncVectorEnv([lambda: RichEnv() for _ in range(2)])
  with pytest.raises(TypeError, match='one backend per sub-env'):
    eg.VectorGymLogger(venv, backend=envlogger.InMemoryBackendWriter())
  venv.close()


# ----------------------------------------------------------------------------
# The optional dependency.


def test_import_envlogger_does_not_import_gymnasium_and_missing_gymnasium_is_explained():
  code = (
    'import sys\n'
    'import envlogger\n'
    "assert 'gymnasium' not in sys.modules, 'import envlogger imported gymnasium'\n"
    "sys.modules['gymnasium'] = None\n"
    'try:\n'
    '  import envlogger.gym\n'
    'except ImportError as e:\n'
    '  print(e)\n'
  )
  proc = run_python(code, timeout=120)
  assert proc.returncode == 0, proc.stderr
  assert 'pip install "envlogger-rlds[gymnasium]"' in proc.stdout


def test_docs_examples_run(tmp_path):
  text = (pathlib.Path(REPO) / 'docs' / 'gymnasium.md').read_text()
  blocks = re.findall(r'```python\n(.*?)```', text, flags=re.S)
  assert len(blocks) == 4
  namespace: dict = {}
  for block in blocks:
    exec(compile(block.replace("'/tmp/", f"'{tmp_path}/"), 'docs/gymnasium.md', 'exec'), namespace)
  with eg.GymReader(str(tmp_path / 'gym_logs')) as r:
    assert len(list(r.transitions())) == 200
    assert all(isinstance(t.info, dict) for t in r.transitions())
  with eg.GymReader(str(tmp_path / 'gym_vector_logs')) as r:
    assert {ep.env_index for ep in r.episodes} == {0, 1, 2}
    # 3 x 100 steps: transitions, and next-step autoresets (each starts an episode after the first three).
    assert len(list(r.transitions())) + len(r.episodes) - 3 == 300
  assert namespace['info_fn']({'lives': 3}) == {'lives': 3, 'x': 0.0}
