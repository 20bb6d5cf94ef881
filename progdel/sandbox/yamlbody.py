"""Request bodies in YAML, read as kube-apiserver reads them: aliases may not blow a body up.

PyYAML resolves an alias to the very object its anchor made, so a few hundred bytes of
``&a [*a, *a, ...]`` nested nine deep load as a small graph, which becomes a billion
values the moment it is encoded as JSON and stored. kube-apiserver decodes YAML with go-yaml,
which refuses a document once most of what it decodes comes from expanding aliases
(``allowedAliasRatio``: 99% for small documents, scaling down to 10% at four million nodes).
The sandbox applies the same rule before building any object: it counts, once per node
(linear in the text however far the aliases reach), how many nodes the document holds when
expanded and how many of those only aliases put there, and answers go-yaml's error as a 400.
A document that contains itself and one nested too deeply are refused likewise.
"""

from __future__ import annotations

from typing import Any

import yaml

from progdel.sandbox.objects import bad_request

RATIO_LOW, RATIO_HIGH = 400_000, 4_000_000
MERGE_TAG = "tag:yaml.org,2002:merge"


def allowed_alias_ratio(decoded: int) -> float:
    """The share of decoded nodes go-yaml lets alias expansion account for."""
    if decoded <= RATIO_LOW:
        return 0.99
    if decoded >= RATIO_HIGH:
        return 0.10
    return 0.99 - 0.89 * (decoded - RATIO_LOW) / (RATIO_HIGH - RATIO_LOW)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def expansion(root: yaml.Node) -> tuple[int, int]:
    """(nodes the document holds once its aliases are expanded, nodes it writes out).

    Raises ``ValueError`` when a node contains itself.
    """
    sizes: dict[int, int] = {}
    on_path = {id(root)}
    stack = [(root, iter(_children(root)))]
    while stack:
        node, pending = stack[-1]
        child = next(pending, None)
        if child is None:
            stack.pop()
            on_path.discard(id(node))
            sizes[id(node)] = 1 + sum(sizes[id(c)] for c in _children(node))
            continue
        if id(child) in sizes:
            continue
        if id(child) in on_path:
            raise ValueError("yaml: anchor value contains itself")
        on_path.add(id(child))
        stack.append((child, iter(_children(child))))
    return sizes[id(root)], len(sizes)


def check_aliases(root: yaml.Node) -> None:
    """go-yaml's refusal of a document that is mostly alias expansion (``ValueError``)."""
    decoded, written = expansion(root)
    aliased = decoded - written
    if aliased > 100 and decoded > 1000 and aliased / decoded > allowed_alias_ratio(decoded):
        raise ValueError("yaml: document contains excessive aliasing")


class _Loader(yaml.SafeLoader):
    """Safe loading that records duplicate keys (worded as Go's YAML decoder words them)."""

    duplicates: list[str]

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == MERGE_TAG:
                continue
            key = self.construct_object(key_node)
            try:
                if key in seen:
                    self.duplicates.append(
                        f'line {key_node.start_mark.line + 1}: key "{key}" already set in map'
                    )
                seen.add(key)
            except TypeError:  # an unhashable key: construct_mapping says so below
                pass
        return super().construct_mapping(node, deep)


def load(body: bytes | str) -> tuple[Any, list[str]]:
    """One YAML document (None when empty) and its duplicate keys; a 400 ``ApiError`` when it
    is not YAML, expands too far through its aliases, or nests too deeply."""
    try:
        text = body.decode() if isinstance(body, bytes) else body
        loader = _Loader(text)
        loader.duplicates = []
        try:
            node = loader.get_single_node()
            if node is None:
                return None, []
            check_aliases(node)
            return loader.construct_document(node), loader.duplicates
        finally:
            loader.dispose()
    except RecursionError:
        raise bad_request("error converting YAML to JSON: yaml: exceeded max depth") from None
    except (yaml.YAMLError, ValueError, UnicodeDecodeError) as err:
        raise bad_request(f"error converting YAML to JSON: {err}") from None
