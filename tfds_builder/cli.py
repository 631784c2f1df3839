"""`python -m tfds_builder`: build a dataset from a BuildConfig JSON file, or write its TFDS module.

  python -m tfds_builder build config.json DATA_DIR [--file_format array_record]
  python -m tfds_builder build config.json s3://bucket/datasets   (sources may be URLs too: tfds_builder.remote)
  python -m tfds_builder new-module config.json OUT_DIR
  tfds build OUT_DIR/<name> --data_dir DATA_DIR

A config file that is missing or invalid is one line on stderr and exit
status 2; sources that cannot be built from (tfds_builder.SourceError) are
reported on stderr with exit status 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from tfds_builder import builder, module, remote
from tfds_builder.config import BuildConfig

USAGE_ERROR = 2


class _Parser(argparse.ArgumentParser):
  def error(self, message):
    self.exit(USAGE_ERROR, f'{self.prog}: {message}\n')


def _parser() -> argparse.ArgumentParser:
  parser = _Parser(prog='python -m tfds_builder', description=__doc__.split('\n')[0])
  sub = parser.add_subparsers(dest='command', required=True, parser_class=_Parser)
  p = sub.add_parser('build', help='build the dataset into DATA_DIR/<name>/<version>/ (remote.build())')
  p.add_argument('config', help='BuildConfig JSON file')
  p.add_argument(
    'data_dir', help='tfds.load(name, data_dir=DATA_DIR) loads the result; a URL (s3://...) uploads it there'
  )
  p.add_argument('--file_format', default='tfrecord', choices=('tfrecord', 'array_record', 'parquet'))
  p.add_argument(
    '--beam_pipeline_options',
    default=None,
    help="build with Apache Beam: comma-separated flags, as for tfds build (e.g. 'runner=DirectRunner')",
  )
  p = sub.add_parser(
    'new-module', help='write OUT_DIR/<name>/ (<name>_dataset_builder.py) for `tfds build OUT_DIR/<name>`'
  )
  p.add_argument('config', help='BuildConfig JSON file (the module refers to it by a relative path)')
  p.add_argument('out_dir')
  p.add_argument('--overwrite', action='store_true', help='replace an existing module')
  return parser


def _fail(message: str) -> int:
  print(f'tfds_builder: {" ".join(message.split())}', file=sys.stderr)
  return USAGE_ERROR


def load_config(path: str) -> BuildConfig:
  """`BuildConfig.from_file(path)`, with errors that name the file (OSError or ValueError)."""
  try:
    return BuildConfig.from_file(path)
  except OSError as e:
    raise OSError(f'cannot read config {path}: {e.strerror or e}') from e
  except json.JSONDecodeError as e:
    raise ValueError(f'config {path} is not JSON: {e}') from e
  except (TypeError, AttributeError) as e:  # not an object of BuildConfig's fields
    raise ValueError(f'config {path} is not a JSON object of BuildConfig fields: {e}') from e
  except ValueError as e:
    raise ValueError(f'invalid config {path}: {e}') from e


def main(argv: Sequence[str] | None = None) -> int:
  """Runs the command line; returns the exit status."""
  args = _parser().parse_args(argv)
  try:
    config = load_config(args.config)
  except (OSError, ValueError) as e:
    return _fail(str(e))
  if args.command == 'new-module':
    try:
      module_dir = module.write_module(args.config, args.out_dir, overwrite=args.overwrite)
    except (OSError, ValueError) as e:
      return _fail(str(e))
    print(f'wrote {module_dir}/ (builds {config.name} {config.version} as {args.config} says); build with:')
    print(f'  tfds build {module_dir} --data_dir DATA_DIR')
    return 0

  beam_options = None
  if args.beam_pipeline_options:
    from apache_beam.options.pipeline_options import PipelineOptions  # noqa: PLC0415

    beam_options = PipelineOptions(flags=[f'--{opt}' for opt in args.beam_pipeline_options.split(',')])
  try:
    out = remote.build(config, args.data_dir, file_format=args.file_format, beam_options=beam_options)
  except builder.SourceError as e:
    print(f'tfds_builder: {e}', file=sys.stderr)
    return 1
  print(f'built {out}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
