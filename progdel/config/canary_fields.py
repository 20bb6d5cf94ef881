"""Every field of Flagger 1.44's Canary ``spec``, and what progdel does with it.

Flagger's routers each read part of ``spec.service`` and ignore the rest: the Istio router never
looks at ``gatewayRefs``, the Gateway API router never at ``trafficPolicy`` or ``retries``, and
neither at App Mesh's ``meshName``. progdel honours every field the router of the chosen provider
honours, as Flagger does; a field only another provider reads is not dropped silently but named
in a note (``field_notes``); what progdel cannot honour is refused by name before anything is
written (``canary.admission.provider_problems``).

``FIELDS`` lists every path of the CRD's schema (``[]`` a list item, ``{}`` a map value; a
subtree passed through to the routing object as it is has one entry for its root). A test walks
the real CRD and fails on a path missing here, so a field Flagger adds cannot be ignored unseen.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

ISTIO = frozenset({"istio"})
GATEWAY = frozenset({"gatewayapi:v1", "gatewayapi:v1beta1"})
BOTH = ISTIO | GATEWAY


@dataclass(frozen=True)
class FieldUse:
    """How one field is used: by the routers of ``providers`` (and ignored, as Flagger ignores
    it, by the others, which is said in a note), or always ignored (``ignored``: why)."""

    providers: frozenset[str] = BOTH
    ignored: str = ""
    subtree: bool = False  # the entry covers everything below it (a passthrough block)


def _uses(paths: str, use: FieldUse) -> dict[str, FieldUse]:
    return {p: use for p in paths.split()}


_ALL = FieldUse()
_ISTIO = FieldUse(ISTIO)
_GATEWAY = FieldUse(GATEWAY)

FIELDS: dict[str, FieldUse] = {
    **_uses(
        "spec spec.provider spec.metricsServer spec.progressDeadlineSeconds spec.skipAnalysis "
        "spec.revertOnDeletion spec.suspend "
        "spec.targetRef spec.targetRef.apiVersion spec.targetRef.kind spec.targetRef.name "
        "spec.autoscalerRef spec.autoscalerRef.apiVersion spec.autoscalerRef.kind spec.autoscalerRef.name "
        "spec.autoscalerRef.primaryScalerReplicas spec.autoscalerRef.primaryScalerReplicas.minReplicas "
        "spec.autoscalerRef.primaryScalerReplicas.maxReplicas",
        _ALL,
    ),
    "spec.autoscalerRef.primaryScalerQueries": FieldUse(
        ignored="read for a KEDA ScaledObject only, as in Flagger", subtree=True
    ),
    **_uses(
        "spec.ingressRef spec.ingressRef.apiVersion spec.ingressRef.kind spec.ingressRef.name",
        FieldUse(ignored="read by Flagger's nginx router only"),
    ),
    **_uses(
        "spec.routeRef spec.routeRef.apiVersion spec.routeRef.kind spec.routeRef.name",
        FieldUse(ignored="read by Flagger's APISIX router only"),
    ),
    **_uses(
        "spec.upstreamRef spec.upstreamRef.apiVersion spec.upstreamRef.kind spec.upstreamRef.name "
        "spec.upstreamRef.namespace",
        FieldUse(ignored="read by Flagger's Gloo router only"),
    ),
    # -- spec.service: the Services (both providers), then each router's fields
    **_uses(
        "spec.service spec.service.name spec.service.port spec.service.portName spec.service.targetPort "
        "spec.service.portDiscovery spec.service.appProtocol spec.service.trafficDistribution "
        "spec.service.headless spec.service.hosts spec.service.hosts[] spec.service.timeout "
        "spec.service.rewrite spec.service.rewrite.uri spec.service.rewrite.authority",
        _ALL,
    ),
    **{
        f"spec.service.{which}{tail}": _ALL
        for which in ("apex", "primary", "canary")
        for tail in ("", ".labels", ".labels{}", ".annotations", ".annotations{}")
    },
    **_uses(
        "spec.service.unmanagedMetadata spec.service.unmanagedMetadata.annotations "
        "spec.service.unmanagedMetadata.annotations[] spec.service.unmanagedMetadata.labels "
        "spec.service.unmanagedMetadata.labels[]",
        _ALL,
    ),
    "spec.service.match": FieldUse(BOTH, subtree=True),
    "spec.service.headers": FieldUse(BOTH, subtree=True),
    "spec.service.corsPolicy": FieldUse(BOTH, subtree=True),
    **_uses("spec.service.gateways spec.service.gateways[] spec.service.delegation", _ISTIO),
    "spec.service.retries": FieldUse(ISTIO, subtree=True),
    "spec.service.trafficPolicy": FieldUse(ISTIO, subtree=True),
    **_uses("spec.service.backendTimeout spec.service.rewrite.type", _GATEWAY),
    "spec.service.gatewayRefs": FieldUse(GATEWAY, subtree=True),
    "spec.service.mirror": FieldUse(GATEWAY, subtree=True),
    **_uses(
        "spec.service.meshName spec.service.backends spec.service.backends[]",
        FieldUse(ignored="read by Flagger's App Mesh router only"),
    ),
    # -- spec.analysis: the loop itself, the same for every provider
    **_uses(
        "spec.analysis spec.analysis.interval spec.analysis.iterations spec.analysis.threshold "
        "spec.analysis.maxWeight spec.analysis.stepWeight spec.analysis.stepWeights "
        "spec.analysis.stepWeights[] spec.analysis.stepWeightPromotion spec.analysis.mirror "
        "spec.analysis.mirrorWeight spec.analysis.primaryReadyThreshold "
        "spec.analysis.canaryReadyThreshold spec.analysis.sessionAffinity",
        _ALL,
    ),
    "spec.analysis.match": FieldUse(BOTH, subtree=True),
    "spec.analysis.metrics": FieldUse(BOTH, subtree=True),
    "spec.analysis.alerts": FieldUse(BOTH, subtree=True),
    "spec.analysis.webhooks": FieldUse(BOTH, subtree=True),
    **{
        f"spec.analysis.sessionAffinity.{name}": _ALL
        for name in (
            "cookieName",
            "primaryCookieName",
            "domain",
            "httpOnly",
            "maxAge",
            "partitioned",
            "path",
            "sameSite",
            "secure",
        )
    },
}


def rule_for(path: str) -> FieldUse | None:
    """The entry that covers ``path`` (its own, or a subtree entry above it)."""
    if path in FIELDS:
        return FIELDS[path]
    parts = path.replace("[]", "").replace("{}", "")
    while True:
        use = FIELDS.get(parts)
        if use is not None and use.subtree:
            return use
        if "." not in parts:
            return None
        parts = parts.rsplit(".", 1)[0]


def _present(data: Any, path: str) -> Iterator[str]:
    """Each place ``path`` (with ``[]``/``{}``) is set in ``data`` and not empty."""

    def walk(node: Any, parts: list[str], where: str) -> Iterator[str]:
        if not parts:
            if node not in (None, "", [], {}, False):
                yield where
            return
        head, rest = parts[0], parts[1:]
        key = head.rstrip("[]{}")
        if not isinstance(node, Mapping) or key not in node:
            return
        value = node[key]
        if head.endswith("[]"):
            for i, item in enumerate(value if isinstance(value, list) else []):
                yield from walk(item, rest, f"{where}.{key}[{i}]")
        elif head.endswith("{}"):
            for k, item in value.items() if isinstance(value, Mapping) else []:
                yield from walk(item, rest, f"{where}.{key}.{k}")
        else:
            yield from walk(value, rest, f"{where}.{key}")

    parts = path.split(".")
    yield from (w.lstrip(".") for w in walk({"spec": data.get("spec")}, parts, ""))


def field_notes(document: Mapping[str, Any], provider: str) -> list[str]:
    """One note per field ``document`` sets that the router of ``provider`` does not read (Flagger
    ignores it as well), so nothing the user wrote is dropped without a word."""
    notes: list[str] = []
    for path, use in FIELDS.items():
        if "[]" in path or "{}" in path:
            continue
        if use.ignored:
            reason = use.ignored
        elif provider not in use.providers:
            names = "Istio" if use.providers == ISTIO else "Gateway API"
            reason = f"read by the {names} router only, as in Flagger; this canary's provider is {provider}"
        else:
            continue
        for where in _present(document, path):
            notes.append(f"{where} is not used: {reason}")
    analysis = (document.get("spec") or {}).get("analysis") or {}
    for i, metric in enumerate(analysis.get("metrics") or []):
        if isinstance(metric, Mapping) and "threshold" not in metric and "thresholdRange" not in metric:
            notes.append(
                f"spec.analysis.metrics[{i}] ({metric.get('name')}) has no thresholdRange or threshold: "
                "as in Flagger, it is held to a threshold of 0 (a minimum for request-success-rate, a "
                "maximum for the others)"
            )
    return notes


__all__ = ["BOTH", "FIELDS", "GATEWAY", "ISTIO", "FieldUse", "field_notes", "rule_for"]
