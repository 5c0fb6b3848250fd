"""``python -m host``: see :mod:`host.cli`."""

import sys

from host.cli import main

sys.exit(main())
