"""How long from a VirtualService change to the new split being served through the sandbox mesh.

Starts a sandbox API server with the data plane (no Prometheus), two demo Deployments and a
VirtualService, sends steady traffic through Envoy, flips the weights several times with a
PUT, and prints, per change, the time until the first requests that see only the new
destination were sent (the served lag) and until Envoy had accepted the new routes.

    .venv/bin/python bench/bench_mesh.py [--changes 9] [--rate 500]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from progdel.sandbox.dataplane import DataPlane
from progdel.sandbox.loadgen import LoadGenerator, wait_for_split
from progdel.sandbox.processes import free_port
from progdel.sandbox.server import SandboxServer

NS = "bench"
VS = f"/apis/networking.istio.io/v1beta1/namespaces/{NS}/virtualservices"


def deployment(name: str, version: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": f"progdel/demo-app:{version}"}]},
            },
        },
    }


def spec(primary: int, canary: int) -> dict[str, Any]:
    return {
        "hosts": ["app"],
        "http": [
            {
                "route": [
                    {"destination": {"host": "app-primary"}, "weight": primary},
                    {"destination": {"host": "app-canary"}, "weight": canary},
                ]
            }
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--changes", type=int, default=9)
    parser.add_argument("--rate", type=float, default=500.0)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="progdel-bench-"))
    plane = DataPlane(tmp / "dataplane", prometheus=False)
    server = SandboxServer(tmp / "sandbox", "127.0.0.1", free_port(), backend=plane.backend)
    server.start()
    try:
        api = server.http_client()
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}
        api.post("/api/v1/namespaces", json=namespace)
        plane.start(server.access)
        for name, version in (("app-primary", "1.0.0"), ("app-canary", "2.0.0")):
            api.post(f"/apis/apps/v1/namespaces/{NS}/deployments", json=deployment(name, version))
            api.post(
                f"/api/v1/namespaces/{NS}/services",
                json={
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {"name": name, "namespace": NS},
                    "spec": {"selector": {"app": name}, "ports": [{"port": 80}]},
                },
            ).raise_for_status()
        vs = {
            "apiVersion": "networking.istio.io/v1beta1",
            "kind": "VirtualService",
            "metadata": {"name": "app", "namespace": NS},
            "spec": spec(100, 0),
        }
        api.post(VS, json=vs).raise_for_status()
        deadline = time.monotonic() + 15
        while plane.served_split("app", 0.1, 100).get("1.0.0", 0) < 5:
            if time.monotonic() > deadline:
                raise SystemExit("the mesh never served the demo app")
        gen = LoadGenerator(plane.mesh_url, "app", rate=args.rate, duration=args.changes * 2 + 10).start()
        served, applied = [], []
        assert plane.sync is not None
        for i in range(args.changes):
            to_canary = i % 2 == 0
            new, old = ("2.0.0", "1.0.0") if to_canary else ("1.0.0", "2.0.0")
            time.sleep(0.7)
            vs = api.get(f"{VS}/app").json()
            vs["spec"] = spec(0, 100) if to_canary else spec(100, 0)
            generation = plane.sync.generation
            changed = time.monotonic()
            api.put(f"{VS}/app", json=vs).raise_for_status()
            plane.sync.wait_generation(generation, timeout=5)
            applied.append(time.monotonic() - changed)

            def only_new(counts: dict[str, int], new: str = new, old: str = old) -> bool:
                return counts.get(old, 0) == 0 and counts.get(new, 0) > 0

            lag = wait_for_split(gen, only_new, since=changed, window=0.05, timeout=5)
            served.append(float("nan") if lag is None else lag)
        gen.stop()
        statuses = gen.statuses_since()
        ms = [f"{x * 1000:.0f}" for x in served]
        print(f"changes: {args.changes}, load {gen.achieved_rate():.0f} req/s, answers by status {statuses}")
        median_applied = statistics.median(applied) * 1000
        print(
            f"VirtualService PUT -> Envoy routes applied: median {median_applied:.0f} ms, "
            f"max {max(applied) * 1000:.0f} ms (includes the {plane.debounce * 1000:.0f} ms debounce)"
        )
        print(
            f"VirtualService PUT -> new split served: median {statistics.median(served) * 1000:.0f} ms, "
            f"max {max(served) * 1000:.0f} ms  (per change, ms: {' '.join(ms)})"
        )
    finally:
        plane.stop()
        server.stop()


if __name__ == "__main__":
    main()
