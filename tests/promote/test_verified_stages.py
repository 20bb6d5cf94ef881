"""Verified stages across two clusters: dev (one sandbox) verifies a version by its metrics in a real
Prometheus before production (another sandbox) may take it.

The soak runs over recorded history: Prometheus is backfilled with known Istio traffic for dev's
``web``, and verification's clock starts inside that history and moves on as it sleeps, so a
one-minute soak of six checks takes moments while every query is evaluated at the time the check
believes it is. The rollouts themselves happen in the sandboxes, in real time.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from progdel.canary.clock import Clock
from progdel.config.project import Project
from progdel.errors import ExitCode, InvalidInput
from progdel.kube.resources import CONFIGMAPS, DEPLOYMENTS
from progdel.promote import history
from progdel.promote.inventory import inventory
from progdel.promote.orchestrate import (
    PromoteOptions,
    PromotionFailed,
    QuietReporter,
    StepOutcome,
    run_plan,
    verify_running,
)
from progdel.promote.plan import plan_promotion
from tests.canary.test_runner_integration import T0, ReplayClock
from tests.promfixture import TrafficPhase, istio_openmetrics, require_prometheus, run_prometheus

from .conftest import Remote
from .multicluster import TwoClusters, two_fixture  # noqa: F401  (fixture)
from .test_clusters import progdel
from .test_direct import IMAGE

START = T0 + timedelta(seconds=300)  # where verification's clock starts in the recorded history


def verify_block(prometheus_url: str, **extra: Any) -> dict[str, Any]:
    """A one-minute soak, a check every 10s (six in a row), Flagger's built-in metrics."""
    return {
        "soak": "1m",
        "interval": "10s",
        "prometheusUrl": prometheus_url,
        "metrics": [
            {"name": "request-success-rate", "thresholdRange": {"min": 99}, "interval": "30s"},
            {"name": "request-duration", "thresholdRange": {"max": 500}, "interval": "30s"},
        ],
        **extra,
    }


def dev_traffic(two: TwoClusters, phases: list[TrafficPhase]) -> str:
    return istio_openmetrics(T0, 1800, 5, {f"{two.namespaces['dev']}/web": phases})


def promote(
    two: TwoClusters, project: Project, env: str, version: str | None, clock: Clock, **opts: Any
) -> tuple[list[StepOutcome], QuietReporter]:
    app = project.app("web")
    inv = inventory(two.clusters(), project, app)
    plan = plan_promotion(
        project,
        app,
        env,
        version,
        batch=True,
        versions_by_env=inv.versions_by_env,
        healthy_by_env=inv.healthy_by_env,
        verification_by_env=inv.verification_by_env,
    )
    reporter = QuietReporter()
    options = PromoteOptions(timeout=60, canary_clock=clock, **opts)
    return run_plan(two.clusters(), project, plan, options, reporter), reporter


def dev_records(two: TwoClusters, project: Project) -> list[history.PromotionRecord]:
    return history.list_records(two.clusters(), project, "web", "dev")


@pytest.fixture(autouse=True)
def _prometheus_installed() -> None:
    require_prometheus()


def test_a_version_verified_in_dev_is_promoted_to_production_across_clusters(
    two: TwoClusters, tmp_path: Path
) -> None:
    with run_prometheus(dev_traffic(two, [TrafficPhase(0, 10, 0.0, 40)]), tmp_path) as prom:
        config = two.config(dev={"verify": verify_block(prom.url)})
        project = two.project(config)
        # dev's 1.2.0 came before dev verified anything: the gate does not let it through
        refused = progdel(two, "promote", "web", "--env", "production", "-b", config=config)
        assert refused.returncode == ExitCode.WAITING, refused.stderr
        assert "web 1.2.0 runs in dev but is not verified there (unverified)" in refused.stderr

        outcomes, reporter = promote(two, project, "dev", "1.3.0", ReplayClock(START))
        assert [(o.environment, o.result, o.exit_code) for o in outcomes] == [("dev", "verified", 0)]
        assert "verified: 6 checks in a row passed over 1m" in outcomes[0].message
        checks = [r for r in reporter.records if r["kind"] == "verify"]
        assert [c["passed"] for c in checks] == [0, 1, 2, 3, 4, 5, 6]
        assert checks[-1]["state"] == "verified" and checks[-1]["target"] == f"{two.namespaces['dev']}/web"
        assert {m["verdict"] for c in checks[1:] for m in c["metrics"]} == {"pass"}
        [record] = dev_records(two, project)
        assert (record.result, record.to_version, record.gate) == ("verified", "1.3.0", "first")

        # production, in the other cluster, takes the newest verified version from dev
        out = progdel(two, "-o", "json", "promote", "web", "--env", "production", "-b", config=config)
        assert out.returncode == 0, out.stderr
        [step] = json.loads(out.stdout)
        assert (step["version"], step["result"]) == ("1.3.0", "succeeded")
        assert two.image("production") == f"{IMAGE}:1.3.0"
        [prod] = history.list_records(two.clusters(), project, "web", "production")
        assert (prod.gate, prod.from_version, prod.to_version) == ("verified", "1.1.0", "1.3.0")

        apps = progdel(two, "get", "applications", config=config)
        assert apps.returncode == 0, apps.stderr
        rows = [line.split() for line in apps.stdout.splitlines()[1:]]
        assert rows[0][:6] == ["web", "dev", "dev", "1.3.0", "2/2", "verified"]
        assert rows[1][:5] == ["web", "production", "prod", "1.3.0", "2/2"] and "verified" not in rows[1]


