"""What kube-apiserver does to a custom object on its way in: pruning, null removal, defaulting, ObjectMeta.

A CRD's ``openAPIV3Schema`` is structural: every field a custom object may hold
is declared under ``properties`` (or ``additionalProperties``), and on every
write the server drops whatever is not, except under
``x-kubernetes-preserve-unknown-fields: true``. The root's (and every
``x-kubernetes-embedded-resource``'s) ``apiVersion``, ``kind`` and ``metadata``
are kept, and ``metadata`` is read as an ObjectMeta: unknown fields in it are
dropped too, fields of the wrong type are a decoding error. Non-nullable
``null`` values without a default are removed, then ``default`` values are
filled in. The dropped paths are returned (``spec.foo``,
``spec.items[0].bar``, ``metadata.foo``), sorted as the real server sorts them,
for ``fieldValidation=Warn|Strict``.

These functions follow the apiextensions-apiserver algorithms
(``schema/pruning``, ``schema/defaulting``, ``schema/objectmeta``) on the
schema as written in the CRD, and change the object in place.
"""

from __future__ import annotations

import copy
from typing import Any

Schema = dict[str, Any]

META_FIELDS = ("apiVersion", "kind", "metadata")
PRESERVE = "x-kubernetes-preserve-unknown-fields"
EMBEDDED = "x-kubernetes-embedded-resource"


class MetadataError(ValueError):
    """A ``metadata`` field of the wrong type: the body cannot be decoded (400 BadRequest)."""


def _child(schema: Schema | None, key: str) -> tuple[bool, Schema | None]:
    """(declared, schema) for ``key`` of an object described by ``schema``."""
    if schema is None:
        return False, None
    props = schema.get("properties")
    if props and key in props:
        return True, props[key]
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        return True, extra
    if extra is not None:  # a boolean: declared, but with no schema of its own
        return True, None
    return False, None


def _path(parent: str, key: str) -> str:
    return f"{parent}.{key}" if parent else key


# ---- pruning ----------------------------------------------------------------------------------
def prune(obj: Any, schema: Schema | None, root: bool = True) -> list[str]:
    """Drop every field ``schema`` does not declare; returns the dropped paths, sorted."""
    out: list[str] = []
    if root:
        schema = dict(schema or {})
        schema[EMBEDDED] = True
    _prune(obj, schema, "", out)
    out.sort()
    return out


def _prune(x: Any, s: Schema | None, path: str, out: list[str]) -> None:
    if s is not None and s.get(PRESERVE):
        _skip_prune(x, s, path, out)
        return
    if isinstance(x, dict):
        if s is None:
            for k in list(x):
                out.append(_path(path, k))
                del x[k]
            return
        embedded = bool(s.get(EMBEDDED))
        for k in list(x):
            if embedded and k in META_FIELDS:
                continue
            declared, sub = _child(s, k)
            if declared:
                _prune(x[k], sub, _path(path, k), out)
            else:
                if k not in META_FIELDS or path:
                    out.append(_path(path, k))
                del x[k]
    elif isinstance(x, list):
        items = s.get("items") if s is not None else None
        for i, v in enumerate(x):
            _prune(v, items if isinstance(items, dict) else None, f"{path}[{i}]", out)


def _skip_prune(x: Any, s: Schema, path: str, out: list[str]) -> None:
    if isinstance(x, dict):
        embedded = bool(s.get(EMBEDDED))
        for k, v in x.items():
            if embedded and k in META_FIELDS:
                continue
            declared, sub = _child(s, k)
            if declared:
                _prune(v, sub, _path(path, k), out)
    elif isinstance(x, list):
        items = s.get("items")
        if isinstance(items, dict):
            for i, v in enumerate(x):
                _skip_prune(v, items, f"{path}[{i}]", out)


# ---- nulls and defaults -----------------------------------------------------------------------
def prune_nulls(x: Any, s: Schema | None) -> None:
    """Remove ``null`` values of fields that are neither nullable nor defaulted."""
    if isinstance(x, dict):
        for k in list(x):
            _, sub = _child(s, k)
            v = x[k]
            if v is None and sub is not None and not sub.get("nullable") and "default" not in sub:
                del x[k]
            else:
                prune_nulls(v, sub)
    elif isinstance(x, list):
        items = s.get("items") if s is not None else None
        for v in x:
            prune_nulls(v, items if isinstance(items, dict) else None)


