"""The `envlogger` command line.

  envlogger info DIR                 what a log holds (a table; --json)
  envlogger validate DIR             readable records and sound RLDS; exit 1 with a report
  envlogger recover DIR              make logs whole after writers died (idempotent)
  envlogger convert SRC DST          a log (e.g. DeepMind envlogger's Riegeli files) as an
                                     RLDS/TFDS dataset of this package (--format array_record:
                                     the compact format)
  envlogger merge SRC... DST         several logs into one dataset
  envlogger filter SRC DST ...       keep the episodes that pass (--drop-invalid, --keep EXPR, ...)
  envlogger delete SRC DST --episodes 3,7-9
  envlogger reshard SRC DST --episodes-per-shard N
  envlogger plot DIR OUT.png         episode returns and lengths over the log
  envlogger show DIR --episode N OUT.gif|OUT.png
                                     image observations as a GIF or contact sheet,
                                     other observations as a plot over time

Commands that write never modify their sources: they write DST. User
mistakes (a directory that holds no log, bad arguments, ...) print one line to
stderr and exit with status 2; they do not print a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def _recover(args: argparse.Namespace) -> int:
  from envlogger.backends import tfds as tfds_backend  # noqa: PLC0415

  for line in tfds_backend.recover(args.directory):
    print(line)
  return 0


def _info(args: argparse.Namespace) -> int:
  from envlogger import summary  # noqa: PLC0415

  rows = summary.info(args.directory)
  if args.json:
    print(json.dumps(rows, default=str, indent=1))
  else:
    print(summary.format_table(rows))
  return 0


def _validate(args: argparse.Namespace) -> int:
  from envlogger import summary  # noqa: PLC0415

  problems = summary.validate(args.directory)
  if problems:
    print(f'{args.directory}: {len(problems)} problem(s):')
    for p in problems:
      print(f'  {p}')
    return 1
  print(f'{args.directory}: sound (every record readable, every episode conforms to RLDS)')
  return 0


def _copy(args: argparse.Namespace, sources: list[str], select=None) -> int:
  from envlogger.convert import copy_episodes  # noqa: PLC0415

  result = copy_episodes(
    sources,
    args.dst,
    select=select,
    dataset_name=args.dataset_name,
    split_name=args.split,
    max_episodes_per_file=args.episodes_per_shard,
    progress=None if not args.quiet else False,
    verify=args.verify,
    file_format=args.format,
  )
  for problem in result.problems:
    print(f'skipped: {problem}', file=sys.stderr)
  print(f'{args.command}: wrote {result.episodes} episodes ({result.steps} steps) -> {result.dataset_dir}')
  return 0


def _convert(args: argparse.Namespace) -> int:
  return _copy(args, [args.src])


def _merge(args: argparse.Namespace) -> int:
  return _copy(args, args.src)


def _reshard(args: argparse.Namespace) -> int:
  return _copy(args, [args.src])


def _parse_ranges(text: str) -> set[int]:
  out: set[int] = set()
  for part in text.split(','):
    part = part.strip()
    if not part:
      continue
    lo, sep, hi = part.partition('-')
    try:
      out.update(range(int(lo), int(hi) + 1) if sep else [int(lo)])
    except ValueError:
      raise ValueError(f'--episodes: {part!r} is not an index or a range like 3-7') from None
  return out


def _delete(args: argparse.Namespace) -> int:
  doomed = _parse_ranges(args.episodes)
  return _copy(args, [args.src], select=lambda i, _: i not in doomed)


def _filter(args: argparse.Namespace) -> int:
  keep = None
  if args.keep:
    try:
      keep = compile(args.keep, '--keep', 'eval')
    except SyntaxError as e:
      raise ValueError(f'--keep: not a Python expression: {e.msg}') from None

  def select(index: int, episode: Any) -> bool:
    if args.drop_invalid and episode.invalid:
      return False
    if args.drop_cut_short and episode.cut_short:
      return False
    if args.min_length is not None and len(episode) < args.min_length:
      return False
    if keep is None:
      return True
    names = {
      'metadata': episode.metadata,
      'length': len(episode),
      'index': index,
      'invalid': episode.invalid,
      'cut_short': episode.cut_short,
      'episode_id': episode.episode_id,
    }
    try:
      return bool(eval(keep, {'__builtins__': {'len': len, 'abs': abs, 'min': min, 'max': max}}, names))  # noqa: S307
    except Exception as e:
      raise ValueError(f'--keep {args.keep!r} failed on episode {index}: {type(e).__name__}: {e}') from None

  return _copy(args, [args.src], select=select)


def _plot(args: argparse.Namespace) -> int:
  from envlogger import plots  # noqa: PLC0415

  result = plots.plot_log(args.directory, args.out)
  print(f'plot: {result["episodes"]} episodes -> {args.out}')
  return 0


def _show(args: argparse.Namespace) -> int:
  from envlogger import plots  # noqa: PLC0415

  result = plots.show_episode(args.directory, args.episode, args.out)
  print(
    f'show: episode {args.episode}, {result["kind"]} of {result["frames"]} frames ({result["leaf"]}) -> {args.out}'
  )
  return 0


def _writer_options(p: argparse.ArgumentParser) -> None:
  p.add_argument('--dataset-name', default='envlogger', help='TFDS dataset name of DST (default: envlogger)')
  p.add_argument('--split', default='train', help='split name (default: train)')
  p.add_argument(
    '--episodes-per-shard',
    type=int,
    default=None,
    help='episodes per shard file (default: 1000; 10000 with --format array_record)',
  )
  from envlogger.convert import FILE_FORMATS  # noqa: PLC0415

  p.add_argument(
    '--format',
    default='tfrecord',
    choices=FILE_FORMATS,
    help='tfrecord (default: what the logger writes and tfds.load reads) or array_record (the compact '
    'format: zstd across episodes, read by envlogger.Reader and TFDS as_data_source; DST must be new)',
  )
  p.add_argument(
    '--verify', action='store_true', help='skip (and list) damaged source episodes instead of stopping'
  )
  p.add_argument('--quiet', action='store_true', help='no progress bar')


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog='envlogger', description='Tools for envlogger logs.')
  commands = parser.add_subparsers(dest='command', required=True)
  p = commands.add_parser('info', help='what a log holds: counts, lengths, specs, metadata, size')
  p.add_argument('directory')
  p.add_argument('--json', action='store_true', help='print JSON instead of a table')
  p.set_defaults(run=_info)
  p = commands.add_parser('validate', help='check every record and RLDS conformance; exit 1 with a report')
  p.add_argument('directory')
  p.set_defaults(run=_validate)
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
  _writer_options(p)
  p.set_defaults(run=_convert)
  p = commands.add_parser('merge', help='write the episodes of several logs (same specs) into one dataset')
  p.add_argument('src', nargs='+', help='logs to read, in order')
  p.add_argument('dst', help='the data_directory to write')
  _writer_options(p)
  p.set_defaults(run=_merge)
  p = commands.add_parser('filter', help='write the episodes of a log that pass the given tests')
  p.add_argument('src')
  p.add_argument('dst')
  p.add_argument('--drop-invalid', action='store_true', help='drop episodes marked invalid')
  p.add_argument('--drop-cut-short', action='store_true', help='drop episodes cut short')
  p.add_argument('--min-length', type=int, help='drop episodes with fewer steps')
  p.add_argument(
    '--keep',
    help='a Python expression over metadata, length, index, invalid, cut_short, episode_id; e.g. '
    '"metadata[\'score\'] > 0"',
  )
  _writer_options(p)
  p.set_defaults(run=_filter)
  p = commands.add_parser('delete', help='write a log without the given episodes')
  p.add_argument('src')
  p.add_argument('dst')
  p.add_argument('--episodes', required=True, help='episode indexes to drop: 3,7-9')
  _writer_options(p)
  p.set_defaults(run=_delete)
  p = commands.add_parser('reshard', help='write a log with another number of episodes per shard file')
  p.add_argument('src')
  p.add_argument('dst')
  _writer_options(p)
  p.set_defaults(run=_reshard)
  p = commands.add_parser('plot', help='a PNG of episode returns and lengths over the log')
  p.add_argument('directory')
  p.add_argument('out', help='the PNG to write')
  p.set_defaults(run=_plot)
  p = commands.add_parser(
    'show', help="one episode's observations: a GIF or contact sheet of images, or a plot"
  )
  p.add_argument('directory')
  p.add_argument('out', help='.gif (animation) or .png (contact sheet, or plot for non-image observations)')
  p.add_argument('--episode', type=int, default=0, help='episode index (negative from the end; default 0)')
  p.set_defaults(run=_show)
  return parser


def main(argv: list[str] | None = None) -> int:
  args = _parser().parse_args(argv)
  try:
    return args.run(args)
  except (OSError, ValueError, IndexError, ImportError) as e:  # the user's to fix: no log, bad arguments, ...
    print(f'envlogger {args.command}: {e}', file=sys.stderr)
    return 2
  except KeyboardInterrupt:
    print(f'envlogger {args.command}: interrupted', file=sys.stderr)
    return 130


if __name__ == '__main__':
  raise SystemExit(main())
