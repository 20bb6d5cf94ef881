"""The provider a Canary without ``spec.provider`` runs on, through the CLI against the sandbox.

A Flagger installation takes ``spec.provider``, else its ``-mesh-provider`` flag
(``pkg/controller/scheduler.go``, ``advanceCanary``); the Gateway API Canaries of Flagger's own
tests set none (``test/gatewayapi/test-canary.sh``) and rely on the installation's
``--set meshProvider=gatewayapi:v1`` (``test/gatewayapi/install.sh``). progdel takes the default a
user sets once (``--mesh-provider``, progdel.yaml's ``defaults.meshProvider``), else infers the
Gateway API from ``gatewayRefs``; every choice not written in the spec is said, init records it,
and the later commands keep to it. The order itself is unit-tested in
``tests/routing/test_provider.py``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from progdel.kube.client import Kube, connect
from progdel.kube.resources import CANARIES, DEPLOYMENTS, DESTINATIONRULES, HTTPROUTES, VIRTUALSERVICES
from progdel.routing.provider import PROVIDER_ANNOTATION
from tests.canary.test_runner_integration import canary_doc, deployment


@pytest.fixture
def kube(sandbox: Any, namespace: str) -> Kube:
    return connect(str(sandbox.kubeconfig), None, namespace)


def progdel(
    sandbox: Any, tmp_path: Path, namespace: str, *args: str, defaults: dict[str, Any] | None = None
) -> subprocess.CompletedProcess[str]:
    """progdel run as a user runs it, with a progdel.yaml of its own (never the repository's)."""
    config = tmp_path / "progdel.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "environments": [
                    {"name": "prod", "namespace": namespace, "order": 1, "promotionStrategy": "Auto"}
                ],
                "apps": [{"name": "podinfo", "image": "ghcr.io/stefanprodan/podinfo"}],
                **({"defaults": defaults} if defaults else {}),
            }
        )
    )
    return subprocess.run(
        [sys.executable, "-m", "progdel", "--kubeconfig", str(sandbox.kubeconfig), "--config", str(config),
         "-n", namespace, *args],
        capture_output=True, text=True, timeout=180, cwd=tmp_path,
    )  # fmt: skip


def gateway_canary(namespace: str, **spec: Any) -> dict[str, Any]:
    """A Canary as Flagger's Gateway API tests write it: gatewayRefs, no spec.provider."""
    doc = canary_doc(namespace)
    doc["spec"]["service"] = {
        "port": 9898,
        "hosts": ["app.example.com"],
        "gatewayRefs": [{"name": "gateway", "namespace": "istio-ingress"}],
    }
    doc["spec"].update(spec)
    return doc


def write(tmp_path: Path, doc: dict[str, Any]) -> str:
    path = tmp_path / "canary.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def notes(done: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in done.stderr.splitlines() if line.startswith("note: ")]


