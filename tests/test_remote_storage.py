"""Sources and datasets on s3:// (moto's S3 server on loopback, reached through fsspec / s3fs and pyarrow)."""

from __future__ import annotations

import json
import os
import urllib.request

import numpy as np
import pytest
from conftest import log_catch_actor, steps_by_episode

import envlogger

pytestmark = pytest.mark.slow
tfds_builder = pytest.importorskip('tfds_builder', reason='tfds_builder ships with this repository')
moto_server = pytest.importorskip(
  'moto.server', reason='an S3 server on loopback needs moto[s3] and Flask (the test extra)'
)
s3fs = pytest.importorskip('s3fs', reason='s3:// through fsspec needs s3fs')

from tfds_builder import cli, remote  # noqa: E402

_KEYS = ('observation', 'action', 'reward', 'discount', 'row', 'is_terminal')


@pytest.fixture(scope='module')
def _moto_endpoint():
  """One S3 server on loopback for the module: TFDS (etils epath) keeps its s3fs client, and so the
  endpoint it first saw, for the rest of the process."""
  server = moto_server.ThreadedMotoServer(ip_address='127.0.0.1', port=0, verbose=False)
  server.start()
  host, port = server.get_host_and_port()
  try:
    yield f'http://{host}:{port}'
  finally:
    server.stop()


@pytest.fixture
def s3_endpoint(_moto_endpoint):
  """An empty S3 server on loopback with a bucket 'bucket'; AWS_* variables point every client at it."""
  endpoint = _moto_endpoint
  # moto keeps its buckets in this process's memory: start empty.
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
      _epath_backend_cache_clear()
      s3fs.S3FileSystem.clear_instance_cache()
      s3fs.S3FileSystem(endpoint_url=endpoint).mkdir('bucket')
      yield endpoint
  finally:
    _epath_backend_cache_clear()
    s3fs.S3FileSystem.clear_instance_cache()


def _epath_backend_cache_clear() -> None:
  """epath decides once per process whether s3:// goes through TensorFlow: let it read EPATH_USE_TF again."""
  from etils.epath import gpath  # noqa: PLC0415

  cached = getattr(gpath, '_is_tf_installed', None)
  if hasattr(cached, 'cache_clear'):
    cached.cache_clear()


def _expected_steps(sources) -> dict[str, dict]:
  return steps_by_episode(sources, _KEYS)


def _steps(ds) -> dict[str, dict]:
  """{episode_id: {key: values of every step}} of a tf.data dataset of RLDS episodes."""
  import tensorflow_datasets as tfds  # noqa: PLC0415

  out = {}
  for ep in tfds.as_numpy(ds):
    out[ep['episode_id'].decode()] = {k: np.stack([s[k] for s in ep['steps']]).tolist() for k in _KEYS}
  return out


def _logs_on_s3(tmp_path) -> list:
  """Two small logs written locally and uploaded to s3://bucket/logs/actor{0,1}; returns the local ones."""
  local_logs = [tmp_path / 'logs' / f'actor{k}' for k in range(2)]
  for k, d in enumerate(local_logs):
    log_catch_actor(d, seed=k, episodes=3)
    remote.upload(d, f's3://bucket/logs/actor{k}')
  return local_logs


