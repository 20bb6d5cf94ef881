"""Exit codes and the one error type that reaches the user.

Scripts and CI depend on the exit codes, so they are part of the contract
(see the README's table). Anything a user can cause is raised as a
``ProgdelError`` carrying one clear line and its code; the CLI prints the line
and exits with the code, never a traceback (``-v`` adds one).
"""

from __future__ import annotations

import re
from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    INTERNAL = 1
    INVALID_INPUT = 2
    CANARY_FAILED = 3
    ABORTED = 4
    WAITING = 5
    UNREACHABLE = 6
    TIMEOUT = 7


class ProgdelError(Exception):
    """An error with a message meant for people and the exit code it ends with."""

    exit_code: ExitCode = ExitCode.INTERNAL

    def __init__(self, message: str, exit_code: ExitCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message


class InvalidInput(ProgdelError):
    """Bad usage, configuration or spec (exit 2)."""

    exit_code = ExitCode.INVALID_INPUT


class Unreachable(ProgdelError):
    """The cluster API or the metrics server cannot be reached (exit 6)."""

    exit_code = ExitCode.UNREACHABLE


class TimedOut(ProgdelError):
    """A wait ran past its deadline (exit 7)."""

    exit_code = ExitCode.TIMEOUT


# C0 and C1 controls (ESC starts terminal escape sequences, CR rewrites a line), DEL, the marks and
# overrides that reorder text on screen, and lone surrogates (undecodable bytes in arguments).
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _escape(m: re.Match[str]) -> str:
    code = ord(m.group())
    return {9: "\\t", 10: "\\n", 13: "\\r"}.get(code) or (
        f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    )


def printable(text: str) -> str:
    """``text`` with control characters written as escapes (``\\x1b``, ``\\r``, ``\\u202e``), so that
    nothing a user, a file or the cluster supplied can move the cursor, recolour or rewrite a terminal."""
    return _UNPRINTABLE.sub(_escape, text)


def has_control(text: str) -> bool:
    """True when ``printable`` would change ``text``."""
    return _UNPRINTABLE.search(text) is not None


def check_credential(value: str, what: str) -> None:
    """Refuse a credential with a control character (CR, LF, NUL...): sent in a header it would be
    refused there or end the header early, and the error would print it. ``what`` names where it
    came from (a variable, a file, a Secret's key); the value itself is never shown."""
    if has_control(value):
        raise InvalidInput(f"{what} contains a control character (CR, LF, NUL...); refusing to use it")
