"""``python -m skasd.cli``: the ``skasd`` command line."""

import sys

from ._main import main

sys.exit(main())
