"""What Flagger 1.44 creates when it initializes a Canary, written from its code, independently of
progdel's: the expected objects the conformance tests compare progdel's with.

Each function names the Flagger function it follows:

- ``pkg/canary/deployment_controller.go``: ``createPrimaryDeployment``, ``getSelectorLabel``,
  ``getPrimaryDeploymentTemplateSpec``, ``appendPrimarySuffixToValuesIfNeeded``; ``util.go``:
  ``getPorts``, ``makeAnnotations``, ``filterMetadata``, ``includeLabelsByPrefix``,
  ``makePrimaryLabels``;
- ``pkg/canary/config_tracker.go``: ``GetTargetConfigs``, ``CreatePrimaryConfigs``,
  ``ApplyPrimaryConfigs``;
- ``pkg/canary/hpa_reconciler.go``: ``reconcilePrimaryHpaV2``, ``makeObjectMeta``;
- ``pkg/router/kubernetes_default.go``: ``reconcileService``;
- ``pkg/router/istio.go``: ``reconcileDestinationRule``, ``reconcileVirtualService``,
  ``makeDestination``, ``mergeMatchConditions``;
- ``pkg/router/gateway_api.go`` (and ``gateway_api_v1beta1.go``): ``Reconcile``,
  ``mapRouteMatches``, ``makeFilters``, ``makeBackendRef``, ``makeHTTPRouteTimeouts``,
  ``mergeMatchConditions``.

Where progdel deliberately differs (README, "Deliberate differences from Flagger"), the
function says so and builds progdel's documented result instead: ``adopted_service`` and
``adopted_virtual_service``.
"""

from __future__ import annotations

import copy
import json
from typing import Any

SELECTOR_LABELS = ("app", "name", "app.kubernetes.io/name")
SIDECARS = ("istio-proxy", "envoy")
TOOLKIT = "toolkit.fluxcd.io"
SECRET_TYPES = ("Opaque", "kubernetes.io/basic-auth", "kubernetes.io/ssh-auth", "kubernetes.io/tls")

Obj = dict[str, Any]


def filter_metadata(values: dict[str, str] | None) -> dict[str, str]:
    return {k: v for k, v in (values or {}).items() if TOOLKIT not in k}


def include_by_prefix(values: dict[str, str] | None, prefixes: tuple[str, ...]) -> dict[str, str]:
    return {
        k: v
        for k, v in (values or {}).items()
        if TOOLKIT not in k and any(p == "*" or (p and k.startswith(p)) for p in prefixes)
    }


def primary_labels(labels: dict[str, str] | None, value: str, key: str) -> dict[str, str]:
    out = {k: v for k, v in (labels or {}).items() if TOOLKIT not in k and k != key}
    out[key] = value
    return out


def selector_label(target: Obj) -> tuple[str, str]:
    labels = target["spec"]["selector"]["matchLabels"]
    key = next(k for k in SELECTOR_LABELS if k in labels)
    return key, labels[key]


def names(canary: Obj) -> tuple[str, str, str]:
    spec = canary["spec"]
    apex = spec["service"].get("name") or spec["targetRef"]["name"]
    return apex, f"{apex}-primary", f"{apex}-canary"


# -- configs ----------------------------------------------------------------------------------


def config_refs(target: Obj) -> dict[tuple[str, str], bool]:
    """``GetTargetConfigs``: (kind, name) -> mandatory, from volumes and (init) containers."""
    spec = target["spec"]["template"]["spec"]
    refs: dict[tuple[str, str], bool] = {}

    def add(kind: str, name: str, optional: Any) -> None:
        refs[(kind, name)] = optional is not True

    for v in spec.get("volumes") or []:
        if v.get("configMap"):
            add("configmap", v["configMap"]["name"], v["configMap"].get("optional"))
        if v.get("secret"):
            add("secret", v["secret"]["secretName"], v["secret"].get("optional"))
        for s in (v.get("projected") or {}).get("sources") or []:
            if s.get("configMap"):
                add("configmap", s["configMap"]["name"], s["configMap"].get("optional"))
            if s.get("secret"):
                add("secret", s["secret"]["name"], s["secret"].get("optional"))
    for c in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        for e in c.get("env") or []:
            vf = e.get("valueFrom") or {}
            if vf.get("configMapKeyRef"):
                add("configmap", vf["configMapKeyRef"]["name"], vf["configMapKeyRef"].get("optional"))
            elif vf.get("secretKeyRef"):
                add("secret", vf["secretKeyRef"]["name"], vf["secretKeyRef"].get("optional"))
        for ef in c.get("envFrom") or []:
            if ef.get("configMapRef"):
                add("configmap", ef["configMapRef"]["name"], ef["configMapRef"].get("optional"))
            elif ef.get("secretRef"):
                add("secret", ef["secretRef"]["name"], ef["secretRef"].get("optional"))
    return refs


