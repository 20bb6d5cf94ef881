"""Flagger's Istio tutorial, end to end, as a user runs it on ``progdel sandbox up --mesh
--allow-commands``: the real ``kubectl`` applies Flagger's own manifests and the tutorial's
Canary, ``progdel canary init`` takes the place of Flagger's initialization, ``kubectl set image``
starts a release and ``progdel canary watch`` drives it.

Follows ``docs/gitbook/tutorials/istio-progressive-delivery.md`` of Flagger's repository, read at
run time with the ``kustomize/podinfo`` and ``kustomize/tester`` manifests it applies, from a
checkout beside this repository (``../upstream/flagger``); the test is skipped without one.
Its Canary is the tutorial's with only the intervals shortened. Every request the canary gets
comes from the tutorial's own webhooks, run by the load tester: the acceptance test
(``curl ... /token``) and the load test (``hey``). The "automated rollback" section generates
errors with ``curl http://podinfo-canary:9898/status/500`` from the tester's pod; here the same
requests come from a webhook of the Canary, since the sandbox has no pods to exec into.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import MeshSandbox, running_mesh_sandbox

FLAGGER = Path(__file__).resolve().parents[3] / "upstream" / "flagger"
TUTORIAL = FLAGGER / "docs" / "gitbook" / "tutorials" / "istio-progressive-delivery.md"
NS = "test"

# The tutorial's intervals, shortened: the analysis ticks every 2 s instead of every minute (a
# tick without canary traffic yet, right after the first step, is one failed check of the five
# the tutorial allows; the metric windows stay long enough to hold the load test's requests).
ANALYSIS_INTERVAL = {"1m": "2s"}
METRIC_INTERVAL = {"1m": "30s", "30s": "15s"}


def tutorial_objects() -> dict[str, dict[str, Any]]:
    """The first object of each kind among the tutorial's YAML blocks (Gateway, Canary)."""
    objects: dict[str, dict[str, Any]] = {}
    for block in re.findall(r"```yaml\n(.*?)```", TUTORIAL.read_text(), flags=re.S):
        obj = yaml.safe_load(block)
        if isinstance(obj, dict) and obj.get("kind"):
            objects.setdefault(obj["kind"], obj)
    return objects


