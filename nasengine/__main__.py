"""`python -m nasengine` runs the command line."""

import sys

from nasengine.cli.main import main

sys.exit(main())
