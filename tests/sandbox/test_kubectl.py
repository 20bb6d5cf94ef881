"""The real kubectl against the sandbox: apply (default validation), get, patch, get -w, delete."""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from progdel.sandbox.server import SandboxServer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def kubectl(sandbox: SandboxServer, namespace: str):  # type: ignore[no-untyped-def]
    exe = shutil.which("kubectl")
    if exe is None:
        pytest.skip("kubectl is not on PATH")

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [exe, "--kubeconfig", str(sandbox.kubeconfig), "-n", namespace, *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        if check:
            assert proc.returncode == 0, f"{' '.join(args)}: {proc.stderr}"
        return proc

    run.exe = exe  # type: ignore[attr-defined]
    run.kubeconfig = str(sandbox.kubeconfig)  # type: ignore[attr-defined]
    return run


def test_kubectl_end_to_end(kubectl, sandbox: SandboxServer, namespace: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = kubectl(
        "apply", "-f", str(EXAMPLES / "deployment.yaml"), "-f", str(EXAMPLES / "virtualservice.yaml")
    )
    assert "deployment.apps/podinfo created" in out.stdout
    assert "virtualservice.networking.istio.io/podinfo created" in out.stdout
    table = kubectl("get", "deploy,vs").stdout
    assert "deployment.apps/podinfo" in table and "virtualservice.networking.istio.io/podinfo" in table
    assert "READY" in table and "AGE" in table

    watcher = subprocess.Popen(
        [
            kubectl.exe,
            "--kubeconfig",
            str(sandbox.kubeconfig),
            "-n",
            namespace,
            "get",
            "vs",
            "podinfo",
            "-w",
            "-o",
            'jsonpath={.spec.http[0].route[1].weight}{"\\n"}',
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    printed: queue.Queue[str] = queue.Queue()
    assert watcher.stdout is not None
    threading.Thread(
        target=lambda: [printed.put(line.strip()) for line in watcher.stdout], daemon=True
    ).start()
    try:
        assert printed.get(timeout=60) == "0"  # the watch is up: it printed the current weight
        kubectl(
            "patch",
            "vs",
            "podinfo",
            "--type",
            "merge",
            "-p",
            json.dumps(
                {
                    "spec": {
                        "http": [
                            {
                                "route": [
                                    {"destination": {"host": "podinfo-primary"}, "weight": 70},
                                    {"destination": {"host": "podinfo-canary"}, "weight": 30},
                                ]
                            }
                        ]
                    }
                }
            ),
        )
        assert printed.get(timeout=60) == "30"  # and then the change
    finally:
        watcher.terminate()
        watcher.wait(timeout=30)

    changed = tmp_path / "deployment.yaml"
    changed.write_text(
        (EXAMPLES / "deployment.yaml")
        .read_text()
        .replace("replicas: 2", "replicas: 3")
        .replace("podinfo:6.7.0", "podinfo:6.7.1")
    )
    out = kubectl("apply", "-f", str(changed))
    assert "deployment.apps/podinfo configured" in out.stdout and "service/podinfo unchanged" in out.stdout
    dep = json.loads(kubectl("get", "deploy", "podinfo", "-o", "json").stdout)
    assert dep["spec"]["replicas"] == 3 and dep["metadata"]["generation"] == 2
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":6.7.1")
    vs_changed = tmp_path / "vs.yaml"
    vs_changed.write_text(
        (EXAMPLES / "virtualservice.yaml")
        .read_text()
        .replace("weight: 100", "weight: 60")
        .replace("weight: 0", "weight: 40")
    )
    assert "configured" in kubectl("apply", "-f", str(vs_changed)).stdout
    vs = json.loads(kubectl("get", "vs", "podinfo", "-o", "json").stdout)
    assert [r["weight"] for r in vs["spec"]["http"][0]["route"]] == [60, 40]

    out = kubectl(
        "delete", "-f", str(EXAMPLES / "virtualservice.yaml"), "-f", str(EXAMPLES / "deployment.yaml")
    )
    assert 'virtualservice.networking.istio.io "podinfo" deleted' in out.stdout
    assert "No resources found" in kubectl("get", "deploy,vs").stderr

    resources = kubectl("api-resources").stdout
    assert any(line.split()[:2] == ["deployments", "deploy"] for line in resources.splitlines())
    assert any(line.split()[:2] == ["virtualservices", "vs"] for line in resources.splitlines())


def test_kubectl_create_sends_protobuf_and_works_for_common_kinds(kubectl, namespace: str) -> None:  # type: ignore[no-untyped-def]
    """kubectl's imperative create commands send protobuf bodies, with no fallback to JSON."""
    ns = f"{namespace}-pb"
    kubectl("create", "namespace", ns)
    kubectl("-n", ns, "create", "configmap", "settings", "--from-literal=color=blue")
    kubectl("-n", ns, "create", "secret", "generic", "creds", "--from-literal=password=hunter2")
    cm = json.loads(kubectl("-n", ns, "get", "configmap", "settings", "-o", "json").stdout)
    assert cm["data"] == {"color": "blue"}
    secret = json.loads(kubectl("-n", ns, "get", "secret", "creds", "-o", "json").stdout)
    assert secret["data"] == {"password": "aHVudGVyMg=="}
    failed = kubectl("-n", ns, "create", "deployment", "d", "--image=x", check=False)
    assert failed.returncode != 0
    assert "cannot decode apps/v1 Deployment from protobuf; send it as JSON" in failed.stderr
    kubectl("delete", "namespace", ns)


def test_kubectl_delete_namespace_waits_for_termination(kubectl, api_client, namespace: str) -> None:  # type: ignore[no-untyped-def]
    """`kubectl get ns` shows Terminating while content with a finalizer holds the namespace;
    `kubectl delete ns` returns once the namespace is really gone; creating inside it meanwhile is
    refused with kube-apiserver's NamespaceLifecycle message."""
    from kubernetes import client

    ns = f"{namespace}-gone"
    kubectl("create", "namespace", ns)
    core = client.CoreV1Api(api_client)
    core.create_namespaced_config_map(ns, {"metadata": {"name": "held", "finalizers": ["example.com/x"]}})
    started = kubectl("delete", "namespace", ns, "--wait=false")
    assert f'namespace "{ns}" deleted' in started.stdout
    assert kubectl("get", "namespace", ns, "--no-headers").stdout.split()[1] == "Terminating"
    refused = kubectl("-n", ns, "create", "configmap", "late", check=False)
    assert refused.returncode != 0
    assert (
        f'configmaps "late" is forbidden: unable to create new content in namespace {ns} '
        "because it is being terminated"
    ) in refused.stderr
    waiter = subprocess.Popen(
        [kubectl.exe, "--kubeconfig", kubectl.kubeconfig, "delete", "namespace", ns, "--timeout=60s"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    printed: queue.Queue[str] = queue.Queue()
    assert waiter.stdout is not None
    threading.Thread(target=lambda: [printed.put(line) for line in waiter.stdout], daemon=True).start()
    try:
        # kubectl has sent its DELETE (it says so) and waits: the finalizer holds the namespace
        assert f'namespace "{ns}" deleted' in printed.get(timeout=60)
        assert waiter.poll() is None
        core.patch_namespaced_config_map("held", ns, {"metadata": {"finalizers": None}})
        _, err = waiter.communicate(timeout=60)
    finally:
        if waiter.poll() is None:
            waiter.kill()
    assert waiter.returncode == 0, err
    gone = kubectl("get", "namespace", ns, check=False)
    assert gone.returncode != 0 and f'namespaces "{ns}" not found' in gone.stderr
