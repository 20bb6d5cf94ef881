"""Exit codes and the one error type that reaches the user.

Scripts and CI depend on the exit codes, so they are part of the contract
(see the README's table). Anything a user can cause is raised as a
``ProgdelError`` carrying one clear line and its code; the CLI prints the line
and exits with the code, never a traceback (``-v`` adds one).
"""

from __future__ import annotations

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
