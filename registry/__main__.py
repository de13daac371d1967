"""``python -m registry``: the ``clientreg`` command."""

import sys

from registry.cli import main

sys.exit(main())
