"""One canary tick with three metrics, against the sandbox and a real Prometheus.

Prints the Kubernetes API calls of one analysis tick, its wall time, and the
time of its metric queries run together beside the same queries run one after
the other: the tick should cost about its slowest query, not their sum.

    .venv/bin/python bench/bench_tick.py
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from progdel.canary import store
from progdel.canary.cluster import initialize, runner_for
from progdel.canary.runner import RunOptions
from progdel.kube.client import connect
from progdel.kube.resources import DEPLOYMENTS, NAMESPACES
from progdel.sandbox.server import SandboxServer
from tests.canary.test_runner_integration import (
    T0,
    ReplayClock,
    canary_doc,
    deployment,
    history,
    new_revision,
)
from tests.promfixture import TrafficPhase, run_prometheus

NS = "bench"
METRICS = [
    {"name": "request-success-rate", "thresholdRange": {"min": 99}, "interval": "1m"},
    {"name": "request-duration", "thresholdRange": {"max": 500}, "interval": "1m"},
    {
        "name": "p50-latency",
        "query": "histogram_quantile(0.5, sum(rate("
        'istio_request_duration_milliseconds_bucket{destination_workload="podinfo"}[1m])) by (le))',
        "thresholdRange": {"max": 500},
    },
]


class DelayProxy:
    """A loopback TCP proxy that holds every answer back by ``delay`` seconds, like the network
    between a laptop and a remote Prometheus."""

    def __init__(self, target_port: int, delay: float) -> None:
        self.target_port, self.delay = target_port, delay
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.port = 0

        async def serve() -> None:
            server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]
            ready.set()
            async with server:
                await server.serve_forever()

        threading.Thread(target=self.loop.run_until_complete, args=(serve(),), daemon=True).start()
        ready.wait()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, delay: float) -> None:
            while data := await src.read(65536):
                if delay:
                    await asyncio.sleep(delay)
                dst.write(data)
                await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_w, 0.0), pipe(up_r, writer, self.delay), return_exceptions=True)


def time_queries(url: str, queries: list[tuple[str, str]], at: object) -> tuple[float, float, float]:
    """Median seconds of: all queries together, one after the other, the slowest alone."""
    from progdel.metrics.prometheus import PrometheusProvider

    together, one_by_one, slowest = [], [], []
    with PrometheusProvider(url) as provider:
        for _ in range(15):
            t = time.perf_counter()
            provider.query_many(queries, at)  # type: ignore[arg-type]
            together.append(time.perf_counter() - t)
            singles = []
            for _name, q in queries:
                t = time.perf_counter()
                provider.query(q, at)  # type: ignore[arg-type]
                singles.append(time.perf_counter() - t)
            one_by_one.append(sum(singles))
            slowest.append(max(singles))
    return statistics.median(together), statistics.median(one_by_one), statistics.median(slowest)


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="progdel-bench-"))
    server = SandboxServer(tmp / "sandbox")
    server.start()
    kube = connect(str(server.write_kubeconfig()), None, NS)
    kube.create(NAMESPACES, {"metadata": {"name": NS}})
    kube.create(DEPLOYMENTS, deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0"))
    doc = canary_doc(NS, metrics=METRICS, maxWeight=100, stepWeight=1, threshold=100)
    store.apply_canary(kube, doc, NS)
    initialize(kube, "podinfo", NS, lambda _r: None, timeout=30)
    new_revision(kube)
    with run_prometheus(history(NS, [TrafficPhase(0, 10, 0.0, 40)]), tmp) as prom:
        clock = ReplayClock(T0 + timedelta(seconds=600))
        runner = runner_for(kube, "podinfo", NS, lambda _r: None, RunOptions(prometheus_url=prom.url), clock)
        for _ in range(3):  # scale up, start the analysis: no metrics yet
            runner.tick()
            clock.sleep(10)
        walls, calls = [], []
        for _ in range(20):
            before = kube.requests
            t = time.perf_counter()
            runner.tick()
            walls.append(time.perf_counter() - t)
            calls.append(kube.requests - before)
            clock.sleep(10)
        canary = store.read(kube, "podinfo", NS)[1].model
        queries = [(q.name, q.query) for q in runner.queries(canary)]
        local = time_queries(prom.url, queries, clock.now())
        proxy = DelayProxy(int(prom.url.rsplit(":", 1)[1]), 0.03)
        remote = time_queries(f"http://127.0.0.1:{proxy.port}", queries, clock.now())
        runner.close()
    server.stop()
    print(
        f"analysis tick, {len(queries)} metrics: median wall {statistics.median(walls) * 1000:.1f} ms, "
        f"p90 {sorted(walls)[int(len(walls) * 0.9)] * 1000:.1f} ms, "
        f"Kubernetes API calls per tick {statistics.median(calls):.0f}"
    )
    for label, (together, sequential, slowest) in (("local Prometheus", local), ("30 ms away", remote)):
        print(
            f"metric queries, {label}: together {together * 1000:.1f} ms, one after the other "
            f"{sequential * 1000:.1f} ms, slowest alone {slowest * 1000:.1f} ms"
        )


if __name__ == "__main__":
    main()
