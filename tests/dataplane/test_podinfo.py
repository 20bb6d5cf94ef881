"""podinfo images run as replica processes speaking the HTTP API Flagger's tutorials use.

The Deployment follows Flagger's ``kustomize/podinfo/deployment.yaml`` (its ``command`` with
podinfo's flags, its ports and scrape annotations); the endpoints and metrics follow podinfo's
``pkg/api/http`` (``server.go`` routes, ``metrics.go`` middleware, ``token.go``, ``status.go``,
``delay.go``) and its flags ``cmd/podinfo/main.go``.
"""

from __future__ import annotations

import base64
import json
import re
import time

import httpx

from progdel.sandbox.podinfo import listen_ports, parse_args, version_from_image

from .conftest import MeshSandbox, podinfo_deployment


def metric_lines(text: str, name: str) -> dict[str, float]:
    """``{labels: value}`` of one metric family's samples in a text exposition."""
    out = {}
    for line in text.splitlines():
        m = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def test_images_flags_and_environment() -> None:
    assert version_from_image("ghcr.io/stefanprodan/podinfo:6.0.1") == "6.0.1"
    assert version_from_image("stefanprodan/podinfo:latest") == "latest"
    assert version_from_image("docker.io/stefanprodan/podinfo:6.7.0") == "6.7.0"
    assert version_from_image("ghcr.io/other/podinfo:6.0.1") is None
    assert version_from_image("ghcr.io/stefanprodan/podinfo") is None

    command = podinfo_deployment("podinfo", "6.0.0")["spec"]["template"]["spec"]["containers"][0]["command"]
    settings = parse_args(command, {})
    assert listen_ports(settings) == {"http": 9898, "metrics": 9797}
    assert not settings.flag("random-error") and not settings.flag("random-delay")
    # podinfo's own defaults: HTTP on 9898, no metrics port; a flag may take its value apart
    assert listen_ports(parse_args(["./podinfo"], {})) == {"http": 9898}
    assert listen_ports(parse_args(["./podinfo", "--port", "8080", "--port-metrics", "0"], {})) == {
        "http": 8080
    }
    # PODINFO_* variables stand in for flags not given, as podinfo's viper setup reads them
    env = {"PODINFO_RANDOM_ERROR": "true", "PODINFO_PORT": "7000"}
    assert parse_args(["./podinfo", "--port=9898"], env).flag("random-error")
    assert listen_ports(parse_args(["./podinfo", "--port=9898"], env)) == {"http": 9898}