def tracked(target: Obj, configs: dict[tuple[str, str], Obj]) -> dict[tuple[str, str], Obj]:
    """The configs Flagger tracks: existing, not disabled, Secrets of the listed types."""
    out = {}
    for ref in config_refs(target):
        obj = configs.get(ref)
        if obj is None:
            continue
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        if str(annotations.get("flagger.app/config-tracking", "")).startswith("disable"):
            continue
        if ref[0] == "secret" and obj.get("type", "Opaque") not in SECRET_TYPES:
            continue
        out[ref] = obj
    return out


def primary_configs(configs: dict[tuple[str, str], Obj], prefixes: tuple[str, ...]) -> list[Obj]:
    """``CreatePrimaryConfigs``."""
    out = []
    for (kind, name), obj in configs.items():
        body: Obj = {
            "apiVersion": "v1",
            "kind": "ConfigMap" if kind == "configmap" else "Secret",
            "metadata": {
                "name": f"{name}-primary",
                "labels": include_by_prefix(obj["metadata"].get("labels"), prefixes),
            },
            "data": obj.get("data") or {},
        }
        if kind == "secret":
            body["type"] = obj.get("type", "Opaque")
        out.append(body)
    return out


def apply_primary_configs(pod_spec: Obj, refs: dict[tuple[str, str], Obj]) -> Obj:
    """``ApplyPrimaryConfigs``."""
    spec = copy.deepcopy(pod_spec)

    def rename(kind: str, holder: Obj | None, key: str) -> None:
        if holder and (kind, holder.get(key)) in refs:
            holder[key] += "-primary"

    for v in spec.get("volumes") or []:
        rename("configmap", v.get("configMap"), "name")
        rename("secret", v.get("secret"), "secretName")
        for s in (v.get("projected") or {}).get("sources") or []:
            rename("configmap", s.get("configMap"), "name")
            rename("secret", s.get("secret"), "name")
    for c in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        for e in c.get("env") or []:
            vf = e.get("valueFrom") or {}
            rename("configmap", vf.get("configMapKeyRef"), "name")
            rename("secret", vf.get("secretKeyRef"), "name")
        for ef in c.get("envFrom") or []:
            rename("configmap", ef.get("configMapRef"), "name")
            rename("secret", ef.get("secretRef"), "name")
    return spec


# -- the primary --------------------------------------------------------------------------------


def _suffix(selector: Obj | None, target_name: str) -> None:
    """``appendPrimarySuffixToValuesIfNeeded``."""
    if not selector:
        return
    for expr in selector.get("matchExpressions") or []:
        if expr.get("key") in SELECTOR_LABELS:
            for i, v in enumerate(expr.get("values") or []):
                if v == target_name:
                    expr["values"][i] = v + "-primary"
                    break
    for k, v in list((selector.get("matchLabels") or {}).items()):
        if k in SELECTOR_LABELS and v == target_name:
            selector["matchLabels"][k] = v + "-primary"


