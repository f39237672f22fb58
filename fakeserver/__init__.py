"""A fake Amazon Nova Sonic endpoint that the stock ``aws_sdk_bedrock_runtime`` client talks to
over loopback TLS + HTTP/2: SigV4 verification, the service's validation and error texts, limits
on a scaled clock, fault injection, a journal of every stream, and pluggable responders.

>>> from fakeserver import FakeNovaSonic   # async context manager (design §8)

The names below are imported on first use (PEP 562): the package also holds the pytest plugin
(``fakeserver.pytest_plugin``, loaded by every pytest run in an environment where the toolkit is
installed), which must import light and must not pull the server, pydantic and the CRT into runs
that do not use it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import FakeNovaSonic
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

_WHERE = {
    "FakeNovaSonic": ".api",
    "ServerConfig": ".config",
    "generate_credentials": ".config",
    "ScaledClock": ".clock",
    "Fault": ".faults",
    "FaultPlan": ".faults",
    "Trigger": ".faults",
    "Action": ".faults",
    "Journal": ".journal",
    "StreamJournal": ".journal",
}


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'fakeserver' has no attribute {name!r}")
    value = getattr(importlib.import_module(where, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
