"""Sources and datasets on remote storage (s3://, gs://, ...: any URL fsspec reads), staged locally.

TFDS 4.9.10 with TensorFlow 2.21 writes TFRecord shards with
`tf.io.TFRecordWriter` and ArrayRecord shards with a C++ writer: neither
reaches s3:// (TensorFlow no longer has an S3 filesystem, and the plugins of
tensorflow-io 0.37.1, the last release, do not load in TensorFlow 2.21),
and envlogger's Reader reads local files. So `build(config, data_dir)` here:

1. copies the sources that are URLs into a local temporary directory
   (`stage_sources`), through fsspec (s3fs for s3://, gcsfs for gs://);
2. builds there with `tfds_builder.build`;
3. when `data_dir` is a URL, uploads `<name>/<version>/` to it (`upload`),
   metadata last, so that a dataset whose dataset_info.json is there is
   whole. The dataset's metadata.json names the sources by their URLs.

Credentials and endpoints are fsspec's: the environment (AWS_* variables,
AWS_ENDPOINT_URL for an S3-compatible server, GOOGLE_APPLICATION_CREDENTIALS)
or `storage_options` (e.g. `{'endpoint_url': 'http://127.0.0.1:9000'}` for s3fs).
"""

from __future__ import annotations

import dataclasses
import glob
import os
import tempfile
from collections.abc import Mapping
from typing import Any

from tfds_builder import builder as builder_lib
from tfds_builder.config import BuildConfig

# Written last by `upload` (first of them: what marks a dataset as prepared for TFDS).
_METADATA_FILES = ('features.json', 'dataset_info.json')


def is_url(path: str | os.PathLike) -> bool:
  """Whether `path` is a URL with a scheme other than file:// (a remote location)."""
  path = os.fspath(path)
  return '://' in path and not path.startswith('file://')


def _fs(url: str, storage_options: Mapping[str, Any] | None):
  """(fsspec filesystem, path within it) of `url`."""
  try:
    import fsspec  # noqa: PLC0415
  except ImportError as e:  # pragma: no cover - fsspec comes with TFDS's dependencies
    raise ImportError(f'{url}: remote storage needs fsspec (and s3fs for s3://, gcsfs for gs://).') from e
  return fsspec.core.url_to_fs(url, **dict(storage_options or {}))


def stage_sources(
  config: BuildConfig, local_dir: str | os.PathLike, storage_options: Mapping[str, Any] | None = None
) -> BuildConfig:
  """Copies the sources of `config` that are URLs into `local_dir`; returns the config reading those copies.

  Each remote source (a log directory or a glob pattern of them, as for a
  local source) is listed and copied file by file to `local_dir/<scheme>/<bucket>/<path>`;
  local sources are kept as they are.

  Raises:
    builder_lib.SourceError: a remote pattern matches nothing, or a match is
      not a directory.
  """
  return _stage(config, local_dir, storage_options)[0]


def _stage(
  config: BuildConfig, local_dir: str | os.PathLike, storage_options: Mapping[str, Any] | None
) -> tuple[BuildConfig, dict[str, str]]:
  """(config reading the local copies, local copy -> URL it was copied from)."""
  sources, origins = [], {}
  for pattern in config.sources:
    if not is_url(pattern):
      sources.append(pattern)
      continue
    fs, path = _fs(pattern, storage_options)
    scheme = pattern.split('://', 1)[0]
    matches = sorted(fs.glob(path)) if glob.has_magic(path) else [path]
    matches = [m for m in matches if fs.isdir(m)]
    if not matches:
      raise builder_lib.SourceError(f'source {pattern!r} matches no directory.')
    for match in matches:
      target = os.path.join(os.fspath(local_dir), scheme, match.strip('/'))
      _copy_tree(fs, match, target)
      sources.append(target)
      origins[target] = f'{scheme}://{match.strip("/")}'
  return dataclasses.replace(config, sources=sources), origins