def primary_deployment(target: Obj, refs: dict[tuple[str, str], Obj], prefixes: tuple[str, ...]) -> Obj:
    """``createPrimaryDeployment`` (the ``flagger-id`` value is random: checked apart)."""
    key, value = selector_label(target)
    tspec = target["spec"]
    pod_spec = apply_primary_configs(tspec["template"].get("spec") or {}, refs)
    for c in pod_spec.get("topologySpreadConstraints") or []:
        _suffix(c.get("labelSelector"), target["metadata"]["name"])
    anti = (pod_spec.get("affinity") or {}).get("podAntiAffinity") or {}
    for term in anti.get("preferredDuringSchedulingIgnoredDuringExecution") or []:
        _suffix((term.get("podAffinityTerm") or {}).get("labelSelector"), target["metadata"]["name"])
    for term in anti.get("requiredDuringSchedulingIgnoredDuringExecution") or []:
        _suffix(term.get("labelSelector"), target["metadata"]["name"])
    tmeta = tspec["template"].get("metadata") or {}
    annotations = {k: v for k, v in filter_metadata(tmeta.get("annotations")).items() if k != "flagger-id"}
    replicas = tspec.get("replicas") or 0
    spec: Obj = {
        "replicas": replicas if replicas > 0 else 1,
        "selector": {"matchLabels": {key: f"{value}-primary"}},
        "template": {
            "metadata": {
                "labels": primary_labels(tmeta.get("labels"), f"{value}-primary", key),
                "annotations": {**annotations, "flagger-id": "<uuid>"},
            },
            "spec": pod_spec,
        },
    }
    for k in ("progressDeadlineSeconds", "minReadySeconds", "revisionHistoryLimit", "strategy"):
        if k in tspec:
            spec[k] = copy.deepcopy(tspec[k])
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": f"{target['metadata']['name']}-primary",
            "labels": primary_labels(
                include_by_prefix(target["metadata"].get("labels"), prefixes), f"{value}-primary", key
            ),
            "annotations": filter_metadata(target["metadata"].get("annotations")),
        },
        "spec": spec,
    }


def primary_hpa(hpa: Obj, canary: Obj) -> Obj:
    """``reconcilePrimaryHpaV2`` and ``makeObjectMeta``."""
    ref = canary["spec"]["autoscalerRef"]
    hspec = hpa["spec"]
    spec: Obj = {
        "scaleTargetRef": {
            "name": f"{canary['spec']['targetRef']['name']}-primary",
            "kind": hspec["scaleTargetRef"]["kind"],
            "apiVersion": hspec["scaleTargetRef"]["apiVersion"],
        },
        "maxReplicas": hspec["maxReplicas"],
    }
    for k in ("minReplicas", "metrics", "behavior"):
        if k in hspec:
            spec[k] = copy.deepcopy(hspec[k])
    overrides = ref.get("primaryScalerReplicas") or {}
    if overrides.get("minReplicas") is not None:
        spec["minReplicas"] = overrides["minReplicas"]
    if overrides.get("maxReplicas") is not None:
        spec["maxReplicas"] = overrides["maxReplicas"]
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {
            "name": f"{ref['name']}-primary",
            "labels": filter_metadata(hpa["metadata"].get("labels")),
        },
        "spec": spec,
    }


# -- Services -----------------------------------------------------------------------------------


def discovered_ports(canary: Obj, target: Obj) -> dict[str, int]:
    """``getPorts``."""
    svc = canary["spec"]["service"]
    if not svc.get("portDiscovery"):
        return {}
    target_port = svc.get("targetPort")
    ports: dict[str, int] = {}
    for c in target["spec"]["template"]["spec"].get("containers") or []:
        if c["name"] in SIDECARS:
            continue
        for i, p in enumerate(c.get("ports") or []):
            if target_port in (None, 0):
                if p["containerPort"] == svc["port"]:
                    continue
            elif isinstance(target_port, int):
                if p["containerPort"] == target_port:
                    continue
            elif p.get("name") == target_port:
                continue
            ports[p.get("name") or f"tcp-{c['name']}-{i}"] = p["containerPort"]
    return ports


