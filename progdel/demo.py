"""``progdel demo``: the whole job on one machine, with real traffic and real metrics.

It starts the sandbox cluster with its data plane (demo-app replicas as
processes, a real Envoy following the VirtualServices, a real Prometheus with
Istio's metrics), deploys the demo app 1.0.0 behind a canary with Flagger's
built-in metrics, keeps a steady load on it, then releases 1.1.0 (healthy: it
must be promoted) and 1.2.0 (20% errors: it must be rolled back). Beside
every weight progdel sets it reports the split the mesh actually served.

The demo is an ordinary client of the sandbox: the same runner, router and
engine that drive a canary on a real cluster drive it here. Its Prometheus is
registered as the Service ``prometheus.istio-system:9090`` (by the sandbox's
mesh mode, which registers the backend itself), and progdel reaches it
as from a laptop: that address does not resolve outside a cluster, so the
queries go through the API server's service proxy.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from progdel.canary.records import DemoRunRecord, Record, Sink, TickRecord
from progdel.errors import ExitCode, ProgdelError

NAMESPACE = "demo"
APP = "podinfo"
IMAGE = "progdel/demo-app"
HOST = f"{APP}.{NAMESPACE}"


@dataclass(frozen=True)
class Release:
    version: str
    error_rate: float
    expected: ExitCode

    @property
    def expected_outcome(self) -> str:
        return "promoted" if self.expected is ExitCode.OK else "rolled back"


RELEASES = (
    Release("1.1.0", 0.0, ExitCode.OK),
    Release("1.2.0", 0.2, ExitCode.CANARY_FAILED),
)


@dataclass
class DemoOptions:
    data_dir: Path
    keep: bool = False
    rate: float = 40.0  # requests per second through the mesh
    interval: str = "3s"  # the canary's analysis interval
    metric_interval: str = "15s"  # the PromQL range of the built-in metrics
    releases: tuple[Release, ...] = RELEASES


@dataclass
class DemoResult:
    runs: list[DemoRunRecord] = field(default_factory=list)
    kubeconfig: Path | None = None
    mesh_url: str | None = None
    prometheus_url: str | None = None

    @property
    def ok(self) -> bool:
        return bool(self.runs) and all(r["outcome"] == r["expected"] for r in self.runs)


def deployment(version: str, error_rate: float) -> dict[str, Any]:
    return {
        "metadata": {"name": APP, "namespace": NAMESPACE, "labels": {"app": APP}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": APP}},
            "template": {
                "metadata": {"labels": {"app": APP}},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": f"{IMAGE}:{version}",
                            "ports": [{"name": "http", "containerPort": 9898}],
                            "env": [
                                {"name": "DEMO_ERROR_RATE", "value": str(error_rate)},
                                {"name": "DEMO_LATENCY_MS", "value": "2"},
                            ],
                        }
                    ]
                },
            },
        },
    }


def canary(opts: DemoOptions) -> dict[str, Any]:
    """Flagger's Istio tutorial canary, with intervals short enough for a demo."""
    return {
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {
            "name": APP,
            "namespace": NAMESPACE,
            # the first seconds of a canary may have no samples yet: neither advance nor fail then
            "annotations": {"progdel.dev/no-data": "hold"},
        },
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": APP},
            "service": {"port": 9898, "targetPort": 9898},
            "analysis": {
                "interval": opts.interval,
                "threshold": 2,
                "maxWeight": 50,
                "stepWeight": 10,
                "metrics": [
                    {
                        "name": "request-success-rate",
                        "thresholdRange": {"min": 99},
                        "interval": opts.metric_interval,
                    },
                    {
                        "name": "request-duration",
                        "thresholdRange": {"max": 500},
                        "interval": opts.metric_interval,
                    },
                ],
            },
        },
    }


class ServedSplit:
    """Adds to a tick record the split the mesh served since the previous tick, as the load
    generator counted it, beside the weight that was set for that time (``served``; the runner's
    own reading of Istio's metrics stays as ``servedIstio``).

    Answers are told apart by version, which tells canary from primary only while the primary
    still runs the old version: so only intervals that followed a Progressing tick are reported.
    """

    MEASURABLE = ("Progressing", "WaitingPromotion")

    def __init__(self, loadgen: Any, canary_version: str, sink: Sink) -> None:
        self.loadgen = loadgen
        self.canary_version = canary_version
        self.sink = sink
        self.since = time.monotonic()
        self.previous: TickRecord | None = None

    def __call__(self, record: Record) -> None:
        if record["kind"] == "tick":
            record = record.copy()
            if "served" in record:  # the runner's reading of Istio's metrics, kept beside ours
                record["servedIstio"] = record.pop("served")
            now = time.monotonic()
            counts = self.loadgen.served_since(self.since, now)
            answered = sum(n for v, n in counts.items() if v != "errors")
            prev = self.previous
            if answered and prev is not None and prev["phase"] in self.MEASURABLE:
                canary_share = counts.get(self.canary_version, 0) / answered
                record["served"] = {
                    "canary": round(canary_share, 4),
                    "primary": round(1 - canary_share, 4),
                    "requests": answered,
                    "errors": counts.get("errors", 0),
                    "weight": prev["canaryWeight"],
                }
            self.since, self.previous = now, record
        self.sink(record)


