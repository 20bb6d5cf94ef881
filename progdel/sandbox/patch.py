"""Patch formats the sandbox accepts: JSON merge, JSON patch, strategic merge, server-side apply.

Strategic merge knows the merge keys of the built-in kinds the sandbox serves
(containers by name, ports by containerPort or, in a Service, by port, ...);
every other list is replaced whole, as in a real cluster.

Server-side apply is simplified but keeps the contract users rely on: a
manager's owned fields are recorded in ``metadata.managedFields`` in the
``fieldsV1`` format (``f:``/``k:`` keys), fields a manager applied before and
no longer applies are removed (when nobody else owns them), and applying a
different value to a field another manager owns is a conflict unless forced.
Lists with a merge key are associative (``k:{...}``); every other list is
atomic (owned as one field).
"""

from __future__ import annotations

import copy
import json
from typing import Any


class PatchError(ValueError):
    """A patch that cannot be applied (422 Invalid, or 400 for unreadable bodies)."""

    def __init__(self, message: str, code: int = 422) -> None:
        super().__init__(message)
        self.code = code


# ---- JSON merge patch (RFC 7386) ------------------------------------------------------------
def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = merge_patch(result.get(k), v)
    return result


# ---- JSON patch (RFC 6902) ------------------------------------------------------------------
def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _index(container: list[Any], token: str, allow_end: bool) -> int:
    if token == "-" and allow_end:
        return len(container)
    if not token.isdigit() or (len(token) > 1 and token.startswith("0")):
        raise PatchError(f"invalid array index {token!r}")
    i = int(token)
    if i > len(container) or (i == len(container) and not allow_end):
        raise PatchError(f"array index {i} out of bounds")
    return i


def _parent(doc: Any, tokens: list[str]) -> Any:
    cur = doc
    for t in tokens[:-1]:
        if isinstance(cur, dict):
            if t not in cur:
                raise PatchError(f"doc is missing path: /{'/'.join(tokens)}")
            cur = cur[t]
        elif isinstance(cur, list):
            cur = cur[_index(cur, t, False)]
        else:
            raise PatchError(f"doc is missing path: /{'/'.join(tokens)}")
    return cur


def _get(doc: Any, tokens: list[str]) -> Any:
    if not tokens:
        return doc
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"doc is missing path: /{'/'.join(tokens)}")
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, False)]
    raise PatchError(f"doc is missing path: /{'/'.join(tokens)}")


def _add(doc: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, True), value)
    else:
        raise PatchError(f"doc is missing path: /{'/'.join(tokens)}")
    return doc


def _remove(doc: Any, tokens: list[str]) -> tuple[Any, Any]:
    if not tokens:
        raise PatchError("cannot remove the whole document")
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"Unable to remove nonexistent key: {last}: missing value")
        return doc, parent.pop(last)
    if isinstance(parent, list):
        return doc, parent.pop(_index(parent, last, False))
    raise PatchError(f"doc is missing path: /{'/'.join(tokens)}")


def json_patch(doc: Any, ops: Any) -> Any:
    if not isinstance(ops, list):
        raise PatchError("json patch must be a list of operations", code=400)
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError(f"invalid json patch operation: {json.dumps(op)}")
        kind, tokens = op["op"], _pointer(op["path"])
        if kind == "add":
            doc = _add(doc, tokens, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            doc, _ = _remove(doc, tokens)
        elif kind == "replace":
            _get(doc, tokens)
            if tokens:
                doc, _ = _remove(doc, tokens)
            doc = _add(doc, tokens, copy.deepcopy(op.get("value")))
        elif kind == "move":
            src = _pointer(op.get("from", ""))
            doc, value = _remove(doc, src)
            doc = _add(doc, tokens, value)
        elif kind == "copy":
            value = copy.deepcopy(_get(doc, _pointer(op.get("from", ""))))
            doc = _add(doc, tokens, value)
        elif kind == "test":
            if _get(doc, tokens) != op.get("value"):
                raise PatchError(f"testing value {op['path']} failed: test failed")
        else:
            raise PatchError(f"unexpected kind of json patch operation: {kind!r}")
    return doc


# ---- strategic merge patch ------------------------------------------------------------------
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "env": "name",
    "imagePullSecrets": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "hostAliases": "ip",
    "conditions": "type",
    "ownerReferences": "uid",
    "topologySpreadConstraints": "topologyKey",
    "ports": "containerPort",
}
PRIMITIVE_MERGE_LISTS = {"finalizers"}


