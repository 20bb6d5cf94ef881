"""The Gateway API router: HTTPRoute backendRef weights, against the sandbox's API server."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from progdel.canary import store
from progdel.canary.cluster import initialize, runner_for
from progdel.canary.runner import RunOptions
from progdel.config.canary import parse_canary
from progdel.errors import ExitCode, InvalidInput
from progdel.kube.client import Kube, connect
from progdel.kube.resources import DEPLOYMENTS, HTTPROUTES, VIRTUALSERVICES
from progdel.routing import router_for
from progdel.routing.base import RouteNames, TrafficPlan, Weights
from progdel.routing.gatewayapi import (
    HTTPROUTES_V1BETA1,
    STRATEGY_ANNOTATION,
    HTTPRouteRouter,
    gateway_match,
    read_rule_weights,
    set_route_traffic,
    set_rule_weights,
)
from progdel.routing.istio import ORIGINAL_ANNOTATION, RoutingError, VirtualServiceRouter
from tests.canary.test_runner_integration import T0, ReplayClock, deployment, new_revision
from tests.promfixture import TrafficPhase, http_openmetrics, require_prometheus, run_prometheus

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


AB_MATCH = (
    {"headers": {"x-canary": {"exact": "insider"}}},
    {"headers": {"cookie": {"regex": "^(.*?;)?(canary=always)(;.*)?$"}}, "uri": {"prefix": "/api"}},
)


def test_istio_style_match_conditions_become_httproute_matches() -> None:
    assert gateway_match({"headers": {"user-agent": {"prefix": "Mozilla/5.0 (X"}}}) == {
        "headers": [{"name": "user-agent", "type": "RegularExpression", "value": r"^Mozilla/5\.0\ \(X.*"}]
    }
    assert gateway_match(
        {"queryParams": {"beta": {"exact": "1"}}, "uri": {"exact": "/v2"}, "method": {"exact": "POST"}}
    ) == {
        "queryParams": [{"name": "beta", "type": "Exact", "value": "1"}],
        "path": {"type": "Exact", "value": "/v2"},
        "method": "POST",
    }
    # a condition an HTTPRoute cannot hold is refused: dropping it would widen the audience
    with pytest.raises(RoutingError, match="sourceLabels cannot be expressed in an HTTPRoute match"):
        gateway_match({"sourceLabels": {"app": "frontend"}, "headers": {"x": {"exact": "1"}}})
    with pytest.raises(RoutingError, match="matches a method exactly"):
        gateway_match({"method": {"regex": "GET|HEAD"}})


def test_ab_rule_carries_the_split_and_everyone_else_stays_on_the_primary() -> None:
    names = RouteNames("podinfo", "test")
    spec = users_route("test")["spec"]
    plan = TrafficPlan(Weights(0, 100, mirrored=True), ab_match=AB_MATCH)
    out, kinds = set_route_traffic(spec, [], names, plan, 9898)
    assert kinds == ["ab"]
    admin, ab, main = out["rules"]
    assert admin == spec["rules"][0]
    assert [(r["name"], r["weight"]) for r in ab["backendRefs"]] == [
        ("podinfo-primary", 0),
        ("podinfo-canary", 100),
    ]
    # each A/B condition ANDed with the rule's own path match; the header condition comes first
    assert ab["matches"] == [
        {
            "path": {"type": "PathPrefix", "value": "/"},
            "headers": [{"name": "x-canary", "type": "Exact", "value": "insider"}],
        },
        {
            "path": {"type": "PathPrefix", "value": "/api"},
            "headers": [
                {"name": "cookie", "type": "RegularExpression", "value": "^(.*?;)?(canary=always)(;.*)?$"}
            ],
        },
    ]
    assert ab["timeouts"] == {"request": "10s"} and ab["filters"][0] == spec["rules"][1]["filters"][0]
    assert ab["filters"][1]["type"] == "RequestMirror", "the mirror goes with the split"
    refs = [(r["name"], r["weight"]) for r in main["backendRefs"]]
    assert refs == [("podinfo-primary", 100), ("legacy-podinfo", 5)], "as Flagger: the primary alone"
    assert main["filters"] == spec["rules"][1]["filters"], "no mirror on the rule everyone else takes"
    assert read_rule_weights(out, names, kinds) == Weights(0, 100, mirrored=True)

    # the next write replaces the strategy rules instead of piling them up
    plain, kinds = set_route_traffic(out, kinds, names, TrafficPlan(Weights(100, 0)), 9898)
    assert kinds == [] and len(plain["rules"]) == 2
    assert plain["rules"][1]["filters"] == spec["rules"][1]["filters"]
    assert read_rule_weights(plain, names) == Weights(100, 0)


def test_strategy_rules_someone_deleted_never_take_a_foreign_rule_with_them() -> None:
    names = RouteNames("podinfo", "test")
    spec = users_route("test")["spec"]
    out, kinds = set_route_traffic(spec, [], names, TrafficPlan(Weights(0, 100), ab_match=AB_MATCH), 9898)
    del out["rules"][1]  # someone removed the A/B rule by hand; the annotation still counts it
    plain, kinds = set_route_traffic(out, kinds, names, TrafficPlan(Weights(90, 10)), 9898)
    assert plain["rules"][0] == spec["rules"][0], "the admin rule before progdel's is kept"
    assert read_rule_weights(plain, names, kinds) == Weights(90, 10)


def test_session_affinity_sets_cookies_and_routes_their_holders() -> None:
    names = RouteNames("podinfo", "test")
    spec = {"rules": [{"backendRefs": [{"name": "podinfo", "port": 9898}]}]}
    plan = TrafficPlan(
        Weights(80, 20),
        canary_cookie="flagger-cookie=abc",
        primary_cookie="primary-cookie=abc",
        cookie_max_age=60,
    )
    out, kinds = set_route_traffic(spec, [], names, plan, 9898)
    assert kinds == ["canary-cookie", "primary-cookie"]
    to_canary, to_primary, main = out["rules"]
    assert to_canary["matches"] == [
        {"headers": [{"name": "Cookie", "type": "RegularExpression", "value": ".*flagger\\-cookie=abc.*"}]}
    ]
    assert [(r["name"], r["weight"]) for r in to_canary["backendRefs"]] == [("podinfo-canary", 100)]
    assert [(r["name"], r["weight"]) for r in to_primary["backendRefs"]] == [("podinfo-primary", 100)]
    canary_ref = main["backendRefs"][1]
    assert canary_ref["filters"] == [
        {
            "type": "ResponseHeaderModifier",
            "responseHeaderModifier": {
                "add": [{"name": "Set-Cookie", "value": "flagger-cookie=abc; Max-Age=60"}]
            },
        }
    ]
    assert read_rule_weights(out, names, kinds) == Weights(80, 20)
    # once the rollout is no longer weighted (promoted: 100/0), no cookie is set or routed
    done, kinds = set_route_traffic(out, kinds, names, replace_weights(plan, Weights(100, 0)), 9898)
    assert kinds == [] and len(done["rules"]) == 1
    assert all("filters" not in r for r in done["rules"][0]["backendRefs"])


def replace_weights(plan: TrafficPlan, weights: Weights) -> TrafficPlan:
    from dataclasses import replace

    return replace(plan, weights=weights)


def test_router_keeps_strategy_rules_across_reconciles_and_reverts(kube: Kube, namespace: str) -> None:
    user = kube.create(HTTPROUTES, users_route(namespace))  # as the server stores it: pruned, defaulted
    r = router(kube, namespace)
    r.reconcile()
    r.set_traffic(TrafficPlan(Weights(0, 100), ab_match=AB_MATCH[:1]))
    route = kube.get(HTTPROUTES, "podinfo")
    assert json.loads(route["metadata"]["annotations"][STRATEGY_ANNOTATION]) == ["ab"]
    assert len(route["spec"]["rules"]) == 3
    r.reconcile()  # every tick reconciles: the A/B rule must survive it
    assert kube.get(HTTPROUTES, "podinfo")["spec"] == route["spec"]
    assert r.get_weights() == Weights(0, 100)
    r.set_weights(Weights(100, 0))
    route = kube.get(HTTPROUTES, "podinfo")
    assert len(route["spec"]["rules"]) == 2 and STRATEGY_ANNOTATION not in route["metadata"]["annotations"]
    r.set_traffic(TrafficPlan(Weights(0, 100), ab_match=AB_MATCH[:1]))
    r.revert()
    restored = kube.get(HTTPROUTES, "podinfo")
    assert restored["spec"] == user["spec"]
    assert not (restored["metadata"].get("annotations") or {})


def test_creates_the_route_then_shifts_and_reads_weights(kube: Kube, namespace: str) -> None:
    r = router(kube, namespace)
    r.reconcile()
    route = kube.get(HTTPROUTES, "podinfo")
    assert route["spec"]["parentRefs"] == [
        {**GATEWAY, "group": "gateway.networking.k8s.io", "kind": "Gateway"}
    ]
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
    original = kube.create(HTTPROUTES, users_route(namespace))["spec"]  # as stored: pruned, defaulted
    r = router(kube, namespace)
    r.reconcile()
    r.set_weights(Weights(60, 40))
    route = kube.get(HTTPROUTES, "podinfo")
    assert route["spec"]["rules"][0] == original["rules"][0]
    assert route["spec"]["parentRefs"] == original["parentRefs"], "an adopted route keeps its parents"
    assert route["spec"]["hostnames"] == ["podinfo.example.org"]
    assert "x-vendor-extension" not in route["spec"], "undeclared, so never stored"
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
    inferred = router_for(kube, canary_model("t", None))
    assert isinstance(inferred, HTTPRouteRouter), "gatewayRefs without a provider mean the Gateway API"
    assert isinstance(router_for(kube, canary_model("t", "istio")), VirtualServiceRouter)
    for provider, resource in (
        ("gatewayapi:v1", HTTPROUTES),
        ("gatewayapi:v1beta1", HTTPROUTES_V1BETA1),
    ):
        r = router_for(kube, canary_model("t", provider))
        assert isinstance(r, HTTPRouteRouter) and r.resource == resource
    with pytest.raises(InvalidInput, match=r"spec\.provider linkerd: progdel drives istio, gatewayapi:v1"):
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

    # a gatewayapi canary is judged by Flagger's HTTP observer: the app's own histogram
    series = {
        f"{namespace}/podinfo-primary": [TrafficPhase(0, 20)],
        f"{namespace}/podinfo": [TrafficPhase(0, 10)],
    }
    with run_prometheus(http_openmetrics(T0, 1800, 5, series), tmp_path) as prom:
        runner = runner_for(
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


# ---- what the HTTPRoute CRD's schema and CEL rules refuse ----------------------------------------
# (gateway-api v1.3.0 httproutes.yaml: "ResponseHeaderModifier filter cannot be repeated", "When
# using URLRewrite filter with path.replacePrefixMatch, exactly one PathPrefix match must be
# specified", and matches[].headers keyed by name)


def _rewriting_rule() -> dict[str, Any]:
    return {
        "matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
        "filters": [
            {
                "type": "URLRewrite",
                "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}},
            }
        ],
        "backendRefs": [
            {
                "name": "podinfo",
                "port": 9898,
                "filters": [
                    {
                        "type": "ResponseHeaderModifier",
                        "responseHeaderModifier": {"add": [{"name": "X-Served-By", "value": "podinfo"}]},
                    }
                ],
            }
        ],
    }


def test_session_affinity_extends_the_users_response_header_filter() -> None:
    names = RouteNames("podinfo", "test")
    spec = {"rules": [_rewriting_rule()]}
    plan = TrafficPlan(Weights(80, 20), canary_cookie="c=abc", cookie_max_age=60)
    out, kinds = set_route_traffic(spec, [], names, plan, 9898)
    canary_ref = out["rules"][-1]["backendRefs"][1]
    modifiers = [f for f in canary_ref["filters"] if f["type"] == "ResponseHeaderModifier"]
    assert modifiers == [
        {
            "type": "ResponseHeaderModifier",
            "responseHeaderModifier": {
                "add": [
                    {"name": "X-Served-By", "value": "podinfo"},
                    {"name": "Set-Cookie", "value": "c=abc; Max-Age=60"},
                ]
            },
        }
    ]
    holders = out["rules"][0]["backendRefs"][0]
    assert holders["filters"][0]["responseHeaderModifier"]["add"] == [
        {"name": "X-Served-By", "value": "podinfo"}
    ]
    done, _ = set_route_traffic(out, kinds, names, replace_weights(plan, Weights(100, 0)), 9898)
    for ref in done["rules"][0]["backendRefs"]:
        assert ref["filters"][0]["responseHeaderModifier"] == {
            "add": [{"name": "X-Served-By", "value": "podinfo"}]
        }


def test_an_ab_rule_that_rewrites_a_prefix_gets_one_rule_per_match() -> None:
    names = RouteNames("podinfo", "test")
    spec = {"rules": [_rewriting_rule()]}
    ab = (
        {"headers": {"x-canary": {"exact": "insider"}}},
        {"headers": {"cookie": {"regex": ".*canary=always.*"}}},
    )
    plan = TrafficPlan(Weights(0, 100, mirrored=True), ab_match=ab)
    out, kinds = set_route_traffic(spec, [], names, plan, 9898)
    assert kinds == ["ab", "ab"]
    first, second, main = out["rules"]
    for rule, header in ((first, "x-canary"), (second, "cookie")):
        assert len(rule["matches"]) == 1 and rule["matches"][0]["path"] == {
            "type": "PathPrefix",
            "value": "/api",
        }
        assert rule["matches"][0]["headers"][0]["name"] == header
        assert rule["filters"][0]["type"] == "URLRewrite" and rule["filters"][-1]["type"] == "RequestMirror"
        assert [(r["name"], r["weight"]) for r in rule["backendRefs"]] == [
            ("podinfo-primary", 0),
            ("podinfo-canary", 100),
        ]
    assert read_rule_weights(out, names, kinds) == Weights(0, 100, mirrored=True)
    again, kinds = set_route_traffic(out, kinds, names, replace_weights(plan, Weights(100, 0)), 9898)
    assert len(again["rules"]) == 3 and again["rules"][2] == main | {
        "backendRefs": again["rules"][2]["backendRefs"]
    }
    uri_exact = TrafficPlan(
        Weights(0, 100), ab_match=({"uri": {"exact": "/api/v2"}}, {"uri": {"exact": "/x"}})
    )
    at_root = _rewriting_rule()
    at_root["matches"] = [{"path": {"type": "PathPrefix", "value": "/"}}]
    with pytest.raises(RoutingError, match="ReplacePrefixMatch"):
        set_route_traffic({"rules": [at_root]}, [], names, uri_exact, 9898)


def test_header_conditions_on_one_name_become_one_condition() -> None:
    names = RouteNames("podinfo", "test")
    own = {
        "headers": [
            {"name": "X-Canary", "type": "Exact", "value": "insider"},
            {"name": "Cookie", "type": "RegularExpression", "value": ".*sso=.*"},
        ]
    }
    spec = {"rules": [{"matches": [own], "backendRefs": [{"name": "podinfo", "port": 9898}]}]}
    same = TrafficPlan(Weights(0, 100), ab_match=({"headers": {"x-canary": {"exact": "insider"}}},))
    out, _ = set_route_traffic(spec, [], names, same, 9898)
    headers = out["rules"][0]["matches"][0]["headers"]
    assert [h["name"].lower() for h in headers] == ["x-canary", "cookie"], "one condition per header name"
    never = TrafficPlan(
        Weights(0, 100),
        ab_match=({"headers": {"x-canary": {"exact": "outsider"}}}, {"headers": {"x-user": {"exact": "a"}}}),
    )
    out, _ = set_route_traffic(spec, [], names, never, 9898)
    assert len(out["rules"][0]["matches"]) == 1, "a combination no request satisfies is left out"
    regexes = TrafficPlan(Weights(80, 20), canary_cookie="c=abc", cookie_max_age=60)
    with pytest.raises(RoutingError, match="headers Cookie"):
        set_route_traffic(spec, [], names, regexes, 9898)


def test_routes_with_these_strategies_are_stored_by_the_api_server(kube: Kube, namespace: str) -> None:
    """The sandbox judges HTTPRoutes by the real CRD's schema and CEL rules: each route the
    strategies above write is accepted as written."""
    names = RouteNames("podinfo", namespace)
    spec = {"parentRefs": [GATEWAY], "rules": [_rewriting_rule()]}
    kube.create(HTTPROUTES, {"metadata": {"name": "podinfo"}, "spec": spec})
    plans = [
        TrafficPlan(Weights(80, 20), canary_cookie="c=abc", primary_cookie="p=abc", cookie_max_age=60),
        TrafficPlan(
            Weights(0, 100, mirrored=True),
            ab_match=({"headers": {"x-canary": {"exact": "a"}}}, {"headers": {"x-b": {"exact": "b"}}}),
        ),
    ]
    kinds: list[str] = []
    for plan in plans:
        route = kube.get(HTTPROUTES, "podinfo")
        new_spec, kinds = set_route_traffic(route["spec"], kinds, names, plan, 9898)
        route["spec"] = new_spec
        stored = kube.replace(HTTPROUTES, route)
        assert len(stored["spec"]["rules"]) == len(new_spec["rules"]) == len(kinds) + 1
