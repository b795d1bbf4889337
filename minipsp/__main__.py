"""`python -m minipsp ...`: the `minipsp` command (minipsp.cli). Python imports the package before this runs, so
a Ctrl-C during that import is guarded only by the console script's entry, _minipsp_entry (see its docstring)."""

import sys

from minipsp.cli import main

sys.exit(main())