WEBHOOK_KINDS = {"ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"}


def merge_key(field: str, path: tuple[str, ...], kind: str) -> str | None:
    if field == "ports" and kind == "Service" and path == ("spec",):
        return "port"
    if field == "webhooks" and kind in WEBHOOK_KINDS and path == ():
        return "name"
    return MERGE_KEYS.get(field)


def strategic_merge(target: Any, patch: Any, kind: str, path: tuple[str, ...] = ()) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return None
    result = dict(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    for k, v in patch.items():
        if k in ("$patch", "$retainKeys") or k.startswith("$setElementOrder/"):
            continue
        if k.startswith("$deleteFromPrimitiveList/"):
            field = k.split("/", 1)[1]
            if isinstance(result.get(field), list) and isinstance(v, list):
                result[field] = [x for x in result[field] if x not in v]
            continue
        if v is None:
            result.pop(k, None)
            continue
        if isinstance(v, list):
            mk = merge_key(k, path, kind)
            if mk is not None and all(isinstance(x, dict) for x in v):
                merged = _merge_keyed_list(result.get(k), v, mk, kind, (*path, k))
                if merged is None:
                    result.pop(k, None)
                else:
                    result[k] = merged
            elif k in PRIMITIVE_MERGE_LISTS and isinstance(result.get(k), list):
                result[k] = result[k] + [x for x in v if x not in result[k]]
            else:
                result[k] = [_strip_directives(x) for x in v]
            continue
        if isinstance(v, dict):
            merged_child = strategic_merge(result.get(k), v, kind, (*path, k))
            if merged_child is None:
                result.pop(k, None)
            else:
                result[k] = merged_child
            continue
        result[k] = v
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip_directives(x) for x in value]
    return value


def _merge_keyed_list(
    target: Any, patch: list[dict[str, Any]], key: str, kind: str, path: tuple[str, ...]
) -> list[Any] | None:
    if any(item.get("$patch") == "replace" for item in patch):
        return [_strip_directives(i) for i in patch if i.get("$patch") != "replace"]
    result: list[Any] = [copy.deepcopy(x) for x in target] if isinstance(target, list) else []
    for item in patch:
        ident = item.get(key)
        pos = next(
            (i for i, cur in enumerate(result) if isinstance(cur, dict) and cur.get(key) == ident), None
        )
        if item.get("$patch") == "delete":
            if pos is not None:
                result.pop(pos)
            continue
        if pos is None:
            result.append(_strip_directives(item))
        else:
            result[pos] = strategic_merge(result[pos], item, kind, path)
    return result


# ---- server-side apply ----------------------------------------------------------------------
Path = tuple[str, ...]
SKIP_META = {
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
}


def field_set(obj: dict[str, Any], kind: str) -> set[Path]:
    """The set of field paths (``f:``/``k:`` elements) an object's content sets."""
    out: set[Path] = set()
    for k, v in obj.items():
        if k in ("apiVersion", "kind"):
            continue
        if k == "metadata" and isinstance(v, dict):
            meta = {mk: mv for mk, mv in v.items() if mk not in SKIP_META}
            _walk(meta, ("f:metadata",), (k,), kind, out)
            continue
        _walk(v, (f"f:{k}",), (k,), kind, out)
    return out


