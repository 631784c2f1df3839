"""`envlogger convert`: logs of DeepMind's envlogger (Riegeli) to this package's RLDS/TFDS format."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
from envlogger13 import FIXTURES

import envlogger

RIEGELI = FIXTURES / 'catch_riegeli' / 'data'


def _cli(*args):
  return subprocess.run([sys.executable, '-m', 'envlogger', *map(str, args)], capture_output=True, text=True)


def _assert_same_log(src, dst):
  with envlogger.Reader(src) as a, envlogger.Reader(dst) as b:
    assert len(a.episodes) == len(b.episodes) and len(a.steps) == len(b.steps)
    for x, y in zip(a.steps, b.steps):
      assert x.timestep.step_type == y.timestep.step_type
      for u, v in ((x.timestep.reward, y.timestep.reward), (x.timestep.discount, y.timestep.discount)):
        assert (u is None and v is None) or u == v
      np.testing.assert_array_equal(x.timestep.observation, y.timestep.observation)
      assert (x.action is None and y.action is None) or x.action == y.action
      assert x.custom_data == y.custom_data
    assert list(a.episode_metadata()) == list(b.episode_metadata())
    assert [e.cut_short for e in a.episodes] == [e.cut_short for e in b.episodes]
    for name in ('observation_spec', 'action_spec', 'reward_spec', 'discount_spec'):
      assert getattr(a, name)() == getattr(b, name)()
    user = {k: v for k, v in a.metadata().items() if k != 'environment_specs'}
    assert {k: v for k, v in b.metadata().items() if k != 'environment_specs'} == user


def test_convert_riegeli_log_on_the_command_line(tmp_path):
  out = _cli('convert', RIEGELI, tmp_path / 'out')
  assert out.returncode == 0, out.stderr
  assert 'convert: wrote 5 episodes (50 steps)' in out.stdout
  _assert_same_log(RIEGELI, tmp_path / 'out')
  # Converting again appends (same specs): twice the episodes.
  assert _cli('convert', RIEGELI, tmp_path / 'out', '--quiet').returncode == 0
  with envlogger.Reader(tmp_path / 'out') as r:
    assert len(r.episodes) == 10


def test_convert_errors_are_one_line(tmp_path):
  for args in (('convert', tmp_path / 'nothing', tmp_path / 'o'), ('convert', RIEGELI, RIEGELI)):
    out = _cli(*args)
    assert out.returncode == 2
    assert 'Traceback' not in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_convert_damaged_source(tmp_path):
  from envlogger.convert import convert  # noqa: PLC0415

  src = tmp_path / 'src'
  shutil.copytree(RIEGELI, src)
  steps = next(p for p in src.iterdir() if p.is_dir()) / 'steps.riegeli'
  data = bytearray(steps.read_bytes())
  data[300] ^= 0x40
  steps.write_bytes(bytes(data))
  out = _cli('convert', src, tmp_path / 'a')
  assert out.returncode == 2 and 'steps.riegeli' in out.stderr and 'Traceback' not in out.stderr
  with pytest.warns(UserWarning):
    result = convert(src, tmp_path / 'b', verify=True)
  assert result.episodes == 0 and len(result.problems) == 5


@pytest.mark.slow
def test_converted_log_loads_with_tfds(tmp_path):
  from envlogger.convert import convert  # noqa: PLC0415

  result = convert(RIEGELI, tmp_path / 'out')
  import tensorflow_datasets as tfds  # noqa: PLC0415

  episodes = list(tfds.as_numpy(tfds.builder_from_directory(result.dataset_dir).as_dataset(split='train')))
  assert len(episodes) == 5
  assert sorted(float(ep['episode_metadata']) for ep in episodes) == sorted(
    float(m) for m in envlogger.Reader(RIEGELI).episode_metadata()
  )
