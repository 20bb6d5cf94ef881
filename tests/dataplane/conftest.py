"""Fixtures for the sandbox data plane: real demo processes, a real Envoy, a real Prometheus."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from progdel.sandbox.backend import ReplicaSetKey
from progdel.sandbox.loadgen import LoadGenerator
from progdel.sandbox.mesh import Envoy, MeshInputs, render
from progdel.sandbox.processes import ProcessReplicaBackend, free_port

NS = "test"


def demo_template(app: str, version: str, **env: str) -> dict[str, Any]:
    return {
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
    }


def deployment(name: str, app: str) -> dict[str, Any]:
    return {
        "metadata": {"namespace": NS, "name": name},
        "spec": {"template": {"metadata": {"labels": {"app": app}}}},
    }


def service(name: str, app: str, port: int = 9898, target: int | str = 9898) -> dict[str, Any]:
    return {
        "metadata": {"namespace": NS, "name": name},
        "spec": {"selector": {"app": app}, "ports": [{"name": "http", "port": port, "targetPort": target}]},
    }


def virtualservice(
    name: str, routes: list[tuple[str, int]], hosts: list[str] | None = None
) -> dict[str, Any]:
    return {
        "metadata": {"namespace": NS, "name": name},
        "spec": {
            "hosts": hosts or [name],
            "http": [{"route": [{"destination": {"host": h}, "weight": w} for h, w in routes]}],
        },
    }


def wait_ready(
    backend: ProcessReplicaBackend,
    wanted: dict[ReplicaSetKey, tuple[dict[str, Any], int]],
    timeout: float = 60.0,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = [backend.reconcile(k, t, n) for k, (t, n) in wanted.items()]
        if all(c.ready == n for c, (_, n) in zip(counts, wanted.values(), strict=True)):
            return
        time.sleep(0.02)
    raise AssertionError(f"replicas not ready in {timeout}s: {counts}")


@pytest.fixture
def backend() -> Iterator[ProcessReplicaBackend]:
    b = ProcessReplicaBackend()
    yield b
    b.close()


@pytest.fixture
def envoy(tmp_path: Path) -> Iterator[Envoy]:
    e = Envoy(tmp_path / "mesh", free_port(), free_port())
    e.start()
    yield e
    e.stop()


class CanaryWorld:
    """A podinfo-like canary: ``podinfo-primary`` (1.0.0) and ``podinfo`` (1.1.0), Flagger's Services."""

    def __init__(
        self,
        backend: ProcessReplicaBackend,
        envoy: Envoy,
        canary_error_rate: str = "0",
        canary_latency_ms: str = "0",
    ) -> None:
        self.backend, self.envoy = backend, envoy
        self.primary = ReplicaSetKey(NS, "podinfo-primary", "p1")
        self.canary = ReplicaSetKey(NS, "podinfo", "c1")
        wait_ready(
            backend,
            {
                self.primary: (demo_template("podinfo-primary", "1.0.0"), 2),
                self.canary: (
                    demo_template(
                        "podinfo",
                        "1.1.0",
                        DEMO_ERROR_RATE=canary_error_rate,
                        DEMO_LATENCY_MS=canary_latency_ms,
                    ),
                    1,
                ),
            },
        )
        self.deployments = [
            deployment("podinfo-primary", "podinfo-primary"),
            deployment("podinfo", "podinfo"),
        ]
        self.services = [
            service("podinfo", "podinfo-primary"),
            service("podinfo-primary", "podinfo-primary"),
            service("podinfo-canary", "podinfo"),
        ]

    def route(self, primary: int, canary: int) -> None:
        """Apply weights the way the mesh sync does: clusters first, then routes."""
        import httpx

        vs = virtualservice("podinfo", [("podinfo-primary", primary), ("podinfo-canary", canary)])
        clusters, routes = render(MeshInputs([vs], self.services, self.deployments, self.backend.endpoints()))
        with httpx.Client() as admin:
            assert self.envoy.wait_applied(admin, "cds", self.envoy.write_clusters(clusters))
            assert self.envoy.wait_applied(admin, "rds", self.envoy.write_routes(routes))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.envoy.mesh_port}"


