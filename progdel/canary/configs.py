"""The primary's own ConfigMaps and Secrets: ``<name>-primary`` copies, as Flagger makes them.

A target's pods read ConfigMaps and Secrets (volumes, projected volumes, ``env.valueFrom``,
``envFrom``, in containers and init containers). If the primary read the same objects, a new
config would reach it the moment it is written (a mounted volume picks it up within a minute),
before any analysis, and a rolled-back config would already be live. So, as Flagger's config
tracker does:

- the configs the target uses are *tracked* unless annotated ``flagger.app/config-tracking:
  disabled`` (a Secret only when it is Opaque, basic-auth, ssh-auth or TLS: registry
  credentials are left alone); a missing one is an error unless the reference is ``optional``;
- each tracked config gets a copy ``<name>-primary`` (its data, a Secret its type; labels with
  the ``includeLabelPrefix`` prefixes), created with the primary and rewritten on promotion;
- the primary's pod spec names the copies (``primary_pod_spec``).

A rollback touches none of this: the primary and its copies keep the promoted data.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from progdel.canary.revision import ConfigRef, is_tracked
from progdel.errors import InvalidInput
from progdel.kube.client import Kube
from progdel.kube.resources import CONFIGMAPS, SECRETS

PRIMARY_SUFFIX = "-primary"
FLUX_MARKER = "toolkit.fluxcd.io"  # Flagger never copies metadata keys that carry it


def include_by_prefix(values: Mapping[str, str] | None, prefixes: Iterable[str]) -> dict[str, str]:
    """Flagger's ``-include-label-prefix``: the entries whose key starts with one of ``prefixes``
    (``*`` takes them all), never Flux's own."""
    wanted = [p for p in prefixes if p]
    out = {}
    for key, value in (values or {}).items():
        if FLUX_MARKER in key:
            continue
        if any(p == "*" or key.startswith(p) for p in wanted):
            out[key] = value
    return out


def _references(template: Mapping[str, Any]) -> dict[ConfigRef, bool]:
    """Each ConfigMap and Secret the pod template names, with whether it is required."""
    spec = template.get("spec") or {}
    found: dict[ConfigRef, bool] = {}

    def add(kind: Any, ref: Any, name_key: str) -> None:
        if isinstance(ref, Mapping) and isinstance(ref.get(name_key), str) and ref[name_key]:
            key = ConfigRef(kind, ref[name_key])
            found[key] = found.get(key, False) or not ref.get("optional", False)

    for vol in spec.get("volumes") or []:
        add("ConfigMap", vol.get("configMap"), "name")
        add("Secret", vol.get("secret"), "secretName")
        for src in (vol.get("projected") or {}).get("sources") or []:
            add("ConfigMap", src.get("configMap"), "name")
            add("Secret", src.get("secret"), "name")
    for key in ("containers", "initContainers"):
        for c in spec.get(key) or []:
            for env in c.get("env") or []:
                value_from = env.get("valueFrom") or {}
                add("ConfigMap", value_from.get("configMapKeyRef"), "name")
                add("Secret", value_from.get("secretKeyRef"), "name")
            for src in c.get("envFrom") or []:
                add("ConfigMap", src.get("configMapRef"), "name")
                add("Secret", src.get("secretRef"), "name")
    return found


def tracked_configs(
    kube: Kube, namespace: str, template: Mapping[str, Any]
) -> dict[ConfigRef, dict[str, Any]]:
    """The tracked configs of a pod template, fetched: a missing required one is ``InvalidInput``."""
    out: dict[ConfigRef, dict[str, Any]] = {}
    for ref, required in sorted(_references(template).items()):
        obj = kube.get_or_none(CONFIGMAPS if ref.kind == "ConfigMap" else SECRETS, ref.name, namespace)
        if obj is None:
            if required:
                raise InvalidInput(
                    f"{ref.kind.lower()} {namespace}/{ref.name}, which the target's pods use, does not exist"
                )
            continue
        if is_tracked(obj, ref.kind):
            out[ref] = obj
    return out