def service_spec(canary: Obj, target: Obj, selector_value: str) -> Obj:
    """The ``svcSpec`` of ``reconcileService``."""
    svc = canary["spec"]["service"]
    key, _ = selector_label(target)
    port: Obj = {
        "name": svc.get("portName") or "http",
        "protocol": "TCP",
        "port": svc["port"],
        "targetPort": svc.get("targetPort") if svc.get("targetPort") not in (None, 0) else svc["port"],
    }
    if svc.get("appProtocol"):
        port["appProtocol"] = svc["appProtocol"]
    spec: Obj = {"type": "ClusterIP", "selector": {key: selector_value}, "ports": [port]}
    for name, number in discovered_ports(canary, target).items():
        spec["ports"].append({"name": name, "protocol": "TCP", "port": number, "targetPort": number})
    if svc.get("headless"):
        spec["clusterIP"] = "None"
    if svc.get("trafficDistribution"):
        spec["trafficDistribution"] = svc["trafficDistribution"]
    return spec


def service(canary: Obj, target: Obj, which: str) -> Obj:
    """``reconcileService`` for a Service Flagger creates (``apex``, ``primary`` or ``canary``)."""
    apex, primary, canary_name = names(canary)
    name = {"apex": apex, "primary": primary, "canary": canary_name}[which]
    key, value = selector_label(target)
    selector_value = value if which == "canary" else f"{value}-primary"
    custom = canary["spec"]["service"].get(which) or {}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "labels": {**(custom.get("labels") or {}), key: name},
            "annotations": filter_metadata(custom.get("annotations")),
        },
        "spec": service_spec(canary, target, selector_value),
    }


def adopted_service(existing: Obj, canary: Obj, target: Obj) -> Obj:
    """A Service that existed before the canary. Flagger replaces its selector and its ports
    (keeping node ports by name); progdel deliberately keeps its other ports, type and metadata
    and adds or updates the canary's (README: an existing Service keeps its other ports)."""
    _, value = selector_label(target)
    wanted = service_spec(canary, target, f"{value}-primary")
    out = copy.deepcopy(existing)
    ports = out["spec"]["ports"]
    for i, want in enumerate(wanted["ports"]):
        same = next((p for p in ports if p["port"] == want["port"]), None) or next(
            (p for p in ports if p.get("name") == want["name"]), None
        )
        if same is None and i == 0 and len(ports) == 1 and not ports[0].get("name"):
            same = ports[0]
        if same is None:
            ports.append(copy.deepcopy(want))
        else:
            same.update(want)
    out["spec"]["selector"] = wanted["selector"]
    return out


# -- Istio ------------------------------------------------------------------------------------


def destination_rule(canary: Obj, host: str) -> Obj:
    """``reconcileDestinationRule``."""
    spec: Obj = {"host": host}
    if canary["spec"]["service"].get("trafficPolicy"):
        spec["trafficPolicy"] = canary["spec"]["service"]["trafficPolicy"]
    return {
        "apiVersion": "networking.istio.io/v1beta1",
        "kind": "DestinationRule",
        "metadata": {"name": host},
        "spec": spec,
    }


def _destination(canary: Obj, host: str, weight: int) -> Obj:
    """``makeDestination``."""
    svc = canary["spec"]["service"]
    gateways = svc.get("gateways") or []
    dest: Obj = {"destination": {"host": host}, "weight": weight}
    if svc.get("portDiscovery") and ((gateways and gateways[0] != "mesh") or svc.get("delegation")):
        dest["destination"]["port"] = {"number": svc["port"]}
    return dest


def merge_istio_matches(analysis: list[Obj], service: list[Obj]) -> list[Obj]:
    """``mergeMatchConditions`` (Istio): each A/B condition's headers and sourceLabels over a copy
    of each of the service's matches."""
    if not service:
        return copy.deepcopy(analysis)
    out = []
    for c in analysis:
        for d in service:
            m = copy.deepcopy(d)
            if c.get("headers") is not None:
                m["headers"] = copy.deepcopy(c["headers"])
            if c.get("sourceLabels") is not None:
                m["sourceLabels"] = copy.deepcopy(c["sourceLabels"])
            out.append(m)
    return out


def _route_fields(canary: Obj) -> Obj:
    svc = canary["spec"]["service"]
    out: Obj = {}
    if svc.get("match"):
        out["match"] = copy.deepcopy(svc["match"])
    rewrite = svc.get("rewrite")
    if rewrite:
        out["rewrite"] = {k: v for k, v in rewrite.items() if k in ("uri", "authority") and v}
    for key in ("timeout", "retries", "corsPolicy", "headers"):
        if svc.get(key):
            out[key] = copy.deepcopy(svc[key])
    return out


