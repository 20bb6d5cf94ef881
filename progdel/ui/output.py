"""The one output layer: every command renders through here.

``table`` is for people (rich), ``json``/``yaml`` for scripts, ``ndjson`` for
streams (one object per line, flushed at once).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Any, Protocol

from progdel.errors import printable


class OutputFormat(StrEnum):
    """``-o/--output``."""

    table = "table"
    json = "json"
    yaml = "yaml"
    ndjson = "ndjson"
    html = "html"  # documents: `canary report` only
    md = "md"


class Options(Protocol):
    """What the output layer reads of a command's options (the global ``-o``)."""

    @property
    def output(self) -> OutputFormat: ...


def _json_default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    raise TypeError(f"cannot encode {type(value).__name__}")


def to_json(data: Any, *, indent: int | None = 2) -> str:
    return json.dumps(data, indent=indent, default=_json_default, sort_keys=False)


def emit(opts: Options, data: Any, human: Callable[[Any], Any]) -> None:
    """Print ``data`` in the chosen format; ``human`` renders it for ``table``.

    ``human`` may return a string or any rich renderable.
    """
    fmt = opts.output
    if fmt is OutputFormat.json:
        sys.stdout.write(to_json(data) + "\n")
    elif fmt is OutputFormat.ndjson:
        emit_line(data)
    elif fmt is OutputFormat.yaml:
        import yaml

        sys.stdout.write(yaml.safe_dump(json.loads(to_json(data)), sort_keys=False))
    else:
        rendered = human(data)
        if isinstance(rendered, str):
            # what people read may hold text from files or the cluster: no control characters
            sys.stdout.write("".join(printable(line) + "\n" for line in rendered.splitlines() or [""]))
        else:
            _print_unclipped(rendered)
    sys.stdout.flush()


def _print_unclipped(renderable: Any) -> None:
    """Print at the renderable's own width, as kubectl does: a table piped to ``grep`` or read in a
    narrow terminal keeps every column and every character (the terminal wraps long lines)."""
    import io

    from rich.console import Console

    buf = io.StringIO()
    wide = Console(file=buf, width=4096, highlight=False, soft_wrap=True, force_terminal=sys.stdout.isatty())
    wide.print(renderable)
    sys.stdout.write("".join(line.rstrip() + "\n" for line in buf.getvalue().splitlines()))


def emit_line(data: Any) -> None:
    """One NDJSON record, flushed so that a reader sees it at once."""
    sys.stdout.write(to_json(data, indent=None) + "\n")
    sys.stdout.flush()


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Any:
    """A kubectl-like borderless table."""
    from rich.table import Table

    t = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    for col in columns:
        t.add_column(col.upper(), no_wrap=True)
    for row in rows:
        t.add_row(*("" if v is None else printable(str(v)) for v in row))
    return t


_console: Any = None
_err_console: Any = None


def console() -> Any:
    global _console
    if _console is None:
        from rich.console import Console

        _console = Console(highlight=False, soft_wrap=True)
    return _console


def err_console() -> Any:
    """Progress and status lines go to stderr so that stdout stays parseable."""
    global _err_console
    if _err_console is None:
        from rich.console import Console

        _err_console = Console(stderr=True, highlight=False)
    return _err_console


def exit_after_partial(failures: Sequence[tuple[str, str, int]]) -> None:
    """After a listing across environments, name each ``(environment, message, exit code)`` that
    could not be read in one line on stderr, and exit 6 if a cluster was unreachable (else with
    the first one's code). As kubectl does, what could be read has been printed first."""
    if not failures:
        return
    import typer

    for environment, message, _code in failures:
        print(f"error: environment {environment}: {message}", file=sys.stderr)
    codes = [code for _e, _m, code in failures]
    raise typer.Exit(6 if 6 in codes else codes[0])