def test_a_version_whose_error_rate_breaks_verification_is_rolled_back_and_refused_by_the_gate(
    two: TwoClusters, tmp_path: Path
) -> None:
    # from 290s into the history, half of dev's requests fail: the first check's 30s window sees it
    bad = [TrafficPhase(0, 10, 0.0, 40), TrafficPhase(290, 10, 0.5, 40)]
    with run_prometheus(dev_traffic(two, bad), tmp_path) as prom:
        config = two.config(dev={"verify": verify_block(prom.url)})
        project = two.project(config)
        with pytest.raises(PromotionFailed) as err:
            promote(two, project, "dev", "1.3.0", ReplayClock(START))
    assert err.value.exit_code == ExitCode.CANARY_FAILED
    message = err.value.message
    assert message.startswith("web 1.3.0 failed verification in dev") and "success rate" in message
    assert "rolled web back to 1.2.0" in message
    assert two.image("dev") == f"{IMAGE}:1.2.0"
    [record] = dev_records(two, project)
    assert (record.result, record.exit_code, record.to_version) == ("failed-verification", "3", "1.3.0")

    refused = progdel(two, "promote", "web", "--version", "1.3.0", "--env", "production", "-b", config=config)
    assert refused.returncode == ExitCode.INVALID_INPUT, refused.stderr
    assert "web 1.3.0 does not run in dev (it runs 1.2.0)" in refused.stderr
    assert two.image("production") == f"{IMAGE}:1.1.0"

    forced = progdel(
        two, "promote", "web", "--version", "1.3.0", "--env", "production", "-b", "--force", config=config
    )
    assert forced.returncode == 0, forced.stderr
    [prod] = history.list_records(two.clusters(), project, "web", "production")
    assert prod.gate == "forced: web 1.3.0 does not run in dev (it runs 1.2.0)"


def test_no_wait_leaves_it_pending_and_promote_verify_verifies_what_runs(
    two: TwoClusters, tmp_path: Path
) -> None:
    with run_prometheus(dev_traffic(two, [TrafficPhase(0, 10, 0.0, 40)]), tmp_path) as prom:
        config = two.config(dev={"verify": verify_block(prom.url)})
        project = two.project(config)
        [outcome], _ = promote(two, project, "dev", "1.3.0", ReplayClock(START), wait=False)
        assert outcome.result == "pending"
        assert "progdel promote verify web --env dev" in outcome.message
        assert dev_records(two, project)[0].result == "pending"

        waiting = progdel(two, "promote", "web", "--env", "production", "-b", config=config)
        assert waiting.returncode == ExitCode.WAITING
        assert "not verified there (pending)" in waiting.stderr

        reporter = QuietReporter()
        options = PromoteOptions(timeout=60, canary_clock=ReplayClock(START))
        verified = verify_running(
            two.clusters(), project, project.app("web"), project.environment("dev"), options, reporter
        )
        assert (verified.version, verified.result) == ("1.3.0", "verified")
        [record] = dev_records(two, project)
        assert record.result == "verified", "the record of the promotion that brought 1.3.0"

        ok = progdel(two, "promote", "web", "--env", "production", "-b", config=config)
        assert ok.returncode == 0, ok.stderr
        assert two.image("production") == f"{IMAGE}:1.3.0"


def test_promote_verify_from_the_command_line_streams_ndjson(two: TwoClusters, tmp_path: Path) -> None:
    # The command line's clock is the real one: a soak of one check, one second long.
    with run_prometheus(None, tmp_path) as prom:
        block = {**verify_block(prom.url, soak="1s", interval="1s"), "noData": "skip"}
        config = two.config(dev={"verify": block})
        out = progdel(two, "-o", "ndjson", "promote", "verify", "web", "--env", "dev", config=config)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    checks = [r for r in lines if r.get("kind") == "verify"]
    assert checks[-1]["state"] == "verified" and checks[-1]["version"] == "1.2.0"
    assert {m["verdict"] for m in checks[-1]["metrics"]} == {"skipped"}, "no traffic recorded: skip policy"
    assert lines[-1]["result"] == "verified"
    records = two.kube("dev").items(
        CONFIGMAPS, two.namespaces["dev"], label_selector="progdel.dev/promotion=true"
    )
    assert [(r["data"]["kind"], r["data"]["to"], r["data"]["result"]) for r in records] == [
        ("verify", "1.2.0", "verified")
    ], "no promotion brought 1.2.0: verification records one"


