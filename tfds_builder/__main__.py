"""`python -m tfds_builder`: see tfds_builder/cli.py."""

import sys

from tfds_builder.cli import main

sys.exit(main())
