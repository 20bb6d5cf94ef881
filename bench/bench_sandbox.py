"""Sandbox API server throughput: sequential keep-alive GETs, and p99 latency with 8 concurrent clients.

Measured for a Deployment and for a custom object (a Flagger Canary, whose CRD prunes and
defaults on every write: reads serve the stored bytes and must be as fast).

Every client speaks TLS to the sandbox and sends its token, as every real client does (one
connection each, kept alive).

Run: .venv/bin/python bench/bench_sandbox.py  (targets: >= 1,000 GET/s, p99 <= 20 ms)
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from pathlib import Path

from progdel.sandbox.kubeconfig import SandboxAccess
from progdel.sandbox.server import SandboxServer

DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web"},
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]},
        },
    },
}
CANARY = {
    "apiVersion": "flagger.app/v1beta1",
    "kind": "Canary",
    "metadata": {"name": "web"},
    "spec": {
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        "service": {"port": 80},
        "analysis": {"interval": "1m", "threshold": 5, "maxWeight": 50, "stepWeight": 10},
    },
}
PATHS = {
    "Deployment": ("/apis/apps/v1/namespaces/default/deployments", DEPLOYMENT),
    "Canary": ("/apis/flagger.app/v1beta1/namespaces/default/canaries", CANARY),
}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, SandboxServer(Path(tmp)) as srv:
        for kind, (collection, obj) in PATHS.items():
            measure(srv.access, kind, collection, obj)


def measure(access: SandboxAccess, kind: str, collection: str, obj: dict[str, object]) -> None:
    path = f"{collection}/web"
    with access.http_client() as c:
        c.post(collection, json=obj).raise_for_status()
        for _ in range(200):
            c.get(path)
        n = 3000
        t0 = time.perf_counter()
        for _ in range(n):
            c.get(path)
        elapsed = time.perf_counter() - t0
    print(f"sequential keep-alive GET of one {kind}: {n / elapsed:,.0f} GET/s ({n} requests)")
    latencies: list[float] = []
    lock = threading.Lock()
    per_client = 500

    def worker() -> None:
        mine: list[float] = []
        with access.http_client() as cl:
            cl.get(path)
            for _ in range(per_client):
                s = time.perf_counter()
                cl.get(path)
                mine.append(time.perf_counter() - s)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
    median = statistics.median(latencies) * 1000
    print(
        f"  8 concurrent keep-alive clients: p99 {p99:.1f} ms, median {median:.1f} ms,"
        f" {len(latencies) / elapsed:,.0f} GET/s total"
    )


if __name__ == "__main__":
    main()