def shortened(canary: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(canary)
    analysis = out["spec"]["analysis"]
    analysis["interval"] = ANALYSIS_INTERVAL[analysis["interval"]]
    for metric in analysis["metrics"]:
        metric["interval"] = METRIC_INTERVAL[metric["interval"]]
    return out


def with_errors(canary: dict[str, Any]) -> dict[str, Any]:
    """The tutorial's rollback traffic: the load test also requests ``/status/500``."""
    out = copy.deepcopy(canary)
    [load] = [w for w in out["spec"]["analysis"]["webhooks"] if w["name"] == "load-test"]
    errors = copy.deepcopy(load)
    errors["name"] = "load-test-errors"
    errors["metadata"]["cmd"] = load["metadata"]["cmd"].replace(":9898/", ":9898/status/500")
    assert errors["metadata"]["cmd"] != load["metadata"]["cmd"]
    out["spec"]["analysis"]["webhooks"].append(errors)
    return out


class User:
    """Runs kubectl and progdel as subprocesses with the sandbox's kubeconfig."""

    def __init__(self, kubeconfig: Path, workdir: Path) -> None:
        self.workdir = workdir
        self.env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
        for name in ("PROGDEL_PROMETHEUS_URL", "http_proxy", "HTTP_PROXY"):
            self.env.pop(name, None)

    def run(
        self, *argv: str, stdin: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv, input=stdin, capture_output=True, text=True, timeout=timeout, env=self.env, cwd=self.workdir
        )

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        out = self.run("kubectl", *args, stdin=stdin)
        assert out.returncode == 0, f"kubectl {' '.join(args)}: {out.stderr}"
        return out.stdout

    def progdel(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return self.run(sys.executable, "-m", "progdel", *args, timeout=timeout)

    def watch(self) -> tuple[int, list[dict[str, Any]]]:
        """``progdel canary watch`` until it ends: its exit code and its NDJSON records."""
        out = self.progdel(
            "-n", NS, "-o", "ndjson", "canary", "watch", "podinfo", "--timeout", "480", timeout=540
        )
        records = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
        return out.returncode, records

    def image(self, deployment: str) -> str:
        return self.kubectl(
            "-n", NS, "get", "deploy", deployment, "-o", "jsonpath={.spec.template.spec.containers[0].image}"
        )


def events(records: list[dict[str, Any]]) -> list[str]:
    return [str(r.get("message")) for r in records if r.get("kind") == "event"]


def judged(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        m
        for r in records
        if r.get("kind") == "tick"
        for m in r.get("metrics", [])
        if m.get("value") is not None
    ]


@pytest.fixture
def tutorial_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MeshSandbox]:
    """A mesh sandbox of the tutorial's own: its namespace ``test`` is the README walkthrough's
    too, and with a Prometheus each, neither test waits for the other's requests to leave the
    metric windows."""
    with running_mesh_sandbox(tmp_path_factory.mktemp("tutorial-sandbox")) as sandbox:
        yield sandbox


@pytest.mark.e2e
@pytest.mark.timeout(1200)
@pytest.mark.skipif(not TUTORIAL.exists(), reason=f"needs Flagger's checkout in {FLAGGER} (read at run time)")
@pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("kubectl", "hey", "curl")),
    reason="needs kubectl, hey and curl (scripts/bootstrap installs them)",
)
def test_flaggers_istio_tutorial_promotes_then_rolls_back(
    tutorial_sandbox: MeshSandbox, tmp_path: Path
) -> None:
    objects = tutorial_objects()
    gateway, canary = objects["Gateway"], shortened(objects["Canary"])
    assert canary["metadata"]["namespace"] == NS
    user = User(tutorial_sandbox.server.write_kubeconfig(tmp_path / "kubeconfig"), tmp_path)
    tutorial_sandbox.wait_no_traffic(NS)

    # Bootstrap, as the tutorial writes it (the gateway in istio-system, the test namespace)
    user.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(gateway))
    user.kubectl("create", "ns", NS)
    try:
        user.kubectl("label", "namespace", NS, "istio-injection=enabled")
        user.kubectl("apply", "-k", str(FLAGGER / "kustomize" / "podinfo"))
        user.kubectl("apply", "-k", str(FLAGGER / "kustomize" / "tester"))
        user.kubectl("-n", NS, "rollout", "status", "deployment/podinfo", "--timeout=120s")
        user.kubectl("-n", NS, "rollout", "status", "deployment/flagger-loadtester", "--timeout=120s")
        (tmp_path / "podinfo-canary.yaml").write_text(yaml.safe_dump(canary))
        init = user.progdel("canary", "init", "-f", "podinfo-canary.yaml")
        assert init.returncode == 0, init.stdout + init.stderr
        for name in ("podinfo", "podinfo-primary", "podinfo-canary"):
            user.kubectl("-n", NS, "get", "service", name)
        user.kubectl("-n", NS, "get", "virtualservice", "podinfo")
        user.kubectl("-n", NS, "get", "hpa", "podinfo-primary")

        # Automated canary promotion
        user.kubectl(
            "-n", NS, "set", "image", "deployment/podinfo", "podinfod=ghcr.io/stefanprodan/podinfo:6.0.1"
        )
        code, records = user.watch()
        said = events(records)
        assert code == 0, said[-10:]
        assert user.image("podinfo-primary") == "ghcr.io/stefanprodan/podinfo:6.0.1"
        assert "Pre-rollout check acceptance-test passed" in said
        assert f"Advance podinfo.{NS} canary weight 50" in said
        assert f"Promotion completed! Scaling down podinfo.{NS}" in said
        # the tutorial's load test gave the canary traffic to judge, and it passed
        passed = judged(records)
        assert {m["name"] for m in passed} == {"request-success-rate", "request-duration"}
        assert all(m["verdict"] == "pass" for m in passed), passed

        # Automated rollback: the canary answers the load tester's /status/500 requests
        (tmp_path / "podinfo-canary.yaml").write_text(yaml.safe_dump(with_errors(canary)))
        user.kubectl("apply", "-f", "podinfo-canary.yaml")
        user.kubectl(
            "-n", NS, "set", "image", "deployment/podinfo", "podinfod=ghcr.io/stefanprodan/podinfo:6.0.2"
        )
        code, records = user.watch()
        said = events(records)
        assert code == 3, said[-10:]
        assert user.image("podinfo-primary") == "ghcr.io/stefanprodan/podinfo:6.0.1"
        halts = [m for m in said if m.startswith(f"Halt podinfo.{NS} advancement success rate")]
        assert halts and all(m.endswith("< 99%") for m in halts), said
        assert f"Rolling back podinfo.{NS} failed checks threshold reached 5" in said
        assert f"Canary failed! Scaling down podinfo.{NS}" in said
        status = json.loads(user.kubectl("-n", NS, "get", "canary", "podinfo", "-o", "json"))["status"]
        assert status["phase"] == "Failed" and status["canaryWeight"] == 0
    finally:
        user.run("kubectl", "delete", "namespace", NS, "--wait=true", timeout=120)
        user.run("kubectl", "-n", "istio-system", "delete", "gateway", gateway["metadata"]["name"])
