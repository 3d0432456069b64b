"""The ``skasd`` command line (the console script ``skasd = skasd.cli:main``).

argparse commands only: each calls library functions (:mod:`skasd.workflow`, :mod:`skasd.io`,
:mod:`skasd.report`). No library module imports this package.
"""

from ._commands import CLIError
from ._main import build_parser, main

__all__ = ["CLIError", "build_parser", "main"]
