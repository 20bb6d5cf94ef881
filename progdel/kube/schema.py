"""Validation of custom objects against their CRD's OpenAPI v3 schema, worded as kube-apiserver words it.

Covers the value validations a structural schema may hold: ``type`` (with the
``int32``/``int64``/``date-time`` formats), ``nullable``, ``enum``,
``minimum``/``maximum`` (and their exclusive forms), ``multipleOf``,
``minLength``/``maxLength``, ``pattern``, ``minItems``/``maxItems``,
``uniqueItems``, ``minProperties``/``maxProperties``, ``required``,
``allOf``/``anyOf``/``oneOf``/``not``, ``x-kubernetes-int-or-string``, the
uniqueness of ``x-kubernetes-list-type: set|map`` lists, and the
``apiVersion``/``kind`` an ``x-kubernetes-embedded-resource`` must carry.

On updates, errors on values that did not change are dropped (validation
ratcheting, on by default since Kubernetes 1.30): an object stored under an
older, laxer schema can still be updated where it is not touched. Values are
correlated by property name and, for ``x-kubernetes-list-type: map`` lists, by
their keys.

Messages follow kube-openapi's and ``field.Error``'s wording
(``spec.targetRef: Required value``, ``spec.provider: Unsupported value:
"gatewayapi": supported values: "istio", ...``).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

MISSING: Any = object()  # no old value to compare with (create, or an uncorrelated list item)


@dataclass(frozen=True)
class FieldError:
    field: str
    reason: str  # FieldValueRequired, FieldValueInvalid, FieldValueNotSupported, FieldValueTypeInvalid, ...
    message: str

    def text(self) -> str:
        return f"{self.field}: {self.message}"


def go_value(value: Any) -> str:
    """A value as ``field.Error`` prints it: strings quoted, numbers bare, the rest as JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_number(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def go_number(value: float) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_ok(value: Any, typ: str) -> bool:
    if typ == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if typ == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if typ == "string":
        return isinstance(value, str)
    if typ == "boolean":
        return isinstance(value, bool)
    if typ == "object":
        return isinstance(value, dict)
    if typ == "array":
        return isinstance(value, list)
    return True


_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}([Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:?\d{2})?)?$")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _composite(message: str) -> FieldError:
    return FieldError("<nil>", "FieldValueInvalid", f'Invalid value: "": {message}')


