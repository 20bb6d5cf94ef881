"""Load YAML documents and validate them with pydantic, keeping line numbers.

Errors name the file, the line and the field path, in one line, so that a user
can jump straight to the mistake: ``canary.yaml:14: spec.analysis.threshold:
Input should be a valid integer``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from progdel.errors import InvalidInput

M = TypeVar("M", bound=BaseModel)

PathKey = tuple[str | int, ...]


@dataclass
class Document:
    """One YAML document: its data, where it came from, and the line of every node."""

    data: Any
    source: str
    lines: dict[PathKey, int] = field(default_factory=dict)

    def line_of(self, path: PathKey) -> int | None:
        """The line of ``path``, or of its nearest ancestor that has one."""
        for n in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:n]))
            if line is not None:
                return line
        return None


def _walk(node: yaml.Node, path: PathKey, lines: dict[PathKey, int]) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            lines[(*path, key)] = key_node.start_mark.line + 1
            _walk(value_node, (*path, key), lines)
            lines[(*path, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*path, i), lines)


def _compose_all(text: str, source: str) -> Iterator[yaml.Node]:
    try:
        yield from yaml.compose_all(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise InvalidInput(f"{where}: invalid YAML: {problem}") from None


def parse_documents(text: str, source: str) -> list[Document]:
    """Every non-empty document in ``text``; ``source`` names it in errors."""
    docs: list[Document] = []
    for node in _compose_all(text, source):
        if node is None:
            continue
        lines: dict[PathKey, int] = {}
        _walk(node, (), lines)
        try:
            data = yaml.safe_load(yaml.serialize(node))
        except yaml.YAMLError as err:  # pragma: no cover - compose already checked syntax
            raise InvalidInput(f"{source}: invalid YAML: {err}") from None
        if data is not None:
            docs.append(Document(data=data, source=source, lines=lines))
    return docs


def load_documents(path: str | Path) -> list[Document]:
    """Read a YAML file (``-`` is not supported here: callers read stdin themselves)."""
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise InvalidInput(f"{p}: no such file") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as err:
        raise InvalidInput(f"{p}: cannot read: {err}") from None
    return parse_documents(text, str(p))


def format_path(path: PathKey) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def validate(model: type[M], doc: Document, *, prefix: PathKey = ()) -> M:
    """Validate ``doc.data`` (or the part of it under ``prefix``) as ``model``.

    The first error becomes an ``InvalidInput`` naming file, line and field;
    the count of further errors is appended.
    """
    data = doc.data
    for part in prefix:
        data = data[part]
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise InvalidInput(describe_validation_error(err, doc, prefix)) from None


def describe_validation_error(err: ValidationError, doc: Document, prefix: PathKey = ()) -> str:
    errors = err.errors(include_url=False)
    first = errors[0]
    loc: PathKey = (*prefix, *(p for p in first["loc"] if isinstance(p, str | int)))
    line = doc.line_of(loc)
    where = f"{doc.source}:{line}" if line else doc.source
    field_name = format_path(loc) or "(document)"
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown field"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {field_name}: {msg}{more}"
