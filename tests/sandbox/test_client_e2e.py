"""The official Kubernetes Python client's own end-to-end tests, run against a sandbox.

They are upstream's (github.com/kubernetes-client/python, ``kubernetes/e2e_test/``), not the
project's: the test runs them where they are found, either shipped inside the installed
``kubernetes`` package or in a checkout of the client beside this repository
(``../upstream/k8s-python``), and is skipped when neither exists. Nothing is fetched.

They find their cluster the way ``kubernetes/e2e_test/base.py`` does, from ``$KUBECONFIG``, so the
test starts a sandbox of its own, points ``$KUBECONFIG`` at it, and runs pytest on every test that
uses only what the sandbox serves. ``LEFT_OUT`` names the others and why.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from progdel.sandbox.server import SandboxServer

CHECKOUT = Path(__file__).resolve().parents[3] / "upstream" / "k8s-python"

RUN = [
    "test_apps.py::TestClientApps::test_create_deployment",
    "test_client.py::TestClient::test_service_apis",
    "test_client.py::TestClient::test_configmap_apis",
    "test_informer.py::TestSharedInformerE2E",
    "test_utils.py::TestUtils::test_create_apps_deployment_from_yaml",
    "test_utils.py::TestUtils::test_create_apps_deployment_from_yaml_with_apply_is_idempotent",
    "test_utils.py::TestUtils::test_create_apps_deployment_from_yaml_object",
    "test_utils.py::TestUtils::test_create_apps_deployment_from_yaml_obj",
    "test_utils.py::TestUtils::test_create_service_from_yaml",
    "test_utils.py::TestUtils::test_create_namespace_from_yaml",
    "test_utils.py::TestUtils::test_create_rbac_role_from_yaml",
    "test_utils.py::TestUtils::test_create_rbac_role_from_yaml_with_verbose_enabled",
    "test_utils.py::TestUtils::test_create_deployment_non_default_namespace_from_yaml",
    "test_utils.py::TestUtils::test_create_general_list_from_yaml",
    "test_utils.py::TestUtils::test_create_namespace_list_from_yaml",
    "test_utils.py::TestUtils::test_create_implicit_service_list_from_yaml_with_conflict",
    "test_utils.py::TestUtils::test_create_from_multi_resource_yaml_with_multi_conflicts",
    "test_utils.py::TestUtils::test_create_namespaced_apps_deployment_from_yaml",
    "test_watch.py::TestClient::test_watch_configmaps",
]
EXPECTED = 24  # the informer class holds six tests

LEFT_OUT = {
    "test_apps.py::TestClientApps::test_create_daemonset": "DaemonSets are not served",
    "test_batch.py": "Jobs are not served",
    "test_client.py::TestClient::test_pod_apis": "Pods are not served",
    "test_client.py::TestClient::test_pod_exec_close_channel": "Pods (exec) are not served",
    "test_client.py::TestClient::test_exit_code": "Pods (exec) are not served",
    "test_client.py::TestClient::test_portforward_raw": "Pods (port-forward) are not served",
    "test_client.py::TestClient::test_portforward_http": "Pods (port-forward) are not served",
    "test_client.py::TestClient::test_replication_controller_apis": "ReplicationControllers are not served",
    "test_client.py::TestClient::test_node_apis": "Nodes are not served",
    "test_utils.py::TestUtils::test_create_pod_from_yaml": "Pods are not served",
    "test_utils.py::TestUtils::test_create_apiservice_from_yaml_with_conflict": "APIServices are not served",
    "test_utils.py::TestUtils::test_create_multi_resource_from_directory": "ReplicationControllers",
    "test_utils.py::TestUtils::test_create_from_multi_resource_yaml": "ReplicationControllers",
    "test_utils.py::TestUtils::test_create_from_list_in_multi_resource_yaml": "Pods",
    "test_utils.py::TestUtils::test_create_from_multi_resource_yaml_with_conflict": "ReplicationControllers",
    "test_utils.py::TestUtils::test_create_from_list_in_multi_resource_yaml_namespaced": "Pods",
    "test_utils.py::TestUtils::test_metrics_utilities_integration": "Pods and metrics.k8s.io",
    "test_utils.py::TestUtilsUnitTests": "no cluster: the client's own quantity helpers",
    "test_issue_2387_proxy_ssl_context.py": "no cluster: a mock proxy and server of its own",
}


def _suite() -> Path | None:
    """``kubernetes/e2e_test`` inside the installed package, else in the checkout beside the repository."""
    spec = importlib.util.find_spec("kubernetes")
    for root in [Path(p) for p in (spec.submodule_search_locations or [])] if spec else []:
        if (root / "e2e_test" / "base.py").exists():
            return root / "e2e_test"
    shipped = CHECKOUT / "kubernetes" / "e2e_test"
    return shipped if (shipped / "base.py").exists() else None


def test_the_python_clients_e2e_suite_passes(tmp_path: Path) -> None:
    suite = _suite()
    if suite is None:
        pytest.skip(
            "the Kubernetes Python client's e2e tests are not here: the installed kubernetes package "
            f"does not ship kubernetes/e2e_test and there is no checkout at {CHECKOUT}"
        )
    listed = {item.split("::", 1)[0] for item in [*RUN, *LEFT_OUT]}
    assert listed == {p.name for p in suite.glob("test_*.py")}, (
        "a test file upstream added is neither run nor left out"
    )
    # base.py imports ``kubernetes.e2e_test``: make the suite part of the installed package's path
    plugin = tmp_path / "e2e_path.py"
    plugin.write_text(f"import kubernetes\nkubernetes.__path__.append({str(suite.parent)!r})\n")
    report = tmp_path / "report.xml"
    with SandboxServer(tmp_path / "sandbox") as server:
        kubeconfig = server.write_kubeconfig()
        env = {**os.environ, "KUBECONFIG": str(kubeconfig), "PYTHONPATH": str(tmp_path)}
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-p",
                "e2e_path",
                "-p",
                "no:cacheprovider",
                "-q",
                "--timeout=120",
                f"--junitxml={report}",
                "--rootdir",
                str(suite),
                *[f"{suite}/{item}" for item in RUN],
            ],
            cwd=suite.parent.parent,  # test_utils.py names its YAML files relative to the checkout
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
    cases = ET.parse(report).getroot().iter("testcase")
    failed = [
        f"{c.get('classname')}.{c.get('name')}"
        for c in cases
        if any(child.tag in ("failure", "error", "skipped") for child in c)
    ]
    assert proc.returncode == 0 and not failed, f"{failed}\n{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}"
    counts = ET.parse(report).getroot().find("testsuite")
    assert counts is not None and int(counts.get("tests", "0")) == EXPECTED