class _Validator:
    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def add(self, path: str, reason: str, message: str) -> None:
        self.errors.append(FieldError(path or "<nil>", reason, message))

    # kube-openapi's wording for a failed check at ``path``
    def invalid(self, path: str, value: Any, detail: str) -> None:
        self.add(path, "FieldValueInvalid", f"Invalid value: {go_value(value)}: {detail}")

    def validate(self, value: Any, s: dict[str, Any], path: str, old: Any) -> None:
        if old is not MISSING and value == old:
            return  # ratcheting: an unchanged value keeps whatever it was accepted with
        if value is None:
            if not s.get("nullable") and (s.get("type") or s.get("x-kubernetes-int-or-string")):
                typ = s.get("type") or "integer,string"
                self.add(
                    path,
                    "FieldValueTypeInvalid",
                    f'Invalid value: "null": {path or "body"} in body must be of type {typ}: "null"',
                )
            return
        if s.get("x-kubernetes-int-or-string"):
            if not (isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))):
                got = _type_name(value)
                self.add(
                    path,
                    "FieldValueTypeInvalid",
                    f'Invalid value: "{got}": {path} in body must be of type integer,string: "{got}"',
                )
                return
        else:
            typ = s.get("type")
            if typ and not _type_ok(value, typ):
                got = _type_name(value)
                self.add(
                    path,
                    "FieldValueTypeInvalid",
                    f'Invalid value: "{got}": {path} in body must be of type {typ}: "{got}"',
                )
                return
        self._format(value, s, path)
        self._values(value, s, path)
        if isinstance(value, dict):
            self._object(value, s, path, old)
        elif isinstance(value, list):
            self._array(value, s, path, old)
        self._composition(value, s, path, old)

    def _format(self, value: Any, s: dict[str, Any], path: str) -> None:
        fmt = s.get("format")
        if not fmt:
            return
        if fmt == "int32" and isinstance(value, int | float) and not isinstance(value, bool):
            if not -(2**31) <= value <= 2**31 - 1:
                self.invalid(path, value, f"{path} in body must be of type int32: {go_value(str(value))}")
        elif fmt == "date-time" and isinstance(value, str) and not _DATE_TIME.match(value):
            self.invalid(path, value, f"{path} in body must be of type date-time: {go_value(value)}")

    def _values(self, value: Any, s: dict[str, Any], path: str) -> None:
        if "enum" in s and value not in s["enum"]:
            allowed = ", ".join(
                json.dumps(v if isinstance(v, str) else json.dumps(v), ensure_ascii=False) for v in s["enum"]
            )
            self.add(
                path,
                "FieldValueNotSupported",
                f"Unsupported value: {go_value(value)}: supported values: {allowed}",
            )
        if isinstance(value, int | float) and not isinstance(value, bool):
            self._number(value, s, path)
        if isinstance(value, str):
            if "maxLength" in s and len(value) > s["maxLength"]:
                n = s["maxLength"]
                self.add(
                    path, "FieldValueTooLong", f"Too long: may not be more than {n} byte{'s' * (n != 1)}"
                )
            if "minLength" in s and len(value) < s["minLength"]:
                self.invalid(path, value, f"{path} in body should be at least {s['minLength']} chars long")
            if "pattern" in s and not _pattern(s["pattern"]).search(value):
                self.invalid(path, value, f"{path} in body should match '{s['pattern']}'")

    def _number(self, value: float, s: dict[str, Any], path: str) -> None:
        if "maximum" in s:
            m = s["maximum"]
            if value > m or (s.get("exclusiveMaximum") and value == m):
                word = "less than" if s.get("exclusiveMaximum") else "less than or equal to"
                self.invalid(path, value, f"{path} in body should be {word} {go_number(m)}")
        if "minimum" in s:
            m = s["minimum"]
            if value < m or (s.get("exclusiveMinimum") and value == m):
                word = "greater than" if s.get("exclusiveMinimum") else "greater than or equal to"
                self.invalid(path, value, f"{path} in body should be {word} {go_number(m)}")
        factor = s.get("multipleOf")
        if factor and not math.isclose(value / factor, round(value / factor), abs_tol=1e-9):
            self.invalid(path, value, f"{path} in body should be a multiple of {go_number(factor)}")

    def _object(self, value: dict[str, Any], s: dict[str, Any], path: str, old: Any) -> None:
        if "maxProperties" in s and len(value) > s["maxProperties"]:
            n = s["maxProperties"]
            self.add(
                path,
                "FieldValueTooMany",
                f"Too many: {len(value)}: must have at most {n} item{'s' * (n != 1)}",
            )
        if "minProperties" in s and len(value) < s["minProperties"]:
            self.invalid(
                path, len(value), f"{path} in body should have at least {s['minProperties']} properties"
            )
        for req in s.get("required") or []:
            if req not in value:
                self.add(_join(path, req), "FieldValueRequired", "Required value")
        props = s.get("properties") or {}
        extra = s.get("additionalProperties")
        olds = old if isinstance(old, dict) else {}
        for k, v in value.items():
            sub = props.get(k) if k in props else extra if isinstance(extra, dict) else None
            if sub is not None:
                self.validate(v, sub, _join(path, k), olds.get(k, MISSING))
        if s.get("x-kubernetes-embedded-resource"):
            for k in ("apiVersion", "kind"):
                if k not in value:
                    self.add(_join(path, k), "FieldValueRequired", "Required value")
                elif value[k] == "":
                    self.invalid(_join(path, k), "", "must not be empty")

    def _array(self, value: list[Any], s: dict[str, Any], path: str, old: Any) -> None:
        if "maxItems" in s and len(value) > s["maxItems"]:
            n = s["maxItems"]
            self.add(
                path,
                "FieldValueTooMany",
                f"Too many: {len(value)}: must have at most {n} item{'s' * (n != 1)}",
            )
        if "minItems" in s and len(value) < s["minItems"]:
            self.invalid(path, len(value), f"{path} in body should have at least {s['minItems']} items")
        if s.get("uniqueItems") and len({json.dumps(v, sort_keys=True) for v in value}) != len(value):
            self.invalid(path, value, f"{path} in body shouldn't contain duplicates")
        items = s.get("items")
        if isinstance(items, dict):
            keys = s.get("x-kubernetes-list-map-keys") if s.get("x-kubernetes-list-type") == "map" else None
            by_key = _index_by_keys(old, keys) if keys and isinstance(old, list) else {}
            for i, v in enumerate(value):
                prev = by_key.get(_item_key(v, keys), MISSING) if keys else MISSING
                self.validate(v, items, f"{path}[{i}]", prev)

    def _composition(self, value: Any, s: dict[str, Any], path: str, old: Any) -> None:
        name = json.dumps(path or ".")
        for sub in s.get("allOf") or []:
            failed = _errors(value, sub, path, old)
            if failed:
                self.errors += failed
                self.errors.append(_composite(f"{name} must validate all the schemas (allOf)"))
        any_of = s.get("anyOf") or []
        if any_of:
            results: list[list[FieldError]] = [_errors(value, sub, path, old) for sub in any_of]
            if all(results):
                self.errors.append(_composite(f"{name} must validate at least one schema (anyOf)"))
                self.errors += _fewest(results)
        one_of = s.get("oneOf") or []
        if one_of:
            results = [_errors(value, sub, path, old) for sub in one_of]
            valid = sum(1 for r in results if not r)
            if valid != 1:
                more = "Found none valid" if valid == 0 else f"Found {valid} valid alternatives"
                self.errors.append(
                    _composite(f"{name} must validate one and only one schema (oneOf). {more}")
                )
                if valid == 0:
                    self.errors += _fewest(results)
        if isinstance(s.get("not"), dict) and not _errors(value, s["not"], path, old):
            self.errors.append(_composite(f"{name} must not validate the schema (not)"))


