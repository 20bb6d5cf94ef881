"""`canary init` of an app that serves traffic drops no request (the sandbox's real data plane).

An app runs as real processes behind its own LoadBalancer Service and VirtualService, served by a
real Envoy; a load generator sends it requests through the mesh during the whole `progdel canary
init`, then the whole `canary delete --revert`. Every answer is a 2xx: the apex Service and the
VirtualService switch to the primary only once its processes are ready (Flagger's order,
``pkg/controller/scheduler.go``), and the target is scaled down only after the mesh had time to
take the new routes; the revert waits for the target's replicas the same way. The Service keeps
its type, node ports and its other port throughout.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from progdel.sandbox.dataplane import DataPlane
from progdel.sandbox.loadgen import LoadGenerator
from progdel.sandbox.processes import free_port

from .conftest import wait_answers

server_module = pytest.importorskip("progdel.sandbox.server")

NS = "shop"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[Any, DataPlane, httpx.Client]]:
    plane = DataPlane(tmp_path / "dataplane")
    server = server_module.SandboxServer(
        tmp_path / "sandbox", "127.0.0.1", free_port(), backend=plane.backend
    )
    server.start()
    server.write_kubeconfig()
    try:
        with server.http_client(timeout=10) as api:
            api.post(
                "/api/v1/namespaces", json={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}
            )
            plane.start(server.access)
            yield server, plane, api
    finally:
        plane.stop()
        server.stop()


def serving_steadily(gen: LoadGenerator, answers: int = 50, timeout: float = 120) -> None:
    """Wait for ``answers`` 2xx answers in a row: the app serves before init starts (however
    slowly a busy machine sends them)."""
    deadline = time.monotonic() + timeout
    since = time.monotonic()
    while True:
        statuses = gen.statuses_since(since)
        if set(statuses) - {200}:
            since = time.monotonic()  # not yet: count again from here
        elif sum(statuses.values()) >= answers:
            return
        assert time.monotonic() < deadline, f"the app never served {answers} requests in a row: {statuses}"
        time.sleep(0.1)


def answered(gen: LoadGenerator, count: int, since: float, timeout: float = 120) -> dict[int, int]:
    """The statuses of requests sent after ``since``, once ``count`` of them have an answer."""
    deadline = time.monotonic() + timeout
    while sum((statuses := gen.statuses_since(since)).values()) < count:
        assert time.monotonic() < deadline, f"only {statuses} after {timeout}s"
        time.sleep(0.05)
    return statuses


def target_gone(plane: DataPlane, timeout: float = 60) -> None:
    """Wait until the target's replicas are gone from the data plane (after their grace period)."""
    deadline = time.monotonic() + timeout
    while any(k.deployment == "podinfo" and eps for k, eps in plane.backend.endpoints().items()):
        assert time.monotonic() < deadline, "the target's replicas never went"
        time.sleep(0.1)


def app_objects() -> list[tuple[str, dict[str, Any]]]:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "podinfo", "labels": {"app": "podinfo"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "podinfo"}},
            "template": {
                "metadata": {"labels": {"app": "podinfo"}},
                "spec": {"containers": [{"name": "app", "image": "progdel/demo-app:1.0.0"}]},
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "podinfo"},
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app": "podinfo"},
            "ports": [
                {"name": "http", "port": 9898, "targetPort": 9898, "nodePort": 30898, "protocol": "TCP"},
                {"name": "admin", "port": 9999, "targetPort": 9999, "nodePort": 30999, "protocol": "TCP"},
            ],
        },
    }
    virtualservice = {
        "apiVersion": "networking.istio.io/v1beta1",
        "kind": "VirtualService",
        "metadata": {"name": "podinfo"},
        "spec": {"hosts": ["podinfo"], "http": [{"route": [{"destination": {"host": "podinfo"}}]}]},
    }
    return [
        (f"/apis/apps/v1/namespaces/{NS}/deployments", deployment),
        (f"/api/v1/namespaces/{NS}/services", service),
        (f"/apis/networking.istio.io/v1beta1/namespaces/{NS}/virtualservices", virtualservice),
    ]


