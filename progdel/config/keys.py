"""The key paths of an environment repository's values file (``apps.{app}.version``), as
progdel.yaml declares them and ``promote/yamledit`` follows them: dotted mapping keys, ``[2]`` a
list index, ``[name=web]`` the item of a list whose ``name`` is ``web``."""

from __future__ import annotations

import re

Segment = str | int | tuple[str, str]

_SEGMENT = re.compile(r"([^.\[\]=]+)|\[(\d+)\]|\[([^.\[\]=]+)=([^\[\]]+)\]")


def parse_key(key: str, app: str | None = None) -> list[Segment]:
    """The segments of a key path; raises ``ValueError`` with the reason if it is malformed."""
    text = key.replace("{app}", app) if app is not None else key
    segments: list[Segment] = []
    pos = 0
    while pos < len(text):
        if segments and text[pos] == ".":
            pos += 1
        m = _SEGMENT.match(text, pos)
        if m is None or m.end() == pos:
            raise ValueError(f"cannot parse key {key!r} at character {pos + 1}")
        if m[1] is not None:
            segments.append(m[1])
        elif m[2] is not None:
            segments.append(int(m[2]))
        else:
            segments.append((m[3], m[4]))
        pos = m.end()
        if pos < len(text) and text[pos] not in ".[":
            raise ValueError(f"cannot parse key {key!r} at character {pos + 1}")
    if not segments:
        raise ValueError("empty key")
    if text.endswith("."):
        raise ValueError(f"key {key!r} ends with '.'")
    return segments
