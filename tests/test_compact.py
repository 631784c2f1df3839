"""The compact format: `convert --format array_record` (ArrayRecord shards, zstd across episodes).

Round trips of every field are in the conformance suite (backend 'compact');
here: the files written, what TFDS reads of them, the command line, errors
and damage.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys

import numpy as np
import pytest
from conftest import log_catch_actor

import envlogger
from envlogger.convert import convert

DATASET = os.path.join('envlogger', '1.0.0')


def _cli(*args):
  return subprocess.run([sys.executable, '-m', 'envlogger', *map(str, args)], capture_output=True, text=True)


def _shard_bytes(dataset_dir, kind):
  return sum(
    os.path.getsize(os.path.join(dataset_dir, f)) for f in os.listdir(dataset_dir) if f'.{kind}-' in f
  )


@pytest.fixture(scope='module')
def catch_log(tmp_path_factory):
  """600 Catch episodes (step field 'row', episode metadata 'ret')."""
  d = tmp_path_factory.mktemp('catch') / 'log'
  log_catch_actor(d, seed=3, episodes=600)
  return d


def test_compact_shards_are_smaller_and_read_back_equal(catch_log, tmp_path):
  result = convert(catch_log, tmp_path / 'c', file_format='array_record', max_episodes_per_file=250)
  assert (result.episodes, result.problems) == (600, [])
  out = tmp_path / 'c' / DATASET
  shards = sorted(f for f in os.listdir(out) if '.array_record-' in f)
  assert shards == [f'envlogger-train.array_record-{i:05d}' for i in range(3)]
  info = json.loads((out / 'dataset_info.json').read_text())
  assert info['fileFormat'] == 'array_record'
  assert info['splits'][0]['shardLengths'] == ['250', '250', '100']
  features = (out / 'features.json').read_text()
  assert 'zlib' not in features.lower()  # boards stored raw: zstd compresses whole groups of episodes
  with envlogger.Reader(catch_log) as a, envlogger.Reader(tmp_path / 'c') as b:
    assert b.problems == []
    np.testing.assert_array_equal(a.episode_lengths(), b.episode_lengths())
    for i in (0, 249, 250, 599, 311):
      x, y = a.episodes[i].as_rlds(), b.episodes[i].as_rlds()
      for key in ('observation', 'action', 'reward', 'discount', 'row', 'is_first', 'is_last', 'is_terminal'):
        np.testing.assert_array_equal(x['steps'][key], y['steps'][key], err_msg=key)
      assert a.episodes[i].metadata == b.episodes[i].metadata
    np.testing.assert_array_equal(a.steps[1234].timestep.observation, b.steps[1234].timestep.observation)


def test_one_shard_of_many_episodes_is_far_smaller(catch_log, tmp_path):
  convert(catch_log, tmp_path / 'c', file_format='array_record')
  compact = _shard_bytes(tmp_path / 'c' / DATASET, 'array_record')
  tfrecord = _shard_bytes(catch_log / DATASET, 'tfrecord')
  # 6000 steps: the ArrayRecord file is 128 KiB (its minimum), the TFRecord about 5x that.
  assert compact * 3 < tfrecord, (compact, tfrecord)


def test_tfds_random_access_reads_the_compact_dataset(catch_log, tmp_path):
  import tensorflow_datasets as tfds  # noqa: PLC0415

  convert(catch_log, tmp_path / 'c', file_format='array_record', max_episodes_per_file=200)
  source = tfds.builder_from_directory(str(tmp_path / 'c' / DATASET)).as_data_source(split='train')
  assert len(source) == 600
  with envlogger.Reader(tmp_path / 'c') as r:
    for i in (0, 199, 200, 457, 599):
      ep = source[i]
      want = r.episodes[i]
      assert ep['episode_id'].decode() == want.episode_id
      got = np.stack([step['observation'] for step in ep['steps']])
      np.testing.assert_array_equal(got, want.as_rlds()['steps']['observation'])
      assert [int(s['action']) for s in ep['steps']] == want.as_rlds()['steps']['action'].tolist()
      assert float(ep['ret']) == want.metadata['ret']


def test_command_line_convert_info_and_validate(catch_log, tmp_path):
  out = _cli('convert', catch_log, tmp_path / 'c', '--format', 'array_record', '--quiet')
  assert out.returncode == 0, out.stderr
  assert 'convert: wrote 600 episodes (6000 steps)' in out.stdout
  info = _cli('info', tmp_path / 'c', '--json')
  assert info.returncode == 0, info.stderr
  summary = json.loads(info.stdout)
  assert summary['episodes'] == 600 and 'compact' in summary['format']
  valid = _cli('validate', tmp_path / 'c')
  assert valid.returncode == 0, valid.stdout + valid.stderr
  # Compact datasets are written whole: a second conversion into it is refused, in one line.
  again = _cli('convert', catch_log, tmp_path / 'c', '--format', 'array_record', '--quiet')
  assert again.returncode == 2
  assert 'already holds a log' in again.stderr and len(again.stderr.strip().splitlines()) == 1
  # recover has nothing to do on a compact dataset and leaves it readable.
  assert _cli('recover', tmp_path / 'c').returncode == 0
  with envlogger.Reader(tmp_path / 'c') as r:
    assert len(r.episodes) == 600 and r.problems == []


def test_as_tf_dataset_explains_it_reads_the_default_format(catch_log, tmp_path):
  convert(catch_log, tmp_path / 'c', file_format='array_record')
  with envlogger.Reader(tmp_path / 'c') as r, pytest.raises(TypeError, match='as_data_source'):
    r.as_tf_dataset()


def test_a_full_disk_is_one_line_and_the_source_is_intact(catch_log, tmp_path):
  def limit_file_size():  # in the child: files stop at 100 kB (EFBIG, SIGXFSZ ignored)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))

  out = subprocess.run(
    [
      sys.executable,
      '-m',
      'envlogger',
      'convert',
      str(catch_log),
      str(tmp_path / 'c'),
      '--format',
      'array_record',
    ],
    capture_output=True,
    text=True,
    preexec_fn=limit_file_size,
  )
  assert out.returncode == 2, out.stderr
  assert 'File too large' in out.stderr and 'source is intact' in out.stderr
  assert len(out.stderr.strip().splitlines()) == 1, out.stderr
  with envlogger.Reader(catch_log) as r:
    assert len(r.episodes) == 600 and r.problems == []


def test_unknown_format_is_refused_before_writing(catch_log, tmp_path):
  with pytest.raises(ValueError, match='file_format must be one of'):
    convert(catch_log, tmp_path / 'c', file_format='parquet')
  assert not (tmp_path / 'c').exists()


def test_a_damaged_shard_is_reported_and_the_others_read(catch_log, tmp_path):
  convert(catch_log, tmp_path / 'c', file_format='array_record', max_episodes_per_file=200)
  out = tmp_path / 'c' / DATASET
  with open(out / 'envlogger-train.array_record-00001', 'r+b') as f:
    f.truncate(70_000)  # cut inside: the footer (the ArrayRecord index) is gone
  with envlogger.Reader(tmp_path / 'c') as r, envlogger.Reader(catch_log) as src:
    assert len(r.episodes) == 400
    assert len(r.problems) == 1 and 'envlogger-train.array_record-00001' in r.problems[0]
    # Shards 0 and 2 are whole: source episodes 0-199 and 400-599.
    for got, want in ((0, 0), (199, 199), (200, 400), (399, 599)):
      a, b = r.episodes[got].as_rlds()['steps'], src.episodes[want].as_rlds()['steps']
      np.testing.assert_array_equal(a['observation'], b['observation'])
      assert r.episodes[got].metadata == src.episodes[want].metadata


def test_flipped_bits_are_caught_by_checksums(catch_log, tmp_path):
  convert(catch_log, tmp_path / 'c', file_format='array_record')
  shard = tmp_path / 'c' / DATASET / 'envlogger-train.array_record-00000'
  data = bytearray(shard.read_bytes())
  data[3000] ^= 0x10  # inside one compressed group of episodes (groups are about 1 KB here)
  shard.write_bytes(bytes(data))
  damaged = []
  with envlogger.Reader(tmp_path / 'c') as r:
    for i in range(len(r.episodes)):
      try:
        r.episodes[i].as_rlds()
      except envlogger.DamagedEpisodeError as e:
        assert f'array_record-00000 record {i}' in str(e)
        damaged.append(i)
  # One group: a run of consecutive episodes, each reported.
  assert damaged and damaged == list(range(damaged[0], damaged[-1] + 1)) and len(damaged) < 100
  with envlogger.Reader(tmp_path / 'c', verify=True) as r, envlogger.Reader(catch_log) as src:
    assert len(r.episodes) == 600 - len(damaged) and len(r.problems) == len(damaged)
    kept = [i for i in range(600) if i not in damaged]
    for got in (0, damaged[0], len(kept) - 1):  # the rest reads back exactly
      a, b = r.episodes[got].as_rlds()['steps'], src.episodes[kept[got]].as_rlds()['steps']
      np.testing.assert_array_equal(a['observation'], b['observation'])


def test_a_lost_index_is_rebuilt_from_the_records(catch_log, tmp_path):
  convert(catch_log, tmp_path / 'c', file_format='array_record')
  out = tmp_path / 'c' / DATASET
  index = out / 'envlogger_index' / 'envlogger-train.array_record-00000.jsonl'
  index.write_text('garbage\n')
  with envlogger.Reader(tmp_path / 'c') as r, envlogger.Reader(catch_log) as src:
    assert any('unreadable' in p for p in r.problems)
    np.testing.assert_array_equal(r.episode_lengths(), src.episode_lengths())
