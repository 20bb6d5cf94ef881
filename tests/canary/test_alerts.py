"""Alerts: Slack, Teams and generic JSON payloads against a loopback server, severities, and
secret URLs that never show."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from progdel.canary import store
from progdel.canary.alerts import (
    ALERTPROVIDERS,
    AlertMessage,
    AlertSender,
    AlertTarget,
    Severity,
    target_from_config,
)
from progdel.canary.cluster import initialize, runner_for
from progdel.canary.runner import RunOptions
from progdel.errors import ExitCode, InvalidInput
from progdel.kube.client import Kube, connect
from progdel.kube.resources import DEPLOYMENTS, SECRETS
from tests.canary.test_runner_integration import T0, ReplayClock, deployment, new_revision
from tests.canary.test_webhooks import HookServer


@pytest.fixture
def hook_server() -> Iterator[HookServer]:
    server = HookServer()
    server.thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


SEVERITIES: tuple[Severity, ...] = ("info", "warn", "error")
MSG = {
    sev: AlertMessage("podinfo", "test", f"a {sev} alert", sev, "Progressing", {"Canary weight": "10"})
    for sev in SEVERITIES
}


def test_payloads_and_severity_filtering(hook_server: HookServer) -> None:
    targets = [
        AlertTarget("s", "slack", hook_server.url("/slack"), "info", channel="#deploys"),
        AlertTarget("t", "msteams", hook_server.url("/teams"), "warn"),
        AlertTarget("g", "generic", hook_server.url("/json"), "error"),
    ]
    sender = AlertSender()
    for sev in SEVERITIES:
        assert sender.send(targets, MSG[sev]) == []
    sender.close()
    slack = hook_server.calls("/slack")
    assert [b["attachments"][0]["text"] for b in slack] == ["a info alert", "a warn alert", "a error alert"]
    assert slack[0]["channel"] == "#deploys" and slack[0]["text"] == "podinfo.test: a info alert"
    assert slack[0]["attachments"][0]["fields"] == [{"title": "Canary weight", "value": "10", "short": True}]
    teams = hook_server.calls("/teams")
    assert [b["sections"][0]["activitySubtitle"] for b in teams] == ["a warn alert", "a error alert"]
    assert teams[0]["@type"] == "MessageCard" and teams[0]["sections"][0]["facts"] == [
        {"name": "Canary weight", "value": "10"}
    ]
    generic = hook_server.calls("/json")
    assert generic == [
        {
            "canary": "podinfo",
            "namespace": "test",
            "severity": "error",
            "phase": "Progressing",
            "message": "a error alert",
            "facts": {"Canary weight": "10"},
        }
    ]


def test_a_failing_alert_names_a_masked_url() -> None:
    target = AlertTarget("s", "slack", "http://127.0.0.1:9/services/T000/SECRET", "info")
    [error] = AlertSender(timeout=2).send([target], MSG["info"])
    assert "SECRET" not in error and "http://127.0.0.1:9/***" in error
    assert "SECRET" not in repr(target)


def test_targets_from_files_or_environment(tmp_path: Path) -> None:
    f = tmp_path / "url"
    f.write_text("https://hooks.example/abc\n")
    assert target_from_config("a", "slack", address_file=str(f)).address == "https://hooks.example/abc"
    t = target_from_config("b", "json", "warn", address_env="HOOK", env={"HOOK": "https://x/y"})
    assert (t.kind, t.severity, t.address) == ("generic", "warn", "https://x/y")
    with pytest.raises(InvalidInput, match=r"\$MISSING is not set"):
        target_from_config("c", "slack", address_env="MISSING", env={})


@pytest.fixture
def kube(sandbox: Any, namespace: str) -> Kube:
    return connect(str(sandbox.kubeconfig), None, namespace)


def test_canary_alerts_from_alert_providers_and_secrets(
    kube: Kube, namespace: str, hook_server: HookServer
) -> None:
    secret_url = hook_server.url("/services/T0/TOPSECRET")
    kube.create(
        SECRETS,
        {
            "metadata": {"name": "slack-url"},
            "data": {"address": base64.b64encode(secret_url.encode()).decode()},
        },
    )
    kube.create(
        ALERTPROVIDERS,
        {
            "apiVersion": "flagger.app/v1beta1",
            "kind": "AlertProvider",
            "metadata": {"name": "slack"},
            "spec": {"type": "slack", "secretRef": {"name": "slack-url"}},
        },
    )
    kube.create(
        ALERTPROVIDERS,
        {
            "apiVersion": "flagger.app/v1beta1",
            "kind": "AlertProvider",
            "metadata": {"name": "teams"},
            "spec": {"type": "msteams", "address": "http://127.0.0.1:9/webhookb2/HIDDEN"},
        },
    )
    doc = {
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": namespace},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898},
            "analysis": {
                "interval": "1s",
                "threshold": 1,
                "stepWeight": 50,
                "maxWeight": 50,
                "alerts": [
                    {"name": "dev", "severity": "info", "providerRef": {"name": "slack"}},
                    {"name": "oncall", "severity": "error", "providerRef": {"name": "teams"}},
                ],
                "webhooks": [{"name": "load", "type": "rollout", "url": hook_server.url("/load")}],
            },
        },
    }
    hook_server.codes["/load"] = 500
    kube.create(DEPLOYMENTS, deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0"))
    store.apply_canary(kube, doc, namespace)
    records: list[dict[str, Any]] = []
    assert initialize(kube, "podinfo", namespace, records.append, timeout=30) is ExitCode.OK
    new_revision(kube)
    runner = runner_for(kube, "podinfo", namespace, records.append, RunOptions(), ReplayClock(T0))
    assert runner.run() is ExitCode.CANARY_FAILED
    # Flagger's alert wording (pkg/controller/scheduler.go), which differs from its events'; a
    # failing rollout hook is a Warning event and no alert, only the rollback it causes alerts
    texts = [b["attachments"][0]["text"] for b in hook_server.calls("/services/T0/TOPSECRET")]
    assert texts == [
        "New Deployment detected, initialization completed.",
        "New revision detected, progressing canary analysis.",
        "Failed checks threshold reached 1",
    ]
    printed = repr(records)
    assert "TOPSECRET" not in printed and "HIDDEN" not in printed
    assert "alert oncall to http://127.0.0.1:9/*** failed" in printed, "the error alert went to teams (down)"


MINIMAL_PROJECT = (
    "environments:\n  - {name: dev, namespace: dev, order: 1, promotionStrategy: Auto, kind: direct}\n"
    "apps:\n  - {name: web, image: registry.example.com/web}\n"
)


def test_alerts_from_progdel_yaml_reach_their_webhook(
    sandbox: Any, kube: Kube, namespace: str, hook_server: HookServer, tmp_path: Path
) -> None:
    import os
    import subprocess

    from tests.canary.test_watch_cli import always_failing_canary, progdel

    kube.create(DEPLOYMENTS, deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0"))
    store.apply_canary(kube, always_failing_canary(namespace, threshold=5), namespace)
    config = tmp_path / "progdel.yaml"
    config.write_text(
        MINIMAL_PROJECT
        + "defaults:\n  alerts:\n    - {name: ops, type: generic, severity: info, addressEnv: OPS_WEBHOOK}\n"
    )
    proc = subprocess.run(
        progdel(
            "--config",
            str(config),
            "-n",
            namespace,
            "canary",
            "watch",
            "podinfo",
            "--once",
            kubeconfig=sandbox.kubeconfig,
        ),
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "OPS_WEBHOOK": hook_server.url("/ops")},
    )
    assert proc.returncode == 0, proc.stderr
    sent = hook_server.calls("/ops")
    assert sent, "the alert configured in progdel.yaml was not sent"
    assert sent[0]["message"] == "New Deployment detected, initialization completed."
    assert hook_server.url("/ops") not in proc.stdout + proc.stderr, "the secret URL is never printed"


def test_an_alert_in_progdel_yaml_needs_exactly_one_address(tmp_path: Path) -> None:
    from progdel.config.project import load_project

    config = tmp_path / "progdel.yaml"
    config.write_text(MINIMAL_PROJECT + "defaults:\n  alerts:\n    - {name: ops, type: generic}\n")
    with pytest.raises(InvalidInput, match=r"progdel\.yaml:7: defaults\.alerts\[0\]: give exactly one of"):
        load_project(str(config), tmp_path)
