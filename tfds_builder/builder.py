"""The TFDS builder: envlogger logs from many runs and actors -> one RLDS dataset.

`build(config, data_dir)` assembles the episodes of every source log into the
dataset `<data_dir>/<name>/<version>/`, which `tfds.load(name,
data_dir=data_dir)` loads anywhere (envlogger is not needed to read it).
"""

from __future__ import annotations

import fnmatch
import glob
import hashlib
import json
import os
from collections.abc import Mapping
from typing import Any

import tensorflow_datasets as tfds
from google.protobuf import json_format

from envlogger._riegeli import layout as riegeli_layout
from envlogger.backends import _tfds_codec, _tfds_metadata, source
from envlogger.backends import riegeli as riegeli_backend
from envlogger.backends import tfds as tfds_backend
from tfds_builder.config import BuildConfig


class SourceError(ValueError):
  """The sources cannot be assembled (none found, damaged, or specs that differ)."""


def open_sources(config: BuildConfig) -> tuple[list[source.LogSource], list[str]]:
  """Opens every source log; returns (sources, report lines of what was skipped).

  Raises:
    SourceError: a pattern matches nothing, a directory holds no log, a log
      is damaged (unless on_damage='skip'), or the logs' specs differ.
  """
  dirs: list[str] = []
  for pattern in config.sources:
    matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
    if not matches or not all(os.path.isdir(m) for m in matches):
      raise SourceError(f'source {pattern!r} matches no directory.')
    for m in matches:
      found = [m] if riegeli_layout.is_riegeli_log(m) else tfds_backend.find_dataset_dirs(m)
      if not found:
        raise SourceError(f'{m} holds no envlogger log.')
      dirs += [d for d in found if d not in dirs]
  sources, report = [], []
  for d in dirs:
    src = open_log(d)
    if src.problems:
      lines = '\n  '.join(src.problems)
      if config.on_damage == 'fail':
        raise SourceError(f'{d} is damaged (on_damage="skip" leaves it out):\n  {lines}')
      report.append(f'skipped {d}, damaged:\n  {lines}')
      src.close()
      continue
    sources.append(src)
  if not sources:
    raise SourceError('no readable source log.')
  _check_same_schema(sources)
  return sources, report


def open_log(directory: str) -> source.LogSource:
  """The log in `directory`: this package's TFDS dataset directory, or a log of
  DeepMind's envlogger (Riegeli files)."""
  if riegeli_layout.is_riegeli_log(directory):
    return riegeli_backend.RiegeliLogSource(directory)
  return tfds_backend.TFDSLogSource(directory)


def _check_same_schema(sources: list[source.LogSource]) -> None:
  groups: dict[str, list[str]] = {}
  for src in sources:
    groups.setdefault(json.dumps(src.schema.to_json(), sort_keys=True), []).append(src.dataset_dir)
  if len(groups) == 1:
    return
  (ref_key, ref_dirs), *others = groups.items()
  ref = json.loads(ref_key)
  lines = []
  for key, dirs in others:
    other = json.loads(key)
    diffs = [
      f'{k}: {ref.get(k)!r} vs {other.get(k)!r}'
      for k in sorted(set(ref) | set(other))
      if ref.get(k) != other.get(k)
    ]
    lines.append(f'{dirs} differ from {ref_dirs} in:\n    ' + '\n    '.join(diffs))
  raise SourceError('the sources do not record the same specs:\n  ' + '\n  '.join(lines))


def _fraction(episode_id: str) -> float:
  """A stable pseudo-random number in [0, 1) for an episode."""
  return int(hashlib.sha1(episode_id.encode()).hexdigest()[:13], 16) / 16**13


def assign_splits(config: BuildConfig, sources) -> dict[str, list[tuple[int, int]]]:
  """Split name -> [(source index, episode index), ...].

  By episode: episodes are ordered by a hash of their id and cut at the
  configured fractions (rounded to whole episodes), so the split of an
  episode does not depend on the order of the sources and the counts are as
  close to the fractions as whole episodes allow. By run: each run goes to
  the first split with a matching pattern.

  Raises:
    SourceError: a split would be empty, or a run matches no split.
  """
  out: dict[str, list[tuple[int, int]]] = {split: [] for split in config.splits}
  names = list(config.splits)
  unmatched = set()
  ranked = []
  for si, src in enumerate(sources):
    for ei in range(src.num_episodes()):
      episode_id = src.read_episode_id(ei)
      if config.split_by == 'episode':
        ranked.append((_fraction(episode_id), episode_id, si, ei))
        continue
      run_id = episode_id.rsplit('/', 1)[0]
      split = next((s for s in names if any(fnmatch.fnmatch(run_id, p) for p in config.splits[s])), None)
      if split is None:
        unmatched.add(run_id)
      else:
        out[split].append((si, ei))
  if unmatched:
    raise SourceError(f'runs match no split pattern: {sorted(unmatched)}')
  if config.split_by == 'episode':
    ranked.sort()
    start, total = 0, 0.0
    for k, split in enumerate(names):
      total += float(config.splits[split])
      end = len(ranked) if k == len(names) - 1 else round(total * len(ranked))
      out[split] = sorted((si, ei) for _, _, si, ei in ranked[start:end])
      start = end
  empty = [s for s, refs in out.items() if not refs]
  if empty:
    counts = ', '.join(f'{s}: {len(r)}' for s, r in out.items())
    raise SourceError(
      f'split(s) {empty} would get no episode ({counts} episodes); TFDS cannot write an empty split. '
      'Record more episodes, or change the fractions or run patterns.'
    )
  return out


