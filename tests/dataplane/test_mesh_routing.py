"""Envoy weighted routing that follows VirtualService weights, changed hot without dropping requests."""

from __future__ import annotations

import time

import httpx

from progdel.sandbox.backend import ReplicaSetKey
from progdel.sandbox.loadgen import LoadGenerator, wait_for_split
from progdel.sandbox.mesh import Envoy, MeshInputs, render
from progdel.sandbox.processes import Endpoint, ProcessReplicaBackend

from .conftest import (
    CanaryWorld,
    demo_template,
    deployment,
    service,
    virtualservice,
    wait_answers,
    wait_ready,
)


def replica(port: int) -> Endpoint:
    return Endpoint("127.0.0.1", port, True, {}, f"pod-{port}")


def test_hot_weight_changes_are_served_without_a_failed_request(
    backend: ProcessReplicaBackend, envoy: Envoy
) -> None:
    # How fast a change is served is bench_mesh's figure; here: it is served, in the right
    # proportion, and no request fails while routes change under load. Every wait is for traffic
    # actually answered, never a guess of how many requests a second the machine manages.
    world = CanaryWorld(backend, envoy)
    world.route(100, 0)
    gen = LoadGenerator(world.url, "podinfo.test:9898", rate=200, duration=600).start()
    try:
        before = wait_answers(gen, 20)
        assert set(before) == {"1.0.0", "errors"} and before["errors"] == 0, before

        changed = time.monotonic()
        world.route(50, 50)
        lag = wait_for_split(
            gen,
            lambda c: c.get("1.1.0", 0) >= 0.3 * (c.get("1.0.0", 0) + c.get("1.1.0", 0)),
            since=changed,
            timeout=60,
        )
        assert lag is not None, "the 50/50 split was never served"
        window = wait_answers(gen, 400, since=changed + lag + 0.2)
        assert 0.35 < window["1.1.0"] / (window["1.0.0"] + window["1.1.0"]) < 0.65, window

        changed = time.monotonic()
        world.route(0, 100)
        lag = wait_for_split(gen, lambda c: c.get("1.0.0", 0) == 0, since=changed, timeout=60)
        assert lag is not None, "the 0/100 split was never served"
        after = wait_answers(gen, 20, since=changed + lag + 0.2)
        assert after.get("1.0.0", 0) == 0 and after["1.1.0"] > 0, after
    finally:
        gen.stop()
    statuses = gen.statuses_since()
    assert set(statuses) == {200}, statuses  # not one request failed across the changes


def test_hosts_short_forms_and_unknown_host(backend: ProcessReplicaBackend, envoy: Envoy) -> None:
    world = CanaryWorld(backend, envoy)
    world.route(0, 100)
    with httpx.Client(base_url=world.url) as client:
        for host in ("podinfo", "podinfo:80", "podinfo.test", "podinfo.test.svc.cluster.local:9898"):
            resp = client.get("/", headers={"host": host})
            assert resp.headers.get("x-demo-version") == "1.1.0", host
        assert client.get("/", headers={"host": "nothing.test"}).status_code == 404


def test_render_one_cluster_per_workload() -> None:
    """``podinfo`` and ``podinfo-primary`` select the same Deployment: one cluster per workload port."""
    inputs = MeshInputs(
        virtualservices=[
            virtualservice("podinfo", [("podinfo-primary", 80), ("podinfo-canary", 20)]),
            virtualservice("direct", [("podinfo", 100)]),
        ],
        services=[
            service("podinfo", "podinfo-primary"),
            service("podinfo-primary", "podinfo-primary"),
            service("podinfo-canary", "podinfo"),
        ],
        deployments=[deployment("podinfo-primary", "podinfo-primary"), deployment("podinfo", "podinfo")],
        endpoints={
            ReplicaSetKey("test", "podinfo-primary", "p1"): [replica(1001)],
            ReplicaSetKey("test", "podinfo", "c1"): [replica(1002)],
        },
    )
    clusters, routes = render(inputs)
    assert [c["name"] for c in clusters] == ["no-endpoints", "test_podinfo-primary_9898", "test_podinfo_9898"]
    by_name = {vh["name"]: vh for vh in routes["virtual_hosts"]}
    weighted = by_name["test/podinfo"]["routes"][0]["route"]["weighted_clusters"]["clusters"]
    weights = {c["name"]: c["weight"] for c in weighted}
    assert weights == {"test_podinfo-primary_9898": 80000, "test_podinfo_9898": 20000}
    assert by_name["test/direct"]["routes"][0]["route"]["cluster"] == "test_podinfo-primary_9898"
    assert "podinfo.test.svc.cluster.local" in by_name["test/podinfo"]["domains"]