def test_gitops_dev_failing_verification_keeps_running_and_names_the_revert(
    two: TwoClusters, env_remote: Remote, tmp_path: Path
) -> None:
    bad = [TrafficPhase(0, 10, 0.0, 40), TrafficPhase(290, 10, 0.5, 40)]
    with run_prometheus(dev_traffic(two, bad), tmp_path) as prom:
        gitops = {"repository": str(env_remote.path), "file": "env/values.yaml", "key": "apps.{app}.version"}
        config = two.config(dev={"kind": "gitops", "gitops": gitops, "verify": verify_block(prom.url)})
        project = two.project(config)
        [pushed], _ = promote(
            two, project, "dev", "1.3.0", ReplayClock(START), wait=False, cache_dir=tmp_path / "c"
        )
        assert pushed.result == "pending"
        # the GitOps controller syncs it later
        image = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": f"{IMAGE}:1.3.0"}]}}}}
        two.kube("dev").patch(
            DEPLOYMENTS,
            "web",
            image,
            two.namespaces["dev"],
            content_type="application/strategic-merge-patch+json",
        )
        options = PromoteOptions(timeout=60, canary_clock=ReplayClock(START))
        with pytest.raises(PromotionFailed) as err:
            verify_running(
                two.clusters(),
                project,
                project.app("web"),
                project.environment("dev"),
                options,
                QuietReporter(),
            )
    assert err.value.exit_code == ExitCode.CANARY_FAILED
    commit = env_remote.head()
    assert (
        f"revert commit {commit[:12]} in {env_remote.path} (env/values.yaml: apps.web.version back to 1.2.0)"
        in (err.value.message)
    )
    assert two.image("dev") == f"{IMAGE}:1.3.0", (
        "git says 1.3.0: progdel does not fight the GitOps controller"
    )
    [record] = dev_records(two, project)
    assert (record.result, record.commit) == ("failed-verification", commit)

    refused = progdel(two, "promote", "web", "--env", "production", "-b", config=config)
    assert refused.returncode == ExitCode.INVALID_INPUT
    assert "web 1.3.0 failed verification in dev: it may not go further" in refused.stderr


def test_prometheus_unreachable_during_the_soak_fails_it_with_exit_6(
    two: TwoClusters, tmp_path: Path
) -> None:
    with run_prometheus(dev_traffic(two, [TrafficPhase(0, 10, 0.0, 40)]), tmp_path) as prom:
        config = two.config(dev={"verify": verify_block(prom.url, maxInfraErrors=2)})
        project = two.project(config)
        clock = OutageClock(START, prom.stop)
        with pytest.raises(PromotionFailed) as err:
            promote(two, project, "dev", "1.3.0", clock)
    assert err.value.exit_code == ExitCode.UNREACHABLE
    assert "infrastructure errors on 2 consecutive checks" in err.value.message
    assert "rolled web back to 1.2.0" in err.value.message
    [record] = dev_records(two, project)
    assert (record.result, record.exit_code) == ("failed-verification", "6")


def test_a_query_prometheus_rejects_is_refused_before_anything_changes(
    two: TwoClusters, tmp_path: Path
) -> None:
    with run_prometheus(None, tmp_path) as prom:
        block = verify_block(prom.url)
        block["metrics"] = [
            {"name": "errors", "query": "sum(rate(istio_requests_total[1m])", "thresholdRange": {"max": 1}}
        ]
        config = two.config(dev={"verify": block})
        with pytest.raises(InvalidInput) as err:
            promote(two, two.project(config), "dev", "1.3.0", ReplayClock(START))
    assert err.value.exit_code == ExitCode.INVALID_INPUT
    assert err.value.message.startswith("environment dev verify: metric errors: Prometheus at")
    assert "parse error" in err.value.message
    assert two.image("dev") == f"{IMAGE}:1.2.0"
    assert dev_records(two, two.project(config)) == [], "nothing recorded"


class OutageClock(ReplayClock):
    """A replay clock during whose first wait Prometheus goes away."""

    def __init__(self, start: Any, outage: Any) -> None:
        super().__init__(start)
        self.outage = outage

    def sleep(self, seconds: float) -> None:
        if self.outage is not None:
            self.outage()
            self.outage = None
        super().sleep(seconds)
