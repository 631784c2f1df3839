"""The `envlogger` command line.

  envlogger recover DIR    make logs whole after writers died (idempotent)

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


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog='envlogger', description='Tools for envlogger logs.')
  commands = parser.add_subparsers(dest='command', required=True)
  p = commands.add_parser(
    'recover',
    help='make logs whole after writers died: repair torn shard tails and indexes, republish TFDS metadata',
  )
  p.add_argument('directory', help='a data_directory, or a dataset directory under it')
  p.set_defaults(run=_recover)
  args = parser.parse_args(argv)
  try:
    return args.run(args)
  except (FileNotFoundError, NotADirectoryError, PermissionError) as e:
    print(f'envlogger {args.command}: {e}', file=sys.stderr)
    return 2


if __name__ == '__main__':
  raise SystemExit(main())
