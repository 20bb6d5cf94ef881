"""Gateway API router: weights on the backendRefs of an ``HTTPRoute``.

The second implementation of the ``Router`` protocol, for clusters whose traffic goes through a
Gateway API implementation (Istio, Envoy Gateway, Contour, ...) rather than an Istio
VirtualService. Selected with ``spec.provider: gatewayapi`` (Flagger's ``gatewayapi:v1`` and
``gatewayapi:v1beta1`` pick the API version of the HTTPRoute).

The HTTPRoute is named after the apex service, like the VirtualService; its ``parentRefs`` come from
``spec.service.gatewayRefs`` and its ``hostnames`` from ``spec.service.hosts``. progdel's rule is the
first rule whose backendRefs name ``<apex>-primary`` or ``<apex>-canary`` (else the first that names
``<apex>``, which is turned into a split). As with the VirtualService, an existing HTTPRoute keeps
everything progdel does not manage (other rules, matches, filters, foreign backends, unknown fields):
only the two weights of progdel's rule change, with a conditional PUT retried on conflict, and the
route's original spec is saved in an annotation so that ``canary delete --revert`` can restore it.
Mirroring uses the standard ``RequestMirror`` filter on progdel's rule.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from progdel.kube.client import Kube
from progdel.kube.resources import HTTPROUTES, Resource
from progdel.routing.base import RouteNames, RoutingError, Weights, split_weights
from progdel.routing.istio import CREATED_ANNOTATION, MANAGED_LABEL, ORIGINAL_ANNOTATION

HTTPROUTES_V1BETA1 = Resource("gateway.networking.k8s.io", "v1beta1", "httproutes", "HTTPRoute")
MIRROR_FILTER = "RequestMirror"


def _is_service_ref(ref: dict[str, Any]) -> bool:
    """A backendRef to a core Service (the default group and kind)."""
    return ref.get("group", "") in ("", "core") and ref.get("kind", "Service") == "Service"


def _ref_name(ref: dict[str, Any]) -> str:
    return str(ref.get("name", "")) if _is_service_ref(ref) else ""


def find_rule(spec: dict[str, Any], names: RouteNames) -> int | None:
    """Index of progdel's rule in ``spec.rules``, or None."""
    rules = spec.get("rules") or []
    for wanted in ({names.primary, names.canary}, {names.apex}):
        for i, rule in enumerate(rules):
            if {_ref_name(r) for r in rule.get("backendRefs") or []} & wanted:
                return i
    return None


def _backend(template: dict[str, Any] | None, name: str, weight: int, port: int | None) -> dict[str, Any]:
    ref = copy.deepcopy(template) if template else {}
    ref["name"] = name
    if port is not None and "port" not in ref:
        ref["port"] = port
    ref["weight"] = weight
    return ref


def _mirror_filter(names: RouteNames, port: int | None) -> dict[str, Any]:
    backend: dict[str, Any] = {"name": names.canary}
    if port is not None:
        backend["port"] = port
    return {"type": MIRROR_FILTER, "requestMirror": {"backendRef": backend}}


def _is_our_mirror(f: dict[str, Any], names: RouteNames) -> bool:
    backend = (f.get("requestMirror") or {}).get("backendRef") or {}
    return f.get("type") == MIRROR_FILTER and _ref_name(backend) == names.canary


def set_rule_weights(
    spec: dict[str, Any], names: RouteNames, weights: Weights, port: int | None
) -> dict[str, Any]:
    """Return ``spec`` with progdel's rule split ``weights``; everything else untouched.

    A backendRef to the apex Service becomes the primary/canary pair; backendRefs to other
    Services (foreign backends) keep their place and weight. The input is not modified.
    """
    out = copy.deepcopy(spec)
    index = find_rule(out, names)
    if index is None:
        raise RoutingError(
            f"httproute {names.namespace}/{names.apex} has no rule with a backendRef to {names.apex}, "
            f"{names.primary} or {names.canary}"
        )
    rule = out["rules"][index]
    refs = rule.get("backendRefs") or []
    primary_t = next((r for r in refs if _ref_name(r) in (names.primary, names.apex)), None)
    canary_t = next((r for r in refs if _ref_name(r) == names.canary), None)
    ours = (names.primary, names.canary, names.apex)
    foreign = [r for r in refs if _ref_name(r) not in ours]
    rule["backendRefs"] = [
        _backend(primary_t, names.primary, weights.primary, port),
        _backend(canary_t or primary_t, names.canary, weights.canary, port),
        *foreign,
    ]
    filters = [f for f in rule.get("filters") or [] if not _is_our_mirror(f, names)]
    if weights.mirrored:
        filters.append(_mirror_filter(names, port))
    if filters:
        rule["filters"] = filters
    else:
        rule.pop("filters", None)
    return out


