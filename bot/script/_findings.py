"""Findings: the one shape every script problem is reported in."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Protocol

#: What a Telegram bot token looks like: @BotFather's digits, a colon and the secret part.
BOT_TOKEN = re.compile(r"\d+:[A-Za-z0-9_-]{30,}")
#: The most characters of a file's text a message quotes (a key, a tag, an include entry).
QUOTE_LIMIT = 40
_TOKEN_SHOWN = "[a bot token, not shown]"


def redact_tokens(text: str) -> str:
    """``text`` with everything that looks like a bot token replaced by a placeholder."""
    return BOT_TOKEN.sub(_TOKEN_SHOWN, text)


def quoted(text: str) -> str:
    """Text from a file, fit to quote in a message: tokens hidden, at most ``QUOTE_LIMIT`` long.

    A finding may name what it is about, but never reproduces more than a snippet of a file
    (which may not be a script at all, and may be secret). Characters that are not printable
    (a terminal escape, a NUL, a direction override) are shown as escapes such as ``\x1b``.
    """
    text = redact_tokens(text)
    text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)
    return text if len(text) <= QUOTE_LIMIT else text[: QUOTE_LIMIT - 1] + "…"


class Where(Protocol):
    """A position in a file: its name and a 1-based line and column (a ``Mark``)."""

    @property
    def file(self) -> str: ...
    @property
    def line(self) -> int: ...
    @property
    def col(self) -> int: ...


class Severity(StrEnum):
    """How serious a finding is: errors stop a script from loading, warnings do not."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem in a script, located at ``file:line:col`` (both 1-based).

    Attributes:
        file: The path of the script file as given by the user.
        line: 1-based line number.
        col: 1-based column number.
        severity: ``error`` or ``warning``.
        message: A plain-language explanation a therapist can act on.
        code: A short stable identifier, e.g. ``yaml-duplicate-key``.
    """

    file: str
    line: int
    col: int
    severity: Severity
    message: str
    code: str

    @classmethod
    def error(cls, at: Where, code: str, message: str) -> Finding:
        """An error at ``at``: the script (or file) cannot be used until it is fixed."""
        return cls(at.file, at.line, at.col, Severity.ERROR, message, code)

    @classmethod
    def warning(cls, at: Where, code: str, message: str) -> Finding:
        """A warning at ``at``: advice; the script still loads."""
        return cls(at.file, at.line, at.col, Severity.WARNING, message, code)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.severity}: {self.message} [{self.code}]"

    def to_json(self) -> dict[str, object]:
        """Return the finding as a JSON-ready mapping."""
        return asdict(self)


def findings_to_json(findings: list[Finding]) -> str:
    """Serialise findings as a JSON array."""
    return json.dumps([f.to_json() for f in findings], ensure_ascii=False, indent=2)


class ScriptError(Exception):
    """Raised when a script cannot be loaded; carries every error finding."""

    def __init__(self, findings: list[Finding]) -> None:
        self.findings = findings
        super().__init__("\n".join(str(f) for f in findings))