def test_s3_sources_and_datasets(s3_endpoint, tmp_path):
  """Logs on s3:// -> datasets on s3://; read back from s3:// in a process without envlogger."""
  local_logs = _logs_on_s3(tmp_path)
  fs = s3fs.S3FileSystem(endpoint_url=s3_endpoint)
  assert fs.ls('bucket/logs') == ['bucket/logs/actor0', 'bucket/logs/actor1']
  expected = _expected_steps(local_logs)

  # Sources on s3 (a glob) are staged locally; the dataset is built locally, then uploaded.
  config_json = json.dumps(
    {'name': 'catch_s3', 'sources': ['s3://bucket/logs/actor*'], 'splits': {'train': 0.5, 'test': 0.5}}
  )
  config = tfds_builder.BuildConfig(**json.loads(config_json))
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
  metadata = json.loads(fs.cat('bucket/datasets/catch_s3/1.0.0/metadata.json'))
  assert len(metadata['envlogger']['sources']) == 2
  assert all(s.startswith('s3://bucket/logs/actor') for s in metadata['envlogger']['sources'])
  # Built already: not again.
  assert remote.build(config, 's3://bucket/datasets') == url

  # The same episodes in Parquet shards (TFDS reads those with pyarrow, which reaches s3:// itself),
  # from the command line.
  parquet = tmp_path / 'parquet.json'
  parquet.write_text(json.dumps({**json.loads(config_json), 'name': 'catch_s3_parquet'}))
  argv = ['build', str(parquet), 's3://bucket/datasets', '--file_format', 'parquet']
  assert cli.main(argv) == 0

  # Read back in this process (a fresh process costs a second TensorFlow import; test_tfds_builder.py
  # checks loading without envlogger imported). Metadata straight from s3:// (etils epath -> s3fs).
  import tensorflow_datasets as tfds  # noqa: PLC0415

  info = tfds.builder_from_directory(url).info
  assert {s: info.splits[s].num_examples for s in ('train', 'test')} == {'train': 3, 'test': 3}
  # Parquet shards straight from s3://, with tfds.load; a TFRecord dataset on s3 from its local copy
  # (tf.data cannot open s3:// files in TF 2.21).
  copy = remote.download(url, tmp_path / 'copy')
  builder = tfds.builder_from_directory(copy)
  result = {
    'parquet': {
      s: _steps(tfds.load('catch_s3_parquet', data_dir='s3://bucket/datasets', split=s))
      for s in ('train', 'test')
    },
    'tfrecord': {s: _steps(builder.as_dataset(split=s)) for s in ('train', 'test')},
  }
  for layout in ('tfrecord', 'parquet'):
    train, test = result[layout]['train'], result[layout]['test']
    assert not set(train) & set(test)
    assert {**train, **test} == expected, layout  # every step of every episode, once
  assert result['tfrecord'] == result['parquet']  # the same splits


def test_tfds_build_of_a_module_with_s3_sources_published_to_s3(s3_endpoint, tmp_path):
  """TFDS's own command line (run in this process): sources staged from s3, the result published to s3."""
  pytest.importorskip('mlcroissant', reason="TFDS's `tfds` command imports mlcroissant at start")
  pytest.importorskip('apache_beam', reason="TFDS's `tfds` command imports Apache Beam at start")
  local_logs = _logs_on_s3(tmp_path)
  config = tmp_path / 'catch_s3_cli.json'
  config.write_text(json.dumps({'name': 'catch_s3_cli', 'sources': ['s3://bucket/logs/actor*']}))
  assert cli.main(['new-module', str(config), str(tmp_path / 'modules')]) == 0
  from tensorflow_datasets.scripts.cli import main as tfds_cli  # noqa: PLC0415

  tfds_cli.main(
    tfds_cli._parse_flags(
      ['tfds', 'build', str(tmp_path / 'modules' / 'catch_s3_cli')]
      + ['--data_dir', str(tmp_path / 'local_data'), '--publish_dir', 's3://bucket/published']
    )
  )
  fs = s3fs.S3FileSystem(endpoint_url=s3_endpoint)
  names = sorted(os.path.basename(p) for p in fs.find('bucket/published/catch_s3_cli/1.0.0'))
  assert {'dataset_info.json', 'features.json', 'catch_s3_cli-train.tfrecord-00000-of-00001'} <= set(names)
  import tensorflow_datasets as tfds  # noqa: PLC0415

  # TFDS reads the metadata from s3:// (epath -> fsspec), and the shards from a copy.
  info = tfds.builder_from_directory('s3://bucket/published/catch_s3_cli/1.0.0').info
  assert info.splits['train'].num_examples == 6
  copy = remote.download('s3://bucket/published/catch_s3_cli/1.0.0', tmp_path / 'copy')
  assert _steps(tfds.builder_from_directory(copy).as_dataset(split='train')) == _expected_steps(local_logs)


def test_remote_errors_and_staging(s3_endpoint, tmp_path):
  """Patterns on s3 that match nothing fail like local ones; local sources are kept as they are."""
  assert remote.is_url('s3://bucket/x') and remote.is_url('gs://b/x') and not remote.is_url('/data/x')
  assert not remote.is_url('file:///data/x')
  config = tfds_builder.BuildConfig(name='x', sources=['s3://bucket/nothing*', str(tmp_path)])
  with pytest.raises(tfds_builder.SourceError, match="'s3://bucket/nothing\\*' matches no directory"):
    remote.stage_sources(config, tmp_path / 'staged')
  log_catch_actor(tmp_path / 'log', seed=0, episodes=1)
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
