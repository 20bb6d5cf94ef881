"""URL and credential resolution (no server needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from progdel.errors import InvalidInput
from progdel.metrics.prometheus import resolve_prometheus_credentials, resolve_prometheus_url


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
