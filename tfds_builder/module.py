"""Dataset modules for TFDS's own command line: `tfds build OUT_DIR/<name> --data_dir DATA_DIR`.

`write_module(config_path, out_dir)` (`python -m tfds_builder new-module
config.json OUT_DIR`) writes the module TFDS's convention expects,
`OUT_DIR/<name>/__init__.py` and `OUT_DIR/<name>/<name>_dataset_builder.py`;
the latter only calls `module_builder_class(<config.json, relative to the
module>, __name__)`, so the JSON file stays the one place that says what to
build (sources, name, version, splits, ...), read each time `tfds build`
imports the module.
"""

from __future__ import annotations

import atexit
import dataclasses
import importlib.util
import os
import shutil
import tempfile
from typing import Any

import tensorflow_datasets as tfds

from tfds_builder import builder as builder_lib
from tfds_builder import remote
from tfds_builder.config import BuildConfig

_TEMPLATE = '''"""TFDS dataset module of `{name}`, written by `python -m tfds_builder new-module`.

What to build (sources, name, version, splits, ...) is read from
{config_rel} (relative to this file) each time TFDS imports this module:

  tfds build {module_dir} --data_dir DATA_DIR
"""

import os

from tfds_builder.module import module_builder_class

CONFIG_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), {config_rel!r})

Builder = module_builder_class(CONFIG_PATH, __name__)
'''

_INIT = '"""TFDS dataset module of `{name}` (see {name}_dataset_builder.py)."""\n'


class ModuleError(ValueError):
  """The module cannot be written (files exist, or its name is taken by an importable module)."""


def module_builder_class(config_path: str | os.PathLike, module_name: str) -> type[builder_lib.EnvloggerRlds]:
  """The builder class a generated dataset module defines, for `tfds build`.

  The class is `builder_class(BuildConfig.from_file(config_path))`, made in
  `module_name` (so that TFDS's command line, which imports the module and
  looks its builder up by module name, finds it) and then given the module
  name `build()` gives its builders ('tfds_builder': the dataset_info.json of
  both builds match). Its `download_and_prepare` applies the config's shard
  settings unless the command line gave some (`--num_shards`,
  `--max_shard_size_mb`), and reads the episodes in Beam workers when
  `--beam_pipeline_options` is given. Sources that are URLs (s3://, gs://)
  are copied to a temporary directory (as `remote.stage_sources` does, removed when
  the process exits) when the builder is made; `tfds build --publish_dir
  s3://...` puts the result on remote storage (see docs/sharing.md).

  Args:
    config_path: the BuildConfig JSON file.
    module_name: `__name__` of the generated module.

  Returns:
    The builder class.
  """
  config = BuildConfig.from_file(config_path)
  base = builder_lib.builder_class(config)

  staged: dict[str, Any] = {}  # staged once per process, however many builders TFDS makes

  def __init__(self, **kwargs):
    if any(remote.is_url(s) for s in config.sources):
      if not staged:
        tmp = tempfile.mkdtemp(prefix='tfds_builder-')
        atexit.register(shutil.rmtree, tmp, ignore_errors=True)
        staged['config'], staged['urls'] = remote._stage(config, tmp, None)
      self.build_config, self.source_urls = staged['config'], staged['urls']  # read the local copies
    base.__init__(self, **kwargs)

  def download_and_prepare(self, *, download_config: tfds.download.DownloadConfig | None = None, **kwargs):
    download_config = _with_config_shards(config, self, download_config)
    self.use_beam = download_config.beam_options is not None
    base.download_and_prepare(self, download_config=download_config, **kwargs)
    for line in self.skipped:
      print(f'tfds_builder: {line}')

  cls = type(
    base.__name__,
    (base,),
    {
      '__module__': module_name,  # registers it where `tfds build` looks it up
      '__doc__': f'The `{config.name}` dataset, as {os.fspath(config_path)} describes it.',
      '__init__': __init__,
      'download_and_prepare': download_and_prepare,
    },
    skip_registration=True,
  )
  # A one-part module name, as builder_class() gives: TFDS then finds the code
  # with inspect, not importlib_resources (not installed with TFDS), and
  # dataset_info.json records the same module as a build() from Python.
  cls.__module__ = base.__module__
  return cls


def _with_config_shards(
  config: BuildConfig, builder: builder_lib.EnvloggerRlds, download_config: Any
) -> tfds.download.DownloadConfig:
  """`download_config` with the config's shard settings when it has none of its own."""
  if download_config is None:
    return builder_lib._download_config(config, builder, None)
  defaults = tfds.download.DownloadConfig()
  untouched = (
    download_config.num_shards is None
    and download_config.max_shard_size == defaults.max_shard_size
    and download_config.min_shard_size == defaults.min_shard_size
  )
  if not untouched:
    return download_config
  ours = builder_lib._download_config(config, builder, None)
  return dataclasses.replace(
    download_config,
    num_shards=ours.num_shards,
    max_shard_size=ours.max_shard_size,
    min_shard_size=ours.min_shard_size,
  )


def write_module(config_path: str | os.PathLike, out_dir: str | os.PathLike, overwrite: bool = False) -> str:
  """Writes the dataset module of a BuildConfig JSON file; returns its directory.

  The module refers to the config file by a path relative to itself: move
  them together (or regenerate the module).

  Args:
    config_path: the BuildConfig JSON file (read here to check it and take
      the dataset name).
    out_dir: the module is written to `out_dir/<name>/`.
    overwrite: replace the module's files if they exist.

  Raises:
    OSError, ValueError: the config cannot be read or is invalid.
    ModuleError: the files exist (and not `overwrite`), or `<name>` is the
      name of a module Python already imports (TFDS would import that one).
  """
  config = BuildConfig.from_file(config_path)
  module_dir = os.path.join(os.path.abspath(out_dir), config.name)
  spec = importlib.util.find_spec(config.name)
  if spec is not None and not os.path.abspath(spec.origin or '').startswith(module_dir + os.sep):
    raise ModuleError(
      f'a module named {config.name!r} is already importable ({spec.origin}): '
      'tfds build would import that one; give the dataset another name.'
    )
  files = {
    '__init__.py': _INIT.format(name=config.name),
    f'{config.name}_dataset_builder.py': _TEMPLATE.format(
      name=config.name,
      config_rel=os.path.relpath(os.path.abspath(config_path), module_dir),
      module_dir=module_dir,
    ),
  }
  existing = [f for f in files if os.path.exists(os.path.join(module_dir, f))]
  if existing and not overwrite:
    raise ModuleError(f'{module_dir} already holds {existing} (overwrite=True / --overwrite replaces them).')
  os.makedirs(module_dir, exist_ok=True)
  for filename, text in files.items():
    with open(os.path.join(module_dir, filename), 'w') as f:
      f.write(text)
  return module_dir
