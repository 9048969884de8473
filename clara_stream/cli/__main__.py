"""``python -m clara_stream.cli`` (what worker subprocesses and tests run)."""

import sys

from clara_stream.cli import main

sys.exit(main())
