"""Validation of custom objects against their CRD's structural OpenAPI v3 schema.

Covers what CRDs commonly declare: ``type``, ``required``, ``properties``,
``items``, ``additionalProperties``, ``enum``, ``nullable``, ``minimum`` /
``maximum``, ``minLength`` / ``maxLength``, ``pattern``, ``minItems`` /
``maxItems``, ``x-kubernetes-int-or-string`` and
``x-kubernetes-preserve-unknown-fields``. Unknown fields are kept, not pruned
(the sandbox is permissive there). Errors read like the real server's
(``spec.targetRef: Required value``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FieldError:
    field: str
    reason: str  # FieldValueRequired, FieldValueInvalid, FieldValueNotSupported, FieldValueTypeInvalid
    message: str

    def text(self) -> str:
        return f"{self.field}: {self.message}"


_TYPE_NAMES = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
}


def _type_ok(value: Any, typ: str) -> bool:
    if typ == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if typ == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    py = _TYPE_NAMES.get(typ)
    return py is None or isinstance(value, py)


def _short(value: Any) -> str:
    import json

    text = json.dumps(value)
    return text if len(text) < 60 else text[:57] + "..."


def validate(value: Any, schema: dict[str, Any], path: str = "") -> list[FieldError]:
    errors: list[FieldError] = []
    _validate(value, schema, path, errors)
    return errors


def _validate(value: Any, schema: dict[str, Any], path: str, errors: list[FieldError]) -> None:
    if value is None:
        if not schema.get("nullable") and schema.get("type"):
            errors.append(
                FieldError(
                    path,
                    "FieldValueTypeInvalid",
                    f'Invalid value: "null": {path or "body"} in body '
                    f'must be of type {schema["type"]}: "null"',
                )
            )
        return
    if schema.get("x-kubernetes-int-or-string"):
        if not (isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))):
            errors.append(
                FieldError(
                    path,
                    "FieldValueTypeInvalid",
                    f"Invalid value: {_short(value)}: must be an integer or a string",
                )
            )
        return
    typ = schema.get("type")
    if typ and not _type_ok(value, typ):
        got = type(value).__name__
        got = {
            "dict": "object",
            "list": "array",
            "str": "string",
            "int": "integer",
            "float": "number",
            "bool": "boolean",
        }.get(got, got)
        errors.append(
            FieldError(
                path,
                "FieldValueTypeInvalid",
                f'Invalid value: "{got}": {path} in body must be of type {typ}: "{got}"',
            )
        )
        return
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(_short(v) for v in schema["enum"])
        errors.append(
            FieldError(
                path,
                "FieldValueNotSupported",
                f"Unsupported value: {_short(value)}: supported values: {allowed}",
            )
        )
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(
                FieldError(
                    path,
                    "FieldValueInvalid",
                    f"Invalid value: {value}: {path} in body should be greater than or equal "
                    f"to {schema['minimum']}",
                )
            )
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(
                FieldError(
                    path,
                    "FieldValueInvalid",
                    f"Invalid value: {value}: {path} in body should be less than or equal "
                    f"to {schema['maximum']}",
                )
            )
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            errors.append(
                FieldError(
                    path,
                    "FieldValueInvalid",
                    f"Invalid value: {_short(value)}: {path} in body should be at least "
                    f"{schema['minLength']} chars long",
                )
            )
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append(
                FieldError(
                    path,
                    "FieldValueInvalid",
                    f"Invalid value: {_short(value)}: {path} in body may not be longer than "
                    f"{schema['maxLength']}",
                )
            )
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(
                FieldError(
                    path,
                    "FieldValueInvalid",
                    f"Invalid value: {_short(value)}: {path} in body should match '{schema['pattern']}'",
                )
            )
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        for req in schema.get("required") or []:
            if req not in value:
                errors.append(FieldError(_join(path, req), "FieldValueRequired", "Required value"))
        extra = schema.get("additionalProperties")
        for k, v in value.items():
            if k in props:
                _validate(v, props[k], _join(path, k), errors)
            elif isinstance(extra, dict):
                _validate(v, extra, _join(path, k), errors)
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            errors.append(
                FieldError(
                    path,
                    "FieldValueInvalid",
                    f"Invalid value: {len(value)}: {path} in body should have at least "
                    f"{schema['minItems']} items",
                )
            )
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(
                FieldError(
                    path, "TooMany", f"Too many: {len(value)}: must have at most {schema['maxItems']} items"
                )
            )
        items = schema.get("items")
        if isinstance(items, dict):
            for i, v in enumerate(value):
                _validate(v, items, f"{path}[{i}]", errors)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def validate_custom_object(obj: dict[str, Any], schema: dict[str, Any]) -> list[FieldError]:
    """Validate everything outside ``metadata``/``apiVersion``/``kind`` against the CRD schema."""
    body = {k: v for k, v in obj.items() if k not in ("metadata", "apiVersion", "kind")}
    sub = dict(schema)
    props = {
        k: v
        for k, v in (schema.get("properties") or {}).items()
        if k not in ("metadata", "apiVersion", "kind")
    }
    sub["properties"] = props
    sub["required"] = [r for r in schema.get("required") or [] if r not in ("metadata", "apiVersion", "kind")]
    return validate(body, sub)
