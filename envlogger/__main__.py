"""`python -m envlogger ...`: the command line (see `envlogger.cli`)."""

from envlogger.cli import main

if __name__ == '__main__':
  raise SystemExit(main())