def test_init_of_a_serving_app_drops_no_request(
    cluster: tuple[Any, DataPlane, httpx.Client], tmp_path: Path
) -> None:
    server, plane, api = cluster
    for path, body in app_objects():
        api.post(path, json=body).raise_for_status()
    gen = LoadGenerator(plane.mesh_url, f"podinfo.{NS}", rate=100, duration=300).start()
    try:
        serving_steadily(gen)
        started = time.monotonic()
        canary = {
            "apiVersion": "flagger.app/v1beta1",
            "kind": "Canary",
            "metadata": {"name": "podinfo"},
            "spec": {
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                "service": {"port": 9898},
                "analysis": {"interval": "10s", "threshold": 2, "maxWeight": 50, "stepWeight": 10},
            },
        }
        file = tmp_path / "canary.yaml"
        file.write_text(yaml.safe_dump(canary))
        base = [sys.executable, "-m", "progdel", "--kubeconfig", str(server.kubeconfig), "-n", NS, "canary"]
        done = subprocess.run(
            [*base, "init", "-f", str(file), "--timeout", "120"], capture_output=True, text=True, timeout=200
        )
        assert done.returncode == 0, done.stderr
        target = api.get(f"/apis/apps/v1/namespaces/{NS}/deployments/podinfo").json()
        assert target["spec"]["replicas"] == 0
        target_gone(plane)
        initialized = time.monotonic()
        served_by_primary = wait_answers(gen, 20, since=initialized)  # and traffic goes on
        svc = api.get(f"/api/v1/namespaces/{NS}/services/podinfo").json()["spec"]
        vs = api.get(f"/apis/networking.istio.io/v1beta1/namespaces/{NS}/virtualservices/podinfo").json()

        # and back: canary delete --revert under the same load
        done = subprocess.run(
            [*base, "delete", "podinfo", "--revert"], capture_output=True, text=True, timeout=200
        )
        assert done.returncode == 0, done.stderr
        reverted = wait_answers(gen, 20, since=time.monotonic())
    finally:
        gen.stop()
    statuses = gen.statuses_since(started)
    assert set(statuses) == {200}, f"answers other than 2xx during init or revert: {statuses}"
    assert gen.statuses_since(started, initialized), "load ran through init"
    assert served_by_primary.get("1.0.0", 0) > 0 and served_by_primary.get("errors", 0) == 0
    assert reverted.get("1.0.0", 0) > 0 and reverted.get("errors", 0) == 0

    assert svc["type"] == "LoadBalancer" and svc["selector"] == {"app": "podinfo-primary"}
    assert [(p["name"], p["port"], p.get("nodePort")) for p in svc["ports"]] == [
        ("http", 9898, 30898),
        ("admin", 9999, 30999),
    ]
    assert [(d["destination"]["host"], d["weight"]) for d in vs["spec"]["http"][0]["route"]] == [
        ("podinfo-primary", 100),
        ("podinfo-canary", 0),
    ]
    after = api.get(f"/api/v1/namespaces/{NS}/services/podinfo").json()["spec"]
    assert after["selector"] == {"app": "podinfo"} and after["type"] == "LoadBalancer"
    assert [(p["name"], p["port"], p.get("nodePort")) for p in after["ports"]] == [
        ("http", 9898, 30898),
        ("admin", 9999, 30999),
    ]
    restored = api.get(f"/apis/networking.istio.io/v1beta1/namespaces/{NS}/virtualservices/podinfo").json()
    assert restored["spec"]["http"] == [{"route": [{"destination": {"host": "podinfo"}}]}]
    assert api.get(f"/apis/apps/v1/namespaces/{NS}/deployments/podinfo").json()["spec"]["replicas"] == 2


def test_flaggers_e2e_canary_initializes_its_podinfo_without_a_failed_request(
    cluster: tuple[Any, DataPlane, httpx.Client], tmp_path: Path
) -> None:
    """Flagger's own e2e setup, unchanged: ``test/workloads`` (podinfo 6.0.0 and its Secret) served
    through its Service only, then ``test/istio/test-canary.sh``'s first Canary initialized under
    load; read from Flagger's source tree at run time."""
    from tests.conformance.flagger_sources import UPSTREAM, flagger_canaries

    if not (UPSTREAM / "test" / "istio" / "test-canary.sh").exists():
        pytest.skip(f"Flagger's source tree is not at {UPSTREAM}: its e2e Canary is read there at run time")
    server, plane, api = cluster
    case = next(c for c in flagger_canaries() if c.file == "test/istio/test-canary.sh")
    paths = {
        "Deployment": f"/apis/apps/v1/namespaces/{NS}/deployments",
        "Secret": f"/api/v1/namespaces/{NS}/secrets",
    }
    for doc in case.workloads:
        body = {**doc, "metadata": {k: v for k, v in doc["metadata"].items() if k != "namespace"}}
        api.post(paths[doc["kind"]], json=body).raise_for_status()
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "podinfo"},
        "spec": {
            "selector": {"app": "podinfo"},
            "ports": [{"name": "http", "port": 9898, "targetPort": "http"}],
        },
    }
    api.post(f"/api/v1/namespaces/{NS}/services", json=service).raise_for_status()
    gen = LoadGenerator(plane.mesh_url, f"podinfo.{NS}:9898", rate=100, duration=300).start()
    try:
        serving_steadily(gen)
        started = time.monotonic()
        canary = {**case.canary, "metadata": {"name": "podinfo"}}
        file = tmp_path / "canary.yaml"
        file.write_text(yaml.safe_dump(canary))
        base = [sys.executable, "-m", "progdel", "--kubeconfig", str(server.kubeconfig), "-n", NS, "canary"]
        done = subprocess.run(
            [*base, "init", "-f", str(file), "--timeout", "120"], capture_output=True, text=True, timeout=200
        )
        assert done.returncode == 0, done.stderr
        target_gone(plane)
        answered(gen, 20, since=time.monotonic())  # and traffic goes on, to the primary alone
        ended = time.monotonic()
    finally:
        gen.stop()
    statuses = gen.statuses_since(started)
    assert set(statuses) == {200}, f"answers other than 2xx during init: {statuses}"
    assert gen.statuses_since(started, ended), "load ran through init"
    assert api.get(f"/api/v1/namespaces/{NS}/services/podinfo").json()["spec"]["selector"] == {
        "app": "podinfo-primary"
    }