def _card(config: BuildConfig, sources, splits: dict[str, list[tuple[int, int]]], features) -> str:
  steps = {s: sum(int(sources[si].episode_lengths()[ei]) for si, ei in refs) for s, refs in splits.items()}
  runs = [r for src in sources for r in src.runs()]
  lines = [config.description or f'{config.name}: episodes recorded with envlogger (RLDS format).', '']
  lines.append(
    'Splits: ' + ', '.join(f'{s} ({len(r)} episodes, {steps[s]} steps)' for s, r in splits.items())
  )
  lines.append(f'Sources: {len(sources)} logs, {len(runs)} logger runs:')
  lines += [f'  {r.get("run_id")} created {r.get("created", "?")} metadata {r.get("metadata")}' for r in runs]
  lines.append('Features:')
  lines += [f'  {line}' for line in str(features).splitlines()]
  return '\n'.join(lines)


class EnvloggerRlds(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Base class; `builder_class(config)` makes the class of one dataset."""

  VERSION = tfds.core.Version('1.0.0')
  build_config: BuildConfig
  use_beam = False  # set by build(..., beam_options=...): episodes are read by Beam workers
  # Local copies of remote sources -> the URLs they were copied from (tfds_builder.remote):
  # metadata.json names those sources by their URLs.
  source_urls: Mapping[str, str] = {}

  def __init__(self, **kwargs):
    self._sources, self.skipped = open_sources(self.build_config)
    self._codecs = [_tfds_codec.Codec(s.schema, s.log_info.get('encodings')) for s in self._sources]
    self._splits = assign_splits(self.build_config, self._sources)
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    first = self._sources[0]
    features_json = _tfds_metadata.features_json(first.schema, first.log_info.get('encodings') or {})
    if self.build_config.image_encoding:
      steps = features_json['featuresDict']['features']['steps']['sequence']['feature']
      obs = steps['featuresDict']['features']
      obs['observation'] = _as_images(obs['observation'], self.build_config.image_encoding)
    features = tfds.features.FeatureConnector.from_json(features_json)
    runs = [r for src in self._sources for r in src.runs()]
    return tfds.core.DatasetInfo(
      builder=self,
      description=_card(self.build_config, self._sources, self._splits, features),
      features=features,
      homepage=self.build_config.homepage or None,
      citation=self.build_config.citation or None,
      metadata=tfds.core.MetadataDict(
        envlogger={
          'schema': first.schema.to_json(),
          'runs': [{k: r[k] for k in ('run_id', 'created') if k in r} for r in runs],
          'sources': [_source_name(s.dataset_dir, self.source_urls) for s in self._sources],
        }
      ),
    )

  def _split_generators(self, dl_manager):
    return {split: self._generate_examples(refs) for split, refs in self._splits.items()}

  def _generate_examples(self, refs):
    if self.use_beam:
      beam = tfds.core.lazy_imports.apache_beam
      items = [(self._sources[si].dataset_dir, ei) for si, ei in refs]
      return beam.Create(items) | beam.ParDo(_read_episodes(self.build_config.on_damage))
    return self._generate_locally(refs)

  def _generate_locally(self, refs):
    for si, ei in refs:
      src = self._sources[si]
      try:
        episode = src.read_episode(ei)
      except source.DamagedEpisodeError as e:
        if self.build_config.on_damage == 'fail':
          raise
        self.skipped.append(f'skipped an episode: {e}')
        continue
      yield episode.episode_id, self._codecs[si].to_features(episode)


def _as_images(feature: dict[str, Any], encoding_format: str) -> dict[str, Any]:
  """Observation features, with uint8 (H, W, C) tensors as `tfds.features.Image`."""
  if 'featuresDict' in feature:
    inner = feature['featuresDict']['features']
    return {
      **feature,
      'featuresDict': {'features': {k: _as_images(v, encoding_format) for k, v in inner.items()}},
    }
  tensor = feature.get('tensor', {})
  dims = [int(d) for d in tensor.get('shape', {}).get('dimensions', [])]
  if tensor.get('dtype') == 'uint8' and len(dims) == 3 and dims[2] in (1, 3, 4):
    image = tfds.features.Image(shape=tuple(dims), encoding_format=encoding_format)
    return json_format.MessageToDict(image.to_proto())  # the layout of the rest of features.json
  return feature


def _read_episodes(on_damage: str):
  """The DoFn reading episodes in Beam workers (defined here: Beam is imported only when used)."""
  beam = tfds.core.lazy_imports.apache_beam

  class ReadEpisodes(beam.DoFn):
    """(dataset dir, episode index) -> (episode id, features), in a Beam worker."""

    def __init__(self, on_damage: str):
      self._on_damage = on_damage
      self._open: dict[str, Any] = {}

    def setup(self):
      self._open = {}

    def process(self, item):
      dataset_dir, index = item
      if dataset_dir not in self._open:
        src = open_log(dataset_dir)
        self._open[dataset_dir] = (src, _tfds_codec.Codec(src.schema, src.log_info.get('encodings')))
      src, codec = self._open[dataset_dir]
      try:
        episode = src.read_episode(index)
      except source.DamagedEpisodeError:
        if self._on_damage == 'fail':
          raise
        beam.metrics.Metrics.counter('envlogger', 'damaged_episodes_skipped').inc()
        return
      yield episode.episode_id, codec.to_features(episode)

    def teardown(self):
      for src, _ in self._open.values():
        src.close()

  return ReadEpisodes(on_damage)


def _source_name(path: str, source_urls: Mapping[str, str]) -> str:
  """`path`, or the URL it was copied from when it lies in a staged copy of a remote source."""
  for local, url in source_urls.items():
    if path == local or path.startswith(local + os.sep):
      return url + path[len(local) :].replace(os.sep, '/')
  return path


def builder_class(config: BuildConfig, source_urls: Mapping[str, str] | None = None) -> type[EnvloggerRlds]:
  """The builder class of the dataset `config` describes (named after it).

  `source_urls`: local copies of remote sources -> their URLs (see `tfds_builder.remote`).
  """
  camel = ''.join(p.capitalize() for p in config.name.split('_'))
  return type(
    camel,
    (EnvloggerRlds,),
    {
      'name': config.name,
      'VERSION': tfds.core.Version(config.version),
      'build_config': config,
      'source_urls': dict(source_urls or {}),
      # A one-part module name: TFDS then finds the code with inspect, not
      # with importlib_resources (which it imports lazily and does not require).
      '__module__': 'tfds_builder',
    },
    skip_registration=True,
  )


def _download_config(
  config: BuildConfig, builder: EnvloggerRlds, beam_options
) -> tfds.download.DownloadConfig:
  """TFDS's shard settings from `max_shard_bytes` / `episodes_per_shard`, and Beam's options."""
  kwargs: dict[str, Any] = {'beam_options': beam_options}
  if config.max_shard_bytes is not None:
    kwargs.update(max_shard_size=config.max_shard_bytes, min_shard_size=min(config.max_shard_bytes, 64 << 20))
  elif config.episodes_per_shard is not None:
    largest = max(len(refs) for refs in builder._splits.values())
    kwargs['num_shards'] = max(1, -(-largest // config.episodes_per_shard))
  return tfds.download.DownloadConfig(**kwargs)


def build(
  config: BuildConfig,
  data_dir: str,
  file_format: str = 'tfrecord',
  beam_options: Any = None,
  source_urls: Mapping[str, str] | None = None,
  **prepare_kwargs: Any,
) -> str:
  """Builds the dataset into `<data_dir>/<name>/<version>/`; returns that directory.

  Args:
    config: what to build.
    data_dir: where (`tfds.load(config.name, data_dir=data_dir)` loads it).
    file_format: 'tfrecord' or 'array_record'.
    beam_options: an `apache_beam.options.pipeline_options.PipelineOptions`
      to build with Apache Beam (the `beam` extra): the DirectRunner here,
      Dataflow/Spark/Flink at scale (see docs/sharing.md). None builds in
      this process.
    source_urls: sources that are local copies of remote ones -> their URLs,
      as metadata.json names them (`tfds_builder.remote.build` sets it).
    **prepare_kwargs: passed to `download_and_prepare`.
  """
  builder = builder_class(config, source_urls)(data_dir=data_dir, file_format=file_format)
  builder.use_beam = beam_options is not None
  if 'download_config' not in prepare_kwargs:
    prepare_kwargs['download_config'] = _download_config(config, builder, beam_options)
  builder.download_and_prepare(**prepare_kwargs)
  for line in builder.skipped:
    print(f'tfds_builder: {line}')
  return str(builder.data_dir)
