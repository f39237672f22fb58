"""``python -m tools.cassette_gen``: see ``tools.cassette_gen.cli``."""

import sys

from .cli import main

sys.exit(main())
