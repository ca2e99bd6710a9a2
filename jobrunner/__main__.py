"""``python -m jobrunner``: the same as the ``jobrunner`` command."""

import sys

from jobrunner.cli import main

if __name__ == "__main__":
    sys.exit(main())