def _non_nullable_null(x: Any, s: Schema | None) -> bool:
    return x is None and s is not None and not s.get("nullable")


def default(x: Any, s: Schema | None) -> None:
    """Fill in ``default`` values for absent (or non-nullable null) fields, recursively."""
    if s is None:
        return
    if isinstance(x, dict):
        props = s.get("properties") or {}
        for k, prop in props.items():
            if "default" not in prop:
                continue
            if k not in x or _non_nullable_null(x[k], prop):
                x[k] = copy.deepcopy(prop["default"])
        extra = s.get("additionalProperties")
        for k in x:
            if k in props:
                default(x[k], props[k])
            elif isinstance(extra, dict):
                if _non_nullable_null(x[k], extra) and "default" in extra:
                    x[k] = copy.deepcopy(extra["default"])
                default(x[k], extra)
    elif isinstance(x, list):
        items = s.get("items")
        if isinstance(items, dict):
            for i in range(len(x)):
                if _non_nullable_null(x[i], items) and "default" in items:
                    x[i] = copy.deepcopy(items["default"])
                default(x[i], items)


def has_defaults(s: Any) -> bool:
    """Whether any node of the schema declares a ``default``."""
    if isinstance(s, dict):
        return "default" in s or any(has_defaults(v) for k, v in s.items() if k not in ("enum", "example"))
    if isinstance(s, list):
        return any(has_defaults(v) for v in s)
    return False


# ---- ObjectMeta -------------------------------------------------------------------------------
_STRING = "string"
_INT = "int64"
_TIME = "Time"
_BOOL = "bool"
_OWNER_REF = {
    "apiVersion": _STRING,
    "kind": _STRING,
    "name": _STRING,
    "uid": _STRING,
    "controller": _BOOL,
    "blockOwnerDeletion": _BOOL,
}
_MANAGED_FIELDS = {
    "manager": _STRING,
    "operation": _STRING,
    "apiVersion": _STRING,
    "time": _TIME,
    "fieldsType": _STRING,
    "fieldsV1": "object",
    "subresource": _STRING,
}
OBJECT_META: dict[str, Any] = {
    "name": _STRING,
    "generateName": _STRING,
    "namespace": _STRING,
    "selfLink": _STRING,
    "uid": _STRING,
    "resourceVersion": _STRING,
    "generation": _INT,
    "creationTimestamp": _TIME,
    "deletionTimestamp": _TIME,
    "deletionGracePeriodSeconds": _INT,
    "labels": ("map", _STRING),
    "annotations": ("map", _STRING),
    "ownerReferences": ("list", _OWNER_REF),
    "finalizers": ("list", _STRING),
    "managedFields": ("list", _MANAGED_FIELDS),
}
_GO_JSON = {dict: "object", list: "array", str: "string", bool: "bool", int: "number", float: "number"}


def _json_kind(v: Any) -> str:
    return _GO_JSON.get(type(v), "value")


def _type_error(v: Any, field: str, want: str) -> MetadataError:
    return MetadataError(
        f"json: cannot unmarshal {_json_kind(v)} into Go struct field {field} of type {want}"
    )


def _coerce_value(v: Any, spec: Any, field: str, path: str, unknown: list[str]) -> Any:
    """``v`` read as the Go type ``spec`` (None: drop it as empty); raises MetadataError."""
    if v is None:
        return None
    if spec == _STRING:
        if not isinstance(v, str):
            raise _type_error(v, field, "string")
        return v or None
    if spec == _INT:
        if isinstance(v, bool) or not isinstance(v, int | float) or (isinstance(v, float) and v != int(v)):
            raise _type_error(v, field, "int64")
        return int(v) or None
    if spec == _BOOL:
        if not isinstance(v, bool):
            raise _type_error(v, field, "bool")
        return v
    if spec == _TIME:
        if not isinstance(v, str):
            raise MetadataError(f"json: cannot unmarshal {_json_kind(v)} into Go value of type string")
        return v or None
    if spec == "object":
        if not isinstance(v, dict):
            raise _type_error(v, field, "map[string]interface {}")
        return v or None
    if isinstance(spec, tuple) and spec[0] == "map":
        if not isinstance(v, dict):
            raise _type_error(v, field, "map[string]string")
        for val in v.values():
            if not isinstance(val, str):
                raise _type_error(val, field, "string")
        return dict(v) or None
    if isinstance(spec, tuple) and spec[0] == "list":
        if not isinstance(v, list):
            raise _type_error(v, field, "[]" + ("string" if spec[1] == _STRING else "v1.Entry"))
        out: list[Any] = []
        for i, item in enumerate(v):
            if isinstance(spec[1], dict):
                if item is None:
                    out.append({})
                    continue
                if not isinstance(item, dict):
                    raise _type_error(item, field, "v1.Entry")
                out.append(_coerce_struct(item, spec[1], field, f"{path}[{i}]", unknown))
            else:
                if not isinstance(item, str):
                    raise _type_error(item, field, "string")
                out.append(item)
        return out or None
    return v


