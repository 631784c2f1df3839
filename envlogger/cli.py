"""The `envlogger` command line.

  envlogger recover DIR    make logs whole after writers died (idempotent)
  envlogger convert SRC DST
                           write a log (e.g. one of DeepMind's envlogger,
                           Riegeli files) as this package's RLDS/TFDS dataset

User mistakes (a directory that holds no log, ...) print one line to stderr
and exit with status 2; they do not print a traceback.
"""

from __future__ import annotations

import argparse
import sys


def _recover(args: argparse.Namespace) -> int:
  from envlogger.backends import tfds as tfds_backend  # noqa: PLC0415

  for line in tfds_backend.recover(args.directory):
    print(line)
  return 0


def _convert(args: argparse.Namespace) -> int:
  from envlogger.convert import convert  # noqa: PLC0415

  result = convert(
    args.src,
    args.dst,
    dataset_name=args.dataset_name,
    split_name=args.split,
    max_episodes_per_file=args.episodes_per_shard,
    progress=None if not args.quiet else False,
    verify=args.verify,
  )
  for problem in result.problems:
    print(f'skipped: {problem}', file=sys.stderr)
  print(f'converted {result.episodes} episodes ({result.steps} steps) -> {result.dataset_dir}')
  return 0


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog='envlogger', description='Tools for envlogger logs.')
  commands = parser.add_subparsers(dest='command', required=True)
  p = commands.add_parser(
    'recover',
    help='make logs whole after writers died: repair torn shard tails and indexes, republish TFDS metadata',
  )
  p.add_argument('directory', help='a data_directory, or a dataset directory under it')
  p.set_defaults(run=_recover)
  p = commands.add_parser(
    'convert', help="write a log (e.g. DeepMind envlogger's Riegeli) as an RLDS/TFDS dataset"
  )
  p.add_argument('src', help='the log to read: any directory envlogger.Reader opens')
  p.add_argument(
    'dst', help='the data_directory to write (appended to if it holds a log with the same specs)'
  )
  p.add_argument('--dataset-name', default='envlogger', help='TFDS dataset name (default: envlogger)')
  p.add_argument('--split', default='train', help='split name (default: train)')
  p.add_argument(
    '--episodes-per-shard', type=int, default=1000, help='episodes per shard file (default: 1000)'
  )
  p.add_argument(
    '--verify', action='store_true', help='skip (and list) damaged source episodes instead of stopping'
  )
  p.add_argument('--quiet', action='store_true', help='no progress bar')
  p.set_defaults(run=_convert)
  args = parser.parse_args(argv)
  try:
    return args.run(args)
  except (OSError, ValueError) as e:  # no log, damaged input, bad arguments: the user's to fix
    print(f'envlogger {args.command}: {e}', file=sys.stderr)
    return 2


if __name__ == '__main__':
  raise SystemExit(main())
