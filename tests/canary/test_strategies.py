"""Strategies as the VirtualService (or HTTPRoute) shows them after each tick of the runner (sandbox API)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from progdel.canary import store
from progdel.canary.cluster import initialize, runner_for
from progdel.canary.runner import CanaryRunner, RunOptions
from progdel.canary.status import Phase
from progdel.errors import ExitCode
from progdel.kube.client import Kube, connect
from progdel.kube.resources import CANARIES, DEPLOYMENTS, HTTPROUTES, VIRTUALSERVICES
from progdel.routing.base import RouteNames, TrafficPlan, Weights
from progdel.routing.istio import read_weights, set_routes
from tests.canary.test_runner_integration import T0, ReplayClock, deployment, new_revision

NAMES = RouteNames("podinfo", "test")
MATCH = [
    {"headers": {"x-canary": {"exact": "insider"}}},
    {"headers": {"cookie": {"regex": "^(.*?;)?(canary=always)(;.*)?$"}}},
]


@pytest.fixture
def kube(sandbox: Any, namespace: str) -> Kube:
    return connect(str(sandbox.kubeconfig), None, namespace)


def start(kube: Kube, namespace: str, spec: dict[str, Any] | None = None, **analysis: Any) -> CanaryRunner:
    a: dict[str, Any] = {"interval": "1s", "threshold": 2}
    a.update(analysis)
    doc = {
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": namespace},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898},
            "analysis": a,
            **(spec or {}),
        },
    }
    kube.create(DEPLOYMENTS, deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0"))
    store.apply_canary(kube, doc, namespace)
    assert initialize(kube, "podinfo", namespace, lambda _r: None, timeout=30) is ExitCode.OK
    new_revision(kube)
    rolled_out(kube, "podinfo")
    return runner_for(kube, "podinfo", namespace, lambda _r: None, RunOptions(), ReplayClock(T0))


def rolled_out(kube: Kube, name: str, timeout: float = 120) -> None:
    """Wait until the sandbox's deployment controller has every replica of the Deployment's
    newest revision available: until then a tick sees a canary not ready and waits, so the
    ticks these tests count would depend on how fast a busy machine runs the controller."""
    deadline = time.monotonic() + timeout
    while True:
        dep = kube.get(DEPLOYMENTS, name)
        status, replicas = dep.get("status") or {}, dep["spec"].get("replicas", 1)
        if status.get("observedGeneration") == dep["metadata"]["generation"] and all(
            status.get(field, 0) == replicas for field in ("replicas", "updatedReplicas", "availableReplicas")
        ):
            return
        assert time.monotonic() < deadline, f"deployment {name} never rolled out: {status}"
        time.sleep(0.05)


def http(kube: Kube) -> list[dict[str, Any]]:
    return kube.get(VIRTUALSERVICES, "podinfo")["spec"]["http"]


def split(route: dict[str, Any]) -> dict[str, int]:
    return {d["destination"]["host"]: d.get("weight", 100) for d in route["route"]}


def ticks_until(
    runner: CanaryRunner, kube: Kube, phase: Phase, limit: int = 15
) -> list[tuple[str, list[Any]]]:
    seen = []
    for _ in range(limit):
        result = runner.tick()
        runner.clock.sleep(1)
        routes = http(kube)
        seen.append(
            (
                str(result.status.phase),
                [(r.get("name"), split(r), r.get("match"), r.get("mirror")) for r in routes],
            )
        )
        if result.status.phase is phase:
            return seen
    raise AssertionError(seen)


def test_ab_match_route_goes_to_canary_and_the_default_to_primary(kube: Kube, namespace: str) -> None:
    runner = start(kube, namespace, iterations=2, match=MATCH)
    initial = http(kube)
    assert [r.get("name") for r in initial] == ["progdel-ab", None], "init already writes the A/B shape"
    seen = ticks_until(runner, kube, Phase.SUCCEEDED)
    during = [routes for phase, routes in seen if phase == "Progressing"][-1]
    (ab_name, ab_split, ab_match, _), (_default_name, default_split, default_match, _) = during
    assert ab_name == "progdel-ab" and ab_match == MATCH
    assert ab_split == {"podinfo-primary": 0, "podinfo-canary": 100}
    assert default_split == {"podinfo-primary": 100} and default_match is None
    final = http(kube)
    assert split(final[0]) == {"podinfo-primary": 100, "podinfo-canary": 0}
    assert split(final[1]) == {"podinfo-primary": 100}


DEFAULT_MATCH = [{"path": {"type": "PathPrefix", "value": "/"}}]  # the HTTPRoute CRD's default


def test_ab_on_gatewayapi_writes_the_match_rule_and_keeps_everyone_else_on_the_primary(
    kube: Kube, namespace: str
) -> None:
    gateway = {"port": 9898, "gatewayRefs": [{"name": "public", "namespace": "edge"}]}
    runner = start(
        kube, namespace, {"provider": "gatewayapi:v1", "service": gateway}, iterations=2, match=MATCH
    )
    seen = []
    for _ in range(15):
        result = runner.tick()
        runner.clock.sleep(1)
        rules = kube.get(HTTPROUTES, "podinfo")["spec"]["rules"]
        seen.append((str(result.status.phase), rules))
        if result.status.phase is Phase.SUCCEEDED:
            break
    assert seen[-1][0] == "Succeeded", [phase for phase, _ in seen]
    ab, main = [rules for phase, rules in seen if phase == "Progressing"][-1]
    assert [h["headers"][0]["name"] for h in ab["matches"]] == ["x-canary", "cookie"]
    assert [(r["name"], r["weight"]) for r in ab["backendRefs"]] == [
        ("podinfo-primary", 0),
        ("podinfo-canary", 100),
    ]
    # everyone else takes progdel's own rule, Flagger's: every path, the primary alone
    assert main.get("matches", DEFAULT_MATCH) == DEFAULT_MATCH
    assert [(r["name"], r["weight"]) for r in main["backendRefs"]] == [("podinfo-primary", 100)]


def test_blue_green_iterations_at_100_0_then_all_to_canary_then_promote(kube: Kube, namespace: str) -> None:
    runner = start(kube, namespace, iterations=2)
    seen = ticks_until(runner, kube, Phase.SUCCEEDED)
    splits = [(phase, split_of[0][1]["podinfo-canary"]) for phase, split_of in seen]
    progressing = [w for p, w in splits if p == "Progressing"]
    assert progressing[:3] == [0, 0, 0], "iterations keep all traffic on the primary"
    assert 100 in progressing, "one more check with all traffic on the canary"
    assert splits[-1] == ("Succeeded", 0)
    i100 = [w for _, w in splits].index(100)
    assert all(w == 0 for _, w in splits[:i100]) and splits[i100 + 1][0] in ("Promoting", "Finalising")


def test_blue_green_mirroring_sets_mirror_and_percentage(kube: Kube, namespace: str) -> None:
    runner = start(kube, namespace, iterations=2, mirror=True, mirrorWeight=40)
    runner.tick()  # Progressing
    runner.tick()  # first step: mirror on, iteration 1
    route = http(kube)[0]
    assert route["mirror"] == {"host": "podinfo-canary"}
    assert route["mirrorPercentage"] == {"value": 40.0}
    assert split(route) == {"podinfo-primary": 100, "podinfo-canary": 0}
    ticks_until(runner, kube, Phase.SUCCEEDED)
    assert "mirror" not in http(kube)[0] and "mirrorPercentage" not in http(kube)[0]


def test_canary_mirroring_mirrors_one_tick_at_weight_0(kube: Kube, namespace: str) -> None:
    runner = start(kube, namespace, stepWeight=50, maxWeight=50, mirror=True)
    seen = ticks_until(runner, kube, Phase.SUCCEEDED)
    states = [(r[0][1]["podinfo-canary"], r[0][3] is not None) for _, r in seen]
    assert states[:4] == [(0, False), (0, True), (50, False), (50, False)], states


def test_session_affinity_cookie_routes_and_headers(kube: Kube, namespace: str) -> None:
    runner = start(
        kube,
        namespace,
        stepWeight=20,
        maxWeight=40,
        sessionAffinity={"cookieName": "app-canary", "maxAge": 600, "primaryCookieName": "app-primary"},
    )
    runner.tick()  # Progressing
    runner.tick()  # weight 20
    routes = http(kube)
    assert [r.get("name") for r in routes] == ["progdel-canary-cookie", "progdel-primary-cookie", None]
    status = kube.get(CANARIES, "podinfo")["status"]
    cookie = status["sessionAffinityCookie"]
    assert cookie.startswith("app-canary=")
    token = cookie.partition("=")[2]
    assert routes[0]["match"][0]["headers"]["cookie"]["regex"] == f".*app\\-canary={token}.*"
    assert split(routes[0]) == {"podinfo-canary": 100}
    assert split(routes[1]) == {"podinfo-primary": 100}
    main = {d["destination"]["host"]: d for d in routes[2]["route"]}
    assert main["podinfo-canary"]["weight"] == 20
    assert main["podinfo-canary"]["headers"]["response"]["add"]["Set-Cookie"] == f"{cookie}; Max-Age=600"
    assert (  # as Flagger: the primary's cookie lasts one analysis interval
        main["podinfo-primary"]["headers"]["response"]["add"]["Set-Cookie"]
        == f"app-primary={token}; Max-Age=1"
    )
    ticks_until(runner, kube, Phase.SUCCEEDED)
    final = http(kube)
    assert len(final) == 1 and "headers" not in final[0]["route"][1], "the cookie routes go with the run"
    status = kube.get(CANARIES, "podinfo")["status"]
    assert status["previousSessionAffinityCookie"] == cookie and "sessionAffinityCookie" not in status


def test_strategy_routes_keep_foreign_routes_and_read_weights_from_the_split() -> None:
    spec: dict[str, Any] = {
        "hosts": ["podinfo"],
        "http": [
            {"name": "admin", "route": [{"destination": {"host": "admin"}}]},
            {
                "match": [{"uri": {"prefix": "/api"}}],
                "timeout": "5s",
                "route": [
                    {"destination": {"host": "podinfo-primary"}, "weight": 100},
                    {"destination": {"host": "podinfo-canary"}, "weight": 0},
                ],
            },
        ],
    }
    ab = set_routes(spec, NAMES, TrafficPlan(Weights(0, 100), ab_match=tuple(MATCH[:1])), 9898)
    assert ab["http"][0] == spec["http"][0]
    assert ab["http"][1]["name"] == "progdel-ab" and ab["http"][1]["timeout"] == "5s"
    assert ab["http"][1]["match"] == [
        {"headers": {"x-canary": {"exact": "insider"}}, "uri": {"prefix": "/api"}}
    ]
    assert read_weights(ab, NAMES) == Weights(0, 100)
    back = set_routes(ab, NAMES, TrafficPlan(Weights(90, 10)), 9898)
    assert [r.get("name") for r in back["http"]] == ["admin", None], (
        "a plain split removes progdel's extra routes"
    )
    sticky = set_routes(back, NAMES, TrafficPlan(Weights(90, 10), canary_cookie="c=1"), 9898)
    assert read_weights(sticky, NAMES) == Weights(90, 10), "the cookie route is not the split"


def test_match_with_step_weights_is_a_progressive_canary_of_the_matching_requests(
    kube: Kube, namespace: str
) -> None:
    """Flagger's routers apply ``analysis.match`` whatever the strategy (``pkg/router/istio.go``,
    ``SetRoutes``): without ``iterations`` the matching requests get the progressive weights and
    everyone else stays on the primary."""
    runner = start(kube, namespace, stepWeight=25, maxWeight=50, match=MATCH)
    assert [r.get("name") for r in http(kube)] == ["progdel-ab", None], "the match route from init on"
    seen = ticks_until(runner, kube, Phase.SUCCEEDED)
    weights = [routes[0][1]["podinfo-canary"] for phase, routes in seen if phase == "Progressing"]
    assert weights[:3] == [0, 25, 50], seen
    for _, routes in seen:
        assert routes[0][0] == "progdel-ab" and routes[1][1] == {"podinfo-primary": 100}, "no one else"
    assert seen[-1][0] == "Succeeded"
