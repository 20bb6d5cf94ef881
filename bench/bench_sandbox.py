"""Sandbox API server throughput: sequential keep-alive GETs, and p99 latency with 8 concurrent clients.

Measured for a Deployment and for a custom object (a Flagger Canary, whose CRD prunes and
defaults on every write: reads serve the stored bytes and must be as fast).

The server runs in a process of its own, as ``progdel sandbox up`` runs it, and every client
speaks TLS to it and sends its token, as every real client does (one connection each, kept
alive). The target figures use the standard library's ``http.client``, whose cost per request is
small, so that they measure the server; the figure through ``httpx`` (progdel's own client, a
few hundred microseconds per request in the client on top) is printed beside them.

Run: .venv/bin/python bench/bench_sandbox.py  (targets: >= 1,000 GET/s, p99 <= 20 ms)
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import statistics
import tempfile
import threading
import time
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from progdel.sandbox.kubeconfig import SandboxAccess

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
SEQUENTIAL = 3000
CLIENTS = 8
PER_CLIENT = 500


def serve(data_dir: str, out: Queue[Any], stop: Queue[Any]) -> None:
    """The sandbox in this (child) process until told to stop; reports its CPU time."""
    from progdel.sandbox.server import SandboxServer

    with SandboxServer(Path(data_dir)) as srv:
        out.put(srv.access)
        stop.get()
        out.put(time.process_time())


class Client:
    """One keep-alive TLS connection with the kubeconfig's token."""

    def __init__(self, access: SandboxAccess) -> None:
        url = urlsplit(access.url)
        assert url.hostname and url.port
        self.conn = http.client.HTTPSConnection(url.hostname, url.port, context=access.ssl_context())
        self.headers = {**access.headers(), "Accept": "application/json"}

    def request(self, method: str, path: str, body: object = None) -> int:
        headers = self.headers
        payload = None
        if body is not None:
            payload = json.dumps(body)
            headers = {**headers, "Content-Type": "application/json"}
        self.conn.request(method, path, body=payload, headers=headers)
        answer = self.conn.getresponse()
        answer.read()
        return answer.status


def main() -> None:
    ctx = multiprocessing.get_context("spawn")
    out: Queue[Any] = ctx.Queue()
    stop: Queue[Any] = ctx.Queue()
    with tempfile.TemporaryDirectory() as tmp:
        server = ctx.Process(target=serve, args=(tmp, out, stop))
        server.start()
        access: SandboxAccess = out.get(timeout=60)
        requests = 0
        for kind, (collection, obj) in PATHS.items():
            assert Client(access).request("POST", collection, obj) == 201
            requests += measure(access, kind, f"{collection}/web")
        stop.put("stop")
        cpu = out.get(timeout=60)
        server.join()
    print(f"server CPU per request: {cpu / requests * 1e6:,.0f} µs ({requests:,} requests)")


def measure(access: SandboxAccess, kind: str, path: str) -> int:
    client = Client(access)
    for _ in range(200):
        client.request("GET", path)
    t0 = time.perf_counter()
    for _ in range(SEQUENTIAL):
        assert client.request("GET", path) == 200
    elapsed = time.perf_counter() - t0
    print(
        f"sequential keep-alive GET of one {kind}: {SEQUENTIAL / elapsed:,.0f} GET/s ({SEQUENTIAL} requests)"
    )
    latencies: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        mine: list[float] = []
        cl = Client(access)
        cl.request("GET", path)
        for _ in range(PER_CLIENT):
            s = time.perf_counter()
            cl.request("GET", path)
            mine.append(time.perf_counter() - s)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(CLIENTS)]
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
        f"  {CLIENTS} concurrent keep-alive clients: p99 {p99:.1f} ms, median {median:.1f} ms,"
        f" {len(latencies) / elapsed:,.0f} GET/s total"
    )
    with access.http_client() as c:
        t0 = time.perf_counter()
        for _ in range(1000):
            c.get(path)
        through = 1000 / (time.perf_counter() - t0)
    print(f"  through httpx (its client cost included): {through:,.0f} GET/s sequential")
    return 200 + SEQUENTIAL + CLIENTS * (PER_CLIENT + 1) + 1000


if __name__ == "__main__":
    main()
