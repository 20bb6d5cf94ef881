"""``canary watch`` rides out an API server that goes away for a while (a restart, a network blip):
it holds the canary, retries with backoff for as long as its Lease is sure to be its own, says so,
and resumes; only past that bound does it stop, with exit 6, before another watcher could take over.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from progdel.canary import store
from progdel.canary.cluster import runner_for
from progdel.canary.runner import CanaryRunner, RunOptions
from progdel.errors import Unreachable
from progdel.kube.client import connect
from progdel.kube.resources import DEPLOYMENTS, NAMESPACES
from tests.canary.test_runner_integration import T0, ReplayClock, deployment, new_revision, vs_weights
from tests.canary.test_watch_cli import progdel
from tests.promfixture import free_port, require_prometheus, run_prometheus


def passing_canary(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": namespace},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898},
            "analysis": {
                "interval": "1s",
                "threshold": 2,
                "stepWeight": 20,
                "maxWeight": 60,
                "metrics": [{"name": "always-one", "query": "vector(1)", "thresholdRange": {"min": 1}}],
            },
        },
    }


class Lines:
    """The NDJSON records of a running watch, read in the background so waits have deadlines."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.records: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip():
                with self._cond:
                    self.records.append(json.loads(line))
                    self._cond.notify_all()

    def wait_for(self, predicate: Any, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = next((r for r in self.records if predicate(r)), None)
                if found is not None:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"not seen within {timeout}s; last records: {self.records[-5:]}")
                self._cond.wait(left)


class Sandbox:
    """A sandbox of the test's own, run as a user runs it (``progdel sandbox up --detach``), so
    that it can be stopped and started again: same data dir, same port."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.kubeconfig = data_dir / "kubeconfig"

    def up(self) -> None:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "progdel",
                "sandbox",
                "up",
                "--detach",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr

    def down(self) -> None:
        subprocess.run(
            [sys.executable, "-m", "progdel", "sandbox", "down", "--data-dir", str(self.data_dir)],
            capture_output=True,
            text=True,
            timeout=120,
        )


@pytest.fixture
def own_sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    sandbox = Sandbox(tmp_path / "sandbox")
    sandbox.up()
    yield sandbox
    sandbox.down()


def start_watch(kubeconfig: Path, namespace: str, prom_url: str) -> subprocess.Popen[str]:
    args = ["-n", namespace, "-o", "ndjson", "canary", "watch", "podinfo", "--prometheus-url", prom_url]
    return subprocess.Popen(
        progdel(*args, kubeconfig=kubeconfig), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def prepare(kubeconfig: Path, namespace: str) -> Any:
    kube = connect(str(kubeconfig), None, namespace)
    kube.create(NAMESPACES, {"metadata": {"name": namespace}})
    kube.create(DEPLOYMENTS, deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0"))
    store.apply_canary(kube, passing_canary(namespace), namespace)
    return kube


def start_run(sandbox: Sandbox, namespace: str, prom_url: str) -> tuple[subprocess.Popen[str], Lines]:
    """A watch that has moved the canary to weight 20."""
    kube = prepare(sandbox.kubeconfig, namespace)
    watch = start_watch(sandbox.kubeconfig, namespace, prom_url)
    lines = Lines(watch)
    lines.wait_for(lambda r: r.get("kind") == "tick" and r.get("phase") == "Initialized")
    new_revision(kube)
    lines.wait_for(lambda r: r.get("kind") == "tick" and r.get("canaryWeight") == 20)
    return watch, lines


def test_a_watch_rides_out_an_api_server_restart(own_sandbox: Sandbox, tmp_path: Path) -> None:
    require_prometheus()
    with run_prometheus(None, tmp_path / "prom") as prom:
        watch, lines = start_run(own_sandbox, "rideout", prom.url)
        try:
            own_sandbox.down()  # the API server goes away mid-run...
            lines.wait_for(lambda r: "Cluster API unreachable" in str(r.get("message")))
            own_sandbox.up()  # ...and comes back: same data dir, same port
            lines.wait_for(lambda r: "Cluster API answers again" in str(r.get("message")))
            watch.wait(timeout=120)
        finally:
            if watch.poll() is None:
                watch.kill()
                watch.wait()
    assert watch.returncode == 0, watch.stderr.read() if watch.stderr else ""
    result = lines.wait_for(lambda r: r.get("kind") == "result")
    assert result["outcome"] == "promoted"
    kube = connect(str(own_sandbox.kubeconfig), None, "rideout")
    assert vs_weights(kube) == (100, 0)
    primary = kube.get(DEPLOYMENTS, "podinfo-primary")["spec"]["template"]["spec"]["containers"][0]
    assert primary["image"].endswith(":6.0.1")


def test_past_the_lease_the_watch_stops_with_exit_6(own_sandbox: Sandbox, tmp_path: Path) -> None:
    require_prometheus()
    with run_prometheus(None, tmp_path / "prom") as prom:
        watch, lines = start_run(own_sandbox, "gone", prom.url)
        try:
            own_sandbox.down()  # and it does not come back
            watch.wait(timeout=180)
        finally:
            if watch.poll() is None:
                watch.kill()
                watch.wait()
        err = watch.stderr.read() if watch.stderr else ""
    assert watch.returncode == 6, err
    last = err.strip().splitlines()[-1]
    assert "the cluster API did not answer for" in last and "lease would expire" in last
    warned = lines.wait_for(lambda r: "Cluster API unreachable" in str(r.get("message")))
    assert warned["type"] == "Warning"


class FlakyLease:
    """A lease whose renewals fail ``failures`` times, then succeed."""

    def __init__(self, failures: int, duration: int = 30) -> None:
        self.failures = failures
        self.duration_seconds = duration
        self.attempts = 0

    def renew(self) -> None:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise Unreachable("cannot reach the Kubernetes API at http://127.0.0.1:1: connection refused")


def runner_with(records: list[dict[str, Any]]) -> tuple[CanaryRunner, ReplayClock]:
    clock = ReplayClock(T0)
    kube: Any = type("NoKube", (), {"timeout": None})()
    return runner_for(kube, "podinfo", "test", records.append, RunOptions(), clock), clock


def test_renewals_back_off_and_resume_within_the_lease() -> None:
    records: list[dict[str, Any]] = []
    runner, _clock = runner_with(records)
    lease = FlakyLease(failures=4)
    runner._renew(lease)
    assert lease.attempts == 5
    waits = [r["seconds"] for r in records if r["kind"] == "outage"]
    assert len(waits) == 4 and waits == sorted(waits, reverse=True)
    messages = [r["message"] for r in records if r["kind"] == "event"]
    assert messages[0].startswith("Cluster API unreachable: cannot reach the Kubernetes API")
    assert messages[-1].startswith("Cluster API answers again after")
    assert runner._renewed_at > T0 and runner.cluster.timeout is None


def test_renewals_stop_before_the_lease_could_expire() -> None:
    records: list[dict[str, Any]] = []
    runner, clock = runner_with(records)
    lease = FlakyLease(failures=10**6, duration=30)
    with pytest.raises(Unreachable, match=r"the 30s lease would expire: stopped driving it"):
        runner._renew(lease)
    # every retry started early enough to end (two requests of 5s at most) before the lease does
    assert clock.now() <= T0 + timedelta(seconds=30 - 2 * 5)
    assert lease.attempts > 3