def read_rule_weights(spec: dict[str, Any], names: RouteNames) -> Weights:
    """The primary and canary weights of progdel's rule (Gateway API's default weight is 1)."""
    index = find_rule(spec, names)
    if index is None:
        raise RoutingError(f"httproute {names.namespace}/{names.apex} has no rule for this canary")
    rule = spec["rules"][index]
    primary, canary = split_weights(
        ((_ref_name(ref), int(ref.get("weight", 1))) for ref in rule.get("backendRefs") or []),
        names,
        f"httproute {names.namespace}/{names.apex}",
    )
    mirrored = any(_is_our_mirror(f, names) for f in rule.get("filters") or [])
    return Weights(primary, canary, mirrored)


class HTTPRouteRouter:
    """The ``Router`` for the Gateway API: one HTTPRoute ``<apex>`` per canary."""

    def __init__(
        self,
        kube: Kube,
        names: RouteNames,
        service: dict[str, Any],
        port: int | None = None,
        resource: Resource = HTTPROUTES,
    ) -> None:
        self.kube = kube
        self.names = names
        self.service = service  # the Canary's spec.service, as a dict (camelCase)
        self.port = port
        self.resource = resource

    # -- objects ----------------------------------------------------------------------------

    def _new_rule(self) -> dict[str, Any]:
        return {
            "backendRefs": [
                _backend(None, self.names.primary, 100, self.port),
                _backend(None, self.names.canary, 0, self.port),
            ]
        }

    def _wanted_parents(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"parentRefs": copy.deepcopy(self.service.get("gatewayRefs") or [])}
        if self.service.get("hosts"):
            spec["hostnames"] = list(self.service["hosts"])
        return spec

    def new_route(self) -> dict[str, Any]:
        """The HTTPRoute progdel creates when none exists (all traffic to the primary)."""
        return {
            "metadata": {
                "name": self.names.apex,
                "namespace": self.names.namespace,
                "labels": {MANAGED_LABEL: "progdel"},
                "annotations": {CREATED_ANNOTATION: "progdel"},
            },
            "spec": {**self._wanted_parents(), "rules": [self._new_rule()]},
        }

    # -- Router -----------------------------------------------------------------------------

    def reconcile(self) -> None:
        route = self.kube.get_or_none(self.resource, self.names.apex, self.names.namespace)
        if route is None:
            self.kube.create(self.resource, self.new_route(), self.names.namespace)
            return

        def adopt(obj: dict[str, Any]) -> None:
            annotations = obj["metadata"].setdefault("annotations", {})
            spec = obj.setdefault("spec", {})
            created = annotations.get(CREATED_ANNOTATION) == "progdel"
            if not created and ORIGINAL_ANNOTATION not in annotations:
                annotations[ORIGINAL_ANNOTATION] = json.dumps(spec, sort_keys=True)
            if created:
                # progdel owns this route: parents and hostnames follow the Canary's spec
                spec.pop("hostnames", None)
                spec.update(self._wanted_parents())
            if find_rule(spec, self.names) is None:
                spec.setdefault("rules", []).insert(0, self._new_rule())
            else:
                current = read_rule_weights(spec, self.names)
                obj["spec"] = set_rule_weights(spec, self.names, current, self.port)

        self.kube.update(self.resource, self.names.apex, adopt, self.names.namespace)

    def get_weights(self) -> Weights:
        route = self.kube.get(self.resource, self.names.apex, self.names.namespace)
        return read_rule_weights(route.get("spec") or {}, self.names)

    def set_weights(self, weights: Weights) -> None:
        def mutate(obj: dict[str, Any]) -> None:
            obj["spec"] = set_rule_weights(obj.get("spec") or {}, self.names, weights, self.port)

        self.kube.update(self.resource, self.names.apex, mutate, self.names.namespace)

    def revert(self) -> None:
        route = self.kube.get_or_none(self.resource, self.names.apex, self.names.namespace)
        if route is None:
            return
        annotations = route["metadata"].get("annotations") or {}
        if ORIGINAL_ANNOTATION in annotations:
            original = json.loads(annotations[ORIGINAL_ANNOTATION])

            def restore(obj: dict[str, Any]) -> None:
                obj["spec"] = original
                obj["metadata"].get("annotations", {}).pop(ORIGINAL_ANNOTATION, None)

            self.kube.update(self.resource, self.names.apex, restore, self.names.namespace)
        elif annotations.get(CREATED_ANNOTATION) == "progdel":
            self.kube.delete(self.resource, self.names.apex, self.names.namespace, missing_ok=True)


__all__ = [
    "HTTPROUTES_V1BETA1",
    "HTTPRouteRouter",
    "find_rule",
    "read_rule_weights",
    "set_rule_weights",
]
