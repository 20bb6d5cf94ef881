"""The canary loop end to end: the sandbox's API, a real Prometheus with known histories.

Runs are replayed over recorded history: the runner's clock starts at the history's time and
its sleeps advance that clock, so a ten-step canary takes a second of wall time while every
query is evaluated at the time the engine believes it is.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from progdel.canary import engine, store
from progdel.canary.cluster import initialize, runner_for
from progdel.canary.runner import RunOptions
from progdel.errors import ExitCode
from progdel.kube.client import Kube, connect
from progdel.kube.events import list_events
from progdel.kube.resources import CANARIES, DEPLOYMENTS, VIRTUALSERVICES
from tests.promfixture import TrafficPhase, istio_openmetrics, require_prometheus, run_prometheus

T0 = datetime(2024, 1, 1, tzinfo=UTC)


class ReplayClock:
    """Starts at ``start``; ``sleep`` moves time on at once (with a real pause of a millisecond
    so the sandbox's controllers run)."""

    def __init__(self, start: datetime) -> None:
        self.t = start

    def now(self) -> datetime:
        return self.t

    def sleep(self, seconds: float) -> None:
        time.sleep(0.001)
        self.t += timedelta(seconds=seconds)


def deployment(name: str, image: str, replicas: int = 2) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image, "ports": [{"containerPort": 9898}]}]},
            },
        },
    }


def canary_doc(namespace: str, **analysis: Any) -> dict[str, Any]:
    spec_analysis = {
        "interval": "10s",
        "threshold": 2,
        "maxWeight": 50,
        "stepWeight": 20,
        "metrics": [
            {"name": "request-success-rate", "thresholdRange": {"min": 99}, "interval": "30s"},
            {"name": "request-duration", "thresholdRange": {"max": 500}, "interval": "30s"},
        ],
    }
    spec_analysis.update(analysis)
    return {
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": namespace},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898},
            "analysis": spec_analysis,
        },
    }


@pytest.fixture
def kube(sandbox: Any, namespace: str) -> Kube:
    return connect(str(sandbox.kubeconfig), None, namespace)


def setup_canary(kube: Kube, namespace: str, **analysis: Any) -> None:
    kube.create(DEPLOYMENTS, deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0"))
    store.apply_canary(kube, canary_doc(namespace, **analysis), namespace)
    assert initialize(kube, "podinfo", namespace, lambda _r: None, timeout=30) is ExitCode.OK


def new_revision(kube: Kube, image: str = "ghcr.io/stefanprodan/podinfo:6.0.1") -> None:
    kube.patch(
        DEPLOYMENTS,
        "podinfo",
        {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}},
        content_type="application/strategic-merge-patch+json",
    )


def history(namespace: str, canary_phases: list[TrafficPhase]) -> str:
    return istio_openmetrics(
        T0,
        1800,
        5,
        {
            f"{namespace}/podinfo-primary": [TrafficPhase(0, 20, 0.0, 40)],
            f"{namespace}/podinfo": canary_phases,
        },
    )


def run(
    kube: Kube, namespace: str, prom_url: str, start: datetime, **opts: Any
) -> tuple[ExitCode, list[dict]]:
    records: list[dict[str, Any]] = []
    runner = runner_for(
        kube,
        "podinfo",
        namespace,
        records.append,
        RunOptions(prometheus_url=prom_url, **opts),
        clock=ReplayClock(start),
    )
    return runner.run(), records


def vs_weights(kube: Kube) -> tuple[int, int]:
    route = kube.get(VIRTUALSERVICES, "podinfo")["spec"]["http"][0]["route"]
    w = {d["destination"]["host"]: d.get("weight") for d in route}
    return w["podinfo-primary"], w["podinfo-canary"]


@pytest.fixture(autouse=True)
def _prometheus_installed() -> None:
    require_prometheus()


def test_init_creates_flaggers_objects_and_scales_target_to_zero(kube: Kube, namespace: str) -> None:
    setup_canary(kube, namespace)
    primary = kube.get(DEPLOYMENTS, "podinfo-primary")
    assert primary["spec"]["selector"]["matchLabels"] == {"app": "podinfo-primary"}
    assert kube.get(DEPLOYMENTS, "podinfo")["spec"]["replicas"] == 0
    assert vs_weights(kube) == (100, 0)
    status = kube.get(CANARIES, "podinfo")["status"]
    assert status["phase"] == "Initialized"
    assert status["conditions"][0]["type"] == "Promoted"


