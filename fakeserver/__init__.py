"""A fake Amazon Nova Sonic endpoint that the stock ``aws_sdk_bedrock_runtime`` client talks to
over loopback TLS + HTTP/2: SigV4 verification, the service's validation and error texts, limits
on a scaled clock, fault injection, a journal of every stream, and pluggable responders.

>>> from fakeserver import FakeNovaSonic   # async context manager (design §8)
"""

from .api import FakeNovaSonic  # noqa: E402
from .clock import ScaledClock
from .config import ServerConfig, generate_credentials
from .faults import Action, Fault, FaultPlan, Trigger
from .journal import Journal, StreamJournal

__all__ = [
    "FakeNovaSonic",
    "ServerConfig",
    "generate_credentials",
    "ScaledClock",
    "Fault",
    "FaultPlan",
    "Trigger",
    "Action",
    "Journal",
    "StreamJournal",
]
