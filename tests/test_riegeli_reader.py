"""envlogger.Reader on logs written by DeepMind's envlogger 1.3 (Riegeli backend).

Ground truth: tests/fixtures/envlogger13 (what the original's Reader returned
for the same files, and the same trajectories written by its TFDS backend).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from envlogger13 import FIXTURES, assert_same, assert_same_spec, from_typed

import envlogger

DATA = FIXTURES / 'catch_riegeli' / 'data'


@pytest.fixture(scope='module')
def expected():
  return json.loads((FIXTURES / 'catch_riegeli' / 'expected.json').read_text())


def _assert_step(actual, want, where):
  ts = actual.timestep
  assert int(ts.step_type) == want['step_type'], where
  assert_same(ts.reward, from_typed(want['reward']), f'{where}.reward')
  assert_same(ts.discount, from_typed(want['discount']), f'{where}.discount')
  assert_same(ts.observation, from_typed(want['observation']), f'{where}.observation')
  assert_same(actual.action, from_typed(want['action']), f'{where}.action')
  assert_same(actual.custom_data, from_typed(want['custom_data']), f'{where}.custom_data')


def test_reads_what_the_original_reader_returns(expected):
  with envlogger.Reader(data_directory=DATA) as r:
    assert r.problems == []
    assert (len(r.steps), len(r.episodes)) == (expected['len_steps'], expected['len_episodes'])
    assert_same(r.metadata(), from_typed(expected['metadata']), 'metadata')
    for name in ('observation_spec', 'action_spec', 'reward_spec', 'discount_spec'):
      assert_same_spec(getattr(r, name)(), from_typed(expected['specs'][name]), name)
    for i, want in enumerate(expected['steps']):  # sequentially, step by step
      _assert_step(r.steps[i], want, f'steps[{i}]')
    for j, (ep, want) in enumerate(zip(r.episodes, expected['episodes'])):
      assert len(ep) == want['num_steps']
      assert_same(r.episode_metadata()[j], from_typed(want['metadata']), f'episode_metadata[{j}]')
      assert_same(ep.metadata, from_typed(want['metadata']), f'episodes[{j}].metadata')
      for k, step in enumerate(ep):  # iterated
        _assert_step(step, expected['steps'][want['start'] + k], f'episodes[{j}][{k}]')
    flat = expected['steps']
    for i in np.random.default_rng(0).permutation(len(flat)):  # random access, cold and cached
      _assert_step(r.steps[int(i)], flat[i], f'steps[{i}]')
    _assert_step(r.steps[-1], flat[-1], 'steps[-1]')
    assert [step.timestep.step_type for step in r.steps[8:12]] == [1, 2, 0, 1]


def test_rlds_view_equals_the_original_tfds_backend_log():
  """The same five trajectories, written by the original's TFDS backend: our RLDS columns match."""
  tfds_expected = json.loads((FIXTURES / 'catch_tfds' / 'expected.json').read_text())
  with envlogger.Reader(DATA) as r:
    assert len(r.episodes) == len(tfds_expected['episodes'])
    for j, (ep, want) in enumerate(zip(r.episodes, tfds_expected['episodes'])):
      rlds_ep = ep.as_rlds()
      steps = rlds_ep['steps']
      assert len(steps['observation']) == len(want['steps'])
      for k, w in enumerate(want['steps']):
        for key in ('observation', 'action', 'reward', 'discount', 'is_first', 'is_last', 'is_terminal'):
          np.testing.assert_array_equal(steps[key][k], from_typed(w[key]), err_msg=f'{j}/{k}/{key}')
        assert steps['step_index'][k] == from_typed(w['step_index'])
      assert rlds_ep['episode_metadata'] == from_typed(want['metadata']['episode_return'])
      assert not rlds_ep['cut_short']


def test_values_handed_out_are_the_callers():
  with envlogger.Reader(DATA) as r:
    first = r.steps[3].timestep.observation.copy()
    r.steps[3].timestep.observation[...] = 7
    for step in r.episodes[0]:
      step.timestep.observation[...] = 7
    np.testing.assert_array_equal(r.steps[3].timestep.observation, first)
    np.testing.assert_array_equal(r.episodes[0][3].timestep.observation, first)


