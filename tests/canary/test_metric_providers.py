"""MetricTemplate providers, as Flagger 1.44's Prometheus provider honours them
(``pkg/metrics/providers/prometheus.go`` and its tests ``prometheus_test.go``): ``headers`` on
every query (a Mimir or Cortex tenant's ``X-Scope-OrgID``), the ``secretRef`` Secret's ``token``
or ``username`` and ``password``, read at each check as ``scheduler_metrics.go`` runMetricChecks
reads it, ``insecureSkipVerify``; a Secret that goes missing or loses its keys mid-run is a
failed check, and a secret's value never shows in a message. (Which server gets whose
credentials: ``tests/metrics/test_credentials.py``.)

A type progdel does not query is refused, never sent as PromQL: Flagger
(``pkg/metrics/providers/factory.go``) has its own client per ``provider.type`` (datadog,
cloudwatch, newrelic...); progdel queries Prometheus' HTTP API only, so a template of another
type is a spec error naming the type, from ``canary check`` and ``canary init`` alike, before
anything is written and without a request to its address.
"""

from __future__ import annotations

import base64
import json
import shutil
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from progdel.canary.cluster import runner_for
from progdel.canary.judge import MetricOutcome
from progdel.canary.runner import RunOptions
from progdel.config.canary import parse_canary
from progdel.kube.client import connect
from progdel.kube.resources import CANARIES, DEPLOYMENTS, METRICTEMPLATES, SECRETS
from progdel.metrics.provider import MetricsUnreachable
from progdel.metrics.servers import MetricsServers
from tests.canary.specs import podinfo_canary
from tests.canary.test_runner_integration import deployment
from tests.canary.test_webhooks import HookServer, hook_server  # noqa: F401 - the fixture


def files(tmp_path: Path, namespace: str, address: str) -> tuple[Path, Path]:
    canary = podinfo_canary(
        namespace, [{"name": "errors", "templateRef": {"name": "dd-errors"}, "thresholdRange": {"max": 1}}]
    )
    template = {
        "apiVersion": "flagger.app/v1beta1",
        "kind": "MetricTemplate",
        "metadata": {"name": "dd-errors", "namespace": namespace},
        "spec": {
            "provider": {"type": "datadog", "address": address, "secretRef": {"name": "datadog"}},
            "query": "sum:istio.mesh.request.count{destination_workload:podinfo}.as_count()",
        },
    }
    c, t = tmp_path / "canary.yaml", tmp_path / "template.yaml"
    c.write_text(yaml.safe_dump(canary))
    t.write_text(yaml.safe_dump(template))
    return c, t


