"""`python -m f1daemon`, the same as the `f1daemon` command."""

import sys

from f1daemon.cli import main

sys.exit(main())