def _walk(value: Any, fpath: Path, path: tuple[str, ...], kind: str, out: set[Path]) -> None:
    if isinstance(value, dict) and value:
        if len(fpath) > 1:
            out.add((*fpath, "."))
        for k, v in value.items():
            _walk(v, (*fpath, f"f:{k}"), (*path, k), kind, out)
        return
    if isinstance(value, list) and value:
        mk = merge_key(path[-1], path[:-1], kind)
        if mk and all(isinstance(x, dict) and mk in x for x in value):
            for item in value:
                kp = (*fpath, "k:" + json.dumps({mk: item[mk]}, separators=(",", ":")))
                out.add((*kp, "."))
                for ik, iv in item.items():
                    _walk(iv, (*kp, f"f:{ik}"), (*path, ik), kind, out)
            return
    out.add(fpath)


def fields_v1(paths: set[Path]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for p in sorted(paths):
        cur = root
        for el in p:
            cur = cur.setdefault(el, {})
    return root


def parse_fields_v1(tree: dict[str, Any], prefix: Path = ()) -> set[Path]:
    out: set[Path] = set()
    for k, v in tree.items():
        p = (*prefix, k)
        if k == ".":
            out.add(p)
        elif isinstance(v, dict) and v:
            out |= parse_fields_v1(v, p)
        else:
            out.add(p)
    return out


def _leaves(paths: set[Path]) -> set[Path]:
    return {p for p in paths if p[-1] != "."}


def _locate(obj: Any, path: Path) -> tuple[bool, Any]:
    """Find the value a field path points to (``.`` means the node itself)."""
    cur = obj
    for el in path:
        if el == ".":
            break
        if el.startswith("f:"):
            if not isinstance(cur, dict) or el[2:] not in cur:
                return False, None
            cur = cur[el[2:]]
        elif el.startswith("k:"):
            if not isinstance(cur, list):
                return False, None
            want = json.loads(el[2:])
            cur = next(
                (x for x in cur if isinstance(x, dict) and all(x.get(a) == b for a, b in want.items())), None
            )
            if cur is None:
                return False, None
        else:
            return False, None
    return True, cur


def _remove_path(obj: Any, path: Path) -> None:
    if path and path[-1] == ".":
        path = path[:-1]
    if not path:
        return
    found, parent = _locate(obj, path[:-1])
    if not found:
        return
    last = path[-1]
    if last.startswith("f:") and isinstance(parent, dict):
        parent.pop(last[2:], None)
    elif last.startswith("k:") and isinstance(parent, list):
        want = json.loads(last[2:])
        parent[:] = [
            x for x in parent if not (isinstance(x, dict) and all(x.get(a) == b for a, b in want.items()))
        ]


class ApplyConflict(Exception):
    def __init__(self, conflicts: list[tuple[str, str]], api_version: str) -> None:
        self.conflicts = conflicts  # (manager, dotted field)
        self.api_version = api_version
        super().__init__(self.message)

    @property
    def message(self) -> str:
        n = len(self.conflicts)
        parts = [f'conflict with "{m}" using {self.api_version}: {f}' for m, f in self.conflicts]
        noun = "conflict" if n == 1 else "conflicts"
        if n == 1:
            return f"Apply failed with 1 {noun}: {parts[0]}"
        return f"Apply failed with {n} {noun}: " + "\n".join(parts)


def dotted(path: Path) -> str:
    out = ""
    for el in path:
        if el == ".":
            continue
        out += "." + el[2:] if el.startswith("f:") else "[" + el[2:] + "]"
    return out


def managers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return list((obj.get("metadata") or {}).get("managedFields") or [])


def server_side_apply(
    live: dict[str, Any] | None,
    applied: dict[str, Any],
    manager: str,
    force: bool,
    kind: str,
    now: str,
) -> dict[str, Any]:
    """Merge ``applied`` into ``live`` for ``manager``; returns the new object with managedFields."""
    api_version = applied.get("apiVersion", "")
    new_set = field_set(applied, kind)
    entries = managers(live) if live else []
    owned: dict[tuple[str, str], set[Path]] = {}
    order: list[dict[str, Any]] = []
    for e in entries:
        ident = (e.get("manager", ""), e.get("operation", ""))
        owned[ident] = parse_fields_v1(e.get("fieldsV1") or {})
        order.append(e)
    mine_key = (manager, "Apply")
    previous = owned.get(mine_key, set())
    base = copy.deepcopy(live) if live else {}
    conflicts: list[tuple[str, str]] = []
    for ident, paths in owned.items():
        if ident == mine_key:
            continue
        for p in _leaves(new_set) & paths:
            _, live_val = _locate(base, p)
            _, new_val = _locate(applied, p)
            if live_val != new_val:
                conflicts.append((ident[0], dotted(p)))
    if conflicts and not force:
        conflicts.sort(key=lambda c: c[1])
        raise ApplyConflict(conflicts, api_version)
    if force:
        for ident, paths in owned.items():
            if ident != mine_key:
                owned[ident] = paths - _leaves(new_set)
    merged = strategic_merge(base, _strip_meta(applied), kind)
    others: set[Path] = set()
    for ident, paths in owned.items():
        if ident != mine_key:
            others |= paths
    for p in sorted(previous - new_set, key=len, reverse=True):
        if not _claimed(p, others):
            _remove_path(merged, p)
    owned[mine_key] = new_set
    merged.setdefault("metadata", {})["managedFields"] = _entries(owned, order, mine_key, api_version, now)
    return merged


def _claimed(path: Path, others: set[Path]) -> bool:
    """Whether another manager owns ``path`` or (for a node) anything under it."""
    if path[-1] != ".":
        return path in others
    node = path[:-1]
    return any(o[: len(node)] == node for o in others)


def _strip_meta(applied: dict[str, Any]) -> dict[str, Any]:
    out = dict(applied)
    meta = {
        k: v
        for k, v in (applied.get("metadata") or {}).items()
        if k not in ("managedFields", "resourceVersion")
    }
    out["metadata"] = meta
    return out


def _entries(
    owned: dict[tuple[str, str], set[Path]],
    order: list[dict[str, Any]],
    touched: tuple[str, str],
    api_version: str,
    now: str,
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for e in order:
        ident = (e.get("manager", ""), e.get("operation", ""))
        seen.add(ident)
        paths = owned.get(ident, set())
        if not _leaves(paths):
            continue
        entry = dict(e)
        entry["fieldsV1"] = fields_v1(paths)
        if ident == touched:
            entry["time"] = now
            entry["apiVersion"] = api_version
        out.append(entry)
    if touched not in seen and _leaves(owned.get(touched, set())):
        out.append(
            {
                "manager": touched[0],
                "operation": touched[1],
                "apiVersion": api_version,
                "time": now,
                "fieldsType": "FieldsV1",
                "fieldsV1": fields_v1(owned[touched]),
            }
        )
    return out


def record_update(old: dict[str, Any] | None, new: dict[str, Any], manager: str, kind: str, now: str) -> None:
    """Give ``manager`` (operation Update) the fields this write changed; take them from others."""
    api_version = new.get("apiVersion", "")
    entries = managers(old) if old else []
    old_set = field_set(old, kind) if old else set()
    new_set = field_set(new, kind)
    changed: set[Path] = set()
    for p in new_set:
        if p not in old_set or (p[-1] != "." and _locate(old, p)[1] != _locate(new, p)[1]):
            changed.add(p)
    removed = old_set - new_set
    owned: dict[tuple[str, str], set[Path]] = {}
    for e in entries:
        ident = (e.get("manager", ""), e.get("operation", ""))
        owned[ident] = parse_fields_v1(e.get("fieldsV1") or {}) - removed - _leaves(changed)
    key = (manager, "Update")
    if not changed and key not in owned:
        new.setdefault("metadata", {})["managedFields"] = _entries(owned, entries, ("", ""), api_version, now)
        return
    owned[key] = (owned.get(key, set()) | changed) & new_set
    new.setdefault("metadata", {})["managedFields"] = _entries(owned, entries, key, api_version, now)
