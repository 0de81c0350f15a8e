"""`python -m nasengine` runs the command line."""

import sys

from nasengine.cli import main

sys.exit(main())
