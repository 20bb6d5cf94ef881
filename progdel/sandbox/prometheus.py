"""The sandbox's metrics store: a real Prometheus that sees the mesh as Istio's sidecars would.

Prometheus scrapes the mesh Envoy's ``/stats/prometheus`` every second and renames, at
ingestion (``metric_relabel_configs``), Envoy's per-cluster upstream statistics into
Istio's standard metrics:

==============================================  ==============================================
Envoy (cluster ``<ns>_<workload>``)             Istio
==============================================  ==============================================
``envoy_cluster_upstream_rq{envoy_response_code}``  ``istio_requests_total{response_code}``
``envoy_cluster_upstream_rq_time_bucket{le}``   ``istio_request_duration_milliseconds_bucket``
(``_sum``, ``_count`` likewise; ``le`` is already in milliseconds, with Istio's buckets)
==============================================  ==============================================

with ``reporter="destination"``, ``destination_workload_namespace=<ns>`` and
``destination_workload=<workload>`` taken from the cluster name. The mesh keeps one Envoy
cluster per workload (Deployment), so a per-cluster counter *is* the per-workload counter a
destination sidecar would report, however many Services select the workload. Flagger's
built-in ``request-success-rate`` and ``request-duration`` queries therefore run unchanged.
The demo processes stay trivial (no metrics of their own to scrape).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from progdel.errors import ExitCode, ProgdelError
from progdel.sandbox.processes import spawn, stop_process

INSTALL_HINT = "apt-get install --no-install-recommends prometheus"

# Cluster names are "<namespace>_<workload>": a namespace is a DNS label (no "_").
_CLUSTER_RE = "([a-z0-9]([-a-z0-9]*[a-z0-9])?)_(.+)"


def istio_relabeling() -> list[dict[str, Any]]:
    """``metric_relabel_configs`` turning Envoy cluster stats into Istio's destination metrics."""
    return [
        {
            "source_labels": ["__name__"],
            "action": "keep",
            "regex": "envoy_cluster_upstream_rq|envoy_cluster_upstream_rq_time_(bucket|sum|count)",
        },
        {"source_labels": ["envoy_cluster_name"], "action": "keep", "regex": _CLUSTER_RE},
        {
            "source_labels": ["envoy_cluster_name"],
            "regex": _CLUSTER_RE,
            "target_label": "destination_workload_namespace",
            "replacement": "$1",
        },
        {
            "source_labels": ["envoy_cluster_name"],
            "regex": _CLUSTER_RE,
            "target_label": "destination_workload",
            "replacement": "$3",
        },
        {
            "source_labels": ["envoy_cluster_name"],
            "regex": _CLUSTER_RE,
            "target_label": "destination_canonical_service",
            "replacement": "$3",
        },
        {
            "source_labels": ["envoy_response_code"],
            "regex": "(.+)",
            "target_label": "response_code",
            "replacement": "$1",
        },
        {"target_label": "reporter", "replacement": "destination"},
        {"target_label": "request_protocol", "replacement": "http"},
        {
            "source_labels": ["__name__"],
            "regex": "envoy_cluster_upstream_rq",
            "target_label": "__name__",
            "replacement": "istio_requests_total",
        },
        {
            "source_labels": ["__name__"],
            "regex": "envoy_cluster_upstream_rq_time_(bucket|sum|count)",
            "target_label": "__name__",
            "replacement": "istio_request_duration_milliseconds_$1",
        },
        {"action": "labeldrop", "regex": "envoy_cluster_name|envoy_response_code"},
    ]


def prometheus_config(envoy_admin: str) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "900ms"},
        "scrape_configs": [
            {
                "job_name": "sandbox-mesh",
                "metrics_path": "/stats/prometheus",
                "static_configs": [{"targets": [envoy_admin], "labels": {"mesh": "progdel-sandbox"}}],
                "metric_relabel_configs": istio_relabeling(),
            }
        ],
    }


def prometheus_binary() -> str:
    debian = Path("/usr/bin/prometheus")
    found = shutil.which("prometheus") or (str(debian) if debian.exists() else None)
    if not found:
        raise ProgdelError(
            f"prometheus not found: install it with `{INSTALL_HINT}` (the README's first command does it)",
            ExitCode.INVALID_INPUT,
        )
    return found


class PrometheusServer:
    """A Prometheus process on a loopback port with a generated configuration."""

    def __init__(self, data_dir: Path, port: int, envoy_admin: str) -> None:
        self.data_dir = Path(data_dir)
        self.port = port
        self.envoy_admin = envoy_admin
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        binary = prometheus_binary()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "prometheus.yml"
        config.write_text(yaml.safe_dump(prometheus_config(self.envoy_admin), sort_keys=False))
        log_path = self.data_dir / "prometheus.log"
        with open(log_path, "ab") as log:
            self.proc = spawn(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={self.data_dir / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--web.enable-lifecycle",
                    "--storage.tsdb.retention.time=100y",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=0.5) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    tail = log_path.read_text(errors="replace")[-800:].strip()
                    raise ProgdelError(f"prometheus exited at start (code {self.proc.returncode}): {tail}")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"{self.url}/-/ready").status_code == 200:
                        return
                time.sleep(0.02)
        self.stop()
        raise ProgdelError(f"prometheus did not become ready on {self.url} in {timeout:.0f}s")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout=5.0)

    def reload(self) -> None:
        httpx.post(f"{self.url}/-/reload", timeout=5.0).raise_for_status()

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query's result vector (an empty list when there is no data)."""
        resp = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=5.0)
        resp.raise_for_status()
        data = resp.json()["data"]
        return list(data["result"]) if data.get("resultType") == "vector" else []

    def query_value(self, promql: str) -> float | None:
        result = self.query(promql)
        if not result:
            return None
        value = float(result[-1]["value"][1])
        return None if value != value else value  # NaN: no data, as Flagger reads it
