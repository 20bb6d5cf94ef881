"""Verification as a pure loop: scripted observations and a fake clock, no cluster, no Prometheus.

Each check is judged by the canary's own ``judge_metric``; these tests hold how checks add up to
``verified`` over the soak time, and what ends a verification early, with which exit code.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from progdel.canary.judge import MetricResult
from progdel.config.project import Environment, project_from_document
from progdel.config.yamlfile import parse_documents
from progdel.errors import ExitCode
from progdel.kube.readiness import Readiness
from progdel.promote.verify import Observed, Progress, judge_check, run_checks, verification_canary

T0 = datetime(2024, 1, 1, tzinfo=UTC)

PROJECT = """\
environments:
  - name: dev
    namespace: shop-dev
    order: 100
    promotionStrategy: Auto
    verify:
      soak: 1m
      interval: 10s
      maxInfraErrors: 3
      noData: request-duration=hold
      metrics:
        - {name: request-success-rate, thresholdRange: {min: 99}, interval: 30s}
        - {name: request-duration, thresholdRange: {max: 500}, interval: 30s}
apps:
  - {name: web, image: registry.example.com/web}
"""

GOOD = {"request-success-rate": MetricResult.ok(100.0), "request-duration": MetricResult.ok(40.0)}
ERRORS = {"request-success-rate": MetricResult.ok(70.0), "request-duration": MetricResult.ok(40.0)}
NO_LATENCY = {"request-success-rate": MetricResult.ok(100.0), "request-duration": MetricResult.no_data()}
DOWN = {name: MetricResult.infra_error("cannot reach http://prometheus:9090") for name in GOOD}


class FakeClock:
    def __init__(self) -> None:
        self.t = T0

    def now(self) -> datetime:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += timedelta(seconds=seconds)


@pytest.fixture
def dev() -> Environment:
    project = project_from_document(parse_documents(PROJECT, "progdel.yaml")[0], Path("/tmp"))
    return project.environment("dev")


def ok(metrics: dict[str, MetricResult], version: str = "1.3.0", **kw: Any) -> Callable[[datetime], Observed]:
    return lambda at: Observed(at, version, metrics=metrics, **kw)


def script(*steps: Callable[[datetime], Observed]) -> Callable[[datetime], Observed]:
    """Each check gets the next step; the last one repeats."""
    seen: list[datetime] = []

    def observe(at: datetime) -> Observed:
        seen.append(at)
        return steps[min(len(seen), len(steps)) - 1](at)

    observe.seen = seen  # type: ignore[attr-defined]
    return observe


def run(
    dev: Environment, observe: Callable[[datetime], Observed], timeout: float = 60
) -> tuple[Progress, list]:
    records: list[dict[str, Any]] = []
    canary = verification_canary(dev, _app())
    progress = run_checks(
        canary, dev, "1.3.0", observe=observe, clock=FakeClock(), sink=records.append, timeout=timeout
    )
    return progress, records


def _app() -> Any:
    from progdel.config.project import App

    return App(name="web", image="registry.example.com/web")


def test_six_passing_checks_every_10s_verify_a_1m_soak(dev: Environment) -> None:
    observe = script(ok(GOOD))
    progress, records = run(dev, observe)
    assert (progress.state, progress.exit_code, progress.checks, progress.passed) == ("verified", 0, 6, 6)
    assert observe.seen == [T0 + timedelta(seconds=10 * k) for k in range(1, 7)], "each check at its time"
    checks = [r for r in records if r["kind"] == "verify"]
    assert [c["passed"] for c in checks] == [0, 1, 2, 3, 4, 5, 6]
    assert checks[-1]["state"] == "verified" and checks[-1]["metrics"][0] == {
        "name": "request-success-rate",
        "value": 100.0,
        "min": 99,
        "max": None,
        "verdict": "pass",
        "message": "success rate 100.00%",
    }
    assert any(r["kind"] == "event" and "passed: 6 checks in a row" in r["message"] for r in records)


def test_a_failing_metric_fails_the_verification_at_once(dev: Environment) -> None:
    progress, records = run(dev, script(ok(GOOD), ok(GOOD), ok(ERRORS)))
    assert (progress.state, progress.exit_code, progress.checks) == ("failed", ExitCode.CANARY_FAILED, 3)
    assert progress.message == "success rate 70.00% < 99%"
    warnings = [r["message"] for r in records if r["kind"] == "event" and r["type"] == "Warning"]
    assert warnings == ["Verification of web.shop-dev failed: success rate 70.00% < 99%"]


def test_held_checks_start_the_run_of_passing_checks_over(dev: Environment) -> None:
    not_ready = ok({}, readiness=Readiness.NOT_READY, not_ready="1 of 2 replicas available")
    observe = script(ok(GOOD), ok(GOOD), ok(NO_LATENCY), not_ready, ok(GOOD))
    progress, records = run(dev, observe)
    assert (progress.state, progress.checks, progress.passed) == ("verified", 10, 6)
    passed = [r["passed"] for r in records if r["kind"] == "verify"]
    assert passed[:6] == [0, 1, 2, 0, 0, 1], "no data under hold, then not ready: the run starts over"
    notes = [r["note"] for r in records if r["kind"] == "verify"][3:5]
    assert notes == ["holding: no data", "holding: 1 of 2 replicas available"]


def test_no_data_fails_under_the_default_policy(dev: Environment) -> None:
    no_rate = {"request-success-rate": MetricResult.no_data(), "request-duration": MetricResult.ok(40.0)}
    progress, _ = run(dev, script(ok(no_rate)))
    assert (progress.state, progress.exit_code) == ("failed", ExitCode.CANARY_FAILED)
    assert "no values found for istio metric request-success-rate" in progress.message


def test_infrastructure_errors_hold_then_fail_with_exit_6(dev: Environment) -> None:
    progress, records = run(dev, script(ok(GOOD), ok(DOWN), ok(GOOD), ok(DOWN)))
    assert (progress.state, progress.exit_code, progress.checks) == ("failed", ExitCode.UNREACHABLE, 6)
    assert progress.message.startswith("infrastructure errors on 3 consecutive checks")
    assert [r["infraErrors"] for r in records if r["kind"] == "verify"] == [0, 0, 1, 0, 1, 2, 3]


def test_the_cluster_not_answering_is_an_infrastructure_error(dev: Environment) -> None:
    down = lambda at: Observed(at, None, infra_error="cannot reach the Kubernetes API at x (context dev)")  # noqa: E731
    progress, _ = run(dev, script(down))
    assert (progress.state, progress.exit_code) == ("failed", ExitCode.UNREACHABLE)
    assert "(context dev)" in progress.message


@pytest.mark.parametrize(
    ("step", "state", "code", "message"),
    [
        (
            ok(
                {},
                readiness=Readiness.DEADLINE_EXCEEDED,
                not_ready="deployment web exceeded its progress deadline",
            ),
            "failed",
            ExitCode.CANARY_FAILED,
            "web.shop-dev not ready: deployment web exceeded its progress deadline",
        ),
        (ok(GOOD, version="1.4.0"), "stopped", ExitCode.ABORTED, "web.shop-dev runs 1.4.0 now, not 1.3.0"),
        (
            ok({**GOOD, "request-duration": MetricResult.rejected("bad_data: parse error")}),
            "failed",
            ExitCode.INVALID_INPUT,
            "query for metric request-duration was rejected: bad_data: parse error",
        ),
        (
            lambda at: Observed(at, "1.3.0", spec_error="MetricTemplate shop-dev/errors not found"),
            "failed",
            ExitCode.INVALID_INPUT,
            "MetricTemplate shop-dev/errors not found",
        ),
    ],
)
def test_what_ends_a_verification_early(dev: Environment, step, state, code, message) -> None:
    progress, _ = run(dev, script(ok(GOOD), step))
    assert (progress.state, progress.exit_code, progress.message) == (state, code, message)


def test_holding_past_soak_plus_timeout_fails_with_exit_7(dev: Environment) -> None:
    progress, _ = run(dev, script(ok(NO_LATENCY)), timeout=30)
    assert (progress.state, progress.exit_code) == ("failed", ExitCode.TIMEOUT)
    assert progress.checks == 9, "1m soak + 30s, a check every 10s"
    assert progress.message.startswith("0 of 6 checks in a row passed after 1m30s (holding: no data)")


def test_judge_check_is_pure(dev: Environment) -> None:
    canary = verification_canary(dev, _app())
    before = Progress(needed=6, passed=2)
    after, events = judge_check(canary, "1.3.0", before, Observed(T0, "1.3.0", metrics=GOOD))
    assert (before.passed, after.passed, after.checks, events) == (2, 3, 1, [])