def istio_http(canary: Obj) -> list[Obj]:
    """The ``http`` routes ``reconcileVirtualService`` writes (A/B: two)."""
    _, primary, canary_name = names(canary)
    fields = _route_fields(canary)
    split = [_destination(canary, primary, 100), _destination(canary, canary_name, 0)]
    match = (canary["spec"].get("analysis") or {}).get("match")
    if not match:
        return [{**fields, "route": split}]
    ab = {
        **fields,
        "match": merge_istio_matches(match, canary["spec"]["service"].get("match") or []),
        "route": split,
    }
    rest = {**fields, "route": [_destination(canary, primary, 100)]}
    return [ab, rest]


def virtual_service(canary: Obj) -> Obj:
    """``reconcileVirtualService`` for a VirtualService Flagger creates."""
    svc = canary["spec"]["service"]
    apex, _, _ = names(canary)
    hosts = list(svc.get("hosts") or [])
    if apex not in hosts and "*" not in hosts:
        hosts.append(apex)
    gateways = list(svc.get("gateways") or []) or ["mesh"]
    if svc.get("delegation"):
        hosts, gateways = [], []
    apex_meta = svc.get("apex") or {}
    return {
        "apiVersion": "networking.istio.io/v1beta1",
        "kind": "VirtualService",
        "metadata": {
            "name": apex,
            "labels": dict(apex_meta.get("labels") or {}),
            "annotations": filter_metadata(apex_meta.get("annotations")),
        },
        "spec": {"hosts": hosts, "gateways": gateways, "http": istio_http(canary)},
    }


def adopted_virtual_service(existing: Obj, canary: Obj) -> Obj:
    """A VirtualService that existed before the canary. Flagger replaces its spec with its own
    (saving the original for the revert); progdel deliberately keeps its hosts, gateways, other
    routes and fields, adds the Canary's hosts and gateways, and splits the route to the apex
    between primary and canary (README: preserving foreign routes). Its metadata stays."""
    svc = canary["spec"]["service"]
    apex, primary, canary_name = names(canary)
    out = copy.deepcopy(existing)
    spec = out["spec"]
    spec["hosts"] += [h for h in svc.get("hosts") or [] if h not in spec["hosts"]]
    if apex not in spec["hosts"] and "*" not in spec["hosts"]:
        spec["hosts"].append(apex)
    if spec.get("gateways") is not None:
        spec["gateways"] += [g for g in svc.get("gateways") or [] if g not in spec["gateways"]]
    main = next(r for r in spec["http"] if any(d["destination"]["host"] == apex for d in r["route"]))
    main.update({k: v for k, v in _route_fields(canary).items()})
    split = [_destination(canary, primary, 100), _destination(canary, canary_name, 0)]
    match = (canary["spec"].get("analysis") or {}).get("match")
    if match:
        ab = {"name": "progdel-ab", **{k: v for k, v in main.items() if k not in ("match", "route")}}
        ab["match"] = merge_istio_matches(match, main.get("match") or [])
        ab["route"] = split
        main["route"] = [_destination(canary, primary, 100)]
        spec["http"].insert(spec["http"].index(main), ab)
    else:
        main["route"] = split
    out["metadata"].setdefault("annotations", {})["progdel.dev/original-configuration"] = json.dumps(
        existing["spec"], sort_keys=True
    )
    return out


# -- Gateway API --------------------------------------------------------------------------------


def gateway_matches(matches: list[Obj]) -> list[Obj]:
    """``mapRouteMatches``."""
    out = []
    for m in matches:
        r: Obj = {}
        uri = m.get("uri") or {}
        for key, kind in (("regex", "RegularExpression"), ("exact", "Exact"), ("prefix", "PathPrefix")):
            if uri.get(key):
                r["path"] = {"type": kind, "value": uri[key]}
                break
        if (m.get("method") or {}).get("exact"):
            r["method"] = m["method"]["exact"]
        for field_name, key in (("headers", "headers"), ("queryParams", "queryParams")):
            for name, cond in (m.get(key) or {}).items():
                kind = "Exact" if cond.get("exact") else "RegularExpression"
                r.setdefault(field_name, []).append(
                    {"name": name, "type": kind, "value": cond.get("exact") or cond.get("regex")}
                )
        if r:
            out.append(r)
    return out


