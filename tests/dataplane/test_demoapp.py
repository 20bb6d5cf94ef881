"""The demo service: version from the image tag, deterministic errors, added latency."""

from __future__ import annotations

import time

import httpx

from progdel.sandbox.backend import ReplicaSetKey
from progdel.sandbox.demoapp import ErrorSchedule, version_from_image
from progdel.sandbox.processes import ProcessReplicaBackend

from .conftest import demo_template, wait_ready


def test_version_from_image() -> None:
    assert version_from_image("progdel/demo-app:1.1.0") == "1.1.0"
    assert version_from_image("docker.io/progdel/demo-app:2.0.0") == "2.0.0"
    assert version_from_image("progdel/demo-app") is None
    assert version_from_image("stefanprodan/podinfo:6.0.0") is None
    assert version_from_image("registry:5000/progdel/demo-app") is None


def test_error_schedule_is_exact() -> None:
    sched = ErrorSchedule(0.2)
    fails = [sched.next_fails() for _ in range(100)]
    assert sum(fails) == 20
    assert sum(fails[:10]) == 2  # spread evenly, not bunched at the end


def test_process_serves_version_errors_and_latency(backend: ProcessReplicaBackend) -> None:
    key = ReplicaSetKey("default", "demo", "h1")
    slow = ReplicaSetKey("default", "slow", "h2")
    wait_ready(
        backend,
        {
            key: (demo_template("demo", "1.1.0", DEMO_ERROR_RATE="0.25"), 1),
            slow: (demo_template("slow", "2.0.0", DEMO_LATENCY_MS="120"), 1),
        },
    )
    [ep] = backend.endpoints()[key]
    assert ep.labels == {"app": "demo"} and ep.ready
    with httpx.Client(base_url=f"http://127.0.0.1:{ep.port}") as client:
        assert client.get("/healthz").status_code == 200
        answers = [client.get("/") for _ in range(200)]
        assert sum(r.status_code == 500 for r in answers) == 50
        assert {r.headers["x-demo-version"] for r in answers} == {"1.1.0"}
        ok = next(r for r in answers if r.status_code == 200)
        assert ok.json() == {"version": "1.1.0", "pod": ep.pod}
    [slow_ep] = backend.endpoints()[slow]
    with httpx.Client(base_url=f"http://127.0.0.1:{slow_ep.port}") as client:
        started = time.monotonic()
        resp = client.get("/")
        elapsed = time.monotonic() - started
    assert resp.json()["version"] == "2.0.0"
    assert elapsed >= 0.115  # the configured latency is added (an upper bound would measure the machine)
