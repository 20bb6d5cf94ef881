"""MetricTemplate providers: a type progdel does not query is refused, never sent as PromQL.

Flagger 1.44 (``pkg/metrics/providers/factory.go``) has its own client per ``provider.type``
(datadog, cloudwatch, newrelic...); progdel queries Prometheus' HTTP API only, so a template of
another type is a spec error naming the type, from ``canary check`` and ``canary init`` alike,
before anything is written and without a request to its address.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from progdel.kube.client import connect
from progdel.kube.resources import CANARIES, DEPLOYMENTS, METRICTEMPLATES
from tests.canary.test_runner_integration import deployment
from tests.canary.test_webhooks import HookServer, hook_server  # noqa: F401 - the fixture


def files(tmp_path: Path, namespace: str, address: str) -> tuple[Path, Path]:
    canary = {
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": namespace},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898},
            "analysis": {
                "interval": "10s",
                "threshold": 2,
                "stepWeight": 20,
                "metrics": [
                    {"name": "errors", "templateRef": {"name": "dd-errors"}, "thresholdRange": {"max": 1}}
                ],
            },
        },
    }
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