def test_routes_to_a_workload_without_replicas_bypass_its_cluster() -> None:
    """As in a cluster, where the caller's sidecar answers 503 itself: a request to a workload
    with no ready replica never reaches it, so it must not count in the workload's metrics."""
    inputs = MeshInputs(
        virtualservices=[virtualservice("podinfo", [("podinfo-primary", 90), ("podinfo-canary", 10)])],
        services=[service("podinfo-primary", "podinfo-primary"), service("podinfo-canary", "podinfo")],
        deployments=[deployment("podinfo-primary", "podinfo-primary"), deployment("podinfo", "podinfo")],
        endpoints={ReplicaSetKey("test", "podinfo-primary", "p1"): [replica(1001)]},
    )
    clusters, routes = render(inputs)
    assert {c["name"] for c in clusters} == {"no-endpoints", "test_podinfo-primary_9898", "test_podinfo_9898"}
    by_name = {vh["name"]: vh for vh in routes["virtual_hosts"]}
    weighted = by_name["test/podinfo"]["routes"][0]["route"]["weighted_clusters"]["clusters"]
    assert {c["name"]: c["weight"] for c in weighted} == {
        "test_podinfo-primary_9898": 90000,
        "no-endpoints": 10000,
    }
    assert by_name["test/podinfo-canary:9898"]["routes"][0]["route"]["cluster"] == "no-endpoints"
    assert (
        by_name["test/podinfo-primary:9898"]["routes"][0]["route"]["cluster"] == "test_podinfo-primary_9898"
    )


def test_new_replicas_join_without_resetting_counters(backend: ProcessReplicaBackend, envoy: Envoy) -> None:
    """Endpoints change in place: the workload's counters (its metrics) keep counting."""
    world = CanaryWorld(backend, envoy)
    world.route(0, 100)

    def canary_requests(client: httpx.Client) -> int:
        pattern = r"^cluster\.test_podinfo_9898\.upstream_rq_200$"
        text = client.get(f"{envoy.admin_url}/stats", params={"filter": pattern})
        return int(text.text.split(":")[1]) if ":" in text.text else 0

    with httpx.Client() as client:
        for _ in range(30):
            assert client.get(world.url, headers={"host": "podinfo"}).status_code == 200
        assert canary_requests(client) == 30
        wait_ready(backend, {world.canary: (demo_template("podinfo", "1.1.0"), 3)})
        world.route(0, 100)
        pods = {client.get(world.url, headers={"host": "podinfo"}).json()["pod"] for _ in range(30)}
        assert len(pods) == 3  # the new replicas get traffic
        assert canary_requests(client) == 60


def test_render_follows_httproutes() -> None:
    """A Gateway API canary's HTTPRoute (as progdel's router writes it) is served on its hostnames:
    backendRefs' weights, an A/B rule whose header match outranks the catch-all, a mirror."""
    route = {
        "metadata": {"namespace": "test", "name": "podinfo"},
        "spec": {
            "parentRefs": [{"name": "public", "namespace": "gw"}],
            "hostnames": ["podinfo.example.com"],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "backendRefs": [
                        {"name": "podinfo-primary", "port": 9898, "weight": 75},
                        {"name": "podinfo-canary", "port": 9898, "weight": 25},
                    ],
                    "filters": [
                        {
                            "type": "RequestMirror",
                            "requestMirror": {"backendRef": {"name": "podinfo-canary", "port": 9898}},
                        }
                    ],
                },
                {
                    "matches": [
                        {"headers": [{"name": "X-Canary", "value": "insider"}], "path": {"value": "/api"}}
                    ],
                    "backendRefs": [{"name": "podinfo-canary", "port": 9898}],
                },
            ],
        },
    }
    inputs = MeshInputs(
        services=[service("podinfo-primary", "podinfo-primary"), service("podinfo-canary", "podinfo")],
        deployments=[deployment("podinfo-primary", "podinfo-primary"), deployment("podinfo", "podinfo")],
        httproutes=[route],
        endpoints={
            ReplicaSetKey("test", "podinfo-primary", "p1"): [replica(1001)],
            ReplicaSetKey("test", "podinfo", "c1"): [replica(1002)],
        },
    )
    _clusters, routes = render(inputs)
    vhost = next(vh for vh in routes["virtual_hosts"] if vh["name"] == "test/httproute/podinfo")
    assert vhost["domains"] == ["podinfo.example.com", "podinfo.example.com:*"]
    ab, main = vhost["routes"]
    assert ab["match"]["path_separated_prefix"] == "/api"
    assert ab["match"]["headers"] == [{"name": "x-canary", "string_match": {"exact": "insider"}}]
    assert ab["route"]["cluster"] == "test_podinfo_9898"
    weights = {c["name"]: c["weight"] for c in main["route"]["weighted_clusters"]["clusters"]}
    assert weights == {"test_podinfo-primary_9898": 75000, "test_podinfo_9898": 25000}
    assert main["route"]["request_mirror_policies"][0]["cluster"] == "test_podinfo_9898"
