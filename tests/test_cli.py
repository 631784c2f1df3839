"""The `envlogger` command line, run as a subprocess on real logs."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import envlogger
from envlogger.testing import catch_env

pytestmark = pytest.mark.slow  # every command runs in a fresh interpreter


def _cli(*args) -> subprocess.CompletedProcess:
  return subprocess.run(
    [sys.executable, '-m', 'envlogger', *map(str, args)], capture_output=True, text=True, timeout=300
  )


def _log(directory, seed, episodes, invalid=()):
  """Catch episodes; episode metadata = the episode's index; `invalid` episodes marked invalid."""
  index = [0]
  with envlogger.EnvLogger(
    catch_env.Catch(seed=seed),
    data_directory=str(directory),
    metadata={'seed': seed},
    episode_fn=lambda ts, a, e: index[0],
  ) as env:
    for i in range(episodes):
      index[0] = i
      ts = env.reset()
      if i in invalid:
        env.mark_episode_invalid()
      while not ts.last():
        ts = env.step((i + seed) % 3)


def _episodes(directory) -> list[tuple]:
  """Every episode as comparable values: (actions, rewards, observations sum, invalid)."""
  with envlogger.Reader(directory) as r:
    out = []
    for ep in r.episodes:
      steps = ep.as_rlds()['steps']
      out.append(
        (
          tuple(steps['action'].tolist()),
          tuple(steps['reward'].tolist()),
          float(steps['observation'].sum()),
          ep.invalid,
          ep.metadata,
        )
      )
    return out


@pytest.fixture
def logs(tmp_path):
  _log(tmp_path / 'a', seed=0, episodes=6, invalid=(1, 4))
  _log(tmp_path / 'b', seed=1, episodes=3)
  return tmp_path


def test_info_and_validate(logs):
  out = _cli('info', logs / 'a')
  assert out.returncode == 0, out.stderr
  assert 'episodes' in out.stdout and ' 6\n' in out.stdout and 'BoundedArray(shape=(10, 5)' in out.stdout
  rows = json.loads(_cli('info', logs / 'a', '--json').stdout)
  assert rows['episodes'] == 6 and rows['steps'] == 60 and rows['metadata'] == {'seed': 0}
  out = _cli('validate', logs / 'a')
  assert out.returncode == 0 and 'sound' in out.stdout
  # A damaged record: exit 1, the report names the shard.
  shard = next((logs / 'a' / 'envlogger' / '1.0.0').glob('envlogger-train.tfrecord-*'))
  data = bytearray(shard.read_bytes())
  data[len(data) // 2] ^= 0xFF
  shard.write_bytes(bytes(data))
  out = _cli('validate', logs / 'a')
  assert out.returncode == 1 and shard.name in out.stdout and 'problem' in out.stdout


def test_merge_filter_delete_reshard(logs):
  a, b = _episodes(logs / 'a'), _episodes(logs / 'b')
  assert _cli('merge', logs / 'a', logs / 'b', logs / 'm', '--quiet').returncode == 0
  assert _episodes(logs / 'm') == a + b
  with envlogger.Reader(logs / 'm') as r:
    assert r.metadata()['seed'] == 0
  out = _cli('filter', logs / 'a', logs / 'f', '--drop-invalid')
  assert out.returncode == 0 and 'wrote 4 episodes' in out.stdout
  assert _episodes(logs / 'f') == [e for e in a if not e[3]]
  assert _cli('filter', logs / 'a', logs / 'k', '--keep', 'index % 2 == 0 and length == 10').returncode == 0
  assert _episodes(logs / 'k') == a[::2]
  assert _cli('filter', logs / 'a', logs / 'k2', '--keep', 'metadata >= 3').returncode == 0
  assert [e[4] for e in _episodes(logs / 'k2')] == [3, 4, 5]
  assert _cli('delete', logs / 'a', logs / 'd', '--episodes', '0,2-3').returncode == 0
  assert _episodes(logs / 'd') == [a[1], a[4], a[5]]
  assert _cli('reshard', logs / 'a', logs / 'r', '--episodes-per-shard', '2').returncode == 0
  assert _episodes(logs / 'r') == a
  assert len(list((logs / 'r' / 'envlogger' / '1.0.0').glob('envlogger-train.tfrecord-*'))) == 3
  with envlogger.Reader(logs / 'r') as r:
    np.testing.assert_array_equal(r.episode_lengths(), [10] * 6)


@pytest.mark.parametrize(
  'args',
  [
    ('info', 'nowhere'),
    ('validate', 'nowhere'),
    ('merge', 'a', 'nowhere', 'out'),
    ('merge', 'a', 'a'),
    ('filter', 'a', 'out', '--keep', 'metadata['),
    ('filter', 'a', 'out', '--keep', 'undefined_name > 1'),
    ('delete', 'a', 'out', '--episodes', 'one'),
  ],
)
def test_user_mistakes_are_one_line(logs, args):
  out = _cli(*(logs / a if a in ('a', 'nowhere', 'out') else a for a in args))
  assert out.returncode == 2, out
  assert 'Traceback' not in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_plot_and_show(logs, tmp_path):
  pil = pytest.importorskip('PIL.Image', reason='plot/show need the plot extra (Pillow, matplotlib)')
  pytest.importorskip('matplotlib', reason='plot/show need the plot extra (matplotlib)')
  out = _cli('plot', logs / 'a', tmp_path / 'returns.png')
  assert out.returncode == 0, out.stderr
  with pil.open(tmp_path / 'returns.png') as im:
    assert im.format == 'PNG' and im.size == (800, 600)
  # Catch's board is float32: a plot over time.
  out = _cli('show', logs / 'a', tmp_path / 'ep.png', '--episode', '-1')
  assert out.returncode == 0 and 'plot of 10 frames' in out.stdout, out.stderr
  assert _cli('show', logs / 'a', tmp_path / 'ep.gif').returncode == 2  # no image to animate
  # Image observations: a GIF with one frame per step, and a contact sheet.
  from dm_env import specs  # noqa: PLC0415

  from envlogger.testing import spec_env  # noqa: PLC0415

  env = spec_env.SpecEnv(
    {'frame': specs.Array((12, 10, 3), np.uint8), 'pos': specs.Array((2,), np.float32)},
    specs.DiscreteArray(3),
    episode_lengths=(7,),
    seed=1,
  )
  with envlogger.EnvLogger(env, data_directory=str(tmp_path / 'pix')) as logged:
    ts = logged.reset()
    while not ts.last():
      ts = logged.step(1)
  out = _cli('show', tmp_path / 'pix', tmp_path / 'ep.gif')
  assert out.returncode == 0, out.stderr
  with pil.open(tmp_path / 'ep.gif') as im:
    assert im.n_frames == 8 and im.size == (10, 12)  # reset + 7 steps
  assert _cli('show', tmp_path / 'pix', tmp_path / 'sheet.png').returncode == 0
  with pil.open(tmp_path / 'sheet.png') as im:
    assert im.size == (3 * 12, 3 * 14)  # 8 frames in a 3 x 3 grid, 2-pixel gutters
  assert _cli('show', tmp_path / 'pix', tmp_path / 'x.png', '--episode', '5').returncode == 2