def test_damaged_log_is_reported_not_fatal(tmp_path, expected):
  log = tmp_path / 'log'
  shutil.copytree(DATA, log)
  shard = next(p for p in log.iterdir() if p.is_dir())
  steps = shard / 'steps.riegeli'
  data = bytearray(steps.read_bytes())
  data[300] ^= 0x40  # inside the only chunk's compressed data
  steps.write_bytes(bytes(data))
  with envlogger.Reader(log) as r:  # specs come from metadata.riegeli; steps are read on access
    assert len(r.episodes) == 5
    assert r.observation_spec() == from_typed(expected['specs']['observation_spec'])
    with pytest.raises(envlogger.DamagedEpisodeError, match='steps.riegeli'):
      list(r.episodes[2])
  with pytest.warns(UserWarning, match='problem'), envlogger.Reader(log, verify=True) as r:
    assert len(r.episodes) == 0  # the fixture's 50 steps share the one damaged chunk
    assert any('steps.riegeli' in p and 'skipped' in p for p in r.problems)
  # A truncated index: the episodes it still covers read normally.
  shutil.rmtree(log)
  shutil.copytree(DATA, log)
  offsets = next(p for p in log.iterdir() if p.is_dir()) / 'step_offsets.riegeli'
  offsets.write_bytes(offsets.read_bytes()[:70])
  with pytest.warns(UserWarning, match='problem'), envlogger.Reader(log) as r:
    assert r.problems and all('step_offsets.riegeli' in p or 'skipped' in p for p in r.problems)


def test_not_a_log(tmp_path):
  with pytest.raises(envlogger.NoLogError):
    envlogger.Reader(tmp_path)
  (tmp_path / 'metadata.riegeli').write_bytes(b'not riegeli at all, just some text' * 3)
  with pytest.raises(ValueError, match='metadata.riegeli'):
    envlogger.Reader(tmp_path)


def test_reading_does_not_import_tensorflow():
  code = (
    'import sys, envlogger\n'
    f'r = envlogger.Reader({str(DATA)!r})\n'
    'list(r.steps); r.episodes[0].as_rlds()\n'
    "print(sorted(m for m in ('tensorflow', 'tensorflow_datasets', 'apache_beam') if m in sys.modules))\n"
  )
  out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
  assert out.stdout.strip() == '[]'


def test_simple_chunk_log_and_a_record_that_does_not_decode(tmp_path, expected):
  """The original's reader takes any Riegeli chunk type: a log rewritten in zstd simple chunks reads
  the same; a step record that is not a Data message is named by file and position."""
  import base64  # noqa: PLC0415

  from riegeli_testing import write_simple_file  # noqa: PLC0415

  from envlogger._riegeli import storage  # noqa: PLC0415

  log = tmp_path / 'log'
  shutil.copytree(DATA, log)
  shard = next(p for p in log.iterdir() if p.is_dir())
  records = [base64.b64decode(s['raw_record_b64']) for s in expected['steps']]

  def rewrite(records):
    data, (begin,) = write_simple_file([records], compression='zstd')
    (shard / 'steps.riegeli').write_bytes(data)
    offsets = storage.Datum()
    offsets.shape.dim.add().size = len(records)
    offsets.values.int64_values.extend(begin + i for i in range(len(records)))
    offsets_file, _ = write_simple_file([[offsets.SerializeToString()]])
    (shard / 'step_offsets.riegeli').write_bytes(offsets_file)
    return begin

  rewrite(records)
  with envlogger.Reader(log) as r:
    assert r.problems == []
    for i, want in enumerate(expected['steps']):
      _assert_step(r.steps[i], want, f'steps[{i}]')
  begin = rewrite(records[:23] + [b'\xff\xff\xff'] + records[24:])
  with envlogger.Reader(log) as r:
    assert len(list(r.episodes[1])) == 10
    with pytest.raises(envlogger.DamagedEpisodeError, match=f'steps.riegeli record at position {begin + 23}'):
      list(r.episodes[2])
    with pytest.raises(envlogger.DamagedEpisodeError, match=f'position {begin + 23}'):
      r.steps[23]  # random access decodes that one record
