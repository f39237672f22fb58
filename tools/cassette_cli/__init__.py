"""``nova-cassette``: inspect, validate, diff, export and draw Nova Sonic cassettes.

=================  ===================================================================
``main``           the command line: parser, commands, exit codes (see its docstring)
``describe``       what ``inspect`` shows (facts as JSON-able data, and as text)
``audio_export``   ``audio``: kept PCM → one WAV per audio block (stdlib ``wave``)
``timeline``       ``timeline``: a stream on a time axis, HTML (inline SVG) or PNG
=================  ===================================================================

The diff engine is a library module, ``novasonic.cassette.diff`` (``diff_cassettes``).
"""

from .main import main

__all__ = ["main"]
