"""``python -m hw_build``: see :mod:`hw_build.cli`."""

import sys

from hw_build.cli import main

sys.exit(main())
