"""Fixtures for the sandbox data plane: real demo processes, a real Envoy, a real Prometheus."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from progdel.sandbox.backend import ReplicaSetKey
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


def service(name: str, app: str) -> dict[str, Any]:
    return {"metadata": {"namespace": NS, "name": name}, "spec": {"selector": {"app": app}}}


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
    timeout: float = 10.0,
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


def wait_dead(pids: list[int], timeout: float = 5.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        living = [p for p in pids if alive(p)]
        if not living:
            return []
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


def wait_survivors(pids: list[int], expected: int, timeout: float = 5.0) -> int:
    """Wait until exactly ``expected`` of ``pids`` are alive; return how many are."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(alive(p) for p in pids) == expected:
            return expected
        time.sleep(0.05)
    return sum(alive(p) for p in pids)
