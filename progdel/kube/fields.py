"""Reading ``metadata.managedFields``: which fields of an object each field manager owns.

Server-side apply records, per manager, the set of fields it owns in the
``FieldsV1`` format: ``f:name`` a field of a map, ``k:{"name":"x"}`` the list
item with that key, ``v:"value"`` an item of a set, ``.`` the node itself.
A manager that changes a field with an update takes it over, so the owner of a
field is who set its current value: how progdel tells a value a controller
wrote after install (istiod's webhook ``failurePolicy``) from drift.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from typing import Any

FieldPath = tuple[str, ...]


def owned_by(obj: dict[str, Any], managers: Iterable[str]) -> set[FieldPath]:
    """The leaf fields that any of ``managers`` owns in ``obj`` (whatever the operation)."""
    wanted = set(managers)
    out: set[FieldPath] = set()
    for entry in (obj.get("metadata") or {}).get("managedFields") or []:
        if entry.get("manager") in wanted and isinstance(entry.get("fieldsV1"), dict):
            out |= _paths(entry["fieldsV1"], ())
    return out


def managers_of(obj: dict[str, Any]) -> set[str]:
    """Every field manager named in ``obj``'s managedFields."""
    return {
        str(e.get("manager", ""))
        for e in (obj.get("metadata") or {}).get("managedFields") or []
        if isinstance(e, dict)
    }


def _paths(tree: dict[str, Any], prefix: FieldPath) -> set[FieldPath]:
    out: set[FieldPath] = set()
    for key, sub in tree.items():
        if key == ".":
            continue
        path = (*prefix, key)
        if isinstance(sub, dict) and any(k != "." for k in sub):
            out |= _paths(sub, path)
        else:
            out.add(path)
    return out


def without(obj: dict[str, Any], paths: set[FieldPath]) -> dict[str, Any]:
    """A copy of ``obj`` without the fields ``paths`` name (absent ones are ignored)."""
    out = copy.deepcopy(obj)
    for path in sorted(paths, key=len, reverse=True):
        _drop(out, path)
    return out


def _drop(node: Any, path: FieldPath) -> None:
    for i, element in enumerate(path):
        last = i == len(path) - 1
        if element.startswith("f:") and isinstance(node, dict):
            key = element[2:]
            if key not in node:
                return
            if last:
                del node[key]
                return
            node = node[key]
        elif element.startswith("k:") and isinstance(node, list):
            want = json.loads(element[2:])
            match = [x for x in node if isinstance(x, dict) and all(x.get(a) == b for a, b in want.items())]
            if not match:
                return
            if last:
                node[:] = [x for x in node if x is not match[0]]
                return
            node = match[0]
        elif element.startswith("v:") and isinstance(node, list):
            value = json.loads(element[2:])
            if last and value in node:
                node.remove(value)
            return
        else:
            return


def same_quantity(a: Any, b: Any) -> bool:
    """Whether two values are one resource quantity written two ways (``2048Mi`` and ``2Gi``,
    ``1000m`` and ``1``): the API server stores quantities in canonical form."""
    if not isinstance(a, str | int | float) or not isinstance(b, str | int | float):
        return False
    if isinstance(a, bool) or isinstance(b, bool):
        return False
    from kubernetes.utils.quantity import parse_quantity

    try:
        return bool(parse_quantity(a) == parse_quantity(b))
    except (ValueError, TypeError, ArithmeticError):
        return False
