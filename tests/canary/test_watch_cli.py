"""`progdel canary watch` as a user runs it: a subprocess, its exit code and its NDJSON output."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from progdel.canary import store
from progdel.kube.client import Kube, connect
from progdel.kube.resources import CANARIES, DEPLOYMENTS
from tests.canary.test_runner_integration import deployment, new_revision, vs_weights
from tests.promfixture import require_prometheus, run_prometheus


def progdel(*args: str, kubeconfig: Path) -> list[str]:
    return [sys.executable, "-m", "progdel", "--kubeconfig", str(kubeconfig), *args]


def run_progdel(*args: str, kubeconfig: Path) -> subprocess.CompletedProcess[str]:
    """Run ``progdel`` to the end, as a user would, and return what it printed."""
    return subprocess.run(progdel(*args, kubeconfig=kubeconfig), capture_output=True, text=True, timeout=60)


def always_failing_canary(namespace: str, threshold: int) -> dict[str, Any]:
    """Every analysis tick fails one check: the count of failed checks is the count of ticks."""
    return {
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": namespace},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898},
            "analysis": {
                "interval": "1s",
                "threshold": threshold,
                "stepWeight": 10,
                "maxWeight": 50,
                "metrics": [{"name": "always-zero", "query": "vector(0)", "thresholdRange": {"min": 1}}],
            },
        },
    }


@pytest.fixture
def kube(sandbox: Any, namespace: str) -> Kube:
    require_prometheus()
    return connect(str(sandbox.kubeconfig), None, namespace)


def start_watch(sandbox: Any, namespace: str, prom_url: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        progdel(
            "-n",
            namespace,
            "-o",
            "ndjson",
            "canary",
            "watch",
            "podinfo",
            "--prometheus-url",
            prom_url,
            kubeconfig=sandbox.kubeconfig,
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def read_until(proc: subprocess.Popen[str], predicate: Any, timeout: float = 60) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        records.append(json.loads(line))
        if predicate(records[-1]):
            return records
    raise AssertionError(f"condition not met; records: {records[-5:]}")


def test_kill_9_then_watch_again_continues_without_counting_twice(
    sandbox: Any, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    kube.create(DEPLOYMENTS, deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0"))
    store.apply_canary(kube, always_failing_canary(namespace, threshold=5), namespace)
    with run_prometheus(None, tmp_path) as prom:
        init = run_progdel(
            "-n",
            namespace,
            "-o",
            "ndjson",
            "canary",
            "watch",
            "podinfo",
            "--once",
            "--prometheus-url",
            prom.url,
            kubeconfig=sandbox.kubeconfig,
        )
        assert init.returncode == 0, init.stderr  # the first tick initializes
        new_revision(kube)

        first = start_watch(sandbox, namespace, prom.url)
        before = read_until(first, lambda r: r.get("kind") == "tick" and r.get("failedChecks") == 2)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        stored = kube.get(CANARIES, "podinfo")["status"]
        assert stored["failedChecks"] == 2 and stored["canaryWeight"] == 10

        second = start_watch(sandbox, namespace, prom.url)
        out, err = second.communicate(timeout=60)
        assert second.returncode == 3, err
    after = [json.loads(line) for line in out.splitlines() if line.strip()]
    counts = [r["failedChecks"] for r in before + after if r.get("kind") == "tick" and r["phase"] != "Failed"]
    steps = [b - a for a, b in itertools.pairwise(counts)]
    assert all(step in (0, 1) for step in steps), f"a check was counted twice: {counts}"
    assert counts[-1] == 4 and after[-1]["kind"] == "result" and after[-1]["outcome"] == "rolled back"
    resumed = [r for r in after if r.get("kind") == "tick"]
    assert resumed[0]["canaryWeight"] == 10, "the run continues from the stored weight"
    assert vs_weights(kube) == (100, 0)
    shown = run_progdel(
        "-n", namespace, "-o", "json", "canary", "status", "podinfo", kubeconfig=sandbox.kubeconfig
    )
    assert shown.returncode == 0, shown.stderr
    measured = json.loads(shown.stdout)["measurements"]["always-zero"]
    assert measured["verdict"] == "fail" and measured["value"] == 0, "the measurements are stored"


def test_second_watch_is_refused_while_the_first_holds_the_lease(
    sandbox: Any, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    kube.create(DEPLOYMENTS, deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0"))
    store.apply_canary(kube, always_failing_canary(namespace, threshold=50), namespace)
    with run_prometheus(None, tmp_path) as prom:
        first = start_watch(sandbox, namespace, prom.url)
        try:
            read_until(first, lambda r: r.get("kind") == "tick")
            second = run_progdel(
                "-n",
                namespace,
                "canary",
                "watch",
                "podinfo",
                "--prometheus-url",
                prom.url,
                kubeconfig=sandbox.kubeconfig,
            )
            assert second.returncode == 5
            assert "is held by" in second.stderr and f"{os.uname().nodename}" in second.stderr
            assert "Traceback" not in second.stderr
        finally:
            first.terminate()
            first.wait(timeout=10)


def test_abort_from_a_second_process_makes_the_watcher_exit_4(
    sandbox: Any, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    kube.create(DEPLOYMENTS, deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0"))
    store.apply_canary(kube, always_failing_canary(namespace, threshold=50), namespace)
    with run_prometheus(None, tmp_path) as prom:
        first = start_watch(sandbox, namespace, prom.url)
        read_until(first, lambda r: r.get("kind") == "tick" and r.get("phase") == "Initialized")
        new_revision(kube)
        read_until(first, lambda r: r.get("kind") == "tick" and r.get("canaryWeight") == 10)
        abort = run_progdel("-n", namespace, "canary", "abort", "podinfo", kubeconfig=sandbox.kubeconfig)
        assert abort.returncode == 0, abort.stderr
        _out, _ = first.communicate(timeout=30)
        assert first.returncode == 4
    assert kube.get(CANARIES, "podinfo")["status"]["phase"] == "Failed"
    assert vs_weights(kube) == (100, 0)


def test_a_canary_flagger_drives_is_only_observed(sandbox: Any, kube: Kube, namespace: str) -> None:
    doc = always_failing_canary(namespace, threshold=5)
    doc["metadata"]["annotations"] = {"progdel.dev/driver": "flagger"}
    store.apply_canary(kube, doc, namespace)

    def flagger_writes(obj: dict[str, Any]) -> None:
        obj["status"] = {"phase": "Progressing", "canaryWeight": 30, "failedChecks": 1, "iterations": 0}

    kube.update(CANARIES, "podinfo", flagger_writes, namespace, subresource="status")
    watch = run_progdel(
        "-n",
        namespace,
        "-o",
        "ndjson",
        "canary",
        "watch",
        "podinfo",
        "--once",
        kubeconfig=sandbox.kubeconfig,
    )
    assert watch.returncode == 5, watch.stderr  # still running, seen read only
    ticks = [json.loads(line) for line in watch.stdout.splitlines() if '"tick"' in line]
    assert ticks and ticks[-1]["canaryWeight"] == 30 and ticks[-1].get("observed") is True
    abort = run_progdel("-n", namespace, "canary", "abort", "podinfo", kubeconfig=sandbox.kubeconfig)
    assert abort.returncode == 2
    assert "is driven by flagger" in abort.stderr and "progdel only observes it" in abort.stderr
    assert kube.get_or_none(DEPLOYMENTS, "podinfo-primary") is None, "observing never creates anything"
