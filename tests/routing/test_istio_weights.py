"""The VirtualService edits progdel makes: only the weights of its own route change."""

import pytest

from progdel.routing.base import RouteNames, TrafficPlan, Weights
from progdel.routing.istio import RoutingError, read_weights, set_route_weights, set_routes

NAMES = RouteNames("podinfo", "test")


def user_vs() -> dict:
    return {
        "hosts": ["podinfo", "app.example.com"],
        "gateways": ["public-gateway.istio-system.svc.cluster.local"],
        "x-unknown-field": {"kept": True},
        "http": [
            {
                "name": "admin",
                "match": [{"uri": {"prefix": "/admin"}}],
                "route": [{"destination": {"host": "admin-svc"}}],
            },
            {
                "name": "main",
                "retries": {"attempts": 3, "perTryTimeout": "2s"},
                "timeout": "10s",
                "headers": {"request": {"set": {"x-team": "web"}}},
                "route": [
                    {"destination": {"host": "podinfo", "port": {"number": 9898}}, "weight": 95},
                    {"destination": {"host": "legacy-podinfo"}, "weight": 5},
                ],
            },
        ],
    }


def test_existing_route_to_apex_becomes_a_split_keeping_everything_else() -> None:
    spec = user_vs()
    out = set_route_weights(spec, NAMES, Weights(90, 10), 9898)
    assert out["x-unknown-field"] == {"kept": True}
    assert out["http"][0] == spec["http"][0]
    main = out["http"][1]
    assert main["retries"] == {"attempts": 3, "perTryTimeout": "2s"}
    assert main["timeout"] == "10s"
    assert main["headers"] == {"request": {"set": {"x-team": "web"}}}
    hosts = [(d["destination"]["host"], d["weight"]) for d in main["route"]]
    assert hosts == [("podinfo-primary", 90), ("podinfo-canary", 10), ("legacy-podinfo", 5)]
    assert main["route"][0]["destination"]["port"] == {"number": 9898}
    assert spec["http"][1]["route"][0]["destination"]["host"] == "podinfo", "input must not be mutated"


def test_weights_round_trip_and_mirror() -> None:
    out = set_route_weights(user_vs(), NAMES, Weights(60, 40), None)
    assert read_weights(out, NAMES) == Weights(60, 40, False)
    mirrored = set_route_weights(out, NAMES, Weights(100, 0, mirrored=True), None)
    assert read_weights(mirrored, NAMES) == Weights(100, 0, True)
    assert set_route_weights(mirrored, NAMES, Weights(100, 0), None)["http"][1].get("mirror") is None


def test_fully_qualified_hosts_are_recognised() -> None:
    spec = {
        "http": [
            {
                "route": [
                    {"destination": {"host": "podinfo-primary.test.svc.cluster.local"}, "weight": 70},
                    {"destination": {"host": "podinfo-canary.test.svc.cluster.local"}, "weight": 30},
                ]
            }
        ]
    }
    assert read_weights(spec, NAMES) == Weights(70, 30)
    out = set_route_weights(spec, NAMES, Weights(50, 50), None)
    assert [d["destination"]["host"] for d in out["http"][0]["route"]] == [
        "podinfo-primary",
        "podinfo-canary",
    ]


def test_no_route_for_the_canary_is_an_error() -> None:
    with pytest.raises(RoutingError, match="no HTTP route"):
        set_route_weights(
            {"http": [{"route": [{"destination": {"host": "other"}}]}]}, NAMES, Weights(1, 99), None
        )


def test_both_weights_zero_is_an_error() -> None:
    spec = {
        "http": [
            {
                "route": [
                    {"destination": {"host": "podinfo-primary"}, "weight": 0},
                    {"destination": {"host": "podinfo-canary"}, "weight": 0},
                ]
            }
        ]
    }
    with pytest.raises(RoutingError, match="both 0"):
        read_weights(spec, NAMES)


def test_mirror_percentage_and_ab_route_shape() -> None:
    from progdel.routing.base import TrafficPlan
    from progdel.routing.istio import set_routes

    out = set_routes(user_vs(), NAMES, TrafficPlan(Weights(100, 0, True), mirror_percentage=25), 9898)
    main = out["http"][1]
    assert main["mirror"] == {"host": "podinfo-canary"} and main["mirrorPercentage"] == {"value": 25.0}
    ab = set_routes(
        user_vs(), NAMES, TrafficPlan(Weights(0, 100), ab_match=({"headers": {"x": {"exact": "1"}}},)), 9898
    )
    assert [r.get("name") for r in ab["http"]] == ["admin", "progdel-ab", "main"]
    assert ab["http"][1]["retries"] == {"attempts": 3, "perTryTimeout": "2s"}, (
        "the A/B route keeps the route's fields"
    )
    assert [d["destination"]["host"] for d in ab["http"][2]["route"]] == ["podinfo-primary", "legacy-podinfo"]
    assert ab["http"][2]["route"][0]["weight"] == 100
    assert read_weights(ab, NAMES) == Weights(0, 100)


