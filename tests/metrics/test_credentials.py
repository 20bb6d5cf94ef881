"""Whose credentials go where: progdel's own (from its environment) only to the Prometheus URL the
operator configured; a Canary's ``spec.metricsServer`` or a MetricTemplate's ``provider.address``
only what the template's own ``secretRef`` holds, read as Flagger reads it
(``pkg/metrics/providers/prometheus.go``: ``token``, else ``username`` and ``password``)."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from progdel.canary.cluster import runner_for
from progdel.canary.runner import RunOptions
from progdel.config.canary import parse_canary
from progdel.errors import InvalidInput
from progdel.kube.client import connect
from progdel.kube.resources import CANARIES, EVENTS, METRICTEMPLATES, SECRETS
from progdel.metrics.prometheus import PrometheusCredentials, same_origin
from progdel.metrics.servers import MetricsServers

AT = datetime.fromtimestamp(1_700_000_000, UTC)
ANSWER = {
    "status": "success",
    "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "1"]}]},
}
OWN = {"PROGDEL_PROMETHEUS_TOKEN": "own-token"}


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("http://prom:9090", "http://prom:9090/", True),
        ("http://prom:9090", "http://PROM:9090/api", True),
        ("http://prom", "http://prom:80", True),
        ("https://prom", "https://prom:443/x", True),
        ("http://prom.monitoring:9090", "http://prom.monitoring.:9090", True),
        ("http://prom:9090", "https://prom:9090", False),
        ("http://prom:9090", "http://prom:9091", False),
        ("http://prom:9090", "http://prom:9090.evil.example", False),
        ("http://prom:9090", "http://prom:9090@evil.example", False),
        ("http://prom", "http://prom.evil.example", False),
        ("http://prom.monitoring:9090", "http://prom.monitoring.svc:9090", False),
        ("http://prom:9090", "ftp://prom:9090", False),
        ("http://prom:9090", "not a url", False),
    ],
)
def test_origins_compare_scheme_host_and_port(a: str, b: str, same: bool) -> None:
    assert same_origin(a, b) is same
    assert same_origin(b, a) is same


def _sent(httpx_mock: Any) -> list[httpx.Request]:
    return list(httpx_mock.get_requests())


def test_own_credentials_go_only_to_the_configured_server(httpx_mock: Any) -> None:
    httpx_mock.add_response(json=ANSWER, is_reusable=True)
    servers = MetricsServers(None, "http://prom.example:9090", OWN)
    servers.provider("http://prom.example:9090/").query("up", AT)
    servers.provider("http://evil.example:9090").query("up", AT)
    servers.provider("http://prom.example:9090@evil.example").query("up", AT)
    servers.close()
    own, *others = _sent(httpx_mock)
    assert own.headers["Authorization"] == "Bearer own-token"
    assert [r.url.host for r in others] == ["evil.example", "evil.example"]
    assert all("own-token" not in r.headers.get("Authorization", "") for r in others)


def test_basic_auth_and_ca_stay_with_the_configured_server_too(tmp_path: Any) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    env = {
        "PROGDEL_PROMETHEUS_USERNAME": "u",
        "PROGDEL_PROMETHEUS_PASSWORD": "p",
        "PROGDEL_PROMETHEUS_CA_FILE": str(ca),
    }
    servers = MetricsServers(None, "https://prom.example", env)
    assert servers.credentials_for("https://prom.example:443/") == PrometheusCredentials(
        None, ("u", "p"), str(ca)
    )
    assert servers.credentials_for("https://other.example") == PrometheusCredentials()


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"PROGDEL_PROMETHEUS_TOKEN": "tok\r"}, "PROGDEL_PROMETHEUS_TOKEN"),
        ({"PROGDEL_PROMETHEUS_TOKEN": "tok\nX-Evil: 1"}, "PROGDEL_PROMETHEUS_TOKEN"),
        (
            {"PROGDEL_PROMETHEUS_USERNAME": "u\x00", "PROGDEL_PROMETHEUS_PASSWORD": "p"},
            "PROGDEL_PROMETHEUS_USERNAME",
        ),
        (
            {"PROGDEL_PROMETHEUS_USERNAME": "u", "PROGDEL_PROMETHEUS_PASSWORD": "p\r\n"},
            "PROGDEL_PROMETHEUS_PASSWORD",
        ),
    ],
)
def test_a_credential_with_a_control_character_is_refused_by_name(env: dict[str, str], named: str) -> None:
    with pytest.raises(InvalidInput) as err:
        MetricsServers(None, "http://prom:9090", env)
    assert str(err.value).startswith(f"{named} contains a control character")
    assert "tok" not in str(err.value) and "X-Evil" not in str(err.value)


def test_a_token_file_with_a_control_character_is_refused(tmp_path: Any) -> None:
    token = tmp_path / "token"
    token.write_text("abc\x1b[2Jdef\n")
    with pytest.raises(
        InvalidInput, match=r"PROGDEL_PROMETHEUS_TOKEN_FILE=.*: the file contains a control character"
    ):
        MetricsServers(None, "http://prom:9090", {"PROGDEL_PROMETHEUS_TOKEN_FILE": str(token)})


def _secret(data: dict[str, str]) -> dict[str, str]:
    return {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}


def test_flagger_secret_keys() -> None:
    assert PrometheusCredentials.from_secret({"token": b"t", "username": b"u"}, "s").bearer_token == "t"
    assert PrometheusCredentials.from_secret({"username": b"u", "password": b"p"}, "s").basic_auth == (
        "u",
        "p",
    )
    with pytest.raises(InvalidInput, match="s: no key token, and no key password for basic auth"):
        PrometheusCredentials.from_secret({"username": b"u"}, "s")
    with pytest.raises(InvalidInput, match="s: key token contains a control character"):
        PrometheusCredentials.from_secret({"token": b"t\n"}, "s")


CANARY = {
    "apiVersion": "flagger.app/v1beta1",
    "kind": "Canary",
    "metadata": {"name": "podinfo"},
    "spec": {
        "metricsServer": "http://metrics-server.example.org:9090",
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
        "service": {"port": 9898},
        "analysis": {
            "interval": "1s",
            "threshold": 1,
            "stepWeight": 10,
            "metrics": [
                {"name": "inline", "query": "vector(1)", "thresholdRange": {"min": 1}},
                {"name": "with-token", "templateRef": {"name": "with-token"}, "thresholdRange": {"min": 1}},
                {"name": "with-basic", "templateRef": {"name": "with-basic"}, "thresholdRange": {"min": 1}},
                {"name": "no-secret", "templateRef": {"name": "no-secret"}, "thresholdRange": {"min": 1}},
            ],
        },
    },
}


def _template(name: str, address: str, secret: str | None) -> dict[str, Any]:
    provider: dict[str, Any] = {"type": "prometheus", "address": address}
    if secret:
        provider["secretRef"] = {"name": secret}
    return {
        "apiVersion": "flagger.app/v1beta1",
        "kind": "MetricTemplate",
        "metadata": {"name": name},
        "spec": {"provider": provider, "query": "vector(1)"},
    }


def test_a_canary_run_sends_each_server_only_its_own_credentials(
    sandbox: Any, namespace: str, httpx_mock: Any, monkeypatch: Any
) -> None:
    """progdel's token is set and configured for the default Prometheus; the Canary names another
    metricsServer and its templates other addresses: none of them sees progdel's token."""
    monkeypatch.setenv("PROGDEL_PROMETHEUS_TOKEN", "own-token")
    monkeypatch.delenv("PROGDEL_PROMETHEUS_URL", raising=False)
    kube = connect(str(sandbox.kubeconfig), None, namespace)
    kube.create(
        SECRETS, {"metadata": {"name": "tok"}, "data": _secret({"token": "template-token"})}, namespace
    )
    kube.create(
        SECRETS,
        {"metadata": {"name": "basic"}, "data": _secret({"username": "bob", "password": "pw"})},
        namespace,
    )
    for t in (
        _template("with-token", "http://tokened.example.org:9090", "tok"),
        _template("with-basic", "http://basic.example.org:9090", "basic"),
        _template("no-secret", "http://plain.example.org:9090", None),
    ):
        kube.create(METRICTEMPLATES, t, namespace)
    kube.create(CANARIES, {**CANARY, "metadata": {"name": "podinfo", "namespace": namespace}}, namespace)
    httpx_mock.add_response(json=ANSWER, is_reusable=True)
    runner = runner_for(kube, "podinfo", namespace, lambda _r: None, RunOptions())
    canary = parse_canary({**CANARY, "metadata": {"name": "podinfo", "namespace": namespace}}, "c").model
    measured = runner.measure(canary, AT)
    runner.close()
    assert {name: m.value for name, m in measured.items()} == {
        "inline": 1.0,
        "with-token": 1.0,
        "with-basic": 1.0,
        "no-secret": 1.0,
    }
    auth = {r.url.host: r.headers.get("Authorization") for r in httpx_mock.get_requests()}
    assert auth == {
        "metrics-server.example.org": None,
        "tokened.example.org": "Bearer template-token",
        "basic.example.org": httpx.BasicAuth("bob", "pw")._auth_header,
        "plain.example.org": None,
    }


