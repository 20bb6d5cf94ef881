"""The sandbox API server with the data plane: real replicas, real Envoy routes from VirtualServices."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from progdel.errors import ProgdelError
from progdel.sandbox.dataplane import DataPlane
from progdel.sandbox.kubeconfig import SandboxAccess
from progdel.sandbox.loadgen import LoadGenerator, wait_for_split
from progdel.sandbox.processes import free_port

from .conftest import wait_answers, wait_dead, wait_survivors

server_module = pytest.importorskip("progdel.sandbox.server")

VS_PATH = "/apis/networking.istio.io/v1beta1/namespaces/test/virtualservices"

VS_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "virtualservices.networking.istio.io"},
    "spec": {
        "group": "networking.istio.io",
        "scope": "Namespaced",
        "names": {
            "plural": "virtualservices",
            "singular": "virtualservice",
            "kind": "VirtualService",
            "listKind": "VirtualServiceList",
            "shortNames": ["vs"],
        },
        "versions": [
            {
                "name": v,
                "served": True,
                "storage": v == "v1beta1",
                "schema": {
                    "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                },
            }
            for v in ("v1beta1", "v1")
        ],
    },
}


def deployment(name: str, app: str, version: str, replicas: int, **env: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "test"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": app}},
            "template": {
                "metadata": {"labels": {"app": app}},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": f"progdel/demo-app:{version}",
                            "env": [{"name": k, "value": v} for k, v in env.items()],
                        }
                    ]
                },
            },
        },
    }


def service(name: str, app: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "test"},
        "spec": {"selector": {"app": app}, "ports": [{"name": "http", "port": 9898, "targetPort": 9898}]},
    }


def vs_spec(primary: int, canary: int) -> dict[str, Any]:
    return {
        "hosts": ["podinfo"],
        "gateways": ["mesh"],
        "http": [
            {
                "route": [
                    {"destination": {"host": "podinfo-primary"}, "weight": primary},
                    {"destination": {"host": "podinfo-canary"}, "weight": canary},
                ]
            }
        ],
    }


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[tuple[Any, DataPlane, httpx.Client]]:
    plane = DataPlane(tmp_path / "dataplane")
    server = server_module.SandboxServer(
        tmp_path / "sandbox", "127.0.0.1", free_port(), backend=plane.backend
    )
    server.start()
    try:
        with server.http_client() as api:
            api.post(
                "/api/v1/namespaces",
                json={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "test"}},
            )
            if api.get("/apis/networking.istio.io/v1beta1/virtualservices").status_code == 404:
                api.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=VS_CRD)
            plane.start(server.access)
            yield server, plane, api
    finally:
        plane.stop()
        server.stop()


def wait_available(api: httpx.Client, name: str, replicas: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = api.get(f"/apis/apps/v1/namespaces/test/deployments/{name}").json().get("status") or {}
        if status.get("readyReplicas") == replicas and status.get("availableReplicas") == replicas:
            return
        time.sleep(0.05)
    raise AssertionError(f"deployment {name} not ready: {status}")


def test_virtualservice_weights_drive_real_traffic(sandbox: tuple[Any, DataPlane, httpx.Client]) -> None:
    _server, plane, api = sandbox
    deployments = "/apis/apps/v1/namespaces/test/deployments"
    primary_deployment = deployment("podinfo-primary", "podinfo-primary", "1.0.0", 2)
    api.post(deployments, json=primary_deployment).raise_for_status()
    api.post(deployments, json=deployment("podinfo", "podinfo", "1.1.0", 1)).raise_for_status()
    for name, app in (
        ("podinfo", "podinfo-primary"),
        ("podinfo-primary", "podinfo-primary"),
        ("podinfo-canary", "podinfo"),
    ):
        api.post("/api/v1/namespaces/test/services", json=service(name, app)).raise_for_status()
    api.post(
        VS_PATH,
        json={
            "apiVersion": "networking.istio.io/v1beta1",
            "kind": "VirtualService",
            "metadata": {"name": "podinfo", "namespace": "test"},
            "spec": vs_spec(100, 0),
        },
    ).raise_for_status()

    wait_available(api, "podinfo-primary", 2)
    wait_available(api, "podinfo", 1)
    replica_pids = plane.backend.pids()
    assert len(replica_pids) == 3  # real processes behind the Deployments

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and plane.served_split("podinfo.test", 0.2).get("1.0.0", 0) < 10:
        time.sleep(0.1)
    split = plane.served_split("podinfo.test", seconds=0.5)
    assert split.get("1.0.0", 0) >= 40 and "1.1.0" not in split and split["errors"] == 0

    gen = LoadGenerator(plane.mesh_url, "podinfo.test.svc.cluster.local", rate=200, duration=600).start()
    try:
        wait_answers(gen, 20)  # traffic flows before the first change
        for primary, canary, check in (
            (50, 50, lambda c: c.get("1.1.0", 0) >= 0.3 * sum(v for k, v in c.items() if k != "errors")),
            (0, 100, lambda c: c.get("1.0.0", 0) == 0),
        ):
            vs = api.get(f"{VS_PATH}/podinfo").json()
            vs["spec"] = vs_spec(primary, canary)
            changed = time.monotonic()
            api.put(f"{VS_PATH}/podinfo", json=vs).raise_for_status()
            # served at all, and in the right proportion; how fast is bench_mesh's figure
            lag = wait_for_split(gen, check, since=changed, timeout=60)
            assert lag is not None, (primary, canary)
            wait_answers(gen, 20, since=changed + lag)  # and keeps flowing after it
    finally:
        gen.stop()
    assert set(gen.statuses_since()) == {200}

    # Scale the canary up and down under load: replicas join and leave without a failed request.
    gen = LoadGenerator(plane.mesh_url, "podinfo", rate=200, duration=600).start()
    try:
        for replicas in (3, 1):
            scale = api.get(f"{deployments}/podinfo").json()
            scale["spec"]["replicas"] = replicas
            api.put(f"{deployments}/podinfo", json=scale).raise_for_status()
            wait_available(api, "podinfo", replicas)
            wait_answers(gen, 100, since=time.monotonic())  # served by the new set of replicas
    finally:
        gen.stop()
    assert set(gen.statuses_since()) == {200}, gen.statuses_since()
    assert wait_survivors(plane.backend.pids(), 3) == 3

    all_pids = plane.pids()
    assert len(all_pids) == 5  # 3 replicas, Envoy, Prometheus
    assert httpx.get(f"{plane.prometheus_url}/-/ready").status_code == 200
    plane.stop()
    assert wait_dead(all_pids) == []


def test_busy_port_is_a_one_line_error_naming_it(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        plane = DataPlane(tmp_path, mesh_port=port)
        with pytest.raises(ProgdelError) as info:
            plane.start(SandboxAccess("https://127.0.0.1:9", b"", "none"))
        plane.stop()
    assert info.value.exit_code == 2
    assert f"port {port}" in str(info.value) and "mesh" in str(info.value)
