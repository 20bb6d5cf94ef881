"""Shell completion as bash asks for it: names from the catalog, the cluster and progdel.yaml."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from progdel.canary import store
from progdel.kube.client import connect

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def complete(words: str, cwd: Path | None = None, **env: str) -> list[str]:
    """What ``progdel`` offers for the last word of ``words`` (bash's protocol)."""
    proc = subprocess.run(
        [sys.executable, "-m", "progdel"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={
            **os.environ,
            **env,
            "COMP_WORDS": words,
            "COMP_CWORD": str(len(words.split(" ")) - 1),
            "_PROGDEL_COMPLETE": "complete_bash",
        },
    )
    assert proc.returncode == 0 and not proc.stderr, proc.stderr
    return proc.stdout.split()


def canary(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "service": {"port": 9898},
            "analysis": {"interval": "10s", "threshold": 2, "stepWeight": 10},
        },
    }


def test_canary_names_come_from_the_cluster(sandbox: Any, namespace: str) -> None:
    kube = connect(str(sandbox.kubeconfig), None, namespace)
    for name in ("podinfo", "payments", "web"):
        store.apply_canary(kube, canary(name, namespace), namespace)
    kubeconfig = str(sandbox.kubeconfig)
    assert complete(f"progdel --kubeconfig {kubeconfig} -n {namespace} canary status p") == [
        "payments",
        "podinfo",
    ]
    assert complete(f"progdel -n {namespace} canary abort ", KUBECONFIG=kubeconfig) == [
        "payments",
        "podinfo",
        "web",
    ]
    # no cluster: nothing offered, no error on the terminal
    assert complete("progdel --kubeconfig /nonexistent canary status ") == []


def test_addons_apps_and_environments(tmp_path: Path) -> None:
    assert complete("progdel addon install ") == ["flagger", "grafana", "istio", "loadtester", "prometheus"]
    assert complete("progdel addon remove pro") == ["prometheus"]
    shutil.copy(EXAMPLES / "progdel.yaml", tmp_path / "progdel.yaml")
    assert complete("progdel promote --env ", cwd=tmp_path) == ["dev", "production", "sandbox", "staging"]
    assert complete("progdel get applications -e st", cwd=tmp_path) == ["staging"]
    assert complete("progdel promote ", cwd=tmp_path) == ["api", "web"]
    assert complete("progdel promote history w", cwd=tmp_path) == ["web"]
    assert complete("progdel promote verify web --env ", cwd=tmp_path) == ["dev"], "only dev declares verify"
    assert complete("progdel promote --env ", cwd=tmp_path.parent) == [], "no progdel.yaml here"