def _coerce_struct(
    value: dict[str, Any], fields: dict[str, Any], go_name: str, path: str, unknown: list[str]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in sorted(value.items()):  # Go reads the JSON it marshalled, keys sorted
        spec = fields.get(k)
        if spec is None:
            unknown.append(f"{path}.{k}")
            continue
        coerced = _coerce_value(v, spec, f"{go_name}.{k}", f"{path}.{k}", unknown)
        if coerced is not None:
            out[k] = coerced
    return out


def coerce_object_meta(meta: Any, path: str = "metadata") -> tuple[dict[str, Any], list[str]]:
    """``metadata`` as an ObjectMeta keeps it: (the kept fields, the unknown field paths).

    Raises MetadataError for a field of the wrong type, as Go's JSON decoder does.
    """
    if not isinstance(meta, dict):
        raise MetadataError(f"json: cannot unmarshal {_json_kind(meta)} into Go value of type v1.ObjectMeta")
    unknown: list[str] = []
    kept = _coerce_struct(meta, OBJECT_META, "ObjectMeta", path, unknown)
    return kept, unknown


def coerce_embedded(x: Any, s: Schema | None, path: str, unknown: list[str]) -> str | None:
    """ObjectMeta of every ``x-kubernetes-embedded-resource`` below the root; returns an error text."""
    if s is None:
        return None
    if isinstance(x, dict):
        if s.get(EMBEDDED):
            for k in ("apiVersion", "kind"):
                if k in x and not isinstance(x[k], str):
                    return f"{_path(path, k)}: Invalid value: {x[k]!r}: must be a string"
            if "metadata" in x:
                try:
                    kept, extra = coerce_object_meta(x["metadata"], _path(path, "metadata"))
                except MetadataError as err:
                    return f"{_path(path, 'metadata')}: Invalid value: {err}"
                unknown.extend(extra)
                x["metadata"] = kept
        for k, v in x.items():
            declared, sub = _child(s, k)
            if declared and sub is not None:
                problem = coerce_embedded(v, sub, _path(path, k), unknown)
                if problem:
                    return problem
    elif isinstance(x, list):
        items = s.get("items")
        if isinstance(items, dict):
            for i, v in enumerate(x):
                problem = coerce_embedded(v, items, f"{path}[{i}]", unknown)
                if problem:
                    return problem
    return None


def has_embedded(s: Any) -> bool:
    if isinstance(s, dict):
        return bool(s.get(EMBEDDED)) or any(has_embedded(v) for v in s.values())
    if isinstance(s, list):
        return any(has_embedded(v) for v in s)
    return False


def coerce(obj: dict[str, Any], schema: Schema | None) -> list[str]:
    """Everything the server does to a custom object while decoding it; returns the unknown paths.

    The order of the paths is the real server's: unknown ObjectMeta fields, then
    the pruned ones (sorted), then those inside embedded resources (sorted).
    Raises MetadataError when ``metadata`` cannot be read.
    """
    unknown: list[str] = []
    meta_kept: dict[str, Any] | None = None
    if "metadata" in obj:
        meta_kept, unknown = coerce_object_meta(obj["metadata"])
    unknown += prune(obj, schema)
    prune_nulls(obj, schema)
    if schema is not None and has_embedded(schema):
        embedded: list[str] = []
        err = coerce_embedded(obj, schema, "", embedded)
        if err:
            raise MetadataError(err)
        unknown += sorted(embedded)
    if meta_kept is not None:
        obj["metadata"] = meta_kept
    default(obj, schema)
    return unknown
