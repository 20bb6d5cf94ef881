"""Load YAML documents and validate them with pydantic, keeping line numbers.

Errors name the file, the line and the field path, in one line, so that a user
can jump straight to the mistake: ``canary.yaml:14: spec.analysis.threshold:
Input should be a valid integer``.

Every YAML file progdel reads from its users (Canary and MetricTemplate files,
progdel.yaml, kubeconfigs, ``--values`` files, the file a GitOps promotion edits)
goes through ``load_yaml``/``parse_documents`` here, which refuse, with one line
and exit 2:

- a file over ``MAX_DOCUMENT_BYTES`` (the Kubernetes API server's request limit:
  no object progdel sends can be larger anyway);
- aliases that expand a document by more than ``MAX_ALIAS_NODES`` nodes, or into
  itself (a few hundred bytes of ``&a [*a, *a, ...]`` otherwise become gigabytes);
- a key given twice in one mapping (YAML forbids it; PyYAML would keep the last
  one silently, so a second ``threshold:`` further down would win unseen).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from progdel.errors import InvalidInput, printable

M = TypeVar("M", bound=BaseModel)

PathKey = tuple[str | int, ...]

MAX_DOCUMENT_BYTES = 3 * 1024 * 1024
"""The largest YAML file progdel reads: kube-apiserver's limit on a request body (3 MiB)."""
MAX_ALIAS_NODES = 100_000
"""How many nodes aliases may add to a document once expanded."""

_MERGE_TAG = "tag:yaml.org,2002:merge"
_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


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


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: Any, line: int, first: int) -> None:
        super().__init__(f"duplicate key {printable(repr(key))}")
        self.key, self.line, self.first = key, line, first


class _StrictLoader(_BaseLoader):  # type: ignore[valid-type,misc]
    """YAML 1.1 safe loading, with duplicate keys refused (merge keys ``<<`` may still be overridden)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: the constructor says so below
                continue
            line = key_node.start_mark.line + 1
            if first is not None:
                raise _DuplicateKey(key, line, first)
            seen[key] = line
        return super().construct_mapping(node, deep)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_expansion(root: yaml.Node, source: str) -> None:
    """Refuse a document whose aliases expand it by more than ``MAX_ALIAS_NODES`` nodes, or
    that contains itself. Each node's expanded size is computed once, so this is linear in the
    text however far the aliases would expand."""
    sizes: dict[int, int] = {}
    path = {id(root)}
    stack: list[tuple[yaml.Node, Iterator[yaml.Node]]] = [(root, iter(_children(root)))]
    while stack:
        node, pending = stack[-1]
        child = next(pending, None)
        if child is None:
            stack.pop()
            path.discard(id(node))
            sizes[id(node)] = 1 + sum(sizes[id(c)] for c in _children(node))
            if sizes[id(node)] > len(sizes) + MAX_ALIAS_NODES:
                raise InvalidInput(
                    f"{source}:{node.start_mark.line + 1}: YAML aliases expand this document by more than "
                    f"{MAX_ALIAS_NODES} nodes; refusing it"
                )
            continue
        if id(child) in sizes:
            continue
        if id(child) in path:
            raise InvalidInput(f"{source}:{child.start_mark.line + 1}: a YAML alias refers to itself")
        path.add(id(child))
        stack.append((child, iter(_children(child))))


def _yaml_error(err: yaml.YAMLError, source: str) -> InvalidInput:
    if isinstance(err, _DuplicateKey):
        return InvalidInput(
            f"{source}:{err.line}: duplicate key {printable(repr(err.key))} (first at line {err.first})"
        )
    mark = getattr(err, "problem_mark", None)
    where = f"{source}:{mark.line + 1}" if mark is not None else source
    problem = getattr(err, "problem", None) or (str(err).splitlines() or ["invalid"])[0]
    return InvalidInput(f"{where}: invalid YAML: {printable(problem)}")


def iter_yaml(
    text: str, source: str, *, max_bytes: int = MAX_DOCUMENT_BYTES
) -> Iterator[tuple[yaml.Node, Any]]:
    """Each document of ``text`` as its node (for line numbers and positions) and its data,
    within the bounds above (``max_bytes`` for what is not a Kubernetes object: a chart
    repository's index); ``source`` names the text in errors."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise InvalidInput(
            f"{source}: {size} bytes, more than the {max_bytes // (1024 * 1024)} MiB progdel reads"
        )
    loader = _StrictLoader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            _check_expansion(node, source)
            yield node, loader.construct_document(node)
    except yaml.YAMLError as err:
        raise _yaml_error(err, source) from None
    except RecursionError:
        raise InvalidInput(f"{source}: YAML nested too deeply") from None
    finally:
        loader.dispose()


def load_yaml(text: str, source: str, *, max_bytes: int = MAX_DOCUMENT_BYTES) -> Any:
    """The data of a single-document YAML text (None when empty); more documents are an error."""
    docs = [data for _, data in iter_yaml(text, source, max_bytes=max_bytes)]
    if len(docs) > 1:
        raise InvalidInput(f"{source}: expected one YAML document, found {len(docs)}")
    return docs[0] if docs else None


def _walk(root: yaml.Node, lines: dict[PathKey, int]) -> None:
    stack: list[tuple[yaml.Node, PathKey]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if path not in lines:
            lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = key_node.value
                if not isinstance(key, str):
                    continue
                lines[(*path, key)] = key_node.start_mark.line + 1
                stack.append((value_node, (*path, key)))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                stack.append((item, (*path, i)))


def parse_documents(text: str, source: str) -> list[Document]:
    """Every non-empty document in ``text``; ``source`` names it in errors."""
    docs: list[Document] = []
    for node, data in iter_yaml(text, source):
        if data is None:
            continue
        lines: dict[PathKey, int] = {}
        _walk(node, lines)
        docs.append(Document(data=data, source=source, lines=lines))
    return docs


def read_text(path: str | Path, what: str = "") -> str:
    """A user's text file, at most ``MAX_DOCUMENT_BYTES``; ``what`` prefixes errors (default: the path)."""
    p = Path(path)
    name = what or str(p)
    try:
        with p.open("rb") as f:
            raw = f.read(MAX_DOCUMENT_BYTES + 1)
    except FileNotFoundError:
        raise InvalidInput(f"{name}: no such file") from None
    except IsADirectoryError:
        raise InvalidInput(f"{name}: is a directory, not a file") from None
    except OSError as err:
        raise InvalidInput(f"{name}: cannot read: {err.strerror or err}") from None
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise InvalidInput(
            f"{name}: larger than the {MAX_DOCUMENT_BYTES // (1024 * 1024)} MiB progdel reads "
            "(the Kubernetes API's limit for one request)"
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InvalidInput(f"{name}: not UTF-8 text (byte {err.start + 1})") from None


def load_documents(path: str | Path) -> list[Document]:
    """Read a YAML file (``-`` is not supported here: callers read stdin themselves)."""
    return parse_documents(read_text(path), str(path))


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
