"""Drive conversations with the STOCK SDK client against a running ``FakeNovaSonic``.

``Conversation`` (``conversation.py``) opens one ``InvokeModelWithBidirectionalStream`` with the
unmodified ``aws_sdk_bedrock_runtime`` client (``novasonic.transport``: CRT, loopback TLS +
HTTP/2, SigV4-signed frames), sends what a voice agent sends (``EventBuilder``: the start block,
one interactive AUDIO block streaming 32 ms frames, interactive text, tool results, the
documented shutdown) and reads every output event into an ``OutputTracker`` and rebuilt content
blocks.

Why it lives here and not under ``tests/``: two kinds of callers need it, the integration tests
and the cassette generator (``tools.cassette_gen``, which builds the shipped library by running
each scenario for real). Package code must not import from ``tests/``, so the driver is a
package module; ``tests/helpers/conversation.py`` re-exports it for the existing tests.
Imports point downward: ``fakeserver`` (the server it drives) and ``novasonic``.
"""

from .conversation import (
    DEFAULT_TIMEOUT,
    FRAME_MS,
    Block,
    Conversation,
    ConversationResult,
    ToolHandler,
    check_usage,
    shape,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "FRAME_MS",
    "Block",
    "Conversation",
    "ConversationResult",
    "ToolHandler",
    "shape",
    "check_usage",
]