def test_the_configured_url_gets_own_credentials_even_when_a_canary_names_it(
    sandbox: Any, namespace: str, httpx_mock: Any, monkeypatch: Any
) -> None:
    monkeypatch.setenv("PROGDEL_PROMETHEUS_TOKEN", "own-token")
    kube = connect(str(sandbox.kubeconfig), None, namespace)
    httpx_mock.add_response(json=ANSWER, is_reusable=True)
    canary = parse_canary({**CANARY, "metadata": {"name": "podinfo", "namespace": namespace}}, "c").model
    canary.analysis.metrics = canary.analysis.metrics[:1]
    runner = runner_for(
        kube,
        "podinfo",
        namespace,
        lambda _r: None,
        RunOptions(prometheus_url="http://METRICS-server.example.org:9090/"),
    )
    runner.measure(canary, AT)
    runner.close()
    (request,) = httpx_mock.get_requests()
    assert request.headers["Authorization"] == "Bearer own-token"


def test_a_missing_secret_is_a_spec_error_before_any_query(
    sandbox: Any, namespace: str, httpx_mock: Any
) -> None:
    kube = connect(str(sandbox.kubeconfig), None, namespace)
    kube.create(
        METRICTEMPLATES, _template("with-token", "http://tokened.example.org:9090", "absent"), namespace
    )
    canary = parse_canary({**CANARY, "metadata": {"name": "podinfo", "namespace": namespace}}, "c").model
    canary.analysis.metrics = canary.analysis.metrics[1:2]
    runner = runner_for(kube, "podinfo", namespace, lambda _r: None, RunOptions())
    with pytest.raises(
        InvalidInput, match=rf"secret {namespace}/absent \(a MetricTemplate's secretRef\): not found"
    ):
        runner.preflight(canary)
    assert httpx_mock.get_requests() == []


