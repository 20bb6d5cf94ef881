"""The VirtualService edits progdel makes: only the weights of its own route change."""

import pytest

from progdel.routing.base import RouteNames, Weights
from progdel.routing.istio import RoutingError, read_weights, set_route_weights

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
