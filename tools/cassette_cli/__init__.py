"""``nova-cassette``: inspect and validate Nova Sonic cassettes from the command line.

See ``tools.cassette_cli.main`` for the commands and exit codes.
"""

from .main import main

__all__ = ["main"]
