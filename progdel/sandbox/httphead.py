"""Reading a request's header block, fast: the sandbox's API server spends most of a GET here.

``http.server`` parses headers with the ``email`` package (a feed parser, then a linear search
per lookup), which costs more than everything else a GET does together. This reads the lines
itself into a dict, with the same limits the standard library applies (a line of at most
65,536 bytes, at most 100 headers) and the lookups the handler uses: ``get`` (the first value,
names case-insensitive), ``get_all`` and ``items``.
"""

from __future__ import annotations

from typing import Protocol

MAX_LINE = 65536
MAX_HEADERS = 100


class LineReader(Protocol):
    def readline(self, size: int = -1, /) -> bytes: ...


class HeaderError(Exception):
    """A header block the server refuses; ``status`` is the answer's code (400 or 431)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Headers:
    """A request's headers in arrival order, looked up by case-insensitive name."""

    __slots__ = ("_by_name", "_items")

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._items = items
        self._by_name: dict[str, list[str]] = {}
        for name, value in items:
            self._by_name.setdefault(name.lower(), []).append(value)

    def get(self, name: str, default: str | None = None) -> str | None:
        values = self._by_name.get(name.lower())
        return values[0] if values else default

    def get_all(self, name: str) -> list[str] | None:
        values = self._by_name.get(name.lower())
        return list(values) if values else None

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._by_name

    def __len__(self) -> int:
        return len(self._items)


def read_headers(rfile: LineReader) -> Headers:
    """Read header lines up to the empty line that ends them.

    A folded line (starting with a space or tab) continues the previous header, joined with a
    space as RFC 9112 allows; a line without a colon, or with whitespace before it, is a 400.
    """
    items: list[tuple[str, str]] = []
    while True:
        raw = rfile.readline(MAX_LINE + 1)
        if len(raw) > MAX_LINE:
            raise HeaderError(431, "Line too long")
        if raw in (b"\r\n", b"\n", b""):
            return Headers(items)
        line = raw.decode("iso-8859-1").rstrip("\r\n")
        if line[0] in " \t":
            if not items:
                raise HeaderError(400, "header block starts with whitespace")
            name, value = items[-1]
            items[-1] = (name, f"{value} {line.strip()}")
            continue
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.rstrip() or " " in name:
            raise HeaderError(400, f"malformed header line {line[:80]!r}")
        items.append((name, value.strip()))
        if len(items) > MAX_HEADERS:
            raise HeaderError(431, f"got more than {MAX_HEADERS} headers")
