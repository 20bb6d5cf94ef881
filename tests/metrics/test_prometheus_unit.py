"""URL and credential resolution, and what an unreachable URL says (no server needed)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from progdel.errors import InvalidInput
from progdel.metrics.prometheus import (
    PrometheusProvider,
    in_cluster_hint,
    resolve_prometheus_credentials,
    resolve_prometheus_url,
)
from progdel.metrics.provider import MetricsUnreachable


def test_url_order() -> None:
    env = {"PROGDEL_PROMETHEUS_URL": "http://env:9090"}
    assert resolve_prometheus_url("http://flag:9090/", env, "http://ms", "http://proj") == "http://flag:9090"
    assert resolve_prometheus_url(None, env, "http://ms", "http://proj") == "http://env:9090"
    assert resolve_prometheus_url(None, {}, "http://ms", "http://proj") == "http://ms"
    assert resolve_prometheus_url(None, {}, None, "http://proj") == "http://proj"
    assert resolve_prometheus_url(None, {}) == "http://prometheus.istio-system:9090"


def test_credentials_from_env_and_files(tmp_path: Path) -> None:
    assert resolve_prometheus_credentials({}).bearer_token is None
    assert resolve_prometheus_credentials({}).verify is True
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    creds = resolve_prometheus_credentials({"PROGDEL_PROMETHEUS_TOKEN_FILE": str(token)})
    assert creds.bearer_token == "s3cret"
    pw = tmp_path / "pw"
    pw.write_text("pass")
    creds = resolve_prometheus_credentials(
        {"PROGDEL_PROMETHEUS_USERNAME": "u", "PROGDEL_PROMETHEUS_PASSWORD_FILE": str(pw)}
    )
    assert creds.basic_auth == ("u", "pass")
    with pytest.raises(InvalidInput, match="PROGDEL_PROMETHEUS_TOKEN_FILE=/nope"):
        resolve_prometheus_credentials({"PROGDEL_PROMETHEUS_TOKEN_FILE": "/nope"})
    with pytest.raises(InvalidInput, match="use one"):
        resolve_prometheus_credentials({"PROGDEL_PROMETHEUS_TOKEN": "t", "PROGDEL_PROMETHEUS_USERNAME": "u"})


def test_an_in_cluster_address_that_does_not_resolve_says_how_to_reach_it(httpx_mock: Any) -> None:
    httpx_mock.add_exception(httpx.ConnectError("[Errno -2] Name or service not known"))
    with pytest.raises(MetricsUnreachable) as err:
        PrometheusProvider("http://prometheus.istio-system:9090").query("up", datetime.now(UTC))
    assert str(err.value) == (
        "cannot reach Prometheus at http://prometheus.istio-system:9090: host not found (an in-cluster "
        "address: from outside the cluster run 'kubectl -n istio-system port-forward svc/prometheus 9090' "
        "and pass --prometheus-url http://127.0.0.1:9090)"
    )


def test_the_hint_is_only_for_service_addresses() -> None:
    assert in_cluster_hint("http://prom.monitoring.svc.cluster.local:8080").endswith("http://127.0.0.1:8080)")
    assert in_cluster_hint("https://prometheus.example.com") == ""
    assert in_cluster_hint("http://localhost:9090") == ""
