"""Damaged logs: cut shards, flipped bits, garbage metadata files.

The Reader must report which file it skipped, read everything else exactly,
and never crash, hang, or return wrong values.
"""

from __future__ import annotations

import json
import random
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

import envlogger
from envlogger.testing import catch_env

SHARD = 'envlogger-train.tfrecord-00000'


@pytest.fixture(scope='module')
def original(tmp_path_factory):
  """A 4-episode log (one shard) and its episodes' observations and lengths."""
  d = tmp_path_factory.mktemp('original')
  with envlogger.EnvLogger(catch_env.Catch(seed=5), data_directory=str(d)) as env:
    for i in range(4):
      ts = env.reset()
      for _ in range(3 + 2 * i):  # episodes of 4, 6, 8, 10 steps (the last three cut short)
        if ts.last():
          break
        ts = env.step(i % 3)
  with envlogger.Reader(d) as r:
    obs = [e.as_rlds()['steps']['observation'] for e in r.episodes]
  ds = d / 'envlogger' / '1.0.0'
  index = [json.loads(line) for line in (ds / 'envlogger_index' / f'{SHARD}.jsonl').read_text().splitlines()]
  return d, obs, index


def _copy(original, tmp_path) -> tuple[Path, Path]:
  d = tmp_path / 'copy'
  shutil.copytree(original[0], d)
  return d, d / 'envlogger' / '1.0.0'


def _read_all(d, **kwargs):
  with warnings.catch_warnings():
    warnings.simplefilter('ignore')
    r = envlogger.Reader(d, **kwargs)
  return r


def _ends(index):
  return [off + 16 + length for off, length, _ in index]


@pytest.mark.parametrize('drop_index', [False, True])
def test_a_shard_cut_at_any_byte_keeps_every_whole_episode(original, tmp_path, drop_index):
  d, ds = _copy(original, tmp_path)
  _, obs, index = original
  data = (ds / SHARD).read_bytes()
  if drop_index:
    (ds / 'envlogger_index' / f'{SHARD}.jsonl').unlink()
  ends = _ends(index)
  # A dense sample: every offset within 16 bytes of a frame boundary (headers,
  # footers), and every 11th byte in between.
  near = {c for e in [0, *ends] for c in range(e - 16, e + 17) if 0 <= c <= len(data)}
  for cut in sorted(near | set(range(0, len(data) + 1, 11))):
    (ds / SHARD).write_bytes(data[:cut])
    whole = sum(1 for e in ends if e <= cut)
    with _read_all(d) as r:
      assert len(r.episodes) == whole, cut
      for ep, expected in zip(r.episodes, obs):
        np.testing.assert_array_equal(ep.as_rlds()['steps']['observation'], expected)
      # Reported: a torn record, and index lines the cut shard no longer has.
      clean = cut in [0, *ends] if drop_index else cut == len(data)
      assert bool(r.problems) != clean, (cut, r.problems)


def test_flipped_bits_are_caught_by_checksums_and_reported(original, tmp_path):
  d, ds = _copy(original, tmp_path)
  _, obs, index = original
  data = (ds / SHARD).read_bytes()
  rng = random.Random(0)
  for _ in range(150):
    pos = rng.randrange(len(data))
    bad = bytearray(data)
    bad[pos] ^= 1 << rng.randrange(8)
    (ds / SHARD).write_bytes(bytes(bad))
    hit = next(i for i, e in enumerate(_ends(index)) if pos < e)
    # Without verify: the damaged episode raises, naming the file; the others read.
    with _read_all(d) as r:
      for i, expected in enumerate(obs):
        if i == hit:
          with pytest.raises(envlogger.DamagedEpisodeError, match=SHARD):
            r.episodes[i].as_rlds()
        else:
          np.testing.assert_array_equal(r.episodes[i].as_rlds()['steps']['observation'], expected)
    # A sequential pass (decoding blocks of episodes ahead) yields every episode
    # before the damaged one, then raises; so does a bulk read, at once.
    with _read_all(d) as r:
      seen = []
      with pytest.raises(envlogger.DamagedEpisodeError, match=SHARD):
        for episode in r.episodes:
          seen.append(episode.as_rlds()['steps']['observation'])
      assert len(seen) == hit
      for got, expected in zip(seen, obs):
        np.testing.assert_array_equal(got, expected)
      with pytest.raises(envlogger.DamagedEpisodeError, match=SHARD):
        r.as_columns()
    # With verify: it is skipped and reported.
    with _read_all(d, verify=True) as r:
      assert len(r.episodes) == len(obs) - 1
      assert any(SHARD in p and 'skipped' in p for p in r.problems)
      for ep, expected in zip(r.episodes, obs[:hit] + obs[hit + 1 :]):
        np.testing.assert_array_equal(ep.as_rlds()['steps']['observation'], expected)


@pytest.mark.parametrize('byte', range(12))
def test_a_damaged_frame_header_is_caught_by_every_read(original, tmp_path, byte):
  """A bit flipped in a record's length or in the length's checksum (a frame
  header): random access, a sequential pass and a bulk read all raise for it."""
  d, ds = _copy(original, tmp_path)
  _, obs, index = original
  data = bytearray((ds / SHARD).read_bytes())
  data[index[2][0] + byte] ^= 0x04
  (ds / SHARD).write_bytes(bytes(data))
  with _read_all(d) as r:
    with pytest.raises(envlogger.DamagedEpisodeError, match=SHARD):
      r.episodes[2].as_rlds()
    with pytest.raises(envlogger.DamagedEpisodeError, match=SHARD):
      r.as_columns()
    with pytest.raises(envlogger.DamagedEpisodeError, match=SHARD):
      list(r.steps)
    np.testing.assert_array_equal(r.episodes[3].as_rlds()['steps']['observation'], obs[3])


@pytest.mark.parametrize(
  'victim', ['envlogger_log.json', 'runs', f'envlogger_index/{SHARD}.jsonl', 'dataset_info.json']
)
def test_garbage_metadata_files_are_reported_and_worked_around(original, tmp_path, victim):
  d, ds = _copy(original, tmp_path)
  _, obs, _ = original
  if victim == 'runs':
    path = next((ds / 'envlogger_runs').glob('*.json'))
  else:
    path = ds / victim
  path.write_bytes(b'\x00garbage{[' * 7)
  with pytest.warns(UserWarning) if victim != 'dataset_info.json' else warnings.catch_warnings():
    r = envlogger.Reader(d)
  with r:
    assert len(r.episodes) == len(obs)
    for ep, expected in zip(r.episodes, obs):
      np.testing.assert_array_equal(ep.as_rlds()['steps']['observation'], expected)
    if victim != 'dataset_info.json':  # the Reader does not use TFDS's own files
      assert any(path.name in p for p in r.problems), r.problems


def test_unreadable_schema_everywhere_is_a_clear_error(original, tmp_path):
  d, ds = _copy(original, tmp_path)
  (ds / 'envlogger_log.json').write_text('{')
  (ds / 'metadata.json').write_text('[]')
  with pytest.raises(OSError, match='envlogger_log.json is unreadable'):
    envlogger.Reader(d)