def upload(local_dir: str | os.PathLike, url: str, storage_options: Mapping[str, Any] | None = None) -> str:
  """Copies the files under `local_dir` to `url` (same relative paths); returns `url`.

  The TFDS metadata files (features.json, dataset_info.json) go last.
  """
  fs, root = _fs(url, storage_options)
  local_dir = os.fspath(local_dir)
  last = {name: i + 1 for i, name in enumerate(_METADATA_FILES)}  # 0 for the other files
  files = sorted(
    (os.path.relpath(os.path.join(d, f), local_dir) for d, _, names in os.walk(local_dir) for f in names),
    key=lambda rel: (last.get(rel, 0), rel),
  )
  for rel in files:
    fs.put_file(os.path.join(local_dir, rel), f'{root.rstrip("/")}/{rel.replace(os.sep, "/")}')
  return url


def download(url: str, local_dir: str | os.PathLike, storage_options: Mapping[str, Any] | None = None) -> str:
  """Copies the files under `url` (e.g. a built dataset `<data_dir>/<name>/<version>`) into `local_dir`.

  Returns `local_dir`, e.g. for `tfds.builder_from_directory(local_dir)`.
  """
  fs, root = _fs(url, storage_options)
  _copy_tree(fs, root.rstrip('/'), os.fspath(local_dir))
  return os.fspath(local_dir)


def _copy_tree(fs, root: str, local_dir: str) -> None:
  """Copies every file under `root` on `fs` to the same relative path under `local_dir`."""
  for remote_file in fs.find(root):
    local_file = os.path.join(local_dir, os.path.relpath(remote_file, root))
    os.makedirs(os.path.dirname(local_file), exist_ok=True)
    fs.get_file(remote_file, local_file)


def build(
  config: BuildConfig,
  data_dir: str,
  file_format: str = 'tfrecord',
  beam_options: Any = None,
  storage_options: Mapping[str, Any] | None = None,
  staging_dir: str | None = None,
  **prepare_kwargs: Any,
) -> str:
  """`tfds_builder.build`, with sources and `data_dir` that may be URLs (s3://, gs://, ...).

  Remote sources are copied to a temporary directory first; with a remote
  `data_dir` the dataset is built in a temporary directory, then uploaded
  to `<data_dir>/<name>/<version>/`. A dataset already there (its
  dataset_info.json exists) is left as it is, as TFDS does locally.

  Args:
    config: what to build.
    data_dir: where: a local directory or a URL.
    file_format: 'tfrecord', 'array_record' or 'parquet' (TFDS reads Parquet shards from s3:// itself).
    beam_options: as for `tfds_builder.build`; the staged copies are local
      to this machine, so only for runners that run here (DirectRunner).
    storage_options: fsspec options for the URLs (credentials, endpoint_url).
    staging_dir: where the temporary directory goes (default: the system's).
    **prepare_kwargs: passed to `download_and_prepare`.

  Returns:
    The dataset directory: `<data_dir>/<name>/<version>`.
  """
  remote_out = is_url(data_dir)
  if remote_out:
    dataset_url = f'{data_dir.rstrip("/")}/{config.name}/{config.version}'
    fs, path = _fs(dataset_url, storage_options)
    if fs.exists(f'{path}/dataset_info.json'):
      print(f'tfds_builder: {dataset_url} exists: not built again.')
      return dataset_url
  with tempfile.TemporaryDirectory(prefix='tfds_builder-', dir=staging_dir) as tmp:
    local_config, origins = _stage(config, os.path.join(tmp, 'sources'), storage_options)
    local_data_dir = os.path.join(tmp, 'data') if remote_out else data_dir
    out = builder_lib.build(
      local_config,
      local_data_dir,
      file_format=file_format,
      beam_options=beam_options,
      source_urls=origins,
      **prepare_kwargs,
    )
    if not remote_out:
      return out
    return upload(out, dataset_url, storage_options)
