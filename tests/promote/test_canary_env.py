"""Promotion into an environment with a canary: the canary loop runs inline, judged by a real
Prometheus loaded with known histories and replayed with a clock that starts in that history."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from progdel.canary.clock import Clock
from progdel.canary.history import list_runs
from progdel.config.project import load_project
from progdel.errors import ExitCode
from progdel.kube.resources import DEPLOYMENTS
from progdel.promote import history
from progdel.promote.inventory import inventory
from progdel.promote.orchestrate import PromoteOptions, PromotionFailed, QuietReporter, run_plan
from progdel.promote.plan import plan_promotion
from tests.canary.test_runner_integration import T0, ReplayClock
from tests.promfixture import TrafficPhase, istio_openmetrics, require_prometheus, run_prometheus

from .conftest import Remote
from .test_cli_promote import progdel
from .test_direct import IMAGE, Shop, kube_fixture, shop_fixture, write_config  # noqa: F401  (fixtures)


def canary_doc() -> dict[str, Any]:
    return {
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": "web"},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "service": {"port": 9898},
            "analysis": {
                "interval": "10s",
                "threshold": 2,
                "maxWeight": 50,
                "stepWeight": 20,
                "metrics": [
                    {"name": "request-success-rate", "thresholdRange": {"min": 99}, "interval": "30s"},
                    {"name": "request-duration", "thresholdRange": {"max": 500}, "interval": "30s"},
                ],
            },
        },
    }


def canary_project(s: Shop, tmp_path: Path, prometheus_url: str) -> Any:
    (tmp_path / "canary.yaml").write_text(yaml.safe_dump(canary_doc()))
    canary = {"canary": {"spec": "canary.yaml", "prometheusUrl": prometheus_url}}
    config = write_config(tmp_path / "canary-env.yaml", s.namespaces, production=canary)
    return load_project(str(config), tmp_path)


def metrics(ns: str, candidate: list[TrafficPhase]) -> str:
    return istio_openmetrics(
        T0, 1800, 5, {f"{ns}/web-primary": [TrafficPhase(0, 20, 0.0, 40)], f"{ns}/web": candidate}
    )


def promote_with_canary(s: Shop, project: Any, clock: Clock, **opts: Any) -> Any:
    app = project.app("web")
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
    reporter = QuietReporter()
    options = PromoteOptions(**{"timeout": 600, **opts}, canary_clock=clock)
    return run_plan(s.kube, project, plan, options, reporter), reporter


def primary_image(s: Shop) -> str:
    dep = s.kube.get(DEPLOYMENTS, "web-primary", s.namespaces["production"])
    return str(dep["spec"]["template"]["spec"]["containers"][0]["image"])


@pytest.fixture(autouse=True)
def _prometheus_installed() -> None:
    require_prometheus()


def test_canary_environment_promotes(shop: Shop, tmp_path: Path) -> None:
    ns = shop.namespaces["production"]
    with run_prometheus(metrics(ns, [TrafficPhase(0, 10, 0.0, 40)]), tmp_path) as prom:
        project = canary_project(shop, tmp_path, prom.url)
        (outcomes, reporter) = promote_with_canary(shop, project, ReplayClock(T0 + timedelta(seconds=300)))
    assert [(o.result, o.canary, o.version) for o in outcomes] == [("succeeded", "promoted", "1.2.0")]
    [run] = list_runs(shop.kube, "web", ns)
    assert (
        outcomes[0].canary_report
        == f"progdel -n {ns} canary report web --run {run.id} -o html --out web-{run.id}.html"
    )
    assert any(line.endswith(outcomes[0].canary_report) for line in reporter.lines), "promote says where"
    assert primary_image(shop) == f"{IMAGE}:1.2.0"
    assert shop.kube.get(DEPLOYMENTS, "web", ns)["spec"]["replicas"] == 0
    weights = {r["canaryWeight"] for r in reporter.records if r.get("kind") == "tick"}
    assert {20, 40} <= weights, "traffic moved step by step"
    [record] = history.list_records(shop.kube, project, "web", "production")
    assert (record.result, record.canary, record.kind) == ("succeeded", "promoted", "direct+canary")
    # the promotion's record names the canary run, whose report it leads to
    assert (record.canary_name, record.canary_run) == ("web", run.id)
    assert (outcomes[0].to_dict()["canaryName"], outcomes[0].to_dict()["canaryRun"]) == ("web", run.id)
    config = tmp_path / "canary-env.yaml"
    listed = progdel(shop, "-o", "json", "promote", "history", "web", config=config)
    assert listed.returncode == 0, listed.stderr
    [shown] = json.loads(listed.stdout)
    assert (shown["canaryName"], shown["canaryRun"]) == ("web", run.id)
    table = progdel(shop, "promote", "history", "web", config=config)
    assert table.returncode == 0 and "CANARY RUN" in table.stdout and run.id in table.stdout
    report = progdel(
        shop, "-n", ns, "canary", "report", shown["canaryName"], "--run", shown["canaryRun"], "-o", "json"
    )
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout)["outcome"] == "promoted"
    served = inventory(shop.kube, project, project.app("web")).placement("production")
    assert (served.deployment, served.version) == ("web-primary", "1.2.0")


def test_canary_environment_rolls_back_and_keeps_the_old_primary(shop: Shop, tmp_path: Path) -> None:
    ns = shop.namespaces["production"]
    bad = [TrafficPhase(0, 10, 0.0, 40), TrafficPhase(200, 10, 0.3, 40)]
    with run_prometheus(metrics(ns, bad), tmp_path) as prom:
        project = canary_project(shop, tmp_path, prom.url)
        with pytest.raises(PromotionFailed) as err:
            promote_with_canary(shop, project, ReplayClock(T0 + timedelta(seconds=300)))
    assert err.value.exit_code == ExitCode.CANARY_FAILED
    assert "rolled back" in err.value.message and f"{ns}/web-primary still runs 1.1.0" in err.value.message
    [run] = list_runs(shop.kube, "web", ns)
    assert run.outcome == "rolled back"
    assert err.value.message.endswith(
        f"report: progdel -n {ns} canary report web --run {run.id} -o html --out web-{run.id}.html"
    )
    assert primary_image(shop) == f"{IMAGE}:1.1.0"
    [record] = history.list_records(shop.kube, project, "web", "production")
    assert (record.result, record.canary, record.exit_code) == ("rolled-back", "rolled back", "3")
    assert (record.canary_name, record.canary_run) == ("web", run.id), "a failed step keeps its run too"
    served = inventory(shop.kube, project, project.app("web")).placement("production")
    assert served.version == "1.1.0"


def test_a_canary_step_that_times_out_keeps_its_interrupted_run(shop: Shop, tmp_path: Path) -> None:
    ns = shop.namespaces["production"]
    with run_prometheus(metrics(ns, [TrafficPhase(0, 10, 0.0, 40)]), tmp_path) as prom:
        project = canary_project(shop, tmp_path, prom.url)
        with pytest.raises(PromotionFailed) as err:
            promote_with_canary(shop, project, ReplayClock(T0 + timedelta(seconds=300)), timeout=25)
    assert err.value.exit_code == ExitCode.TIMEOUT
    [run] = list_runs(shop.kube, "web", ns)
    assert run.outcome == "interrupted", "the run goes on in the cluster, with nobody driving it"
    [record] = history.list_records(shop.kube, project, "web", "production")
    assert (record.result, record.canary_name, record.canary_run) == ("failed", "web", run.id)


def test_gitops_canary_environment_initializes_before_the_push_then_analyses(
    shop: Shop, env_remote: Remote, tmp_path: Path
) -> None:
    ns = shop.namespaces["production"]
    before = env_remote.head()
    primary_when_synced: list[str] = []

    def gitops_controller() -> None:  # applies what lands on main, as Argo CD or Flux would
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and env_remote.head() == before:
            time.sleep(0.05)
        if env_remote.head() == before:
            return
        primary_when_synced.append(primary_image(shop))
        version = yaml.safe_load(env_remote.show("main", "env/values.yaml"))["apps"]["web"]["version"]
        image = {
            "spec": {"template": {"spec": {"containers": [{"name": "app", "image": f"{IMAGE}:{version}"}]}}}
        }
        shop.kube.patch(DEPLOYMENTS, "web", image, ns, content_type="application/strategic-merge-patch+json")

    with run_prometheus(metrics(ns, [TrafficPhase(0, 10, 0.0, 40)]), tmp_path) as prom:
        (tmp_path / "canary.yaml").write_text(yaml.safe_dump(canary_doc()))
        gitops = {"repository": str(env_remote.path), "file": "env/values.yaml", "key": "apps.{app}.version"}
        production = {
            "kind": "gitops",
            "gitops": gitops,
            "canary": {"spec": "canary.yaml", "prometheusUrl": prom.url},
        }
        config = write_config(tmp_path / "gitops-canary.yaml", shop.namespaces, production=production)
        project = load_project(str(config), tmp_path)
        thread = threading.Thread(target=gitops_controller, daemon=True)
        thread.start()
        clock = ReplayClock(T0 + timedelta(seconds=300))
        (outcomes, reporter) = promote_with_canary(shop, project, clock, cache_dir=tmp_path / "cache")
        thread.join()
    # the primary was made from the old version before git changed: the new one went through analysis
    assert primary_when_synced == [f"{IMAGE}:1.1.0"]
    assert [(o.result, o.canary, o.version) for o in outcomes] == [("succeeded", "promoted", "1.2.0")]
    assert {20, 40} <= {r["canaryWeight"] for r in reporter.records if r.get("kind") == "tick"}
    assert primary_image(shop) == f"{IMAGE}:1.2.0"
    [record] = history.list_records(shop.kube, project, "web", "production")
    assert (record.result, record.kind, record.commit) == ("succeeded", "gitops+canary", env_remote.head())


def test_no_wait_updates_the_canary_target_and_leaves_the_run_to_a_watcher(
    shop: Shop, tmp_path: Path
) -> None:
    ns = shop.namespaces["production"]
    project = canary_project(shop, tmp_path, "http://127.0.0.1:9")  # never queried: nothing drives the run
    (outcomes, _) = promote_with_canary(shop, project, ReplayClock(T0), wait=False)
    [outcome] = outcomes
    assert outcome.result == "pending" and f"progdel -n {ns} canary watch web" in outcome.message
    assert primary_image(shop) == f"{IMAGE}:1.1.0", "the primary keeps serving until the canary is judged"
    target = shop.kube.get(DEPLOYMENTS, "web", ns)
    assert target["spec"]["template"]["spec"]["containers"][0]["image"] == f"{IMAGE}:1.2.0"
