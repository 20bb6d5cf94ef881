"""`progdel promote`, `promote history`, `env list` and `get applications` as a user runs them
(a subprocess against the sandbox), and GitOps promotion end to end with a real bare repository."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from progdel.config.project import load_project
from progdel.errors import ExitCode
from progdel.kube.resources import DEPLOYMENTS
from progdel.promote import history
from progdel.promote.orchestrate import PromoteOptions, PromotionFailed, QuietReporter, run_plan
from progdel.promote.plan import plan_promotion

from .conftest import Remote
from .test_direct import IMAGE, Shop, kube_fixture, shop_fixture, write_config  # noqa: F401  (fixtures)


def progdel(s: Shop, *args: str, config: Path | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "progdel", "--kubeconfig", str(s.kubeconfig)]
    cmd += ["--config", str(config or s.config), *args]
    env = {**os.environ, "COLUMNS": "400"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, env=env)


def test_cli_direct_promotion_then_history(shop: Shop) -> None:
    out = progdel(shop, "-o", "json", "promote", "--env", "production", "-b")
    assert out.returncode == 0, out.stderr
    [step] = json.loads(out.stdout)
    assert (step["environment"], step["version"], step["previous"], step["result"]) == (
        "production",
        "1.2.0",
        "1.1.0",
        "succeeded",
    )
    assert shop.image("production") == f"{IMAGE}:1.2.0"
    hist = progdel(shop, "-o", "json", "promote", "history", "web")
    assert hist.returncode == 0, hist.stderr
    [record] = json.loads(hist.stdout)
    assert (record["app"], record["environment"], record["from"], record["to"], record["result"]) == (
        "web",
        "production",
        "1.1.0",
        "1.2.0",
        "succeeded",
    )
    table = progdel(shop, "promote", "history")
    assert table.returncode == 0 and "production" in table.stdout and "succeeded" in table.stdout


def test_cli_never_is_refused_with_exit_2(shop: Shop) -> None:
    out = progdel(shop, "promote", "web", "--version", "1.2.0", "--env", "sandbox", "-b", "--force")
    assert out.returncode == ExitCode.INVALID_INPUT
    assert "promotionStrategy Never" in out.stderr and out.stderr.count("\n") == 1


def test_cli_manual_without_batch_and_without_terminal_is_refused(shop: Shop) -> None:
    out = progdel(shop, "promote", "web", "--env", "production")
    assert out.returncode == ExitCode.INVALID_INPUT
    assert "-b/--batch-mode" in out.stderr
    assert shop.image("production") == f"{IMAGE}:1.1.0"


def test_cli_order_gate_and_force(shop: Shop) -> None:
    out = progdel(shop, "promote", "web", "--version", "9.9.9", "--env", "production", "-b")
    assert out.returncode == ExitCode.INVALID_INPUT
    assert "web 9.9.9 does not run in staging" in out.stderr
    assert shop.image("production") == f"{IMAGE}:1.1.0"
    forced = progdel(shop, "promote", "web", "--version", "9.9.9", "--env", "production", "-b", "--force")
    assert forced.returncode == 0, forced.stderr
    assert shop.image("production") == f"{IMAGE}:9.9.9"


def test_cli_promotion_into_a_namespace_being_deleted(shop: Shop) -> None:
    """A namespace being deleted refuses new content (kube-apiserver's NamespaceLifecycle 403):
    the promotion stops before changing anything, in one line, exit 2, and leaves no record."""
    from progdel.kube.resources import CONFIGMAPS, NAMESPACES

    prod = shop.namespaces["production"]
    # a finalizer nobody removes keeps the namespace Terminating for the test's duration
    shop.kube.create(CONFIGMAPS, {"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}, prod)
    shop.kube.delete(NAMESPACES, prod)
    try:
        out = progdel(shop, "promote", "web", "--version", "1.2.0", "--env", "production", "-b")
        assert out.returncode == ExitCode.INVALID_INPUT, out.stderr
        assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
        assert f"namespace {prod} (environment production) is being deleted" in out.stderr
        assert "nothing was changed" in out.stderr
        records = shop.kube.items(CONFIGMAPS, prod, label_selector="progdel.dev/promotion=true")
        assert records == []
    finally:
        shop.kube.patch(CONFIGMAPS, "held", {"metadata": {"finalizers": None}}, prod)


def test_cli_unknown_app_and_environment(shop: Shop) -> None:
    out = progdel(shop, "promote", "shop", "--env", "production", "-b")
    assert out.returncode == 2 and "unknown app 'shop'" in out.stderr
    out = progdel(shop, "promote", "web", "--env", "prod", "-b")
    assert out.returncode == 2 and "unknown environment 'prod'" in out.stderr


def test_cli_get_applications_json_and_env_list(shop: Shop) -> None:
    out = progdel(shop, "-o", "json", "get", "applications")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert [(r["app"], r["environment"]) for r in rows] == [
        ("web", "dev"),
        ("web", "staging"),
        ("web", "production"),
        ("web", "sandbox"),
    ]
    envs = {r["environment"]: r for r in rows}
    prod = envs["production"]
    assert (prod["version"], prod["pods"], prod["healthy"]) == ("1.1.0", "2/2", True)
    assert (prod["cluster"], prod["reachable"], prod["verification"]) == ("progdel-sandbox", True, None)
    assert prod["url"] == f"https://web.production.example.com/{shop.namespaces['production']}"
    assert envs["sandbox"]["version"] is None and envs["sandbox"]["pods"] == ""
    only = json.loads(progdel(shop, "-o", "json", "get", "applications", "-e", "staging").stdout)
    assert [r["environment"] for r in only] == ["staging"]
    envs_out = progdel(shop, "env", "list")
    lines = envs_out.stdout.splitlines()
    assert lines[0].split() == [
        "NAME",
        "CLUSTER",
        "NAMESPACE",
        "ORDER",
        "STRATEGY",
        "KIND",
        "CANARY",
        "VERIFY",
        "REPOSITORY",
    ]
    assert [ln.split()[0] for ln in lines[1:]] == ["dev", "staging", "production", "sandbox"]
    assert lines[3].split()[1] == "progdel-sandbox", "the current context, as no environment names one"
    assert lines[3].split()[4:8] == ["Manual", "direct", "no", "no"]


# -- GitOps ------------------------------------------------------------------------------


def gitops_project(
    s: Shop, tmp_path: Path, repository: str, pull_request: dict[str, Any] | None = None
) -> Any:
    gitops: dict[str, Any] = {
        "repository": repository,
        "file": "env/values.yaml",
        "key": "apps.{app}.version",
    }
    if pull_request:
        gitops["pullRequest"] = pull_request
    config = write_config(
        tmp_path / "gitops.yaml", s.namespaces, production={"kind": "gitops", "gitops": gitops}
    )
    return load_project(str(config), tmp_path)


def run_gitops(s: Shop, project: Any, tmp_path: Path, timeout: float, **opts: Any) -> Any:
    app = project.app("web")
    from progdel.promote.inventory import inventory

    inv = inventory(s.kube, project, app)
    plan = plan_promotion(
        project,
        app,
        "production",
        None,
        batch=True,
        versions_by_env=inv.versions_by_env,
        healthy_by_env=inv.healthy_by_env,
    )
    options = PromoteOptions(timeout=timeout, cache_dir=tmp_path / "cache", **opts)
    return run_plan(s.kube, project, plan, options, QuietReporter())


def test_gitops_push_then_the_cluster_converges(shop: Shop, env_remote: Remote, tmp_path: Path) -> None:
    project = gitops_project(shop, tmp_path, str(env_remote.path))
    before = env_remote.head()
    ns = shop.namespaces["production"]

    def controller() -> None:  # a GitOps controller: applies what lands on main
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if env_remote.head() != before:
                version = yaml.safe_load(env_remote.show("main", "env/values.yaml"))["apps"]["web"]["version"]
                patch = {
                    "spec": {
                        "template": {"spec": {"containers": [{"name": "app", "image": f"{IMAGE}:{version}"}]}}
                    }
                }
                shop.kube.patch(
                    DEPLOYMENTS, "web", patch, ns, content_type="application/strategic-merge-patch+json"
                )
                return
            time.sleep(0.05)

    thread = threading.Thread(target=controller, daemon=True)
    thread.start()
    outcomes = run_gitops(shop, project, tmp_path, timeout=120)
    thread.join()
    assert [(o.result, o.version) for o in outcomes] == [("succeeded", "1.2.0")]
    assert (
        env_remote.git("log", "-1", "--format=%s", "main").strip()
        == "chore: promote web to 1.2.0 in production"
    )
    assert shop.image("production") == f"{IMAGE}:1.2.0"
    [record] = history.list_records(shop.kube, project, "web", "production")
    assert record.result == "succeeded" and record.kind == "gitops" and record.commit == env_remote.head()


def test_gitops_cluster_that_never_converges_times_out_naming_the_deployment(
    shop: Shop, env_remote: Remote, tmp_path: Path
) -> None:
    project = gitops_project(shop, tmp_path, str(env_remote.path))
    with pytest.raises(PromotionFailed) as err:
        run_gitops(shop, project, tmp_path, timeout=1.5)
    assert err.value.exit_code == ExitCode.TIMEOUT
    ns = shop.namespaces["production"]
    assert "deploy web" in err.value.message and ns in err.value.message
    assert "did not converge" in err.value.message and "pushed web 1.2.0" in err.value.message
    [record] = history.list_records(shop.kube, project, "web", "production")
    assert record.result == "failed"


def test_gitops_rejected_push_leaves_the_environment_as_it_was(
    shop: Shop, env_remote: Remote, tmp_path: Path
) -> None:
    env_remote.reject_pushes()
    before = env_remote.head()
    project = gitops_project(shop, tmp_path, str(env_remote.path))
    with pytest.raises(PromotionFailed) as err:
        run_gitops(shop, project, tmp_path, timeout=5)
    assert "main is protected" in err.value.message
    assert env_remote.head() == before and shop.image("production") == f"{IMAGE}:1.1.0"


def test_gitops_pull_request_closed_unmerged(
    shop: Shop, env_remote: Remote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, httpx_mock: Any
) -> None:
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", f"url.{tmp_path / 'remotes'}/.insteadOf")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", "https://github.example.com/")
    monkeypatch.setenv("ENV_TOKEN", "s3cret")
    pr_url = "https://github.example.com/shop/env-production/pull/7"
    api = "https://api.github.example.com/repos/shop/env-production/pulls"
    httpx_mock.add_response(
        method="POST", url=api, status_code=201, json={"number": 7, "html_url": pr_url, "state": "open"}
    )
    httpx_mock.add_response(
        method="GET", url=f"{api}/7", json={"number": 7, "html_url": pr_url, "state": "open"}
    )
    httpx_mock.add_response(
        method="GET",
        url=f"{api}/7",
        json={"number": 7, "html_url": pr_url, "state": "closed", "merged": False},
    )
    project = gitops_project(
        shop,
        tmp_path,
        "https://github.example.com/shop/env-production.git",
        {"provider": "github", "tokenEnv": "ENV_TOKEN", "apiUrl": "https://api.github.example.com"},
    )
    with pytest.raises(PromotionFailed) as err:
        run_gitops(shop, project, tmp_path, timeout=10, poll_interval=0.05)
    assert err.value.exit_code == ExitCode.ABORTED
    assert f"{pr_url} was closed without merging" in err.value.message
    [record] = history.list_records(shop.kube, project, "web", "production")
    assert record.result == "failed" and record.pull_request == pr_url
    assert shop.image("production") == f"{IMAGE}:1.1.0"
