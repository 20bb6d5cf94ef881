"""Everything progdel stores in custom objects, held against the CRDs a real cluster installs.

A real API server prunes, on every write, each field a CRD's structural schema does not declare
(Flagger's Canary declares no ``x-kubernetes-preserve-unknown-fields`` anywhere). These tests
prune what progdel writes with the real schemas (``tests/realcrds.py``: Flagger's chart, Istio's
base chart, the Gateway API manifests) and require that nothing is dropped: the status of every
phase and strategy the engine reaches, the Canary and MetricTemplates init applies, and the
VirtualServices, DestinationRules and HTTPRoutes of every strategy.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from progdel.canary.judge import MetricResult
from progdel.canary.observation import Command
from progdel.canary.status import Phase
from progdel.config.canary import load_metric_templates
from progdel.kube.readiness import Readiness
from progdel.routing.base import RouteNames, TrafficPlan, Weights
from progdel.routing.gatewayapi import HTTPRouteRouter, set_route_traffic
from progdel.routing.istio import VirtualServiceRouter, set_routes
from tests.canary.test_engine import BAD_SR, NO_SR, Sim, make_canary, run_until_settled
from tests.realcrds import dropped, schema

CANARY_API = "flagger.app/v1beta1"


def _run(sim: Sim, limit: int = 40, **kw: Any) -> Sim:
    for _ in range(limit):
        r = sim.step(**kw)
        if r.settled and sim.status.phase is not Phase.INITIALIZED:
            break
    return sim


def every_status() -> Iterator[tuple[str, dict[str, Any]]]:
    """Every status the engine writes, tick by tick, for every strategy and way a run ends."""
    sims: dict[str, Sim] = {}

    sim = Sim(make_canary())
    sim.step(primary=Readiness.NOT_READY)  # Initializing
    sim.init_and_change()
    run_until_settled(sim)  # Progressing, Promoting, Finalising, Succeeded
    sims["progressive"] = sim

    sim = Sim(make_canary({"threshold": 2}))
    sim.init_and_change()
    _run(sim, metrics=BAD_SR)
    sims["rolled back"] = sim

    sim = Sim(make_canary(annotations={"progdel.dev/no-data": "hold"}))
    sim.init_and_change()
    for _ in range(4):
        sim.step(NO_SR)
    sims["no data, holding"] = sim

    sim = Sim(make_canary(annotations={"progdel.dev/max-infra-errors": "3"}))
    sim.init_and_change()
    sim.step()
    sim.step()
    _run(sim, infra_error="API down")
    sims["infrastructure errors"] = sim

    sim = Sim(make_canary(progressDeadlineSeconds=2))
    sim.init_and_change()
    _run(sim, canary=Readiness.NOT_READY)
    sims["progress deadline"] = sim

    sim = Sim(make_canary(annotations={"progdel.dev/manual-gates": "confirm-rollout"}))
    sim.init_and_change()
    sim.step()
    sim.step()  # Waiting at confirm-rollout
    sims["waiting"] = sim

    sim = Sim(make_canary(annotations={"progdel.dev/manual-gates": "confirm-promotion"}))
    sim.init_and_change()
    for _ in range(10):
        sim.step()  # WaitingPromotion at confirm-promotion
    sim.step(command=Command.ABORT)
    sims["waiting for promotion, then aborted"] = sim

    ab = {
        "iterations": 2,
        "stepWeight": None,
        "maxWeight": None,
        "match": [{"headers": {"x": {"exact": "1"}}}],
    }
    for name, analysis in (
        ("A/B", ab),
        ("blue/green mirrored", {"iterations": 2, "stepWeight": None, "maxWeight": None, "mirror": True}),
        ("mirrored canary", {"mirror": True, "mirrorWeight": 50}),
        ("session affinity", {"sessionAffinity": {"cookieName": "c", "primaryCookieName": "p"}}),
    ):
        sim = Sim(make_canary(analysis))
        sim.init_and_change()
        run_until_settled(sim)
        sims[name] = sim

    sim = Sim(make_canary(skipAnalysis=True))
    sim.init_and_change()
    run_until_settled(sim)
    sims["skipped analysis"] = sim

    sim = Sim(make_canary({"metrics": [{"name": "x", "query": "x", "thresholdRange": {"min": 1}}]}))
    sim.init_and_change()
    sim.step()
    _run(sim, metrics={"x": MetricResult.rejected("bad_data: parse error")})
    sims["rejected query"] = sim

    for name, s in sims.items():
        for i, result in enumerate(s.history):
            yield f"{name}, tick {i}", result.status.to_dict()


def test_every_status_field_progdel_writes_is_declared_by_flaggers_crd() -> None:
    status_schema = schema(CANARY_API, "Canary")["properties"]["status"]
    phases = set(status_schema["properties"]["phase"]["enum"])
    required = status_schema["properties"]["conditions"]["items"]["required"]
    seen: set[str] = set()
    book: set[str] = set()
    for where, status in every_status():
        canary = {
            "apiVersion": CANARY_API,
            "kind": "Canary",
            "metadata": {"name": "podinfo"},
            "status": status,
        }
        assert dropped(canary) == [], where
        assert status.get("phase", "") in phases, where
        for condition in status.get("conditions") or []:
            assert all(isinstance(condition.get(k), str) for k in required), where
        seen.add(status.get("phase", ""))
        run = next(c for c in status["conditions"] if c["type"] == "progdel.dev/Run")
        book |= set(yaml.safe_load(run["message"]))
    assert seen >= {str(p) for p in Phase if p is not Phase.NONE}, f"phases not reached: {seen}"
    assert book >= {
        "fp",
        "infraErrors",
        "failureReason",
        "canaryNotReadySince",
        "pendingGate",
        "measurements",
    }


# ---- routing objects ----------------------------------------------------------------------------

NAMES = RouteNames("podinfo", "test")
SERVICE = {
    "port": 9898,
    "hosts": ["app.example.com"],
    "gateways": ["public-gateway.istio-system.svc.cluster.local"],
    "gatewayRefs": [{"name": "public", "namespace": "istio-ingress"}],
    "trafficPolicy": {"tls": {"mode": "DISABLE"}, "loadBalancer": {"simple": "LEAST_REQUEST"}},
    "retries": {"attempts": 3, "perTryTimeout": "1s", "retryOn": "gateway-error"},
    "timeout": "10s",
    "headers": {"request": {"set": {"x-team": "web"}}},
    "corsPolicy": {"allowOrigins": [{"exact": "https://example.com"}], "allowMethods": ["GET"]},
    "rewrite": {"uri": "/"},
}
MATCH = ({"headers": {"x-canary": {"exact": "insider"}}}, {"headers": {"cookie": {"regex": ".*canary.*"}}})
PLANS = {
    "progressive": TrafficPlan(Weights(80, 20)),
    "mirrored": TrafficPlan(Weights(100, 0, mirrored=True), mirror_percentage=50),
    "A/B": TrafficPlan(Weights(0, 100), ab_match=MATCH),
    "session affinity": TrafficPlan(
        Weights(60, 40), canary_cookie="c=abc", primary_cookie="p=abc", cookie_max_age=600
    ),
    "blue/green": TrafficPlan(Weights(0, 100)),
}

ADOPTED_VS = {
    "hosts": ["podinfo"],
    "http": [
        {
            "name": "main",
            "match": [{"uri": {"prefix": "/"}}],
            "route": [{"destination": {"host": "podinfo", "subset": "v1", "port": {"number": 9898}}}],
            "mirrors": [{"destination": {"host": "shadow"}, "percentage": {"value": 1.0}}],
            "retries": {"attempts": 2},
        }
    ],
}
ADOPTED_ROUTE = {
    "parentRefs": [{"name": "edge", "namespace": "gateways"}],
    "rules": [
        {
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
                            "responseHeaderModifier": {"add": [{"name": "X-A", "value": "1"}]},
                        }
                    ],
                }
            ],
        }
    ],
}


def virtual_services() -> Iterator[tuple[str, dict[str, Any]]]:
    router = VirtualServiceRouter(None, NAMES, SERVICE, 9898)  # type: ignore[arg-type]
    created = router.new_virtual_service()
    for host in (NAMES.primary, NAMES.canary):
        yield (
            f"DestinationRule {host}",
            {
                "apiVersion": "networking.istio.io/v1",
                "kind": "DestinationRule",
                **router._destination_rule(host),
            },
        )
    for origin, spec in (("created", created["spec"]), ("adopted", ADOPTED_VS)):
        for name, plan in PLANS.items():
            out = set_routes(spec, NAMES, plan, 9898)
            obj = {
                "apiVersion": "networking.istio.io/v1",
                "kind": "VirtualService",
                "metadata": {"name": "podinfo"},
            }
            yield f"VirtualService {origin}, {name}", {**obj, "spec": out}


def http_routes() -> Iterator[tuple[str, dict[str, Any]]]:
    # no corsPolicy: Gateway API v1.3.0's standard HTTPRoute has no CORS filter, so the server
    # refuses the one Flagger's router (and progdel's) writes, which init's dry run reports
    service = {k: v for k, v in SERVICE.items() if k != "corsPolicy"}
    router = HTTPRouteRouter(None, NAMES, service, 9898)  # type: ignore[arg-type]
    created = router.new_route()
    for origin, spec in (("created", created["spec"]), ("adopted", ADOPTED_ROUTE)):
        for name, plan in PLANS.items():
            out, _ = set_route_traffic(spec, [], NAMES, plan, 9898)
            obj = {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "HTTPRoute",
                "metadata": {"name": "podinfo"},
            }
            yield f"HTTPRoute {origin}, {name}", {**obj, "spec": out}


@pytest.mark.parametrize("objects", [virtual_services, http_routes], ids=["istio", "gatewayapi"])
def test_routing_objects_of_every_strategy_keep_every_field(objects: Any) -> None:
    for where, obj in objects():
        assert dropped(obj) == [], where


def test_the_examples_keep_every_field() -> None:
    """The Canaries and MetricTemplates shipped as examples, as init applies them."""
    from pathlib import Path

    examples = Path(__file__).resolve().parents[2] / "examples"
    for path in sorted(examples.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("apiVersion") == CANARY_API:
                assert dropped(doc) == [], f"{path.name} {doc['kind']}"
    for template in load_metric_templates(examples / "metric-template.yaml"):
        body = template.model_dump(by_alias=True, exclude_none=True)
        assert dropped(body) == [], "a MetricTemplate as init applies it"
