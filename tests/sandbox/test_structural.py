"""Pruning, defaulting, ObjectMeta coercion and schema validation of custom objects.

The cases follow apiextensions-apiserver's own tables: ``schema/pruning/algorithm_test.go``,
``schema/defaulting/algorithm_test.go`` and ``prunenulls_test.go``, ``schema/objectmeta/coerce_test.go``,
``schema/listtype/validation_test.go``, written against CRD-style schemas.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from progdel.kube import schema, structural

# ---- pruning (schema/pruning/algorithm_test.go) ------------------------------------------------
PRUNE_CASES: list[tuple[str, Any, dict[str, Any] | None, Any, list[str]]] = [
    ("scalar", 4, {}, 4, []),
    ("scalar array", [1, 2], {"items": {}}, [1, 2], []),
    (
        "object array",
        [{"a": 1}, {"b": 1}, {"a": 1, "b": 2, "c": 3}],
        {"items": {"properties": {"a": {}, "c": {}}}},
        [{"a": 1}, {}, {"a": 1, "c": 3}],
        ["[1].b", "[2].b"],
    ),
    (
        "object array with nil schema",
        [{"a": 1}, {"b": 1}, {"a": 1, "b": 2, "c": 3}],
        None,
        [{}, {}, {}],
        ["[0].a", "[1].b", "[2].a", "[2].b", "[2].c"],
    ),
    (
        "object array object",
        {
            "array": [{"a": 1}, {"b": 1}, {"a": 1, "b": 2, "c": 3}],
            "unspecified": {"a": 1},
            "specified": {"a": 1, "b": 2, "c": 3},
        },
        {
            "properties": {
                "array": {"items": {"properties": {"a": {}, "c": {}}}},
                "specified": {"properties": {"a": {}, "c": {}}},
            }
        },
        {"array": [{"a": 1}, {}, {"a": 1, "c": 3}], "specified": {"a": 1, "c": 3}},
        ["array[1].b", "array[2].b", "specified.b", "unspecified"],
    ),
    (
        "nested x-kubernetes-preserve-unknown-fields",
        {
            "unspecified": "bar",
            "alpha": "abc",
            "unspecifiedObject": {"unspecified": "bar"},
            "pruning": {"unspecified": "bar", "apiVersion": "unknown", "preserving": {"unspecified": "bar"}},
            "preserving": {"unspecified": "bar", "pruning": {"unspecified": "bar"}},
            "additional": {"foo": {"specified": {"unspecified": "bar"}, "unspecified": "bar"}},
        },
        {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
            "properties": {
                "alpha": {"type": "string"},
                "pruning": {
                    "type": "object",
                    "properties": {
                        "preserving": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                    },
                },
                "preserving": {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": True,
                    "properties": {"pruning": {"type": "object"}},
                },
                "additional": {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": True,
                    "additionalProperties": {
                        "type": "object",
                        "properties": {"specified": {"type": "object"}},
                    },
                },
            },
        },
        {
            "unspecified": "bar",
            "alpha": "abc",
            "unspecifiedObject": {"unspecified": "bar"},
            "pruning": {"preserving": {"unspecified": "bar"}},
            "preserving": {"unspecified": "bar", "pruning": {}},
            "additional": {"foo": {"specified": {}}},
        },
        [
            "additional.foo.specified.unspecified",
            "additional.foo.unspecified",
            "preserving.pruning.unspecified",
            "pruning.apiVersion",
            "pruning.unspecified",
        ],
    ),
    (
        "additionalProperties with schema",
        {"a": 1, "b": 1, "c": {"a": 1, "b": 2, "c": {"a": 1}}},
        {"properties": {"a": {}, "c": {"additionalProperties": {"type": "integer"}}}},
        {"a": 1, "c": {"a": 1, "b": 2, "c": {}}},
        ["b", "c.c.a"],
    ),
    (
        "additionalProperties with bool",
        {"a": 1, "b": 1, "c": {"a": 1, "b": 2, "c": {"a": 1, "apiVersion": "unknown"}}},
        {"properties": {"a": {}, "c": {"additionalProperties": False}}},
        {"a": 1, "c": {"a": 1, "b": 2, "c": {}}},
        ["b", "c.c.a", "c.c.apiVersion"],
    ),
    (
        "x-kubernetes-embedded-resource keeps apiVersion, kind and metadata",
        {
            "pruned": {
                "apiVersion": "foo/v1",
                "kind": "Foo",
                "unspecified": "bar",
                "metadata": {"name": "instance"},
                "spec": {"unspecified": "bar"},
            },
            "preserving": {"apiVersion": "foo/v1", "kind": "Foo", "unspecified": "bar", "spec": {"a": 1}},
        },
        {
            "type": "object",
            "properties": {
                "pruned": {
                    "type": "object",
                    "x-kubernetes-embedded-resource": True,
                    "properties": {"spec": {"type": "object"}},
                },
                "preserving": {
                    "type": "object",
                    "x-kubernetes-embedded-resource": True,
                    "x-kubernetes-preserve-unknown-fields": True,
                },
            },
        },
        {
            "pruned": {"apiVersion": "foo/v1", "kind": "Foo", "metadata": {"name": "instance"}, "spec": {}},
            "preserving": {"apiVersion": "foo/v1", "kind": "Foo", "unspecified": "bar", "spec": {"a": 1}},
        },
        ["pruned.spec.unspecified", "pruned.unspecified"],
    ),
]


@pytest.mark.parametrize(
    ("value", "s", "expected", "pruned"), [c[1:] for c in PRUNE_CASES], ids=[c[0] for c in PRUNE_CASES]
)
def test_prune(value: Any, s: dict[str, Any] | None, expected: Any, pruned: list[str]) -> None:
    got = copy.deepcopy(value)
    assert structural.prune(got, s, root=False) == pruned
    assert got == expected


def test_root_keeps_type_and_object_meta_and_does_not_report_them() -> None:
    obj = {"apiVersion": "a/v1", "kind": "A", "metadata": {"name": "x"}, "spec": {"a": 1, "b": 2}}
    s = {
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {"a": {"type": "integer"}}}},
    }
    assert structural.prune(obj, s) == ["spec.b"]
    assert obj == {"apiVersion": "a/v1", "kind": "A", "metadata": {"name": "x"}, "spec": {"a": 1}}


# ---- nulls and defaults (schema/defaulting) -----------------------------------------------------
def test_non_nullable_nulls_without_default_are_dropped_nullable_ones_kept() -> None:
    s = {
        "type": "object",
        "properties": {
            "plain": {"type": "string"},
            "nullable": {"type": "string", "nullable": True},
            "defaulted": {"type": "string", "default": "d"},
            "map": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    }
    obj = {"plain": None, "nullable": None, "defaulted": None, "map": {"k": None}}
    structural.prune_nulls(obj, s)
    assert obj == {"nullable": None, "defaulted": None, "map": {}}
    structural.default(obj, s)
    assert obj == {"nullable": None, "defaulted": "d", "map": {}}


def test_defaults_fill_absent_fields_recursively_inside_defaulted_values() -> None:
    s = {
        "type": "object",
        "properties": {
            "a": {"type": "string", "default": "A"},
            "b": {
                "type": "object",
                "default": {},
                "properties": {"c": {"type": "integer", "default": 3}},
            },
            "list": {"type": "array", "items": {"type": "object", "properties": {"d": {"default": "D"}}}},
            "given": {"type": "string", "default": "unused"},
        },
    }
    obj: dict[str, Any] = {"list": [{}, {"d": "x"}], "given": "kept"}
    structural.default(obj, s)
    assert obj == {"a": "A", "b": {"c": 3}, "list": [{"d": "D"}, {"d": "x"}], "given": "kept"}


# ---- ObjectMeta (schema/objectmeta/coerce_test.go) -----------------------------------------------
def test_object_meta_keeps_its_fields_drops_unknown_and_empty_ones() -> None:
    obj = {
        "apiVersion": "a/v1",
        "kind": "A",
        "metadata": {
            "name": "x",
            "labels": {"app": "web"},
            "annotations": {},
            "ownerReferences": [{"apiVersion": "v1", "kind": "K", "name": "o", "uid": "u", "extra": 1}],
            "clusterName": "gone",
        },
    }
    unknown = structural.coerce(obj, {"type": "object"})
    assert unknown == ["metadata.clusterName", "metadata.ownerReferences[0].extra"]
    assert obj["metadata"] == {
        "name": "x",
        "labels": {"app": "web"},
        "ownerReferences": [{"apiVersion": "v1", "kind": "K", "name": "o", "uid": "u"}],
    }


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        (
            {"labels": {"a": 1}},
            "json: cannot unmarshal number into Go struct field ObjectMeta.labels of type string",
        ),
        ({"name": ["x"]}, "json: cannot unmarshal array into Go struct field ObjectMeta.name of type string"),
        ({"finalizers": "x"}, "json: cannot unmarshal string into Go struct field ObjectMeta.finalizers"),
    ],
)
def test_object_meta_of_the_wrong_type_cannot_be_decoded(meta: dict[str, Any], message: str) -> None:
    with pytest.raises(structural.MetadataError, match=message.replace("[", r"\[")):
        structural.coerce({"metadata": meta}, {"type": "object"})


def test_embedded_resource_metadata_is_an_object_meta_too() -> None:
    s = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "template": {
                        "type": "object",
                        "x-kubernetes-embedded-resource": True,
                        "x-kubernetes-preserve-unknown-fields": True,
                    }
                },
            }
        },
    }
    obj = {
        "spec": {
            "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "bogus": 1}, "x": 1}
        }
    }
    assert structural.coerce(obj, s) == ["spec.template.metadata.bogus"]
    assert obj["spec"]["template"] == {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "x": 1}
    missing = schema.validate_custom_object({"spec": {"template": {"metadata": {}}}}, s)
    assert [e.text() for e in missing] == [
        "spec.template.apiVersion: Required value",
        "spec.template.kind: Required value",
    ]


# ---- validation ----------------------------------------------------------------------------------
CANARY_LIKE = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["targetRef"],
            "properties": {
                "provider": {"type": "string", "enum": ["istio", "gatewayapi:v1"]},
                "targetRef": {"type": "object", "properties": {"name": {"type": "string"}}},
                "timeout": {"type": "string", "pattern": "^[0-9]+(m|s)"},
                "weight": {"type": "integer", "format": "int32", "minimum": 0, "maximum": 100},
                "name": {"type": "string", "maxLength": 5},
                "tags": {"type": "array", "maxItems": 1, "items": {"type": "string"}},
            },
        }
    },
}

VALIDATION_CASES = [
    ({"spec": {}}, ["spec.targetRef: Required value"]),
    (
        {"spec": {"targetRef": {}, "provider": "gatewayapi"}},
        ['spec.provider: Unsupported value: "gatewayapi": supported values: "istio", "gatewayapi:v1"'],
    ),
    (
        {"spec": {"targetRef": {}, "timeout": "1.5s"}},
        ["spec.timeout: Invalid value: \"1.5s\": spec.timeout in body should match '^[0-9]+(m|s)'"],
    ),
    (
        {"spec": {"targetRef": {}, "weight": 101}},
        ["spec.weight: Invalid value: 101: spec.weight in body should be less than or equal to 100"],
    ),
    (
        {"spec": {"targetRef": {}, "weight": "10"}},
        ['spec.weight: Invalid value: "string": spec.weight in body must be of type integer: "string"'],
    ),
    ({"spec": {"targetRef": {}, "name": "toolong"}}, ["spec.name: Too long: may not be more than 5 bytes"]),
    ({"spec": {"targetRef": {}, "tags": ["a", "b"]}}, ["spec.tags: Too many: 2: must have at most 1 item"]),
    ({"spec": {"targetRef": {"name": "x"}, "provider": "istio", "weight": 1.0}}, []),
]


@pytest.mark.parametrize(("obj", "errors"), VALIDATION_CASES)
def test_validation_errors_read_as_the_real_servers(obj: dict[str, Any], errors: list[str]) -> None:
    assert [e.text() for e in schema.validate_custom_object(obj, CANARY_LIKE)] == errors


def test_ratcheting_lets_an_unchanged_invalid_value_through_an_update() -> None:
    old = {"spec": {"targetRef": {}, "provider": "gatewayapi"}}
    new = {"spec": {"targetRef": {}, "provider": "gatewayapi", "weight": 5}}
    assert schema.validate_custom_object(new, CANARY_LIKE, old) == []
    changed = {"spec": {"targetRef": {}, "provider": "linkerd"}}
    assert [e.field for e in schema.validate_custom_object(changed, CANARY_LIKE, old)] == ["spec.provider"]


def test_one_of_reports_the_composite_error_as_kube_openapi_does() -> None:
    s = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
                "oneOf": [
                    {"not": {"anyOf": [{"required": ["a"]}, {"required": ["b"]}]}},
                    {"required": ["a"]},
                    {"required": ["b"]},
                ],
            }
        },
    }
    assert schema.validate_custom_object({"spec": {"a": "x"}}, s) == []
    texts = [e.text() for e in schema.validate_custom_object({"spec": {"a": "x", "b": "y"}}, s)]
    assert texts == [
        '<nil>: Invalid value: "": "spec" must validate one and only one schema (oneOf). '
        "Found 2 valid alternatives"
    ]


def test_list_type_map_and_set_refuse_duplicates() -> None:
    s = {
        "type": "object",
        "properties": {
            "headers": {
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name"],
                "items": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}, "value": {"type": "string"}},
                },
            },
            "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
        },
    }
    obj = {"headers": [{"name": "x", "value": "1"}, {"name": "x", "value": "2"}], "tags": ["a", "a"]}
    assert [e.text() for e in schema.validate_custom_object(obj, s)] == [
        'headers[1]: Duplicate value: {"name":"x"}',
        'tags[1]: Duplicate value: "a"',
    ]


def test_json_duplicates_are_found_with_their_paths() -> None:
    from progdel.sandbox.objects import load_json

    value, duplicates = load_json(b'{"spec": {"a": 1, "a": 2, "l": [{"b": 1, "b": 3}]}, "spec": {"a": 5}}')
    assert value == {"spec": {"a": 5}}
    assert duplicates == ["spec.a", "spec.l[0].b", "spec"]
    assert load_json(json.dumps({"a": 1}).encode()) == ({"a": 1}, [])
