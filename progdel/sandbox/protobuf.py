"""Just enough of Kubernetes' protobuf encoding for ``kubectl create namespace|configmap|secret``
and ``kubectl auth can-i``.

kubectl's imperative ``create`` commands and its access reviews send their object
as protobuf, with no fallback to JSON. Everything else kubectl does (apply, patch,
get, delete) uses JSON, so the sandbox decodes only these kinds, from their
published field numbers; any other protobuf body is refused with 415.

The body is the ``k8s\\0`` magic, then a ``runtime.Unknown`` message whose
``raw`` field holds the object's own message.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

MAGIC = b"k8s\x00"


class Unsupported(ValueError):
    """The body is protobuf of a kind the sandbox does not decode."""


def _varint(data: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7


def _fields(data: bytes) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) for each field; value is int or bytes."""
    i = 0
    while i < len(data):
        key, i = _varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(data, i)
            yield number, wire, value
        elif wire == 2:
            length, i = _varint(data, i)
            yield number, wire, data[i : i + length]
            i += length
        elif wire == 1:
            yield number, wire, data[i : i + 8]
            i += 8
        elif wire == 5:
            yield number, wire, data[i : i + 4]
            i += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")


def _map_entry(data: bytes) -> tuple[str, bytes]:
    key, value = "", b""
    for number, _, v in _fields(data):
        if number == 1:
            key = v.decode()
        elif number == 2:
            value = v
    return key, value


def _object_meta(data: bytes) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    names = {1: "name", 2: "generateName", 3: "namespace"}
    for number, _, v in _fields(data):
        if number in names:
            meta[names[number]] = v.decode()
        elif number in (11, 12):
            key, value = _map_entry(v)
            meta.setdefault("labels" if number == 11 else "annotations", {})[key] = value.decode()
        elif number == 14:
            meta.setdefault("finalizers", []).append(v.decode())
    return meta


def _namespace(data: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for number, _, v in _fields(data):
        if number == 1:
            out["metadata"] = _object_meta(v)
    return out


def _configmap(data: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for number, wire, v in _fields(data):
        if number == 1:
            out["metadata"] = _object_meta(v)
        elif number in (2, 3):
            key, value = _map_entry(v)
            if number == 2:
                out.setdefault("data", {})[key] = value.decode()
            else:
                out.setdefault("binaryData", {})[key] = base64.b64encode(value).decode()
        elif number == 4 and wire == 0:
            out["immutable"] = bool(v)
    return out


def _secret(data: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for number, wire, v in _fields(data):
        if number == 1:
            out["metadata"] = _object_meta(v)
        elif number == 2:
            key, value = _map_entry(v)
            out.setdefault("data", {})[key] = base64.b64encode(value).decode()
        elif number == 3:
            out["type"] = v.decode()
        elif number == 4:
            key, value = _map_entry(v)
            out.setdefault("stringData", {})[key] = value.decode()
        elif number == 5 and wire == 0:
            out["immutable"] = bool(v)
    return out


# Field numbers of authorization.k8s.io/v1 ResourceAttributes and NonResourceAttributes (strings only).
_RESOURCE_ATTRIBUTES = {
    1: "namespace",
    2: "verb",
    3: "group",
    4: "version",
    5: "resource",
    6: "subresource",
    7: "name",
}
_NON_RESOURCE_ATTRIBUTES = {1: "path", 2: "verb"}


def _strings_message(data: bytes, names: dict[int, str]) -> dict[str, str]:
    return {names[n]: v.decode() for n, wire, v in _fields(data) if wire == 2 and n in names}


def self_subject_access_review(raw: bytes) -> dict[str, Any]:
    """A SelfSubjectAccessReview from its protobuf message (kubectl auth can-i sends protobuf)."""
    out: dict[str, Any] = {}
    for number, _, value in _fields(raw):
        if number == 1:
            out["metadata"] = _object_meta(value)
        elif number == 2:
            spec: dict[str, Any] = {}
            for n, _, v in _fields(value):
                if n == 1:
                    spec["resourceAttributes"] = _strings_message(v, _RESOURCE_ATTRIBUTES)
                elif n == 2:
                    spec["nonResourceAttributes"] = _strings_message(v, _NON_RESOURCE_ATTRIBUTES)
            out["spec"] = spec
    return out


DECODERS: dict[tuple[str, str], Callable[[bytes], dict[str, Any]]] = {
    ("v1", "Namespace"): _namespace,
    ("v1", "ConfigMap"): _configmap,
    ("v1", "Secret"): _secret,
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"): self_subject_access_review,
}


def decode(body: bytes) -> dict[str, Any]:
    """The JSON form of a protobuf-encoded object of a kind in ``DECODERS``."""
    if not body.startswith(MAGIC):
        raise ValueError("not a Kubernetes protobuf message (no k8s magic)")
    api_version = kind = ""
    raw = b""
    for number, _, v in _fields(body[len(MAGIC) :]):
        if number == 1:
            for n, _, tv in _fields(v):
                if n == 1:
                    api_version = tv.decode()
                elif n == 2:
                    kind = tv.decode()
        elif number == 2:
            raw = v
    decoder = DECODERS.get((api_version, kind))
    if decoder is None:
        raise Unsupported(f"{api_version} {kind}")
    return {"apiVersion": api_version, "kind": kind, **decoder(raw)}
