"""Sources and datasets on s3:// (moto's S3 server on loopback, reached through fsspec / s3fs and pyarrow)."""

from __future__ import annotations

import json
import os
import urllib.request

import numpy as np
import pytest
from conftest import run_python

import envlogger
from envlogger.testing import catch_env

pytestmark = pytest.mark.slow
tfds_builder = pytest.importorskip('tfds_builder', reason='tfds_builder ships with this repository')
moto_server = pytest.importorskip('moto.server', reason='an S3 server on loopback needs moto[server]')
s3fs = pytest.importorskip('s3fs', reason='s3:// through fsspec needs s3fs')

from tfds_builder import remote  # noqa: E402

_KEYS = ('observation', 'action', 'reward', 'discount', 'row', 'is_terminal')


@pytest.fixture
def s3_endpoint():
  """An empty S3 server on loopback with a bucket 'bucket'; AWS_* variables point every client at it."""
  server = moto_server.ThreadedMotoServer(ip_address='127.0.0.1', port=0, verbose=False)
  server.start()
  host, port = server.get_host_and_port()
  endpoint = f'http://{host}:{port}'
  # moto keeps its buckets in this process's memory, across servers: start empty.
  urllib.request.urlopen(urllib.request.Request(f'{endpoint}/moto-api/reset', method='POST')).close()
  try:
    with pytest.MonkeyPatch.context() as mp:
      for var in ('AWS_PROFILE', 'AWS_SESSION_TOKEN', 'AWS_CONFIG_FILE', 'AWS_SHARED_CREDENTIALS_FILE'):
        mp.delenv(var, raising=False)
      mp.setenv('AWS_ACCESS_KEY_ID', 'testing')
      mp.setenv('AWS_SECRET_ACCESS_KEY', 'testing')
      mp.setenv('AWS_DEFAULT_REGION', 'us-east-1')
      mp.setenv('AWS_ENDPOINT_URL', endpoint)  # botocore (s3fs) and pyarrow read it
      # TFDS paths go through etils epath: its fsspec backend (s3fs), not tf.io.gfile (no S3 in TF 2.21).
      mp.setenv('EPATH_USE_TF', 'false')
      s3fs.S3FileSystem.clear_instance_cache()
      s3fs.S3FileSystem(endpoint_url=endpoint).mkdir('bucket')
      yield endpoint
  finally:
    s3fs.S3FileSystem.clear_instance_cache()
    server.stop()


def _log(directory, seed: int, episodes: int) -> None:
  with envlogger.EnvLogger(
    catch_env.Catch(seed=seed),
    data_directory=str(directory),
    step_fn=lambda ts, a, e: {'row': np.int32(seed)},
  ) as env:
    for i in range(episodes):
      ts = env.reset()
      while not ts.last():
        ts = env.step((i + seed) % 3)


def _expected(sources) -> dict[str, dict]:
  out = {}
  for d in sources:
    with envlogger.Reader(d) as r:
      for ep in r.episodes:
        steps = ep.as_rlds()['steps']
        out[ep.episode_id] = {k: steps[k].tolist() for k in _KEYS}
  return out