def _free_port() -> int:
    from progdel.sandbox.processes import free_port

    return free_port()


def run_demo(opts: DemoOptions, sink: Sink, say: Callable[[str], None]) -> DemoResult:
    """Run the demo; every process started is stopped before returning unless ``opts.keep``."""
    from progdel.canary import store
    from progdel.canary.cluster import initialize, runner_for
    from progdel.canary.runner import RunOptions
    from progdel.kube.client import connect
    from progdel.kube.resources import DEPLOYMENTS, NAMESPACES
    from progdel.metrics.prometheus import DEFAULT_PROMETHEUS_URL
    from progdel.sandbox import daemon
    from progdel.sandbox.loadgen import LoadGenerator

    if shutil.which("prometheus") is None:
        raise ProgdelError(
            "the demo needs Prometheus: apt-get install --no-install-recommends prometheus "
            "(the README's first command does it)",
            ExitCode.INVALID_INPUT,
        )
    result = DemoResult()
    ddir = opts.data_dir
    if daemon.read_pid(ddir) is not None:
        raise ProgdelError(
            f"a sandbox from an earlier demo still runs from {ddir}; stop it with "
            f"'progdel sandbox down --data-dir {ddir}'",
            ExitCode.INVALID_INPUT,
        )
    shutil.rmtree(ddir, ignore_errors=True)
    say("starting the sandbox cluster with Envoy and Prometheus ...")
    started = daemon.start_detached(
        ddir, _free_port(), mesh=True, mesh_port=_free_port(), prometheus_port=_free_port()
    )
    result.kubeconfig, result.mesh_url = started.kubeconfig, started.mesh_url
    result.prometheus_url = started.prometheus_url
    loadgen: Any = None
    try:
        kube = connect(str(started.kubeconfig), None, NAMESPACE)
        say(
            f"Prometheus is the cluster's {DEFAULT_PROMETHEUS_URL}: progdel queries it through the "
            "API server's service proxy, as from a laptop"
        )
        kube.create(NAMESPACES, {"metadata": {"name": NAMESPACE}})
        kube.create(DEPLOYMENTS, deployment("1.0.0", 0.0))
        store.apply_canary(kube, canary(opts), NAMESPACE)
        say(f"deploying {IMAGE}:1.0.0 behind canary {NAMESPACE}/{APP} ...")
        code = initialize(kube, APP, NAMESPACE, sink, timeout=60)
        if code is not ExitCode.OK:
            raise ProgdelError(f"the demo canary did not initialize (exit {int(code)})")
        assert started.mesh_url is not None
        loadgen = LoadGenerator(started.mesh_url, HOST, rate=opts.rate, duration=3600).start()
        for release in opts.releases:
            say(
                f"releasing {release.version} ({release.error_rate:.0%} errors): "
                f"expected to be {release.expected_outcome}"
            )
            kube.patch(
                DEPLOYMENTS,
                APP,
                {"spec": {"template": deployment(release.version, release.error_rate)["spec"]["template"]}},
            )
            t0 = time.monotonic()
            runner = runner_for(
                kube,
                APP,
                NAMESPACE,
                ServedSplit(loadgen, release.version, sink),
                RunOptions(prometheus_url=DEFAULT_PROMETHEUS_URL, timeout=300),
            )
            code = runner.run()
            outcome = {ExitCode.OK: "promoted", ExitCode.CANARY_FAILED: "rolled back"}.get(
                code, f"exit {int(code)}"
            )
            run: DemoRunRecord = {
                "kind": "run",
                "version": release.version,
                "outcome": outcome,
                "expected": release.expected_outcome,
                "exitCode": int(code),
                "seconds": round(time.monotonic() - t0, 1),
            }
            result.runs.append(run)
            sink(run)
    finally:
        if loadgen is not None:
            loadgen.stop()
        if not opts.keep:
            daemon.stop_detached(ddir)
    return result
