"""Change one scalar in a YAML text and nothing else.

An environment repository is read by people in pull requests: a promotion must
show up as a one-line diff, with every comment, blank line, quote and key order
left as it was. So the file is never loaded and dumped again; instead PyYAML's
composer tells us where the value's characters start and end, and only those
characters are replaced. The result is parsed again and compared with the
expected data before it is returned, so an edit can never change more than the
one value.

Key syntax (``{app}`` is replaced by the application's name first):

- ``apps.web.version``: mapping keys separated by dots;
- ``releases[2].version``: a list index;
- ``releases[name=web].version``: the item of a list whose ``name`` is ``web``.

Keys that contain dots, brackets or ``=`` cannot be addressed. A missing key
can be added only as the last segment, in an existing non-empty block mapping.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import yaml

from progdel.config.keys import Segment, parse_key
from progdel.config.yamlfile import iter_yaml, load_yaml
from progdel.errors import InvalidInput


def format_segments(segments: list[Segment]) -> str:
    out = ""
    for s in segments:
        if isinstance(s, int):
            out += f"[{s}]"
        elif isinstance(s, tuple):
            out += f"[{s[0]}={s[1]}]"
        else:
            out += ("." if out else "") + s
    return out


@dataclass(frozen=True)
class Edit:
    """The outcome of ``set_value``: the new text, and the value that was there before."""

    text: str
    previous: str | None
    changed: bool


def _compose(text: str, source: str) -> yaml.Node | None:
    nodes = [node for node, _ in iter_yaml(text, source)]
    if len(nodes) > 1:
        raise InvalidInput(f"{source}: has {len(nodes)} YAML documents; progdel edits single-document files")
    return nodes[0] if nodes else None


def _child(node: yaml.Node, seg: Segment) -> yaml.Node | None:
    if isinstance(seg, str):
        if not isinstance(node, yaml.MappingNode):
            return None
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == seg:
                return v
        return None
    if not isinstance(node, yaml.SequenceNode):
        return None
    if isinstance(seg, int):
        return node.value[seg] if seg < len(node.value) else None
    field, wanted = seg
    for item in node.value:
        if _child(item, field) is not None:
            found = _child(item, field)
            if isinstance(found, yaml.ScalarNode) and found.value == wanted:
                return item
    return None


def _locate(root: yaml.Node | None, segments: list[Segment]) -> tuple[yaml.Node | None, int]:
    """The node at ``segments``, or the deepest existing node and how many segments it covers."""
    node = root
    for i, seg in enumerate(segments):
        if node is None:
            return None, i
        child = _child(node, seg)
        if child is None:
            return node, i
        node = child
    return node, len(segments)


def get_value(text: str, key: str, *, app: str | None = None, source: str = "<yaml>") -> str | None:
    """The scalar at ``key``, or None when the key is absent."""
    segments = _segments(key, app, source)
    node, depth = _locate(_compose(text, source), segments)
    if depth < len(segments) or node is None:
        return None
    if not isinstance(node, yaml.ScalarNode):
        raise InvalidInput(f"{source}: {key}: is a {_kind(node)}, not a single value")
    return str(node.value)


def _segments(key: str, app: str | None, source: str) -> list[Segment]:
    try:
        return parse_key(key, app)
    except ValueError as err:
        raise InvalidInput(f"{source}: {err}") from None


def _kind(node: yaml.Node) -> str:
    return "mapping" if isinstance(node, yaml.MappingNode) else "list"


def _render(value: str, style: str | None) -> str:
    """``value`` written in the quoting style the old value used, if that keeps it a string."""
    if style == "'":
        return "'" + value.replace("'", "''") + "'"
    if style == '"':
        return json.dumps(value)
    # Plain: keep it plain unless YAML would read it back as something else
    # (``1.2`` is a float, ``on`` a boolean, ``a # b`` loses its tail).
    try:
        if value and yaml.safe_load(f"k: {value}\n") == {"k": value} and "\n" not in value:
            return value
    except yaml.YAMLError:
        pass
    return json.dumps(value)


def set_value(text: str, key: str, value: str, *, app: str | None = None, source: str = "<yaml>") -> Edit:
    """Set the scalar at ``key`` to the string ``value``, touching only its characters.

    ``source`` names the file in errors. Raises ``InvalidInput`` when the key
    cannot be found or added, or addresses something other than a plain value.
    """
    segments = _segments(key, app, source)
    where = format_segments(segments)
    root = _compose(text, source)
    node, depth = _locate(root, segments)
    if depth == len(segments) and node is not None:
        if not isinstance(node, yaml.ScalarNode):
            raise InvalidInput(f"{source}: {where}: is a {_kind(node)}, not a single value")
        if node.style in ("|", ">"):
            raise InvalidInput(
                f"{source}:{node.start_mark.line + 1}: {where}: block scalars are not supported"
            )
        previous = str(node.value)
        if previous == value:
            return Edit(text=text, previous=previous, changed=False)
        start, end = node.start_mark.index, node.end_mark.index
        original = text[start:end]
        if original[:1] in ("!", "&", "*"):
            raise InvalidInput(
                f"{source}:{node.start_mark.line + 1}: {where}: the value has a tag, anchor or alias; "
                "edit it by hand"
            )
        new_text = text[:start] + _render(value, node.style) + text[end:]
    else:
        new_text = _insert(text, source, segments, depth, node, value)
        previous = None
    _check(text, new_text, segments, value, source, where)
    return Edit(text=new_text, previous=previous, changed=True)


def _insert(
    text: str, source: str, segments: list[Segment], depth: int, parent: yaml.Node | None, value: str
) -> str:
    where = format_segments(segments)
    if depth != len(segments) - 1 or parent is None:
        missing = format_segments(segments[: depth + 1])
        raise InvalidInput(f"{source}: {where}: not found ({missing} does not exist); add it by hand")
    last = segments[-1]
    if not isinstance(last, str) or not isinstance(parent, yaml.MappingNode) or parent.flow_style:
        raise InvalidInput(f"{source}: {where}: not found, and progdel only adds a key to a block mapping")
    if not parent.value:
        raise InvalidInput(f"{source}: {where}: not found, and its parent mapping is empty; add it by hand")
    first_key, first_value = parent.value[0]
    col = first_key.start_mark.column
    line_start = text.rfind("\n", 0, first_key.start_mark.index) + 1
    entry = f"{last}: {_render(value, None)}"
    if text[line_start : first_key.start_mark.index].strip() == "":
        # The first key starts its line: put the new key just above it.
        return text[:line_start] + " " * col + entry + "\n" + text[line_start:]
    if isinstance(first_value, yaml.ScalarNode) and first_value.end_mark.line == first_key.start_mark.line:
        # ``- name: web``: put the new key on the line after the first entry.
        eol = text.find("\n", first_value.end_mark.index)
        if eol == -1:
            return text + "\n" + " " * col + entry + "\n"
        return text[: eol + 1] + " " * col + entry + "\n" + text[eol + 1 :]
    raise InvalidInput(f"{source}: {where}: not found, and progdel cannot place it safely; add it by hand")


def _check(
    old_text: str, new_text: str, segments: list[Segment], value: str, source: str, where: str
) -> None:
    """Refuse an edit whose parsed result differs from the old data in more than the one value."""
    expected = load_yaml(old_text, source)
    _assign(expected, segments, value)
    try:
        actual = load_yaml(new_text, source)
    except InvalidInput:
        actual = object()
    if actual != expected:
        raise InvalidInput(
            f"{source}: {where}: cannot change this value without touching others; edit by hand"
        )


def _assign(data: Any, segments: list[Segment], value: str) -> None:
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        if isinstance(seg, tuple):
            field, wanted = seg
            data = next(item for item in data if isinstance(item, dict) and str(item.get(field)) == wanted)
        elif last:
            data[seg] = value
        else:
            data = data[seg]