# ---- what istiod refuses, and what routes to nothing ------------------------------------------------


def test_a_route_that_mirrors_already_gets_progdels_mirror_in_mirrors() -> None:
    """istiod refuses an HTTP route with both ``mirror`` and ``mirrors``."""
    spec = user_vs()
    spec["http"][1]["mirrors"] = [{"destination": {"host": "shadow"}, "percentage": {"value": 5.0}}]
    on = set_routes(spec, NAMES, TrafficPlan(Weights(100, 0, mirrored=True), mirror_percentage=50), 9898)
    main = on["http"][1]
    assert "mirror" not in main
    assert main["mirrors"] == [
        {"destination": {"host": "shadow"}, "percentage": {"value": 5.0}},
        {"destination": {"host": "podinfo-canary"}, "percentage": {"value": 50.0}},
    ]
    assert read_weights(on, NAMES) == Weights(100, 0, True)
    off = set_routes(on, NAMES, TrafficPlan(Weights(90, 10)), 9898)
    assert off["http"][1]["mirrors"] == spec["http"][1]["mirrors"], "the user's mirror stays"
    assert read_weights(off, NAMES) == Weights(90, 10, False)


def test_a_users_own_mirror_moves_into_mirrors_and_stays() -> None:
    spec = user_vs()
    spec["http"][1]["mirror"] = {"host": "shadow"}
    spec["http"][1]["mirrorPercentage"] = {"value": 1.0}
    on = set_routes(spec, NAMES, TrafficPlan(Weights(100, 0, mirrored=True)), 9898)
    main = on["http"][1]
    assert "mirror" not in main and "mirrorPercentage" not in main
    assert main["mirrors"] == [
        {"destination": {"host": "shadow"}, "percentage": {"value": 1.0}},
        {"destination": {"host": "podinfo-canary"}},
    ]
    ab = set_routes(
        spec, NAMES, TrafficPlan(Weights(0, 100), ab_match=({"headers": {"x": {"exact": "1"}}},)), 9898
    )
    assert ab["http"][2]["mirror"] == {"host": "shadow"}, "an A/B run keeps the user's mirror"


def test_destinations_to_a_subset_lose_the_subset_on_the_split() -> None:
    """progdel's DestinationRules for -primary/-canary define no subsets (Flagger's neither): a
    destination naming one would answer 503 (no healthy upstream)."""
    spec = user_vs()
    spec["http"][1]["route"][0]["destination"]["subset"] = "v1"
    out = set_route_weights(spec, NAMES, Weights(90, 10), 9898)
    dests = [d["destination"] for d in out["http"][1]["route"]]
    assert dests[0] == {"host": "podinfo-primary", "port": {"number": 9898}}
    assert dests[1] == {"host": "podinfo-canary", "port": {"number": 9898}}


def test_session_cookies_carry_flaggers_attributes_and_ages() -> None:
    """``SessionAffinity.BuildCookie`` (pkg/apis/flagger/v1beta1/canary.go): Max-Age, then Domain,
    HttpOnly, Partitioned, Path, SameSite, Secure; the primary's cookie lasts one interval
    (``getSessionAffinityRouteRules`` in pkg/router/istio.go)."""
    from progdel.config.canary import SessionAffinity

    affinity = SessionAffinity(
        cookie_name="c",
        primary_cookie_name="p",
        domain="example.com",
        http_only=True,
        path="/",
        same_site="Lax",
    )
    plan = TrafficPlan(
        Weights(80, 20),
        canary_cookie="c=abc",
        primary_cookie="p=abc",
        cookie_max_age=600,
        primary_cookie_max_age=60,
        cookie_attributes=affinity.cookie_attributes(),
    )
    out = set_routes(user_vs(), NAMES, plan, 9898)
    main = next(r for r in out["http"] if r.get("name") == "main")
    cookies = {
        d["destination"]["host"]: d["headers"]["response"]["add"]["Set-Cookie"] for d in main["route"][:2]
    }
    assert cookies == {
        "podinfo-primary": "p=abc; Max-Age=60; Domain=example.com; HttpOnly; Path=/; SameSite=Lax",
        "podinfo-canary": "c=abc; Max-Age=600; Domain=example.com; HttpOnly; Path=/; SameSite=Lax",
    }