def test_s3_sources_and_datasets(s3_endpoint, tmp_path):
  """Logs on s3:// -> datasets on s3://; read back from s3:// in a process without envlogger."""
  local_logs = [tmp_path / 'logs' / f'actor{k}' for k in range(2)]
  for k, d in enumerate(local_logs):
    _log(d, seed=k, episodes=3)
    remote.upload(d, f's3://bucket/logs/actor{k}')
  fs = s3fs.S3FileSystem(endpoint_url=s3_endpoint)
  assert fs.ls('bucket/logs') == ['bucket/logs/actor0', 'bucket/logs/actor1']
  expected = _expected(local_logs)

  # Sources on s3 (a glob) are staged locally; the dataset is built locally, then uploaded.
  config = tfds_builder.BuildConfig(
    name='catch_s3', sources=['s3://bucket/logs/actor*'], splits={'train': 0.5, 'test': 0.5}
  )
  staging = tmp_path / 'staging'
  staging.mkdir()
  url = remote.build(
    config, 's3://bucket/datasets', storage_options={'endpoint_url': s3_endpoint}, staging_dir=str(staging)
  )
  assert url == 's3://bucket/datasets/catch_s3/1.0.0'
  names = sorted(os.path.basename(p) for p in fs.find('bucket/datasets/catch_s3/1.0.0'))
  assert {'dataset_info.json', 'features.json'} <= set(names)
  assert [n for n in names if '.tfrecord-' in n] == [
    'catch_s3-test.tfrecord-00000-of-00001',
    'catch_s3-train.tfrecord-00000-of-00001',
  ]
  assert not list(staging.iterdir())  # the staged sources and the local build are removed
  # Built already: not again.
  assert remote.build(config, 's3://bucket/datasets') == url

  # The same episodes in Parquet shards: TFDS reads those with pyarrow, which reaches s3:// itself.
  parquet = tfds_builder.BuildConfig(
    name='catch_s3_parquet', sources=['s3://bucket/logs/actor*'], splits={'train': 0.5, 'test': 0.5}
  )
  remote.build(parquet, 's3://bucket/datasets', file_format='parquet')

  # A TFRecord dataset on s3 is copied back (tf.data cannot open s3:// files in TF 2.21).
  copy = remote.download(url, tmp_path / 'copy')
  code = f"""
import json, sys
import tensorflow as tf
import tensorflow_datasets as tfds

def steps(ds):
  out = {{}}
  for ep in ds:
    s = tf.nest.map_structure(lambda t: t.numpy().tolist(), next(iter(ep['steps'].batch(100000))))
    out[ep['episode_id'].numpy().decode()] = {{k: s[k] for k in {_KEYS!r}}}
  return out

result = {{}}
# Metadata straight from s3:// (etils epath -> fsspec -> s3fs).
info = tfds.builder_from_directory({url!r}).info
result['splits'] = {{s: info.splits[s].num_examples for s in ('train', 'test')}}
# Parquet shards straight from s3://, with tfds.load.
result['parquet'] = {{s: steps(tfds.load('catch_s3_parquet', data_dir='s3://bucket/datasets', split=s))
                      for s in ('train', 'test')}}
# The TFRecord dataset, from its local copy.
builder = tfds.builder_from_directory({copy!r})
result['tfrecord'] = {{s: steps(builder.as_dataset(split=s)) for s in ('train', 'test')}}
assert 'envlogger' not in sys.modules and 'tfds_builder' not in sys.modules
print(json.dumps(result))
"""
  proc = run_python(code, timeout=900)
  assert proc.returncode == 0, proc.stderr[-4000:]
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  assert result['splits'] == {'train': 3, 'test': 3}
  for layout in ('tfrecord', 'parquet'):
    train, test = result[layout]['train'], result[layout]['test']
    assert not set(train) & set(test)
    assert {**train, **test} == expected, layout  # every step of every episode, once
  assert result['tfrecord'] == result['parquet']  # the same splits


def test_remote_errors_and_staging(s3_endpoint, tmp_path):
  """Patterns on s3 that match nothing fail like local ones; local sources are kept as they are."""
  assert remote.is_url('s3://bucket/x') and remote.is_url('gs://b/x') and not remote.is_url('/data/x')
  assert not remote.is_url('file:///data/x')
  config = tfds_builder.BuildConfig(name='x', sources=['s3://bucket/nothing*', str(tmp_path)])
  with pytest.raises(tfds_builder.SourceError, match="'s3://bucket/nothing\\*' matches no directory"):
    remote.stage_sources(config, tmp_path / 'staged')
  _log(tmp_path / 'log', seed=0, episodes=1)
  remote.upload(tmp_path / 'log', 's3://bucket/one/log')
  staged = remote.stage_sources(
    tfds_builder.BuildConfig(name='x', sources=['s3://bucket/one/log', str(tmp_path / 'log')]),
    tmp_path / 'staged',
  )
  assert staged.sources == [str(tmp_path / 'staged' / 's3' / 'bucket' / 'one' / 'log'), str(tmp_path / 'log')]
  local = sorted(p.relative_to(tmp_path / 'log') for p in (tmp_path / 'log').rglob('*') if p.is_file())
  copied = sorted(p.relative_to(staged.sources[0]) for p in (tmp_path / 'staged').rglob('*') if p.is_file())
  assert copied == local
  with envlogger.Reader(staged.sources[0]) as a, envlogger.Reader(tmp_path / 'log') as b:
    assert [e.episode_id for e in a.episodes] == [e.episode_id for e in b.episodes]