def test_gateway_refs_without_a_default_mean_the_gateway_api_said_recorded_and_kept(
    sandbox: Any, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    kube.create(DEPLOYMENTS, deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0"))
    path = write(tmp_path, gateway_canary(namespace))

    done = progdel(sandbox, tmp_path, namespace, "canary", "init", "-f", path, "--timeout", "60")
    assert done.returncode == 0, done.stderr
    assert (
        f"note: canary {namespace}/podinfo: provider gatewayapi:v1 (inferred from spec.service.gatewayRefs"
        in (done.stderr)
    ), done.stderr
    route = kube.get(HTTPROUTES, "podinfo")
    assert [r["name"] for r in route["spec"]["parentRefs"]] == ["gateway"]
    assert kube.get_or_none(VIRTUALSERVICES, "podinfo") is None, "no Istio objects for a Gateway API canary"
    assert kube.get_or_none(DESTINATIONRULES, "podinfo-primary") is None
    stored = kube.get(CANARIES, "podinfo")
    assert stored["metadata"]["annotations"][PROVIDER_ANNOTATION] == "gatewayapi:v1"
    assert "provider" not in stored["spec"], "the spec is stored as written"

    # a default given later that disagrees with what init chose is an error, not a switch of routers
    done = progdel(sandbox, tmp_path, namespace, "--mesh-provider", "istio", "canary", "watch", "podinfo",
                   "--once", "--prometheus-url", "http://127.0.0.1:9")  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "this canary was initialized for gatewayapi:v1" in done.stderr.strip().splitlines()[-1]
    done = progdel(sandbox, tmp_path, namespace, "canary", "check", "-f", path, "--prometheus-url",
                   "http://127.0.0.1:9", defaults={"meshProvider": "istio"})  # fmt: skip
    assert f"provider gatewayapi:v1 (chosen at init, annotation {PROVIDER_ANNOTATION})" in done.stderr, (
        done.stderr
    )
    assert kube.get_or_none(VIRTUALSERVICES, "podinfo") is None

    # and the revert undoes the Gateway API objects, with no flag given
    done = progdel(sandbox, tmp_path, namespace, "canary", "delete", "podinfo", "--revert")
    assert done.returncode == 0, done.stderr
    assert kube.get_or_none(HTTPROUTES, "podinfo") is None, "progdel created it"
    assert kube.get(DEPLOYMENTS, "podinfo")["spec"]["replicas"] == 2
    assert kube.get_or_none(VIRTUALSERVICES, "podinfo") is None


def test_the_default_set_once_wins_over_inference_and_names_what_it_leaves_unread(
    sandbox: Any, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    """progdel.yaml's meshProvider is an installation's -mesh-provider: Flagger's Istio router on a
    Canary with gatewayRefs ignores them, and progdel says so instead of dropping them unseen."""
    kube.create(DEPLOYMENTS, deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0"))
    path = write(tmp_path, gateway_canary(namespace))
    done = progdel(sandbox, tmp_path, namespace, "canary", "init", "-f", path, "--timeout", "60",
                   defaults={"meshProvider": "istio"})  # fmt: skip
    assert done.returncode == 0, done.stderr
    said = notes(done)
    assert f"note: canary {namespace}/podinfo: provider istio (progdel.yaml defaults.meshProvider)" in said, (
        said
    )
    assert any("spec.service.gatewayRefs" in n for n in said), said
    assert kube.get(VIRTUALSERVICES, "podinfo")["spec"]["hosts"] == ["app.example.com", "podinfo"]
    assert kube.get_or_none(HTTPROUTES, "podinfo") is None
    stored = kube.get(CANARIES, "podinfo")
    assert stored["metadata"]["annotations"][PROVIDER_ANNOTATION] == "istio"


def test_spec_provider_beats_every_default_and_needs_no_note(
    sandbox: Any, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    kube.create(DEPLOYMENTS, deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0"))
    path = write(tmp_path, gateway_canary(namespace, provider="gatewayapi:v1"))
    done = progdel(sandbox, tmp_path, namespace, "--mesh-provider", "istio", "canary", "init", "-f", path,
                   "--timeout", "60", defaults={"meshProvider": "istio"})  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert not any("provider" in n for n in notes(done)), done.stderr
    assert kube.get(HTTPROUTES, "podinfo")["spec"]["hostnames"] == ["app.example.com"]
    assert kube.get_or_none(VIRTUALSERVICES, "podinfo") is None
    assert PROVIDER_ANNOTATION not in (kube.get(CANARIES, "podinfo")["metadata"].get("annotations") or {})


def test_a_provider_progdel_does_not_drive_as_the_default_is_refused_before_anything_is_written(
    sandbox: Any, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    kube.create(DEPLOYMENTS, deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0"))
    path = write(tmp_path, canary_doc(namespace))
    done = progdel(
        sandbox, tmp_path, namespace, "canary", "init", "-f", path, defaults={"meshProvider": "linkerd"}
    )
    assert done.returncode == 2, done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith(
        f"error: {path}: canary {namespace}/podinfo: provider linkerd (progdel.yaml defaults.meshProvider): "
        "progdel drives istio"
    ), line
    assert kube.get_or_none(CANARIES, "podinfo") is None, "not even the Canary"
    assert kube.get_or_none(DEPLOYMENTS, "podinfo-primary") is None
