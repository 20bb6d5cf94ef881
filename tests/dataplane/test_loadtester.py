"""Flagger's load tester image runs as a local process serving its webhook API.

Behaviour follows Flagger's ``pkg/loadtester`` (``server.go`` routes and status codes,
``gate.go`` in-memory gates, ``task_shell.go`` ``sh -c`` commands run once at a time per
canary, ``bash.go`` blocking ``bash -c``); the Deployment follows ``kustomize/tester``.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from progdel.sandbox.backend import ReplicaSetKey
from progdel.sandbox.httpapp import Request
from progdel.sandbox.loadtester import REFUSAL, LoadTester, go_duration
from progdel.sandbox.processes import ProcessReplicaBackend

from .conftest import MeshSandbox, cluster_service, podinfo_deployment, wait_dead, wait_ready

TESTER_IMAGE = "ghcr.io/fluxcd/flagger-loadtester:0.38.0"


def loadtester_template(*flags: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {
            "labels": {"app": "flagger-loadtester"},
            "annotations": {"prometheus.io/scrape": "true"},
        },
        "spec": {
            "containers": [
                {
                    "name": "loadtester",
                    "image": TESTER_IMAGE,
                    "ports": [{"name": "http", "containerPort": 8080}],
                    "command": ["./loadtester", "-port=8080", "-log-level=info", "-timeout=1h", *flags],
                    "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
                }
            ]
        },
    }


def loadtester_deployment(replicas: int = 1, *flags: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "flagger-loadtester"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "flagger-loadtester"}},
            "template": loadtester_template(*flags, env={"GREETING": "from-the-pod-spec"}),
        },
    }


def payload(metadata: dict[str, str] | None = None, name: str = "podinfo", namespace: str = "test") -> bytes:
    body: dict[str, Any] = {"name": name, "namespace": namespace, "phase": "Progressing"}
    if metadata is not None:
        body["metadata"] = metadata
    return json.dumps(body).encode()


def call(tester: LoadTester, path: str, body: bytes = b"") -> tuple[int, str]:
    request = Request("POST", path, path, {}, {}, body)
    resp = asyncio.run(tester.handle(request))
    return resp.status, resp.body.decode()


def test_gates_payloads_and_task_types() -> None:
    tester = LoadTester(allow_commands=False)
    assert call(tester, "/healthz") == (200, "OK")
    assert call(tester, "/gate/approve") == (200, "OK")
    assert call(tester, "/gate/halt") == (403, "Forbidden")
    # gates are closed until opened, per canary (name.namespace), and close again
    assert call(tester, "/gate/check", payload()) == (403, "Forbidden")
    assert call(tester, "/gate/open", payload())[0] == 202
    assert call(tester, "/gate/check", payload()) == (200, "Approved")
    assert call(tester, "/gate/check", payload(namespace="prod")) == (403, "Forbidden")
    assert call(tester, "/gate/close", payload())[0] == 202
    assert call(tester, "/gate/check", payload()) == (403, "Forbidden")
    # the rollback gate is another key for the same canary
    assert call(tester, "/rollback/check", payload()) == (403, "Forbidden")
    assert call(tester, "/rollback/open", payload())[0] == 202
    assert call(tester, "/rollback/check", payload()) == (200, "Approved")
    assert call(tester, "/gate/check", payload()) == (403, "Forbidden")
    assert call(tester, "/rollback/close", payload())[0] == 202
    assert call(tester, "/rollback/check", payload()) == (403, "Forbidden")
    # bad payloads, missing metadata or cmd, types the sandbox cannot run
    assert call(tester, "/gate/check", b"not json")[0] == 400
    assert call(tester, "/", json.dumps({"name": "x", "metadata": {"retries": 3}}).encode())[0] == 400
    assert call(tester, "/", payload()) == (400, "metadata not found in payload")
    assert call(tester, "/", payload({"type": "cmd"})) == (400, "cmd not found in metadata")
    for kind in ("helm", "helmv3", "kubectl", "concord", "ngrinder"):
        status, text = call(tester, "/", payload({"type": kind, "cmd": "x"}))
        assert status == 400 and f"task type {kind} is not supported" in text
    assert call(tester, "/", payload({"type": "nope", "cmd": "x"})) == (400, "unknown task type nope")
    # commands are refused unless the sandbox allows them, with the reason
    for kind in ("cmd", "bash"):
        assert call(tester, "/", payload({"type": kind, "cmd": "touch x"})) == (403, REFUSAL)
    assert "--allow-commands" in REFUSAL

    restricted = LoadTester(namespace_regexp="^prod$")
    assert call(restricted, "/gate/open", payload(namespace="test")) == (403, "Forbidden")
    assert call(restricted, "/gate/open", payload(namespace="prod"))[0] == 202

    assert go_duration("1h") == 3600 and go_duration("1m30s") == 90 and go_duration("500ms") == 0.5
    with pytest.raises(ValueError):
        go_duration("an hour")


def test_commands_stay_refused_without_allow_commands(tmp_path: Path) -> None:
    """The opt-in belongs to the sandbox: a pod spec cannot turn it on with its environment."""
    backend = ProcessReplicaBackend(log_dir=tmp_path / "pods")
    try:
        key = ReplicaSetKey("test", "flagger-loadtester", "h1")
        template = loadtester_template(env={"PROGDEL_ALLOW_COMMANDS": "1", "PROGDEL_WORKDIR": str(tmp_path)})
        wait_ready(backend, {key: (template, 1)})
        [tester] = backend.endpoints()[key]
        port = tester.local_port("http")
        assert port is not None and port == tester.local_port(8080)
        marker = tmp_path / "ran"
        resp = httpx.post(
            f"http://127.0.0.1:{port}/", content=payload({"type": "bash", "cmd": f"touch {marker}"})
        )
        assert (resp.status_code, resp.text) == (403, REFUSAL)
        assert not marker.exists()
    finally:
        backend.close()


def loadtester_url(sb: MeshSandbox, ns: str) -> str:
    [tester] = sb.endpoints(ns, "flagger-loadtester")
    return f"http://127.0.0.1:{tester.local_port('http')}"


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_bash_commands_reach_in_cluster_names(mesh_sandbox: MeshSandbox, mesh_ns: str) -> None:
    sb, ns = mesh_sandbox, mesh_ns
    sb.create(
        ns,
        podinfo_deployment("podinfo", "6.0.1"),
        cluster_service("podinfo-canary", "podinfo", [(9898, 9898)]),
        loadtester_deployment(),
        cluster_service("flagger-loadtester", "flagger-loadtester", [(80, "http")]),
    )
    sb.wait_available(ns, "podinfo")
    sb.wait_available(ns, "flagger-loadtester")
    sb.wait_routed(f"podinfo-canary.{ns}:9898", lambda r: r.status_code == 200)
    url = loadtester_url(sb, ns)

    # the tutorial's acceptance test, with the short name of the Service
    acceptance = {"type": "bash", "cmd": "curl -sd 'test' http://podinfo-canary:9898/token | grep token"}
    resp = httpx.post(url, content=payload(acceptance, namespace=ns), timeout=60)
    assert resp.status_code == 200, resp.text
    failing = {"type": "bash", "cmd": f"curl -sf http://podinfo-canary.{ns}:9898/status/500"}
    resp = httpx.post(url, content=payload(failing, namespace=ns), timeout=60)
    assert resp.status_code == 500 and resp.text.startswith(f"command {failing['cmd']} failed: ")

    # the tester is a Service of the mesh too (port 80 -> targetPort http), and the API server's
    # service proxy reaches it as a webhook URL http://flagger-loadtester.NS/ would be reached
    routed = sb.wait_routed(f"flagger-loadtester.{ns}", lambda r: r.status_code == 200, path="/healthz")
    assert routed.text == "OK"
    proxied = sb.api.post(
        f"/api/v1/namespaces/{ns}/services/flagger-loadtester:80/proxy/",
        content=payload(acceptance, namespace=ns),
        timeout=60,
    )
    assert proxied.status_code == 200, proxied.text

    # commands run in their own folder of the data dir, with a bounded environment
    probe = {"type": "bash", "cmd": "pwd; env", "returnCmdOutput": "true"}
    resp = httpx.post(url, content=payload(probe, namespace=ns), timeout=60)
    lines = resp.text.splitlines()
    work = Path(lines[0])
    assert work.is_relative_to(sb.plane.data_dir / "commands")
    env = dict(line.split("=", 1) for line in lines[1:] if "=" in line)
    assert env["HOME"] == str(work) and env["http_proxy"] == sb.plane.mesh_url
    assert env["GREETING"] == "from-the-pod-spec"
    assert not any(k.startswith(("PROGDEL_", "KUBECONFIG", "PYTEST")) for k in env)


@pytest.mark.skipif(shutil.which("hey") is None, reason="needs hey (scripts/bootstrap installs it)")
def test_cmd_runs_hey_once_through_the_mesh_and_ends_with_the_tester(
    mesh_sandbox: MeshSandbox, mesh_ns: str
) -> None:
    sb, ns = mesh_sandbox, mesh_ns
    sb.create(
        ns,
        podinfo_deployment("podinfo", "6.0.1"),
        cluster_service("podinfo-canary", "podinfo", [(9898, 9898)]),
        loadtester_deployment(),
    )
    sb.wait_available(ns, "podinfo")
    sb.wait_available(ns, "flagger-loadtester")
    sb.wait_routed(f"podinfo-canary.{ns}:9898", lambda r: r.status_code == 200)
    url = loadtester_url(sb, ns)
    [podinfo] = sb.endpoints(ns, "podinfo")

    def served() -> int:
        text = httpx.get(f"http://127.0.0.1:{podinfo.local_port(9797)}/metrics").text
        return sum(
            int(float(line.rsplit(" ", 1)[1]))
            for line in text.splitlines()
            if line.startswith('http_request_duration_seconds_count{method="GET",path="root"')
        )

    load = {"cmd": f"hey -z 10m -q 5 -c 1 http://podinfo-canary.{ns}:9898/", "logCmdOutput": "true"}
    for _ in range(2):  # the second call finds it running: 202, not started again
        resp = httpx.post(url, content=payload(load, namespace=ns), timeout=10)
        assert resp.status_code == 202
    deadline = time.monotonic() + 120  # hey sends 5 a second: however slowly, 10 arrive
    while time.monotonic() < deadline and served() < 10:
        time.sleep(0.2)
    assert served() >= 10  # hey's requests reached the canary through the mesh
    assert "flagger_loadtester_execs_total 1" in httpx.get(f"{url}/metrics").text

    hey = _pids_with(f"podinfo-canary.{ns}:9898")
    assert hey
    sb.replace(ns, loadtester_deployment(0))  # the tester goes away, and its commands with it
    assert wait_dead(hey, timeout=15) == []


def _pids_with(text: str) -> list[int]:
    out = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmdline:
                out.append(int(proc.name))
    return out


def test_command_time_limit(mesh_sandbox: MeshSandbox, mesh_ns: str) -> None:
    sb, ns = mesh_sandbox, mesh_ns
    sb.create(ns, loadtester_deployment(1, "-timeout=1s"))  # the last -timeout wins, as with Go's flags
    sb.wait_available(ns, "flagger-loadtester")
    sleep = {"type": "bash", "cmd": "sleep 60"}
    resp = httpx.post(loadtester_url(sb, ns), content=payload(sleep, namespace=ns), timeout=60)
    assert resp.status_code == 500 and "timed out after 1s" in resp.text


def test_allow_commands_needs_the_mesh(tmp_path: Path) -> None:
    import subprocess
    import sys

    run = [sys.executable, "-c", "from progdel.cli.main import run; run()"]
    out = subprocess.run(
        [*run, "sandbox", "up", "--allow-commands", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "--allow-commands needs --mesh" in out.stderr and "Traceback" not in out.stderr