def primary_copy(
    obj: Mapping[str, Any], kind: str, namespace: str, prefixes: Iterable[str]
) -> dict[str, Any]:
    """The ``-primary`` copy of a ConfigMap or Secret: its data (a Secret also its type), labels
    with the included prefixes, no annotations."""
    name = f"{(obj.get('metadata') or {}).get('name')}{PRIMARY_SUFFIX}"
    body: dict[str, Any] = {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": include_by_prefix((obj.get("metadata") or {}).get("labels"), prefixes),
        }
    }
    if kind == "Secret":
        body["type"] = obj.get("type", "Opaque")
        data = dict(obj.get("data") or {})
        if obj.get("stringData"):
            body["stringData"] = dict(obj["stringData"])
        body["data"] = data
    else:
        body["data"] = dict(obj.get("data") or {})
        if obj.get("binaryData"):
            body["binaryData"] = dict(obj["binaryData"])
    return body


def sync_primary_configs(
    kube: Kube, namespace: str, configs: Mapping[ConfigRef, Mapping[str, Any]], prefixes: Iterable[str]
) -> None:
    """Create or update the ``-primary`` copy of each of ``configs``."""
    prefixes = tuple(prefixes)
    for ref, obj in configs.items():
        resource = CONFIGMAPS if ref.kind == "ConfigMap" else SECRETS
        body = primary_copy(obj, ref.kind, namespace, prefixes)
        name = body["metadata"]["name"]
        existing = kube.get_or_none(resource, name, namespace)
        if existing is None:
            kube.create(resource, body, namespace)
            continue
        same = all(existing.get(k) == body.get(k) for k in ("data", "binaryData", "type") if k in body)
        if same and (existing.get("metadata") or {}).get("labels", {}) == body["metadata"]["labels"]:
            continue

        def put(current: dict[str, Any], body: dict[str, Any] = body) -> None:
            for key in ("data", "binaryData", "stringData", "type"):
                current.pop(key, None)
                if key in body:
                    current[key] = body[key]
            current["metadata"]["labels"] = body["metadata"]["labels"]

        kube.update(resource, name, put, namespace)


def delete_primary_configs(kube: Kube, namespace: str, refs: Iterable[ConfigRef]) -> None:
    for ref in refs:
        resource = CONFIGMAPS if ref.kind == "ConfigMap" else SECRETS
        kube.delete(resource, f"{ref.name}{PRIMARY_SUFFIX}", namespace, missing_ok=True)


def primary_pod_spec(pod_spec: Mapping[str, Any], tracked: Iterable[ConfigRef]) -> dict[str, Any]:
    """``pod_spec`` with every reference to a tracked config renamed to its ``-primary`` copy."""
    spec = copy.deepcopy(dict(pod_spec))
    names = {(r.kind, r.name) for r in tracked}

    def rename(kind: str, ref: Any, name_key: str) -> None:
        if isinstance(ref, dict) and (kind, ref.get(name_key)) in names:
            ref[name_key] = f"{ref[name_key]}{PRIMARY_SUFFIX}"

    for vol in spec.get("volumes") or []:
        rename("ConfigMap", vol.get("configMap"), "name")
        rename("Secret", vol.get("secret"), "secretName")
        for src in (vol.get("projected") or {}).get("sources") or []:
            rename("ConfigMap", src.get("configMap"), "name")
            rename("Secret", src.get("secret"), "name")
    for key in ("containers", "initContainers"):
        for c in spec.get(key) or []:
            for env in c.get("env") or []:
                value_from = env.get("valueFrom") or {}
                rename("ConfigMap", value_from.get("configMapKeyRef"), "name")
                rename("Secret", value_from.get("secretKeyRef"), "name")
            for src in c.get("envFrom") or []:
                rename("ConfigMap", src.get("configMapRef"), "name")
                rename("Secret", src.get("secretRef"), "name")
    return spec


__all__ = [
    "PRIMARY_SUFFIX",
    "delete_primary_configs",
    "include_by_prefix",
    "primary_copy",
    "primary_pod_spec",
    "sync_primary_configs",
    "tracked_configs",
]
