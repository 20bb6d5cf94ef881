"""The sandbox's metrics store: a real Prometheus that sees the mesh as Istio's sidecars would,
and the replicas as its Kubernetes pod discovery would.

**The mesh.** Prometheus scrapes the mesh Envoy's ``/stats/prometheus`` every second and
renames, at ingestion (``metric_relabel_configs``), Envoy's per-cluster upstream statistics
into Istio's standard metrics:

==============================================  ==============================================
Envoy (cluster ``<ns>_<workload>_<port>``)      Istio
==============================================  ==============================================
``envoy_cluster_upstream_rq{envoy_response_code}``  ``istio_requests_total{response_code}``
``envoy_cluster_upstream_rq_time_bucket{le}``   ``istio_request_duration_milliseconds_bucket``
(``_sum``, ``_count`` likewise; ``le`` is already in milliseconds, with Istio's buckets)
==============================================  ==============================================

with ``reporter="destination"``, ``destination_workload_namespace=<ns>`` and
``destination_workload=<workload>`` taken from the cluster name. The mesh keeps Envoy
clusters per workload (Deployment) and port, never per Service, so summed over ports they
are the per-workload counters a destination sidecar would report, however many Services
select the workload. Flagger's built-in ``request-success-rate`` and ``request-duration``
queries therefore run unchanged.

**The pods.** A second job scrapes every replica process the way the usual
``kubernetes-pods`` job (``kubernetes_sd_configs`` with role ``pod``) does in a cluster:
pods annotated ``prometheus.io/scrape: "true"``, at ``prometheus.io/port`` (else every
declared container port) and ``prometheus.io/path`` (default ``/metrics``), labelled
``kubernetes_namespace`` and ``kubernetes_pod_name`` (Flagger's queries for non-Istio
providers read these; the newer chart names ``namespace`` and ``pod`` are set too) and with
the pod's labels. The sandbox has no Pod objects to discover, so the targets come from a
file (``file_sd_configs``) the data plane rewrites as replicas come and go, with the same
``__meta_kubernetes_*`` labels discovery would give; the address is the replica's local
port for the container port.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import httpx
import yaml

from progdel.errors import ExitCode, ProgdelError
from progdel.sandbox.backend import ReplicaSetKey
from progdel.sandbox.mesh import write_atomically
from progdel.sandbox.processes import Endpoint, spawn, stop_process

INSTALL_HINT = "apt-get install --no-install-recommends prometheus"

# Cluster names are "<namespace>_<workload>_<port>": Kubernetes names have no "_".
_CLUSTER_RE = "([a-z0-9]([-a-z0-9]*[a-z0-9])?)_([^_]+)_([^_]+)"
PODS_FILE = "pods.json"


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


def pod_relabeling() -> list[dict[str, Any]]:
    """The usual ``kubernetes-pods`` relabelling (less the address rewrite: targets carry theirs)."""
    meta = "__meta_kubernetes_"
    return [
        {"source_labels": [f"{meta}pod_annotation_prometheus_io_scrape"], "action": "keep", "regex": "true"},
        {
            "source_labels": [f"{meta}pod_annotation_prometheus_io_path"],
            "action": "replace",
            "target_label": "__metrics_path__",
            "regex": "(.+)",
        },
        {
            "source_labels": [f"{meta}pod_annotation_prometheus_io_scheme"],
            "action": "replace",
            "target_label": "__scheme__",
            "regex": "(https?)",
        },
        {"action": "labelmap", "regex": f"{meta}pod_label_(.+)"},
        {"source_labels": [f"{meta}namespace"], "action": "replace", "target_label": "kubernetes_namespace"},
        {"source_labels": [f"{meta}pod_name"], "action": "replace", "target_label": "kubernetes_pod_name"},
        {"source_labels": [f"{meta}namespace"], "action": "replace", "target_label": "namespace"},
        {"source_labels": [f"{meta}pod_name"], "action": "replace", "target_label": "pod"},
    ]


def prometheus_config(envoy_admin: str, pods_file: Path | None = None) -> dict[str, Any]:
    jobs: list[dict[str, Any]] = [
        {
            "job_name": "sandbox-mesh",
            "metrics_path": "/stats/prometheus",
            "static_configs": [{"targets": [envoy_admin], "labels": {"mesh": "progdel-sandbox"}}],
            "metric_relabel_configs": istio_relabeling(),
        }
    ]
    if pods_file is not None:
        jobs.append(
            {
                "job_name": "kubernetes-pods",
                "file_sd_configs": [{"files": [str(pods_file)], "refresh_interval": "1s"}],
                "relabel_configs": pod_relabeling(),
            }
        )
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "900ms"},
        "scrape_configs": jobs,
    }


_LABEL_NAME = re.compile(r"[^a-zA-Z0-9_]")


def pod_targets(endpoints: Mapping[ReplicaSetKey, Iterable[Endpoint]]) -> list[dict[str, Any]]:
    """``file_sd`` target groups for every running replica, as pod discovery would label them.

    One target per pod at its ``prometheus.io/port`` annotation, else one per declared
    container port; a port the replica does not listen on is left out.
    """
    groups = []
    for key, eps in sorted(endpoints.items(), key=lambda kv: (kv[0].namespace, kv[0].deployment)):
        for e in eps:
            annotations = dict(e.annotations)
            annotated = annotations.get("prometheus.io/port", "").strip()
            wanted: list[int | str | None] = (
                [int(annotated) if annotated.isdigit() else annotated] if annotated else [*sorted(e.ports)]
            ) or [None]
            labels = {
                "__meta_kubernetes_namespace": key.namespace,
                "__meta_kubernetes_pod_name": e.pod,
                "__meta_kubernetes_pod_ready": "true" if e.ready else "false",
                "__meta_kubernetes_pod_phase": "Running",
            }
            for name, value in e.labels.items():
                labels[f"__meta_kubernetes_pod_label_{_LABEL_NAME.sub('_', name)}"] = value
            for name, value in annotations.items():
                labels[f"__meta_kubernetes_pod_annotation_{_LABEL_NAME.sub('_', name)}"] = value
            found = {e.local_port(port) for port in wanted}
            targets = sorted(f"{e.host}:{p}" for p in found if p is not None)
            if targets:
                groups.append({"targets": targets, "labels": labels})
    return groups


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

    def __init__(self, data_dir: Path, port: int, envoy_admin: str, *, scrape_pods: bool = True) -> None:
        self.data_dir = Path(data_dir)
        self.port = port
        self.envoy_admin = envoy_admin
        self.pods_file = self.data_dir / PODS_FILE if scrape_pods else None
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        binary = prometheus_binary()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "prometheus.yml"
        if self.pods_file is not None and not self.pods_file.exists():
            self.pods_file.write_text("[]")
        settings = prometheus_config(self.envoy_admin, self.pods_file)
        config.write_text(yaml.safe_dump(settings, sort_keys=False))
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

    def write_pod_targets(self, endpoints: Mapping[ReplicaSetKey, Iterable[Endpoint]]) -> None:
        """Point the pod scrape job at the running replicas (Prometheus notices the file change)."""
        if self.pods_file is None:
            return
        self.pods_file.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(pod_targets(endpoints), sort_keys=True)
        if not self.pods_file.exists() or self.pods_file.read_text() != text:
            write_atomically(self.pods_file, text)

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
