"""Errors of the cassette package. Every error names the file and the line it is about.

::

    CassetteError (NovaSonicError, ValueError)   something is wrong with a cassette; .path, .line, .hint
    ├── CassetteNotFoundError (FileNotFoundError)   no file at the path
    ├── CassetteFormatError                      not a cassette line: bad JSON, unknown record kind,
    │                                            bad field, missing header, truncated line mid-file
    ├── CassetteVersionError                     a format version this toolkit does not read
    ├── CassetteRulesError                       the recorded client events break the protocol rules
    │                                            (.violation is the rules' ProtocolViolation)
    ├── CassetteAudioError                       the audio sidecar is missing, short or corrupt
    └── CassetteSecretError                      a secret was about to be written (nothing was written)

    CassetteWarning (UserWarning)                a recoverable problem, e.g. a truncated last line

Messages read ``<path>:<line>: <what is wrong>`` followed, when there is one, by a
``how to fix:`` hint, like VCR.py's self-explaining errors.
"""

from __future__ import annotations

from ..errors import NovaSonicError, ProtocolViolation

__all__ = [
    "CassetteError",
    "CassetteNotFoundError",
    "CassetteFormatError",
    "CassetteVersionError",
    "CassetteRulesError",
    "CassetteAudioError",
    "CassetteSecretError",
    "CassetteWarning",
]


class CassetteError(NovaSonicError, ValueError):
    """A problem with a cassette. ``line`` is 1-based (the header is line 1); ``None`` when the
    problem is not about one line."""

    def __init__(self, message: str, *, line: int | None = None, path: str | None = None, hint: str | None = None):
        self.message = message
        self.line = line
        self.path = path
        self.hint = hint
        super().__init__(self._render())

    def _render(self) -> str:
        where = self.path or "cassette"
        if self.line is not None:
            where = f"{where}:{self.line}"
        text = f"{where}: {self.message}"
        if self.hint:
            text += f"\n  how to fix: {self.hint}"
        return text

    def located(self, *, path: str | None = None, line: int | None = None) -> CassetteError:
        """Fill in the path/line when the raiser did not know them (returns ``self``)."""
        if path is not None and self.path is None:
            self.path = path
        if line is not None and self.line is None:
            self.line = line
        self.args = (self._render(),)
        return self


class CassetteNotFoundError(CassetteError, FileNotFoundError):
    """There is no cassette at the path."""


class CassetteFormatError(CassetteError):
    """The file is not a well-formed cassette at ``line``."""


class CassetteVersionError(CassetteError):
    """The header names a format version this toolkit does not read."""


class CassetteRulesError(CassetteError):
    """A recorded client event breaks the protocol rules (``novasonic.rules.InputMachine``)."""

    def __init__(self, message: str, *, violation: ProtocolViolation | None = None, **kw):
        self.violation = violation
        super().__init__(message, **kw)


class CassetteAudioError(CassetteError):
    """The audio a record points at cannot be read back."""


class CassetteSecretError(CassetteError):
    """A line about to be written holds a secret. The line was not written."""


class CassetteWarning(UserWarning):
    """A cassette problem that loading recovered from (it is also kept in ``Cassette.warnings``)."""
