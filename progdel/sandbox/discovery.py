"""What the sandbox tells clients about itself: version, discovery, OpenAPI v3, Table views.

kubectl needs all of these: discovery to map kinds and short names to
resources, OpenAPI v3 to learn that the server validates fields itself
(``fieldValidation``), and ``meta.k8s.io/v1`` Tables to print ``get``.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from progdel.sandbox import kinds
from progdel.sandbox.resources import ResourceRegistry, ResourceType

KUBE_VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-progdel-sandbox",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2025-01-01T00:00:00Z",
    "goVersion": "go1.23.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}

SUBRESOURCE_VERBS = ["get", "patch", "update"]
PROXY_VERBS = ["create", "delete", "get", "patch", "update"]


def api_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def _group(name: str, versions: list[str]) -> dict[str, Any]:
    vs = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": vs, "preferredVersion": vs[0]}


def api_group_list(reg: ResourceRegistry) -> dict[str, Any]:
    groups = [_group(g, vs) for g, vs in sorted(reg.group_versions().items()) if g]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(reg: ResourceRegistry, group: str) -> dict[str, Any] | None:
    vs = reg.group_versions().get(group)
    if not vs or not group:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(group, vs)}


def api_resource_list(reg: ResourceRegistry, group: str, version: str) -> dict[str, Any] | None:
    rts = reg.in_group_version(group, version)
    if not rts:
        return None
    resources: list[dict[str, Any]] = []
    for rt in rts:
        entry: dict[str, Any] = {
            "name": rt.plural,
            "singularName": rt.singular,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": rt.verbs(),
        }
        if rt.short_names:
            entry["shortNames"] = rt.short_names
        if rt.categories:
            entry["categories"] = rt.categories
        entry["storageVersionHash"] = hashlib.sha256(rt.key.encode()).hexdigest()[:11]
        resources.append(entry)
        if rt.status_subresource:
            resources.append(
                {
                    "name": f"{rt.plural}/status",
                    "singularName": "",
                    "namespaced": rt.namespaced,
                    "kind": rt.kind,
                    "verbs": SUBRESOURCE_VERBS,
                }
            )
        if rt.scale_subresource:
            resources.append(
                {
                    "name": f"{rt.plural}/scale",
                    "singularName": "",
                    "namespaced": rt.namespaced,
                    "group": "autoscaling",
                    "version": "v1",
                    "kind": "Scale",
                    "verbs": SUBRESOURCE_VERBS,
                }
            )
        if rt.proxy_subresource:
            resources.append(
                {
                    "name": f"{rt.plural}/proxy",
                    "singularName": "",
                    "namespaced": rt.namespaced,
                    "kind": f"{rt.kind}ProxyOptions",
                    "verbs": PROXY_VERBS,
                }
            )
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}


# ---- OpenAPI v3 -----------------------------------------------------------------------------
def _gv_path(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def schema_name(rt: ResourceType, version: str) -> str:
    if rt.builtin:
        pkg = rt.group.split(".")[0] or "core"  # rbac.authorization.k8s.io -> rbac
        prefix = (
            "io.k8s.apiextensions-apiserver.pkg.apis" if rt.group == "apiextensions.k8s.io" else "io.k8s.api"
        )
        return f"{prefix}.{pkg}.{version}.{rt.kind}"
    return ".".join(reversed(rt.group.split("."))) + f".{version}.{rt.kind}"


def _gv_doc(reg: ResourceRegistry, group: str, version: str) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    base = "/" + _gv_path(group, version)
    for rt in reg.in_group_version(group, version):
        gvk = {"group": rt.group, "version": version, "kind": rt.kind}
        name = schema_name(rt, version)
        ref = {"$ref": f"#/components/schemas/{name}"}
        list_ref = {"$ref": f"#/components/schemas/{name}List"}
        schemas[name] = {
            "type": "object",
            "x-kubernetes-group-version-kind": [gvk],
            "x-kubernetes-preserve-unknown-fields": True,
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            },
        }
        schemas[name + "List"] = {
            "type": "object",
            "x-kubernetes-group-version-kind": [{**gvk, "kind": rt.list_kind}],
            "properties": {"items": {"type": "array", "items": ref}},
        }
        coll = f"{base}/namespaces/{{namespace}}/{rt.plural}" if rt.namespaced else f"{base}/{rt.plural}"
        ns_param = [{"name": "namespace", "in": "path", "required": True, "schema": {"type": "string"}}]
        name_param = [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}]
        scope = ns_param if rt.namespaced else []

        def op(
            action: str,
            resp: dict[str, Any],
            params: list[dict[str, Any]],
            body: list[str] | None = None,
            gvk: dict[str, Any] = gvk,
            rt: ResourceType = rt,
            ref: dict[str, Any] = ref,
        ) -> dict[str, Any]:
            o: dict[str, Any] = {
                "operationId": f"{action}{rt.kind}",
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk,
                "parameters": params,
                "responses": {
                    "200": {"description": "OK", "content": {"application/json": {"schema": resp}}}
                },
            }
            if body:
                o["requestBody"] = {"content": {ct: {"schema": ref} for ct in body}, "required": True}
            return o

        write_params = [
            {"name": "dryRun", "in": "query", "schema": {"type": "string"}, "uniqueItems": True},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string"}, "uniqueItems": True},
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}, "uniqueItems": True},
        ]
        patch_types = [
            "application/apply-patch+yaml",
            "application/json-patch+json",
            "application/merge-patch+json",
        ]
        paths[coll] = {
            "get": op("list", list_ref, scope),
            "post": op("post", ref, scope + write_params, ["application/json"]),
            "delete": op("deletecollection", {"type": "object"}, scope),
        }
        paths[f"{coll}/{{name}}"] = {
            "get": op("get", ref, scope + name_param),
            "put": op("put", ref, scope + name_param + write_params, ["application/json"]),
            "patch": op(
                "patch",
                ref,
                scope
                + name_param
                + write_params
                + [{"name": "force", "in": "query", "schema": {"type": "boolean"}}],
                patch_types,
            ),
            "delete": op("delete", {"type": "object"}, scope + name_param),
        }
        if rt.status_subresource:
            paths[f"{coll}/{{name}}/status"] = {
                "get": op("get", ref, scope + name_param),
                "put": op("put", ref, scope + name_param + write_params, ["application/json"]),
                "patch": op("patch", ref, scope + name_param + write_params, patch_types),
            }
        if rt.namespaced:
            paths[f"{base}/{rt.plural}"] = {"get": op("list", list_ref, [])}
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": KUBE_VERSION["gitVersion"]},
        "paths": paths,
        "components": {"schemas": schemas},
    }


class OpenAPICache:
    """Generated OpenAPI v3 documents, rebuilt when the set of resources changes."""

    def __init__(self, reg: ResourceRegistry) -> None:
        self._reg = reg
        self._stamp: tuple[Any, ...] = ()
        self._docs: dict[str, bytes] = {}
        self._hashes: dict[str, str] = {}

    def _refresh(self) -> None:
        stamp = tuple(sorted((rt.key, tuple(rt.versions)) for rt in self._reg.all()))
        if stamp == self._stamp:
            return
        docs: dict[str, bytes] = {}
        hashes: dict[str, str] = {}
        for group, versions in self._reg.group_versions().items():
            for v in versions:
                raw = json.dumps(_gv_doc(self._reg, group, v)).encode()
                p = _gv_path(group, v)
                docs[p] = raw
                hashes[p] = hashlib.sha512(raw).hexdigest()[:64].upper()
        self._docs, self._hashes, self._stamp = docs, hashes, stamp

    def index(self) -> dict[str, Any]:
        self._refresh()
        return {
            "paths": {
                p: {"serverRelativeURL": f"/openapi/v3/{p}?hash={h}"} for p, h in sorted(self._hashes.items())
            }
        }

    def document(self, path: str) -> bytes | None:
        self._refresh()
        return self._docs.get(path)


# ---- Tables ---------------------------------------------------------------------------------
def _age(ts: str | None, now: datetime) -> str:
    if not ts:
        return "<unknown>"
    try:
        then = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return "<unknown>"
    s = max(0, int((now - then).total_seconds()))
    if s < 120:
        return f"{s}s"
    if s < 600:
        return f"{s // 60}m{s % 60}s" if s % 60 else f"{s // 60}m"
    if s < 3 * 3600:
        return f"{s // 60}m"
    if s < 48 * 3600:
        return f"{s // 3600}h"
    return f"{s // 86400}d"


def _jsonpath(obj: dict[str, Any], path: str) -> Any:
    cur: Any = obj
    for part in path.strip().lstrip(".").split("."):
        if not part:
            continue
        if part.endswith("]") and "[" in part:
            name, idx = part[:-1].split("[", 1)
            cur = cur.get(name) if isinstance(cur, dict) else None
            try:
                cur = cur[int(idx)] if isinstance(cur, list) else None
            except (ValueError, IndexError):
                return None
        else:
            cur = cur.get(part) if isinstance(cur, dict) else None
        if cur is None:
            return None
    return cur


def _col(name: str, typ: str = "string", fmt: str = "", priority: int = 0, desc: str = "") -> dict[str, Any]:
    return {"name": name, "type": typ, "format": fmt, "description": desc or name, "priority": priority}


def _endpoint_addresses(obj: dict[str, Any], shown: int = 3) -> str:
    """``10.0.0.1:80,10.0.0.2:80 + 1 more...``, as ``kubectl get endpoints`` prints them."""
    out: list[str] = []
    for subset in obj.get("subsets") or []:
        if not isinstance(subset, dict):
            continue
        ports = [p.get("port") for p in subset.get("ports") or [] if isinstance(p, dict)] or [None]
        for a in subset.get("addresses") or []:
            if isinstance(a, dict):
                out += [f"{a.get('ip', '')}:{p}" if p is not None else str(a.get("ip", "")) for p in ports]
    if not out:
        return "<none>"
    more = f" + {len(out) - shown} more..." if len(out) > shown else ""
    return ",".join(out[:shown]) + more


def table_columns(rt: ResourceType, version: str) -> list[dict[str, Any]]:
    cols = [_col("Name", fmt="name", desc="Name must be unique within a namespace.")]
    if rt.key == "apps/deployments":
        cols += [_col("Ready"), _col("Up-to-date", "integer"), _col("Available", "integer")]
    elif rt.key == "/services":
        cols += [_col("Type"), _col("Cluster-IP"), _col("External-IP"), _col("Port(s)")]
    elif rt.key == "/endpoints":
        cols += [_col("Endpoints")]
    elif rt.key == "/namespaces":
        cols += [_col("Status")]
    elif rt.key == "/configmaps":
        cols += [_col("Data", "integer")]
    elif rt.key == "/secrets":
        cols += [_col("Type"), _col("Data", "integer")]
    elif rt.key == "/events":
        cols += [_col("Type"), _col("Reason"), _col("Object"), _col("Message")]
    elif rt.key == "coordination.k8s.io/leases":
        cols += [_col("Holder")]
    elif rt.key in kinds.TABLES:
        cols += [_col(name, typ) for name, typ in kinds.TABLES[rt.key][0]]
    else:
        for pc in rt.printer_columns.get(version, []):
            cols.append(
                _col(
                    pc["name"],
                    pc.get("type", "string"),
                    pc.get("format", ""),
                    pc.get("priority", 0),
                    pc.get("description", ""),
                )
            )
    if rt.builtin or not rt.printer_columns.get(version):
        cols.append(_col("Age", desc="CreationTimestamp is a timestamp representing the server time ..."))
    return cols


def table_cells(rt: ResourceType, version: str, obj: dict[str, Any], now: datetime) -> list[Any]:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    cells: list[Any] = [meta.get("name", "")]
    if rt.key == "apps/deployments":
        cells += [
            f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
            status.get("updatedReplicas", 0),
            status.get("availableReplicas", 0),
        ]
    elif rt.key == "/services":
        ports = ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in spec.get("ports") or [])
        cells += [spec.get("type", "ClusterIP"), spec.get("clusterIP", "<none>"), "<none>", ports or "<none>"]
    elif rt.key == "/endpoints":
        cells += [_endpoint_addresses(obj)]
    elif rt.key == "/namespaces":
        cells += [status.get("phase", "Active")]
    elif rt.key == "/configmaps":
        cells += [len(obj.get("data") or {}) + len(obj.get("binaryData") or {})]
    elif rt.key == "/secrets":
        cells += [obj.get("type", "Opaque"), len(obj.get("data") or {})]
    elif rt.key == "/events":
        inv = obj.get("involvedObject") or {}
        cells += [
            obj.get("type", ""),
            obj.get("reason", ""),
            f"{str(inv.get('kind', '')).lower()}/{inv.get('name', '')}",
            obj.get("message", ""),
        ]
    elif rt.key == "coordination.k8s.io/leases":
        cells += [spec.get("holderIdentity", "")]
    elif rt.key in kinds.TABLES:
        cells += kinds.TABLES[rt.key][1](obj, now)
    else:
        for pc in rt.printer_columns.get(version, []):
            val = _jsonpath(obj, pc.get("jsonPath", ""))
            if pc.get("type") == "date" and isinstance(val, str):
                val = _age(val, now)
            if isinstance(val, list | dict):
                val = json.dumps(val, separators=(",", ":"))
            cells.append(
                "<none>" if val is None else val if isinstance(val, int | float | bool) else str(val)
            )
    if rt.builtin or not rt.printer_columns.get(version):
        cells.append(_age(meta.get("creationTimestamp"), now))
    return cells


def table_row(
    rt: ResourceType, version: str, obj: dict[str, Any], include: str, now: datetime
) -> dict[str, Any]:
    row: dict[str, Any] = {"cells": table_cells(rt, version, obj, now)}
    if include == "Object":
        row["object"] = obj
    elif include != "None":
        meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
        row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta}
    return row


def table(
    rt: ResourceType,
    version: str,
    objs: list[dict[str, Any]],
    list_meta: dict[str, Any],
    include: str,
    headers: bool = True,
) -> dict[str, Any]:
    now = datetime.now(UTC)
    out: dict[str, Any] = {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta}
    out["columnDefinitions"] = table_columns(rt, version) if headers else []
    out["rows"] = [table_row(rt, version, o, include, now) for o in objs]
    return out