def alive(pid: int) -> bool:
    """True while ``pid`` is a running (not zombie) process."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def wait_dead(pids: list[int], timeout: float = 30.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        living = [p for p in pids if alive(p)]
        if not living:
            return []
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


def wait_survivors(pids: list[int], expected: int, timeout: float = 30.0) -> int:
    """Wait until exactly ``expected`` of ``pids`` are alive; return how many are."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(alive(p) for p in pids) == expected:
            return expected
        time.sleep(0.05)
    return sum(alive(p) for p in pids)


# A whole sandbox with its data plane, shared by the tests of a session --------------------


class MeshSandbox:
    """The sandbox API server with a data plane (commands allowed), reached over HTTPS."""

    PATHS = {
        "Namespace": "/api/v1/namespaces",
        "Service": "/api/v1/namespaces/{ns}/services",
        "Deployment": "/apis/apps/v1/namespaces/{ns}/deployments",
        "VirtualService": "/apis/networking.istio.io/v1beta1/namespaces/{ns}/virtualservices",
    }

    def __init__(self, server: Any, plane: Any) -> None:
        self.server, self.plane = server, plane
        self.api = server.http_client()

    def path(self, kind: str, namespace: str) -> str:
        return self.PATHS[kind].format(ns=namespace)

    def create(self, namespace: str, *objects: dict[str, Any]) -> None:
        for obj in objects:
            resp = self.api.post(self.path(obj["kind"], namespace), json=obj)
            assert resp.status_code == 201, resp.text

    def replace(self, namespace: str, obj: dict[str, Any]) -> None:
        url = f"{self.path(obj['kind'], namespace)}/{obj['metadata']['name']}"
        current = self.api.get(url).json()
        body = {
            **obj,
            "metadata": {**obj["metadata"], "resourceVersion": current["metadata"]["resourceVersion"]},
        }
        resp = self.api.put(url, json=body)
        assert resp.status_code == 200, resp.text

    def wait_available(self, namespace: str, name: str, replicas: int = 1, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            url = f"{self.path('Deployment', namespace)}/{name}"
            status = self.api.get(url).json().get("status") or {}
            if status.get("readyReplicas") == replicas and status.get("replicas") == replicas:
                return
            time.sleep(0.05)
        raise AssertionError(f"deployment {namespace}/{name} not ready: {status}")

    def endpoints(self, namespace: str, deployment: str) -> list[Any]:
        return [
            e
            for key, eps in self.plane.backend.endpoints().items()
            if key.namespace == namespace and key.deployment == deployment
            for e in eps
        ]

    def mesh_get(self, host: str, path: str = "/") -> Any:
        import httpx

        return httpx.get(f"{self.plane.mesh_url}{path}", headers={"host": host}, timeout=10)

    def wait_no_traffic(self, namespace: str, window: str = "35s", timeout: float = 240.0) -> None:
        """Wait until Prometheus' ``window`` holds no request to ``namespace``'s workloads: a
        namespace an earlier test used under the same name starts with no metrics of its own
        (the default window is longer than any metric interval of the tests using it)."""
        import httpx

        selector = f'destination_workload_namespace="{namespace}"'
        query = f"sum(increase(istio_requests_total{{{selector}}}[{window}]))"
        deadline = time.monotonic() + timeout
        result: list[Any] = []
        while time.monotonic() < deadline:
            resp = httpx.get(f"{self.plane.prometheus_url}/api/v1/query", params={"query": query}, timeout=10)
            result = resp.json()["data"]["result"]
            if not result or float(result[0]["value"][1]) == 0:
                return
            time.sleep(1)
        raise AssertionError(f"requests to {namespace} still in Prometheus' {window} window: {result}")

    def wait_routed(self, host: str, predicate: Any, path: str = "/", timeout: float = 90.0) -> Any:
        """Poll the mesh until an answer for ``host`` satisfies ``predicate``; that answer."""
        deadline = time.monotonic() + timeout
        resp = None
        while time.monotonic() < deadline:
            resp = self.mesh_get(host, path)
            if predicate(resp):
                return resp
            time.sleep(0.05)
        raise AssertionError(
            f"{host}{path}: {resp.status_code if resp else None} {resp.text if resp else ''}"
        )


@contextlib.contextmanager
def running_mesh_sandbox(root: Path) -> Iterator[MeshSandbox]:
    """A sandbox with its data plane and Prometheus, as ``progdel sandbox up --mesh
    --allow-commands`` starts it, keeping its files under ``root``; stopped afterwards."""
    from progdel.sandbox.daemon import register_prometheus
    from progdel.sandbox.dataplane import DataPlane
    from progdel.sandbox.server import SandboxServer

    plane = DataPlane(root / "dataplane", allow_commands=True)
    server = SandboxServer(root / "sandbox", "127.0.0.1", free_port(), backend=plane.backend)
    server.start()
    try:
        plane.start(server.access)
        # as `progdel sandbox up --mesh` does: Prometheus where progdel's default URL finds it
        assert plane.prometheus_url is not None
        register_prometheus(server, server.write_kubeconfig(root / "kubeconfig"), plane.prometheus_url)
        sandbox = MeshSandbox(server, plane)
        yield sandbox
        sandbox.api.close()
    finally:
        plane.stop()
        server.stop()


@pytest.fixture(scope="session")
def mesh_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MeshSandbox]:
    """The mesh sandbox the tests of a session share, each in namespaces of its own."""
    with running_mesh_sandbox(tmp_path_factory.mktemp("mesh-sandbox")) as sandbox:
        yield sandbox