def test_watch_refuses_a_bad_token_before_writing_anything(sandbox: Any, namespace: str) -> None:
    """The token with a CR used to reach an HTTP header, fail there, and be written into two Events
    and the Canary status. Now it is refused first, by name."""
    kube = connect(str(sandbox.kubeconfig), None, namespace)
    canary = {**CANARY, "metadata": {"name": "podinfo", "namespace": namespace}}
    before = kube.create(CANARIES, canary, namespace)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "progdel",
            "--kubeconfig",
            str(sandbox.kubeconfig),
            "-n",
            namespace,
            "canary",
            "watch",
            "podinfo",
            "--once",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PROGDEL_PROMETHEUS_TOKEN": "sekrit\r"},
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert (
        proc.stderr == "error: PROGDEL_PROMETHEUS_TOKEN contains a control character (CR, LF, NUL...); "
        "refusing to use it\n"
    )
    assert kube.items(EVENTS, namespace) == []
    after = kube.get(CANARIES, "podinfo", namespace)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_credentials_never_show_their_secrets_in_repr() -> None:
    """A traceback or a debug print shows the credentials object: the token and the password stay out."""
    creds = PrometheusCredentials(bearer_token="tok-secret-1", verify="/ca.pem")
    basic = PrometheusCredentials(basic_auth=("alice", "pw-secret-2"))
    shown = repr(creds) + repr(basic) + str([creds, basic])
    assert "tok-secret-1" not in shown and "pw-secret-2" not in shown
    assert "/ca.pem" in repr(creds)
    assert creds != PrometheusCredentials(bearer_token="other", verify="/ca.pem"), "still compared by value"
