"""The Gateway API router: HTTPRoute backendRef weights, against the sandbox's API server."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from progdel.canary import store
from progdel.canary.runner import CanaryRunner, RunOptions, initialize
from progdel.config.canary import parse_canary
from progdel.errors import ExitCode, InvalidInput
from progdel.kube.client import Kube, connect
from progdel.kube.resources import DEPLOYMENTS, HTTPROUTES, VIRTUALSERVICES
from progdel.routing import router_for
from progdel.routing.base import RouteNames, Weights
from progdel.routing.gatewayapi import (
    HTTPROUTES_V1BETA1,
    HTTPRouteRouter,
    read_rule_weights,
    set_rule_weights,
)
from progdel.routing.istio import ORIGINAL_ANNOTATION, RoutingError, VirtualServiceRouter
from tests.canary.test_runner_integration import T0, ReplayClock, deployment, history, new_revision
from tests.promfixture import TrafficPhase, require_prometheus, run_prometheus

GATEWAY = {"name": "public", "namespace": "istio-ingress"}
SERVICE = {"port": 9898, "hosts": ["app.example.com"], "gatewayRefs": [GATEWAY]}


@pytest.fixture
def kube(sandbox: Any, namespace: str) -> Kube:
    return connect(str(sandbox.kubeconfig), None, namespace)


def router(kube: Kube, namespace: str, resource: Any = HTTPROUTES) -> HTTPRouteRouter:
    return HTTPRouteRouter(kube, RouteNames("podinfo", namespace), SERVICE, 9898, resource)


def backends(route: dict[str, Any], rule: int = 0) -> list[tuple[str, int | None]]:
    return [(r["name"], r.get("weight")) for r in route["spec"]["rules"][rule]["backendRefs"]]


def users_route(namespace: str) -> dict[str, Any]:
    """An HTTPRoute the user wrote before progdel: an admin rule, then the app's rule."""
    return {
        "metadata": {"name": "podinfo", "namespace": namespace, "labels": {"team": "web"}},
        "spec": {
            "parentRefs": [{"name": "edge", "namespace": "gateways", "sectionName": "https"}],
            "hostnames": ["podinfo.example.org"],
            "x-vendor-extension": {"kept": True},
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/admin"}}],
                    "backendRefs": [{"name": "admin-svc", "port": 8080}],
                },
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "filters": [
                        {
                            "type": "RequestHeaderModifier",
                            "requestHeaderModifier": {"set": [{"name": "x-team", "value": "web"}]},
                        }
                    ],
                    "timeouts": {"request": "10s"},
                    "backendRefs": [
                        {"name": "podinfo", "port": 9898, "weight": 95},
                        {"name": "legacy-podinfo", "port": 9898, "weight": 5},
                    ],
                },
            ],
        },
    }


def test_rule_edits_are_pure_and_keep_everything_else() -> None:
    names = RouteNames("podinfo", "test")
    spec = users_route("test")["spec"]
    out = set_rule_weights(spec, names, Weights(80, 20), 9898)
    assert spec["rules"][1]["backendRefs"][0]["name"] == "podinfo", "input must not be mutated"
    assert out["rules"][0] == spec["rules"][0]
    assert out["x-vendor-extension"] == {"kept": True}
    assert out["rules"][1]["filters"] == spec["rules"][1]["filters"]
    assert out["rules"][1]["timeouts"] == {"request": "10s"}
    refs = [(r["name"], r["weight"], r["port"]) for r in out["rules"][1]["backendRefs"]]
    assert refs == [("podinfo-primary", 80, 9898), ("podinfo-canary", 20, 9898), ("legacy-podinfo", 5, 9898)]
    assert read_rule_weights(out, names) == Weights(80, 20)
    mirrored = set_rule_weights(out, names, Weights(100, 0, mirrored=True), 9898)
    assert read_rule_weights(mirrored, names) == Weights(100, 0, True)
    assert len(mirrored["rules"][1]["filters"]) == 2
    unmirrored = set_rule_weights(mirrored, names, Weights(100, 0), 9898)
    assert unmirrored["rules"][1]["filters"] == spec["rules"][1]["filters"]
    with pytest.raises(RoutingError, match="no rule with a backendRef"):
        set_rule_weights({"rules": [{"backendRefs": [{"name": "other"}]}]}, names, Weights(50, 50), None)


def test_creates_the_route_then_shifts_and_reads_weights(kube: Kube, namespace: str) -> None:
    r = router(kube, namespace)
    r.reconcile()
    route = kube.get(HTTPROUTES, "podinfo")
    assert route["spec"]["parentRefs"] == [GATEWAY]
    assert route["spec"]["hostnames"] == ["app.example.com"]
    assert backends(route) == [("podinfo-primary", 100), ("podinfo-canary", 0)]
    assert route["spec"]["rules"][0]["backendRefs"][0]["port"] == 9898
    assert r.get_weights() == Weights(100, 0)

    r.set_weights(Weights(70, 30))
    assert backends(kube.get(HTTPROUTES, "podinfo")) == [("podinfo-primary", 70), ("podinfo-canary", 30)]
    assert r.get_weights() == Weights(70, 30)
    r.reconcile()
    assert r.get_weights() == Weights(70, 30), "reconciling never resets traffic"
    # the same object through the older API version
    assert router(kube, namespace, HTTPROUTES_V1BETA1).get_weights() == Weights(70, 30)

    r.revert()
    assert kube.get_or_none(HTTPROUTES, "podinfo") is None, "a route progdel created is removed"