def _fewest(results: list[list[FieldError]]) -> list[FieldError]:
    """The errors of the alternative that came closest (kube-openapi reports its best failure)."""
    best = results[0]
    for r in results[1:]:
        if len(r) < len(best):
            best = r
    return best


def _errors(value: Any, s: dict[str, Any], path: str, old: Any) -> list[FieldError]:
    v = _Validator()
    v.validate(value, s, path, old)
    return v.errors


_PATTERNS: dict[str, re.Pattern[str]] = {}


def _pattern(p: str) -> re.Pattern[str]:
    compiled = _PATTERNS.get(p)
    if compiled is None:
        compiled = _PATTERNS[p] = re.compile(p)
    return compiled


def _item_key(item: Any, keys: list[str]) -> str:
    if not isinstance(item, dict):
        return json.dumps(item)
    return json.dumps([item.get(k) for k in keys])


def _index_by_keys(items: list[Any], keys: list[str]) -> dict[str, Any]:
    return {_item_key(x, keys): x for x in items}


# ---- x-kubernetes-list-type ---------------------------------------------------------------------
def list_type_errors(value: Any, s: dict[str, Any] | None, path: str = "") -> list[FieldError]:
    """Duplicate items of ``set`` lists and duplicate keys of ``map`` lists, in the server's words."""
    out: list[FieldError] = []
    _list_types(value, s, path, out)
    return out


def _list_types(value: Any, s: dict[str, Any] | None, path: str, out: list[FieldError]) -> None:
    if s is None:
        return
    if isinstance(value, dict):
        props = s.get("properties") or {}
        extra = s.get("additionalProperties")
        for k, v in value.items():
            if k in props:
                _list_types(v, props[k], _join(path, k), out)
            elif isinstance(extra, dict):
                _list_types(v, extra, f"{path}[{k}]", out)
    elif isinstance(value, list):
        kind = s.get("x-kubernetes-list-type")
        if kind == "set":
            seen: set[str] = set()
            reported: set[str] = set()
            for i, item in enumerate(value):
                key = json.dumps(item, sort_keys=True)
                if key in seen and key not in reported:
                    reported.add(key)
                    out.append(
                        FieldError(
                            f"{path}[{i}]", "FieldValueDuplicate", f"Duplicate value: {go_value(item)}"
                        )
                    )
                seen.add(key)
        elif kind == "map":
            keys = s.get("x-kubernetes-list-map-keys") or []
            for i, item in enumerate(value):
                if item is not None and not isinstance(item, dict):
                    out.append(
                        FieldError(
                            f"{path}[{i}]",
                            "FieldValueInvalid",
                            f"Invalid value: {go_value(item)}: must be an object for an array of list-type map",  # noqa: E501
                        )
                    )
                    break
            else:
                seen_keys: set[str] = set()
                reported_keys: set[str] = set()
                for i, item in enumerate(value):
                    present = {k: item[k] for k in keys if isinstance(item, dict) and k in item}
                    key = json.dumps(present, sort_keys=True)
                    if key in seen_keys and key not in reported_keys:
                        reported_keys.add(key)
                        out.append(
                            FieldError(
                                f"{path}[{i}]",
                                "FieldValueDuplicate",
                                f"Duplicate value: {json.dumps(present, separators=(',', ':'))}",
                            )
                        )
                    seen_keys.add(key)
        items = s.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(value):
                _list_types(item, items, f"{path}[{i}]", out)


# ---- entry points -------------------------------------------------------------------------------
def validate(value: Any, schema: dict[str, Any], path: str = "", old: Any = MISSING) -> list[FieldError]:
    return _errors(value, schema, path, old)


BLOCKING = {
    "FieldValueNotSupported",
    "FieldValueRequired",
    "FieldValueTooLong",
    "FieldValueTooMany",
    "FieldValueTypeInvalid",
}


def validate_custom_object(
    obj: dict[str, Any], schema: dict[str, Any], old: Any = MISSING
) -> list[FieldError]:
    """Schema and list-type errors of everything outside ``metadata``/``apiVersion``/``kind``.

    ``old``: the stored object on updates, for ratcheting.
    """
    body = {k: v for k, v in obj.items() if k not in ("metadata", "apiVersion", "kind")}
    sub = dict(schema)
    sub["properties"] = {
        k: v
        for k, v in (schema.get("properties") or {}).items()
        if k not in ("metadata", "apiVersion", "kind")
    }
    sub["required"] = [r for r in schema.get("required") or [] if r not in ("metadata", "apiVersion", "kind")]
    sub.pop("x-kubernetes-validations", None)
    old_body = (
        {k: v for k, v in old.items() if k not in ("metadata", "apiVersion", "kind")}
        if isinstance(old, dict)
        else MISSING
    )
    errors = validate(body, sub, "", old_body)
    if old_body is MISSING or not list_type_errors(old_body, sub):
        errors += list_type_errors(body, sub)
    return errors