def progdel(kubeconfig: Path, namespace: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "progdel", "--kubeconfig", str(kubeconfig), "-n", namespace, "canary", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_template_of_another_type_is_refused_by_check_and_init(
    sandbox: Any,
    namespace: str,
    tmp_path: Path,
    hook_server: HookServer,  # noqa: F811
) -> None:
    kube = connect(str(sandbox.kubeconfig), None, namespace)
    kube.create(DEPLOYMENTS, deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0"))
    canary, template = files(tmp_path, namespace, hook_server.url("/api"))

    checked = progdel(sandbox.kubeconfig, namespace, "check", "-f", str(canary), "--templates", str(template))
    assert checked.returncode == 2, checked.stderr + checked.stdout
    assert "provider type 'datadog'" in checked.stdout + checked.stderr

    init = progdel(sandbox.kubeconfig, namespace, "init", "-f", str(canary), "--templates", str(template))
    assert init.returncode == 2, init.stderr + init.stdout
    assert "provider type 'datadog'" in init.stderr and "Traceback" not in init.stderr
    assert kube.get_or_none(CANARIES, "podinfo") is None, "nothing is written"
    assert kube.get_or_none(METRICTEMPLATES, "dd-errors") is None
    assert kube.get_or_none(DEPLOYMENTS, "podinfo-primary") is None

    # the same template already in the cluster (Flagger's): refused from there too
    kube.create(METRICTEMPLATES, yaml.safe_load(template.read_text()))
    init = progdel(sandbox.kubeconfig, namespace, "init", "-f", str(canary))
    assert init.returncode == 2 and "provider type 'datadog'" in init.stderr
    assert hook_server.requests == [], "the query was never sent to the template's address"


class FakePrometheus:
    """A loopback server speaking Prometheus' query API: every query answers 5; it records the
    headers of each request. With ``tls`` (a certificate and key file) it serves HTTPS."""

    def __init__(self, tls: tuple[Path, Path] | None = None) -> None:
        self.headers: list[dict[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.headers.append({k.lower(): v for k, v in self.headers.items()})
                body = json.dumps(
                    {
                        "status": "success",
                        "data": {"resultType": "vector", "result": [{"metric": {}, "value": [0, "5"]}]},
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
            self.scheme = "https"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fake_prometheus() -> Iterator[FakePrometheus]:
    server = FakePrometheus()
    yield server
    server.close()


TOKEN = "s3cr3t-t0ken-value"
PASSWORD = "pa55-w0rd-value"


def _secret(name: str, **data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def test_a_templates_headers_and_secret_reach_its_server_and_the_secret_is_read_at_each_check(
    sandbox: Any, namespace: str, tmp_path: Path, fake_prometheus: FakePrometheus
) -> None:
    """TestNewPrometheusProvider / TestPrometheusProvider_RunQueryWithBasicAuth and
    _RunQueryWithHeaders (prometheus_test.go); runMetricChecks reads the Secret at every check,
    so a Secret deleted or rotated mid-run is seen at the next tick."""
    kube = connect(str(sandbox.kubeconfig), None, namespace)
    kube.create(
        METRICTEMPLATES,
        {
            "apiVersion": "flagger.app/v1beta1",
            "kind": "MetricTemplate",
            "metadata": {"name": "tenant-errors", "namespace": namespace},
            "spec": {
                "provider": {
                    "type": "prometheus",
                    "address": fake_prometheus.url,
                    "secretRef": {"name": "prom-auth"},
                    "headers": {"X-Scope-OrgID": ["tenant-a"]},
                },
                "query": "sum(rate(errors_total[{{ interval }}]))",
            },
        },
    )
    doc = podinfo_canary(
        namespace,
        [{"name": "errors", "templateRef": {"name": "tenant-errors"}, "thresholdRange": {"max": 10}}],
    )
    canary = parse_canary(doc, "test").model
    runner = runner_for(
        kube, "podinfo", namespace, lambda _r: None, RunOptions(prometheus_url="http://127.0.0.1:1")
    )
    now = datetime.now(UTC)
    where = f"Metric query failed for errors: secret {namespace}/prom-auth (a MetricTemplate's secretRef)"
    try:
        # the Secret is missing: a failed check, and nothing is sent
        result = runner.measure(canary, now)["errors"]
        assert result.outcome is MetricOutcome.ERROR
        assert result.message == f"{where}: not found"
        assert fake_prometheus.headers == []

        # a token: sent as a bearer token, with the template's headers
        kube.create(SECRETS, _secret("prom-auth", token=TOKEN))
        result = runner.measure(canary, now)["errors"]
        assert (result.outcome, result.value) == (MetricOutcome.VALUE, 5.0)
        sent = fake_prometheus.headers[-1]
        assert sent["authorization"] == f"Bearer {TOKEN}" and sent["x-scope-orgid"] == "tenant-a"

        # the Secret changes: read again at the next check, basic auth now
        kube.delete(SECRETS, "prom-auth")
        kube.create(SECRETS, _secret("prom-auth", username="flagger", password=PASSWORD))
        assert runner.measure(canary, now)["errors"].value == 5.0
        basic = base64.b64encode(f"flagger:{PASSWORD}".encode()).decode()
        assert fake_prometheus.headers[-1]["authorization"] == f"Basic {basic}"

        # a Secret without the keys Flagger reads
        kube.delete(SECRETS, "prom-auth")
        kube.create(SECRETS, _secret("prom-auth", username="flagger"))
        result = runner.measure(canary, now)["errors"]
        assert result.outcome is MetricOutcome.ERROR
        assert result.message == f"{where}: no key token, and no key password for basic auth"

        # deleted mid-run: the next check fails
        kube.delete(SECRETS, "prom-auth")
        assert runner.measure(canary, now)["errors"].message == f"{where}: not found"
    finally:
        runner.close()

    # canary check: the same template passes with a token, and no secret shows in its output
    kube.create(SECRETS, _secret("prom-auth", token=TOKEN))
    kube.create(DEPLOYMENTS, deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0"))
    path = tmp_path / "canary.yaml"
    path.write_text(yaml.safe_dump(doc))
    checked = progdel(sandbox.kubeconfig, namespace, "check", "-f", str(path), "-o", "json")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert fake_prometheus.headers[-1]["authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in checked.stdout + checked.stderr


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make a self-signed certificate")
def test_insecure_skip_verify_accepts_a_self_signed_certificate(tmp_path: Path) -> None:
    """TestNewPrometheusProvider's insecureSkipVerify (prometheus.go: a transport that skips the
    certificate check); without it the certificate is checked."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    server = FakePrometheus(tls=(cert, key))
    at = datetime.now(UTC)
    try:
        servers = MetricsServers(None, "http://127.0.0.1:1", env={})
        with pytest.raises(MetricsUnreachable, match="certificate"):
            servers.provider(server.url).query("vector(1)", at)
        assert servers.provider(server.url, insecure_skip_verify=True).query("vector(1)", at) == 5.0
        servers.close()
    finally:
        server.close()