def _header_filter(ops: Obj) -> Obj:
    out: Obj = {}
    for key in ("add", "set"):
        if ops.get(key):
            out[key] = sorted(
                ({"name": k, "value": v} for k, v in ops[key].items()), key=lambda h: (h["name"], h["value"])
            )
    if ops.get("remove"):
        out["remove"] = list(ops["remove"])
    return out


def gateway_filters(canary: Obj) -> list[Obj]:
    """``makeFilters``."""
    svc = canary["spec"]["service"]
    filters = []
    headers = svc.get("headers") or {}
    if headers.get("request") is not None:
        filters.append(
            {"type": "RequestHeaderModifier", "requestHeaderModifier": _header_filter(headers["request"])}
        )
    if headers.get("response") is not None:
        filters.append(
            {"type": "ResponseHeaderModifier", "responseHeaderModifier": _header_filter(headers["response"])}
        )
    rewrite = svc.get("rewrite")
    if rewrite is not None:
        body: Obj = {}
        if rewrite.get("authority"):
            body["hostname"] = rewrite["authority"]
        if rewrite.get("uri"):
            prefix = rewrite.get("type") == "ReplacePrefixMatch"
            body["path"] = (
                {"type": "ReplacePrefixMatch", "replacePrefixMatch": rewrite["uri"]}
                if prefix
                else {"type": "ReplaceFullPath", "replaceFullPath": rewrite["uri"]}
            )
        filters.append({"type": "URLRewrite", "urlRewrite": body})
    for mirror in svc.get("mirror") or []:
        filters.append({"type": "RequestMirror", "requestMirror": copy.deepcopy(mirror)})
    return filters


def _backend(canary: Obj, name: str, weight: int) -> Obj:
    """``makeBackendRef``."""
    return {
        "group": "",
        "kind": "Service",
        "name": name,
        "port": canary["spec"]["service"]["port"],
        "weight": weight,
    }


def http_route(canary: Obj, api_version: str) -> Obj:
    """``Reconcile`` of the Gateway API router, for an HTTPRoute it creates."""
    svc = canary["spec"]["service"]
    apex, primary, canary_name = names(canary)
    matches = gateway_matches(svc.get("match") or []) or [{"path": {"type": "PathPrefix", "value": "/"}}]
    rule: Obj = {
        "matches": matches,
        "backendRefs": [_backend(canary, primary, 100), _backend(canary, canary_name, 0)],
    }
    filters = gateway_filters(canary)
    if filters:
        rule["filters"] = filters
    timeouts = {}
    if svc.get("timeout"):
        timeouts["request"] = svc["timeout"]
    if svc.get("backendTimeout"):
        timeouts["backendRequest"] = svc["backendTimeout"]
    if timeouts:
        rule["timeouts"] = timeouts
    rules = [rule]
    match = (canary["spec"].get("analysis") or {}).get("match")
    if match:
        analysis = gateway_matches(match)
        merged = []
        for a in analysis:
            for s in matches:
                m = copy.deepcopy(s)
                for key in ("headers", "queryParams"):
                    if a.get(key):
                        m[key] = a[key]
                merged.append(m)
        rest = {k: copy.deepcopy(v) for k, v in rule.items() if k != "backendRefs"}
        rest["backendRefs"] = [_backend(canary, primary, 100)]
        rules = [{**rule, "matches": merged}, rest]
    spec: Obj = {"parentRefs": copy.deepcopy(svc["gatewayRefs"]), "rules": rules}
    if svc.get("hosts"):
        spec["hostnames"] = list(svc["hosts"])
    apex_meta = svc.get("apex") or {}
    return {
        "apiVersion": f"gateway.networking.k8s.io/{api_version}",
        "kind": "HTTPRoute",
        "metadata": {
            "name": apex,
            "labels": dict(apex_meta.get("labels") or {}),
            "annotations": filter_metadata(apex_meta.get("annotations")),
        },
        "spec": spec,
    }
