"""``python -m bocpy.trace FILE [--png OUT]``: see :func:`bocpy.trace.main`."""

import sys

from . import main

sys.exit(main())