def test_podinfo_api_and_metrics(mesh_sandbox: MeshSandbox, mesh_ns: str) -> None:
    mesh_sandbox.create(mesh_ns, podinfo_deployment("podinfo", "6.0.1"))
    mesh_sandbox.wait_available(mesh_ns, "podinfo")
    [pod] = mesh_sandbox.endpoints(mesh_ns, "podinfo")
    assert re.fullmatch(r"podinfo-[0-9a-z]+-[0-9a-z]{5}", pod.pod)
    http, metrics = pod.local_port(9898), pod.local_port("http-metrics")
    assert http and metrics and http != metrics and pod.local_port(9999) is None  # no gRPC server

    with httpx.Client(base_url=f"http://127.0.0.1:{http}", timeout=10) as c:
        info = c.get("/").json()
        assert info["version"] == "6.0.1" and info["hostname"] == pod.pod and info["color"] == "#34577c"
        assert {
            "revision",
            "logo",
            "message",
            "goos",
            "goarch",
            "runtime",
            "num_goroutine",
            "num_cpu",
        } <= set(info)
        assert c.get("/api/info").json()["version"] == "6.0.1"
        assert c.get("/version").json()["version"] == "6.0.1"
        assert c.get("/healthz").json() == {"status": "OK"}
        assert c.get("/readyz").json() == {"status": "OK"}

        token = c.post("/token", content=b"test")
        assert token.status_code == 200 and "token" in token.text
        claims = token.json()["token"].split(".")[1]
        assert json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))["name"] == "test"
        check = c.get("/token/validate", headers={"authorization": f"Bearer {token.json()['token']}"})
        assert check.json()["token_name"] == "test"

        for _ in range(3):
            assert c.get("/status/500").status_code == 500
        assert c.post("/status/404").json() == {"status": 404}
        assert c.get("/delay/1").json() == {"delay": 1}
        assert c.post("/echo", content=b"hello").content == b"hello"
        assert c.get("/nothing").status_code == 404  # unrouted: not counted
        assert c.post("/").status_code == 405  # wrong method: not counted

    scrape = httpx.get(f"http://127.0.0.1:{metrics}/metrics").text
    counts = metric_lines(scrape, "http_request_duration_seconds_count")
    assert counts['method="GET",path="status",status="500"'] == 3
    assert counts['method="POST",path="status",status="404"'] == 1
    assert counts['method="POST",path="token",status="200"'] == 1
    assert counts['method="GET",path="delay",status="200"'] == 1
    assert counts['method="GET",path="root",status="200"'] == 1
    assert not any("nothing" in labels or 'status="405"' in labels for labels in counts)
    buckets = metric_lines(scrape, "http_request_duration_seconds_bucket")
    # the one-second delay lands above the 1s bucket boundary
    assert buckets['method="GET",path="delay",status="200",le="1"'] == 0
    assert buckets['method="GET",path="delay",status="200",le="+Inf"'] == 1
    assert metric_lines(scrape, "http_requests_total")['status="500"'] == 3
    assert httpx.get(f"http://127.0.0.1:{metrics}/healthz").text == "OK"
    assert "http_request_duration_seconds" in httpx.get(f"http://127.0.0.1:{http}/metrics").text


def test_random_error_and_random_delay_flags(mesh_sandbox: MeshSandbox, mesh_ns: str) -> None:
    mesh_sandbox.create(
        mesh_ns,
        podinfo_deployment("faulty", "6.0.2", flags=("--random-error=true",)),
        podinfo_deployment(
            "slow",
            "6.0.2",
            flags=(
                "--random-delay",
                "--random-delay-unit=ms",
                "--random-delay-min=150",
                "--random-delay-max=151",
            ),
        ),
    )
    mesh_sandbox.wait_available(mesh_ns, "faulty")
    mesh_sandbox.wait_available(mesh_ns, "slow")
    [faulty] = mesh_sandbox.endpoints(mesh_ns, "faulty")
    with httpx.Client(base_url=f"http://127.0.0.1:{faulty.local_port(9898)}", timeout=10) as c:
        statuses = [c.get("/").status_code for _ in range(150)]
    # a third of the answers, at random, are one of podinfo's three errors
    assert set(statuses) <= {200, 400, 409, 500} and 200 in statuses and len(set(statuses)) > 1
    counted = metric_lines(
        httpx.get(f"http://127.0.0.1:{faulty.local_port(9797)}/metrics").text,
        "http_request_duration_seconds_count",
    )
    # the injected errors are counted under the route, as podinfo's middleware sees them
    for status in (400, 409, 500):
        assert counted.get(f'method="GET",path="root",status="{status}"', 0) == statuses.count(status)

    [slow] = mesh_sandbox.endpoints(mesh_ns, "slow")
    with httpx.Client(base_url=f"http://127.0.0.1:{slow.local_port(9898)}", timeout=10) as c:
        started = time.monotonic()
        for _ in range(3):
            assert c.get("/version").status_code == 200
        assert (
            time.monotonic() - started >= 0.45
        )  # at least 150 ms each (an upper bound would time the machine)
    buckets = metric_lines(
        httpx.get(f"http://127.0.0.1:{slow.local_port(9797)}/metrics").text,
        "http_request_duration_seconds_bucket",
    )
    assert buckets['method="GET",path="version",status="200",le="0.1"'] == 0
    assert buckets['method="GET",path="version",status="200",le="+Inf"'] == 3
