"""``python -m tools.cassette_cli``."""

import sys

from .main import main

sys.exit(main())