def test_healthy_canary_promotes_with_the_expected_weights(
    kube: Kube, namespace: str, tmp_path: Path
) -> None:
    setup_canary(kube, namespace)
    new_revision(kube)
    with run_prometheus(history(namespace, [TrafficPhase(0, 10, 0.0, 40)]), tmp_path) as prom:
        code, records = run(kube, namespace, prom.url, T0 + timedelta(seconds=300))
    assert code is ExitCode.OK
    ticks = [(r["phase"], r["canaryWeight"]) for r in records if r["kind"] == "tick"]
    weights = [w for p, w in ticks if p == "Progressing"]
    assert [w for i, w in enumerate(weights) if i == 0 or w != weights[i - 1]] == [0, 20, 40, 60]
    assert ticks[-1][0] == "Succeeded"
    primary_image = kube.get(DEPLOYMENTS, "podinfo-primary")["spec"]["template"]["spec"]["containers"][0][
        "image"
    ]
    assert primary_image.endswith(":6.0.1")
    assert kube.get(DEPLOYMENTS, "podinfo")["spec"]["replicas"] == 0
    assert vs_weights(kube) == (100, 0)
    messages = [e["message"] for e in list_events(kube, "Canary", "podinfo")]
    assert f"Advance podinfo.{namespace} canary weight 20" in messages
    assert f"Promotion completed! Scaling down podinfo.{namespace}" in messages
    assert records[-1]["kind"] == "result" and records[-1]["outcome"] == "promoted"


def test_error_rate_regression_rolls_back_at_the_threshold(
    kube: Kube, namespace: str, tmp_path: Path
) -> None:
    setup_canary(kube, namespace)
    new_revision(kube)
    text = history(namespace, [TrafficPhase(0, 10, 0.0, 40), TrafficPhase(200, 10, 0.3, 40)])
    with run_prometheus(text, tmp_path) as prom:
        code, records = run(kube, namespace, prom.url, T0 + timedelta(seconds=300))
    assert code is ExitCode.CANARY_FAILED
    ticks = [r for r in records if r["kind"] == "tick"]
    failed = [t["failedChecks"] for t in ticks]
    assert max(failed[:-1]) == 1, "the rollback happens on the tick that reaches threshold 2"
    assert ticks[-1]["phase"] == "Failed"
    assert vs_weights(kube) == (100, 0)
    assert kube.get(DEPLOYMENTS, "podinfo")["spec"]["replicas"] == 0
    primary_image = kube.get(DEPLOYMENTS, "podinfo-primary")["spec"]["template"]["spec"]["containers"][0][
        "image"
    ]
    assert primary_image.endswith(":6.0.0"), "the primary is never touched by a rollback"
    messages = [e["message"] for e in list_events(kube, "Canary", "podinfo")]
    assert any(
        m.startswith(f"Halt podinfo.{namespace} advancement success rate 70.00% < 99%") for m in messages
    ), messages
    assert f"Rolling back podinfo.{namespace} failed checks threshold reached 2" in messages


@pytest.mark.parametrize(
    ("policy", "expected"),
    [("fail", ExitCode.CANARY_FAILED), ("skip", ExitCode.OK), ("hold", ExitCode.TIMEOUT)],
)
def test_no_data_follows_the_policy(
    kube: Kube, namespace: str, tmp_path: Path, policy: str, expected: ExitCode
) -> None:
    setup_canary(kube, namespace)
    obj = kube.get(CANARIES, "podinfo")
    obj["metadata"].setdefault("annotations", {})["progdel.dev/no-data"] = policy
    kube.replace(CANARIES, obj)
    new_revision(kube)
    # the canary workload has no traffic at all: both queries return nothing
    text = istio_openmetrics(T0, 1800, 5, {f"{namespace}/podinfo-primary": [TrafficPhase(0, 20, 0.0, 40)]})
    with run_prometheus(text, tmp_path) as prom:
        if expected is ExitCode.TIMEOUT:
            from progdel.errors import ProgdelError

            with pytest.raises(ProgdelError) as err:
                run(kube, namespace, prom.url, T0 + timedelta(seconds=300), timeout=120)
            assert err.value.exit_code is ExitCode.TIMEOUT
            status = kube.get(CANARIES, "podinfo")["status"]
            assert status["phase"] == "Progressing" and status["failedChecks"] == 0
            assert vs_weights(kube) == (80, 20), "hold never advances past the first step"
            return
        code, _ = run(kube, namespace, prom.url, T0 + timedelta(seconds=300))
    assert code is expected


