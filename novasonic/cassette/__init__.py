"""Cassettes: recorded Nova Sonic conversations as versioned, line-oriented, reviewable text.

The format is specified in ``docs/cassette-format.md``. The package is cut like VCR.py's
(design.md §2, style-examples.md §4): small parts, each replaceable, imports pointing down.

=================  =========================================================================
``model``          header, typed records, ``CassetteStream``/``Cassette``/``Burst`` (data only)
``audio``          speech/silence segments, compact integer lists, PCM blobs (no I/O)
``redact``         the single redaction policy: ``redact_mapping``, ``redact_text``, ``assert_clean``
``serialize``      records ↔ JSON lines, format version, compact forms (id elision, usage vectors)
``persist``        append-only files that survive a killed writer; line splitting
``sidecar``        the ``<name>.audio`` file of compressed PCM blobs
``writer``         ``CassetteWriter``: incremental writing with audio coalescing
``validate``       structure checks and protocol-rule checks (``novasonic.rules.InputMachine``)
``load``           ``load_cassette`` / ``read_cassette``
``save``           ``save_cassette`` (in-memory cassette → file)
``from_journal``   ``cassette_from_journal`` (the fake server's journals → a cassette)
``diff``           ``diff_cassettes``: semantic differences (ids rebound, times ignored by default)
=================  =========================================================================

Use::

    from novasonic.cassette import CassetteHeader, CassetteWriter, load_cassette

    with CassetteWriter("call.jsonl", CassetteHeader(model_id="amazon.nova-2-sonic-v1:0")) as w:
        w.write_client(0, 0.0, None, session_start)     # a=None: the writer counts the audio
        w.write_server(0, 1.2, None, completion_start)
        w.flush()                                       # after every burst
    cassette = load_cassette("call.jsonl")              # validated against the rules
    for burst in cassette[0].bursts(max_gap_s=0.25):    # what replay walks through
        ...
"""

from .audio import SILENCE, SPEECH, Segmenter, segments_of
from .diff import CassetteDiff, DiffOptions, diff_cassettes
from .errors import (
    CassetteAudioError,
    CassetteError,
    CassetteFormatError,
    CassetteNotFoundError,
    CassetteRulesError,
    CassetteSecretError,
    CassetteVersionError,
    CassetteWarning,
)
from .from_journal import cassette_from_journal, write_stream_journal
from .load import load_cassette, read_cassette
from .model import (
    FORMAT_VERSION,
    MAGIC,
    RECORD_KINDS,
    TRANSPORT_ACTIONS,
    AudioInRecord,
    AudioOutRecord,
    AudioPolicy,
    AudioRef,
    Burst,
    Cassette,
    CassetteHeader,
    CassetteStream,
    ClientEventRecord,
    EndRecord,
    ExceptionRecord,
    NoteRecord,
    Record,
    ServerEventRecord,
    StreamRecord,
    TimedRecord,
    TransportRecord,
)
from .redact import REDACTED, assert_clean, is_sensitive_key, redact_mapping, redact_text
from .save import save_cassette
from .serialize import SUPPORTED_VERSIONS
from .sidecar import sidecar_path_for
from .writer import CassetteWriter, WriterOptions

__all__ = [
    "FORMAT_VERSION",
    "SUPPORTED_VERSIONS",
    "MAGIC",
    "RECORD_KINDS",
    "TRANSPORT_ACTIONS",
    "CassetteHeader",
    "AudioPolicy",
    "AudioRef",
    "Record",
    "TimedRecord",
    "StreamRecord",
    "ClientEventRecord",
    "ServerEventRecord",
    "AudioInRecord",
    "AudioOutRecord",
    "ExceptionRecord",
    "TransportRecord",
    "EndRecord",
    "NoteRecord",
    "Burst",
    "CassetteStream",
    "Cassette",
    "CassetteWriter",
    "WriterOptions",
    "load_cassette",
    "read_cassette",
    "save_cassette",
    "diff_cassettes",
    "DiffOptions",
    "CassetteDiff",
    "cassette_from_journal",
    "write_stream_journal",
    "sidecar_path_for",
    "REDACTED",
    "redact_mapping",
    "redact_text",
    "is_sensitive_key",
    "assert_clean",
    "SPEECH",
    "SILENCE",
    "Segmenter",
    "segments_of",
    "CassetteError",
    "CassetteNotFoundError",
    "CassetteFormatError",
    "CassetteVersionError",
    "CassetteRulesError",
    "CassetteAudioError",
    "CassetteSecretError",
    "CassetteWarning",
]