@pytest.fixture
def mesh_ns(mesh_sandbox: MeshSandbox) -> Iterator[str]:
    """A fresh namespace of the shared mesh sandbox, deleted (with its replicas) afterwards."""
    import uuid

    name = f"t-{uuid.uuid4().hex[:8]}"
    mesh_sandbox.create(name, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield name
    mesh_sandbox.api.delete(f"/api/v1/namespaces/{name}")


PODINFO_IMAGE = "ghcr.io/stefanprodan/podinfo"


def podinfo_deployment(
    name: str, tag: str, *, app: str | None = None, replicas: int = 1, flags: tuple[str, ...] = ()
) -> dict[str, Any]:
    """podinfo as Flagger's kustomize/podinfo deploys it (command, ports, scrape annotations)."""
    app = app or name
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": app}},
            "template": {
                "metadata": {
                    "labels": {"app": app},
                    "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9797"},
                },
                "spec": {
                    "containers": [
                        {
                            "name": "podinfod",
                            "image": f"{PODINFO_IMAGE}:{tag}",
                            "ports": [
                                {"name": "http", "containerPort": 9898, "protocol": "TCP"},
                                {"name": "http-metrics", "containerPort": 9797, "protocol": "TCP"},
                                {"name": "grpc", "containerPort": 9999, "protocol": "TCP"},
                            ],
                            "command": [
                                "./podinfo",
                                "--port=9898",
                                "--port-metrics=9797",
                                "--grpc-port=9999",
                                "--grpc-service-name=podinfo",
                                "--level=info",
                                "--random-delay=false",
                                "--random-error=false",
                                *flags,
                            ],
                            "env": [{"name": "PODINFO_UI_COLOR", "value": "#34577c"}],
                        }
                    ]
                },
            },
        },
    }


def cluster_service(name: str, app: str, ports: list[tuple[int, int | str]]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {
            "selector": {"app": app},
            "ports": [{"name": f"p{port}", "port": port, "targetPort": target} for port, target in ports],
        },
    }


def wait_answers(
    gen: LoadGenerator, count: int, since: float | None = None, timeout: float = 120.0
) -> dict[str, int]:
    """The split served to requests sent after ``since``, once at least ``count`` of them are
    answered (or failed): a sample of known size, however slowly a busy machine sends them."""
    deadline = time.monotonic() + timeout
    while True:
        served = gen.served_since(since)
        answered = sum(v for k, v in served.items() if k != "errors")
        if answered + served["errors"] >= count:
            return served
        assert time.monotonic() < deadline, f"only {served} after {timeout}s"
        assert gen.running, f"the load generator stopped with {served}"
        time.sleep(0.05)