@pytest.mark.parametrize(("min_requests", "expected"), [(None, ExitCode.CANARY_FAILED), ("20", ExitCode.OK)])
def test_min_requests_holds_on_a_trickle_then_judges_real_traffic(
    kube: Kube, namespace: str, tmp_path: Path, min_requests: str | None, expected: ExitCode
) -> None:
    setup_canary(kube, namespace)
    if min_requests is not None:
        obj = kube.get(CANARIES, "podinfo")
        obj["metadata"].setdefault("annotations", {})["progdel.dev/min-requests"] = min_requests
        kube.replace(CANARIES, obj)
    new_revision(kube)
    # a trickle (6 requests per 30 s window) with one error in ten, then real traffic, all good
    trickle_then_traffic = [TrafficPhase(0, 0.2, 0.1, 40), TrafficPhase(400, 5, 0.0, 40)]
    with run_prometheus(history(namespace, trickle_then_traffic), tmp_path) as prom:
        code, records = run(kube, namespace, prom.url, T0 + timedelta(seconds=300))
    assert code is expected
    holds = [r for r in records if "progdel.dev/min-requests" in str(r.get("message", ""))]
    if min_requests is None:
        assert not holds  # judged on the trickle: 90% success, rolled back
    else:
        assert holds and "served 6 requests in the last 30s, fewer than the 20" in holds[0]["message"]
        assert kube.get(CANARIES, "podinfo")["status"]["failedChecks"] == 0