def test_existing_route_keeps_foreign_rules_and_reverts(kube: Kube, namespace: str) -> None:
    kube.create(HTTPROUTES, users_route(namespace))
    r = router(kube, namespace)
    r.reconcile()
    r.set_weights(Weights(60, 40))
    route = kube.get(HTTPROUTES, "podinfo")
    original = users_route(namespace)["spec"]
    assert route["spec"]["rules"][0] == original["rules"][0]
    assert route["spec"]["parentRefs"] == original["parentRefs"], "an adopted route keeps its parents"
    assert route["spec"]["hostnames"] == ["podinfo.example.org"]
    assert route["spec"]["x-vendor-extension"] == {"kept": True}
    assert route["spec"]["rules"][1]["filters"] == original["rules"][1]["filters"]
    assert backends(route, 1) == [("podinfo-primary", 60), ("podinfo-canary", 40), ("legacy-podinfo", 5)]
    assert json.loads(route["metadata"]["annotations"][ORIGINAL_ANNOTATION]) == original

    r.revert()
    restored = kube.get(HTTPROUTES, "podinfo")
    assert restored["spec"] == original
    assert ORIGINAL_ANNOTATION not in (restored["metadata"].get("annotations") or {})
    assert restored["metadata"]["labels"] == {"team": "web"}


def canary_model(namespace: str, provider: str | None) -> Any:
    spec: dict[str, Any] = {
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
        "service": SERVICE,
        "analysis": {"interval": "10s", "threshold": 1, "stepWeight": 50},
    }
    if provider is not None:
        spec["provider"] = provider
    doc = {
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": namespace},
        "spec": spec,
    }
    return parse_canary(doc, "test").model


def test_router_for_picks_by_provider(kube: Kube) -> None:
    assert isinstance(router_for(kube, canary_model("t", None)), VirtualServiceRouter)
    assert isinstance(router_for(kube, canary_model("t", "istio")), VirtualServiceRouter)
    for provider, resource in (
        ("gatewayapi", HTTPROUTES),
        ("gatewayapi:v1", HTTPROUTES),
        ("gatewayapi:v1beta1", HTTPROUTES_V1BETA1),
    ):
        r = router_for(kube, canary_model("t", provider))
        assert isinstance(r, HTTPRouteRouter) and r.resource == resource
    with pytest.raises(InvalidInput, match=r"spec\.provider: 'linkerd' is not supported \(supported: istio"):
        router_for(kube, canary_model("t", "linkerd"))


def test_full_canary_run_through_the_runner_shifts_httproute_weights(
    kube: Kube, namespace: str, tmp_path: Path
) -> None:
    """Needs ``CanaryRunner.router()`` to call ``router_for`` (the runner picks the router)."""
    require_prometheus()
    kube.create(DEPLOYMENTS, deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0"))
    doc = {
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": namespace},
        "spec": {
            "provider": "gatewayapi:v1",
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": SERVICE,
            "analysis": {
                "interval": "10s",
                "threshold": 2,
                "maxWeight": 50,
                "stepWeight": 25,
                "metrics": [
                    {"name": "request-success-rate", "thresholdRange": {"min": 99}, "interval": "30s"}
                ],
            },
        },
    }
    store.apply_canary(kube, doc, namespace)
    assert initialize(kube, "podinfo", namespace, lambda _r: None, timeout=30) is ExitCode.OK
    assert backends(kube.get(HTTPROUTES, "podinfo")) == [("podinfo-primary", 100), ("podinfo-canary", 0)]
    new_revision(kube)
    seen: list[tuple[int, ...]] = []
    records: list[dict[str, Any]] = []

    def sink(record: dict[str, Any]) -> None:
        records.append(record)
        if record["kind"] == "tick":
            seen.append(tuple(w or 0 for _, w in backends(kube.get(HTTPROUTES, "podinfo"))))

    with run_prometheus(history(namespace, [TrafficPhase(0, 10, 0.0, 40)]), tmp_path) as prom:
        runner = CanaryRunner(
            kube,
            "podinfo",
            namespace,
            sink,
            RunOptions(prometheus_url=prom.url),
            ReplayClock(T0 + timedelta(seconds=300)),
        )
        assert runner.run() is ExitCode.OK
    assert (75, 25) in seen and (50, 50) in seen, seen
    assert backends(kube.get(HTTPROUTES, "podinfo")) == [("podinfo-primary", 100), ("podinfo-canary", 0)]
    assert kube.get_or_none(VIRTUALSERVICES, "podinfo") is None, "no VirtualService for a gatewayapi canary"
    assert records[-1]["kind"] == "result" and records[-1]["outcome"] == "promoted"