class HangSwitch:
    """A TCP relay in front of a server that, once ``hang()`` is called, passes no more bytes
    either way: connections stay open and no answer ever comes, as from a hung server."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.hung = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.sockets: list[socket.socket] = [self.listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def hang(self) -> None:
        self.hung.set()

    def close(self) -> None:
        for s in self.sockets:
            with contextlib.suppress(OSError):
                s.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            self.sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if not self.hung.is_set():
                    sink.sendall(data)


@pytest.mark.parametrize("outage", ["stops", "hangs"])
def test_prometheus_down_holds_then_rolls_back_after_the_limit(
    kube: Kube, namespace: str, tmp_path: Path, outage: str
) -> None:
    """Prometheus goes away in the middle of the run (its port closed, or a server that accepts
    queries and never answers them): the weight is held, no check counts as failed, and after
    the limit of such ticks the run rolls back with exit 6."""
    setup_canary(kube, namespace)
    obj = kube.get(CANARIES, "podinfo")
    obj["metadata"].setdefault("annotations", {})["progdel.dev/max-infra-errors"] = "3"
    kube.replace(CANARIES, obj)
    new_revision(kube)
    with run_prometheus(history(namespace, [TrafficPhase(0, 10, 0.0, 40)]), tmp_path) as prom:
        switch = HangSwitch(prom.port)
        records: list[dict[str, Any]] = []
        clock = ReplayClock(T0 + timedelta(seconds=300))
        # the count of erroring ticks lives in the stored status: lost on a write, it would never
        # reach the limit, and the run would time out instead
        url = prom.url if outage == "stops" else switch.url
        options = RunOptions(prometheus_url=url, timeout=900)
        runner = runner_for(kube, "podinfo", namespace, records.append, options, clock)
        original_tick = runner.tick

        def tick_then_outage() -> engine.TickResult:
            result = original_tick()
            if result.status.canary_weight >= 20:
                if outage == "stops" and prom.running:
                    prom.stop()
                elif outage == "hangs":
                    switch.hang()
            return result

        runner.tick = tick_then_outage  # type: ignore[method-assign]
        try:
            code = runner.run()
        finally:
            switch.close()
    assert code is ExitCode.UNREACHABLE
    ticks = [r for r in records if r["kind"] == "tick"]
    after_outage = [t for t in ticks if t["canaryWeight"] == 20]
    assert all(t["failedChecks"] == 0 for t in ticks), "infrastructure errors are not failed checks"
    assert len(after_outage) >= 3, "the weight is held while Prometheus is down"
    assert max(t["canaryWeight"] for t in ticks) == 20
    assert vs_weights(kube) == (100, 0)


def test_a_second_watcher_is_refused_while_the_lease_is_held(kube: Kube, namespace: str) -> None:
    from progdel.kube.lease import LeaseHeld

    setup_canary(kube, namespace)
    first = store.lease_for(kube, "podinfo", namespace, 30, identity="alice@laptop/1")
    first.acquire()
    runner = runner_for(kube, "podinfo", namespace, lambda _r: None, identity="bob@laptop/2")
    with pytest.raises(LeaseHeld, match='held by "alice@laptop/1"'):
        runner.run()
    first.release()


def test_an_expired_lease_is_taken_over(kube: Kube, namespace: str) -> None:
    setup_canary(kube, namespace)
    dead = store.lease_for(kube, "podinfo", namespace, 1, identity="crashed@host/99999")
    dead.acquire()
    time.sleep(1.2)
    alive = store.lease_for(kube, "podinfo", namespace, 30, identity="new@host/1")
    alive.acquire()
    assert alive.holder()[0] == "new@host/1"


def test_a_split_far_from_the_weight_is_reported(kube: Kube, namespace: str, tmp_path: Path) -> None:
    setup_canary(kube, namespace)
    new_revision(kube)
    # healthy, but the canary gets 1 request in 41 whatever its weight: the mesh is not following
    with run_prometheus(history(namespace, [TrafficPhase(0, 0.5, 0.0, 40)]), tmp_path) as prom:
        code, records = run(kube, namespace, prom.url, T0 + timedelta(seconds=300))
    assert code is ExitCode.OK
    served = [r["served"] for r in records if r["kind"] == "tick" and r.get("served")]
    assert served and all(s["canary"] < 0.05 for s in served)
    assert any(s["weight"] == 20 for s in served)
    messages = [e["message"] for e in list_events(kube, "Canary", "podinfo")]
    expected = f"Traffic split for podinfo.{namespace}: canary served 2%"
    assert any(m.startswith(expected) for m in messages), messages


def test_a_canary_that_never_becomes_ready_rolls_back_at_the_progress_deadline(
    kube: Kube, namespace: str, tmp_path: Path
) -> None:
    """The deadline is timed from when the canary was first seen not ready, a time kept in the
    stored status between ticks: were it lost on a write, every tick would start the wait again."""
    kube.create(DEPLOYMENTS, deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0"))
    doc = canary_doc(namespace)
    doc["spec"]["progressDeadlineSeconds"] = 35
    store.apply_canary(kube, doc, namespace)
    assert initialize(kube, "podinfo", namespace, lambda _r: None, timeout=30) is ExitCode.OK
    new_revision(kube, "registry.invalid/podinfo:6.0.1")  # never becomes ready
    with run_prometheus(history(namespace, [TrafficPhase(0, 10, 0.0, 40)]), tmp_path) as prom:
        code, records = run(kube, namespace, prom.url, T0 + timedelta(seconds=300), timeout=600)
    assert code is ExitCode.CANARY_FAILED
    ticks = [r for r in records if r["kind"] == "tick"]
    waiting = [t for t in ticks if t["note"] == "waiting for the canary to become ready"]
    assert 3 <= len(waiting) <= 5, "10 s ticks wait out a 35 s deadline, once"
    messages = [e["message"] for e in list_events(kube, "Canary", "podinfo")]
    assert (
        f"Rolling back podinfo.{namespace} progress deadline exceeded: canary podinfo.{namespace} not ready"
        in messages
    )
    assert kube.get(DEPLOYMENTS, "podinfo")["spec"]["replicas"] == 0
