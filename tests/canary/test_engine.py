"""Tick sequences of the pure canary engine under a fake clock, against Flagger's behaviour."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from progdel.canary.actions import Event, PromoteTemplate, ScaleCanary, ScaleCanaryToZero, SetWeights
from progdel.canary.engine import ObservationMissing, TickResult, needs_metrics, tick
from progdel.canary.judge import MetricResult
from progdel.canary.observation import Command, Observation, Weights
from progdel.canary.status import CanaryStatus, Phase, progdel_wrote_last
from progdel.config.canary import Canary, parse_canary
from progdel.errors import ExitCode
from progdel.kube.readiness import Readiness
from progdel.metrics.provider import MetricsUnreachable, NoData, QueryRejected

T0 = datetime(2024, 1, 1, tzinfo=UTC)
GOOD = {"request-success-rate": MetricResult.ok(99.9), "request-duration": MetricResult.ok(120.0)}
BAD_SR = {"request-success-rate": MetricResult.ok(69.17), "request-duration": MetricResult.ok(120.0)}
SLOW = {"request-success-rate": MetricResult.ok(100.0), "request-duration": MetricResult.ok(1200.7)}


def make_canary(
    analysis: Mapping[str, Any] | None = None, annotations: Mapping[str, str] | None = None, **spec: Any
) -> Canary:
    a: dict[str, Any] = {
        "interval": "1s",
        "threshold": 2,
        "maxWeight": 50,
        "stepWeight": 10,
        "metrics": [
            {"name": "request-success-rate", "thresholdRange": {"min": 99}, "interval": "1m"},
            {"name": "request-duration", "thresholdRange": {"max": 500}, "interval": "1m"},
        ],
    }
    if analysis is not None:
        a.update(analysis)
        a = {k: v for k, v in a.items() if v is not None}
    body: dict[str, Any] = {
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
        "service": {"port": 9898},
        "analysis": a,
        **spec,
    }
    data = {
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": "test", "annotations": dict(annotations or {})},
        "spec": body,
    }
    return parse_canary(data, "test").model


@dataclass
class Sim:
    """A fake world: the router's weights follow SetWeights, the clock moves 1s per tick."""

    canary: Canary
    status: CanaryStatus = field(default_factory=CanaryStatus)
    now: datetime = T0
    revision: str = "rev-1"
    weights: Weights = field(default_factory=lambda: Weights(100, 0))
    history: list[TickResult] = field(default_factory=list)

    def step(
        self,
        metrics: Mapping[str, MetricResult] | None = None,
        *,
        command: Command | None = None,
        primary: Readiness = Readiness.READY,
        canary: Readiness = Readiness.READY,
        infra_error: str | None = None,
        requests: MetricResult | None = None,
    ) -> TickResult:
        obs = Observation(
            now=self.now,
            revision=self.revision,
            primary=primary,
            canary=canary,
            weights=self.weights,
            command=command,
            infra_error=infra_error,
        )
        if needs_metrics(self.canary, self.status, obs):
            obs = Observation(
                now=self.now,
                revision=self.revision,
                primary=primary,
                canary=canary,
                weights=self.weights,
                metrics=GOOD if metrics is None else metrics,
                canary_requests=requests,
                requests_window="1m",
                command=command,
                infra_error=infra_error,
            )
        result = tick(self.canary, self.status, obs)
        for a in result.actions:
            if isinstance(a, SetWeights):
                self.weights = Weights(a.primary, a.canary, a.mirror)
        # every tick reads back what it stored: the state must survive the status' round trip
        self.status = CanaryStatus.from_dict(result.status.to_dict())
        self.history.append(result)
        self.now += timedelta(seconds=1)
        return result

    def init_and_change(self) -> None:
        """Initialise on rev-1, then deploy rev-2 (the next tick starts a run)."""
        self.step()
        assert self.status.phase is Phase.INITIALIZED
        self.revision = "rev-2"

    def trace(self) -> list[tuple[str, int]]:
        return [(str(r.status.phase), r.status.canary_weight) for r in self.history]


def run_until_settled(sim: Sim, limit: int = 40, **kw: Any) -> None:
    for _ in range(limit):
        if sim.step(**kw).settled and sim.status.phase is not Phase.INITIALIZED:
            return
    raise AssertionError(f"not settled: {sim.trace()}")


def all_messages(sim: Sim) -> list[str]:
    return [m for r in sim.history for m in r.messages]


# ---- progressive canary ----------------------------------------------------------------------


def test_full_progressive_run_phase_and_weight_sequence() -> None:
    sim = Sim(make_canary())
    sim.init_and_change()
    run_until_settled(sim)
    assert sim.trace() == [
        ("Initialized", 0),
        ("Progressing", 0),
        ("Progressing", 10),
        ("Progressing", 20),
        ("Progressing", 30),
        ("Progressing", 40),
        ("Progressing", 50),
        ("Promoting", 50),
        ("Finalising", 0),
        ("Succeeded", 0),
    ]
    msgs = all_messages(sim)
    assert msgs[:4] == [
        "Initialization done! podinfo.test",
        "New revision detected! Scaling up podinfo.test",
        "Starting canary analysis for podinfo.test",
        "Advance podinfo.test canary weight 10",
    ]
    assert msgs[-3:] == [
        "Copying podinfo.test template spec to podinfo-primary.test",
        "Routing all traffic to primary",
        "Promotion completed! Scaling down podinfo.test",
    ]
    last = sim.history[-1]
    assert last.exit_hint is ExitCode.OK
    assert sim.status.last_promoted_spec == "rev-2"
    assert sim.weights == Weights(100, 0)
    # Actions at the key transitions.
    assert ScaleCanary("up") in sim.history[1].actions
    assert PromoteTemplate() in sim.history[7].actions
    assert ScaleCanaryToZero() in last.actions


def test_first_step_runs_no_metrics_and_later_steps_do() -> None:
    sim = Sim(make_canary())
    sim.init_and_change()
    sim.step()  # Progressing(0): scale up
    obs = Observation(now=sim.now, revision="rev-2", weights=sim.weights)
    assert not needs_metrics(sim.canary, sim.status, obs)  # first analysis step: weight 0
    sim.step()
    obs = Observation(now=sim.now, revision="rev-2", weights=sim.weights)
    assert needs_metrics(sim.canary, sim.status, obs)
    with pytest.raises(ObservationMissing):
        tick(sim.canary, sim.status, obs)


@pytest.mark.parametrize(
    ("analysis", "weights"),
    [
        ({"maxWeight": 50, "stepWeight": 20}, [20, 40, 60]),  # overshoot: capped at 100, not max
        ({"maxWeight": 100, "stepWeight": 30}, [30, 60, 90, 100]),
        ({"maxWeight": None, "stepWeight": 50}, [50, 100]),
        ({"stepWeight": None, "maxWeight": None, "stepWeights": [1, 5, 25, 50]}, [1, 5, 25, 50]),
        ({"stepWeight": None, "maxWeight": None, "stepWeights": [10, 100]}, [10, 100]),
    ],
)
def test_weight_steps(analysis: dict[str, Any], weights: list[int]) -> None:
    sim = Sim(make_canary(analysis))
    sim.init_and_change()
    run_until_settled(sim)
    advanced = [w for p, w in sim.trace() if p == "Progressing" and w > 0]
    assert advanced == weights
    assert sim.status.phase is Phase.SUCCEEDED


def test_step_weights_unknown_current_weight_jumps_to_100() -> None:
    canary = make_canary({"stepWeight": None, "maxWeight": None, "stepWeights": [10, 20, 40]})
    status = CanaryStatus(
        phase=Phase.PROGRESSING, canary_weight=15, last_applied_spec="r", last_promoted_spec="p"
    )
    r = tick(canary, status, Observation(now=T0, revision="r", weights=Weights(85, 15), metrics=GOOD))
    assert SetWeights(0, 100) in r.actions


def test_step_weight_promotion_shifts_back_gradually() -> None:
    sim = Sim(make_canary({"maxWeight": 60, "stepWeight": 30, "stepWeightPromotion": 25}))
    sim.init_and_change()
    run_until_settled(sim)
    assert sim.trace()[3:] == [
        ("Progressing", 60),
        ("Promoting", 60),
        ("Promoting", 35),
        ("Promoting", 10),
        ("Finalising", 0),
        ("Succeeded", 0),
    ]
    assert "Advance podinfo.test primary weight 65" in all_messages(sim)
    assert "Advance podinfo.test primary weight 90" in all_messages(sim)
    assert "Advance podinfo.test primary weight 100" in all_messages(sim)
    assert "Routing all traffic to primary" not in all_messages(sim)


# ---- failures and rollback -------------------------------------------------------------------


def test_rollback_on_the_tick_threshold_is_reached() -> None:
    sim = Sim(make_canary({"threshold": 2}))
    sim.init_and_change()
    sim.step()
    sim.step()  # weight 10
    r1 = sim.step(BAD_SR)
    assert r1.status.phase is Phase.PROGRESSING and r1.status.failed_checks == 1
    assert r1.messages == ["Halt podinfo.test advancement success rate 69.17% < 99%"]
    assert sim.weights == Weights(90, 10)  # held, not advanced
    r2 = sim.step(BAD_SR)
    assert r2.status.phase is Phase.FAILED
    assert r2.messages == [
        "Halt podinfo.test advancement success rate 69.17% < 99%",
        "Rolling back podinfo.test failed checks threshold reached 2",
        "Canary failed! Scaling down podinfo.test",
    ]
    assert SetWeights(100, 0) in r2.actions and ScaleCanaryToZero() in r2.actions
    assert r2.exit_hint is ExitCode.CANARY_FAILED and r2.settled
    assert r2.status.failed_checks == 0 and r2.status.canary_weight == 0
    # A failed run stays failed until a new revision arrives.
    r3 = sim.step()
    assert r3.actions == [] and r3.status.phase is Phase.FAILED and r3.exit_hint is ExitCode.CANARY_FAILED


def test_failed_checks_are_cumulative_not_consecutive() -> None:
    sim = Sim(make_canary({"threshold": 2}))
    sim.init_and_change()
    sim.step()
    sim.step()
    sim.step(BAD_SR)
    sim.step(GOOD)  # success does not reset the count
    assert sim.status.failed_checks == 1 and sim.status.canary_weight == 20
    assert sim.step(SLOW).status.phase is Phase.FAILED
    assert "Halt podinfo.test advancement request duration 1.2s > 500ms" in all_messages(sim)


def test_threshold_one_rolls_back_on_first_failure() -> None:
    sim = Sim(make_canary({"threshold": 1}))
    sim.init_and_change()
    sim.step()
    sim.step()
    assert sim.step(BAD_SR).status.phase is Phase.FAILED


# ---- no data ----------------------------------------------------------------------------------

NO_SR = {"request-success-rate": MetricResult.no_data(), "request-duration": MetricResult.ok(100.0)}


def _to_first_analysis(sim: Sim) -> None:
    sim.init_and_change()
    sim.step()
    sim.step()
    assert sim.weights == Weights(90, 10)


def test_no_data_fails_by_default_with_flagger_wording() -> None:
    sim = Sim(make_canary())
    _to_first_analysis(sim)
    r = sim.step(NO_SR)
    assert r.messages == [
        "Halt advancement no values found for istio metric request-success-rate "
        "probably podinfo.test is not receiving traffic: running query failed: no values found"
    ]
    assert r.status.failed_checks == 1 and sim.weights == Weights(90, 10)
    assert r.status.measurements["request-success-rate"].verdict == "no-data"


def test_no_data_skip_passes_with_a_note() -> None:
    sim = Sim(make_canary(annotations={"progdel.dev/no-data": "request-success-rate=skip"}))
    _to_first_analysis(sim)
    r = sim.step(NO_SR)
    assert r.status.failed_checks == 0
    assert sim.weights == Weights(80, 20)
    assert any(m.startswith("Skipping request-success-rate check") for m in r.messages)
    assert r.status.measurements["request-success-rate"].verdict == "skipped"


def test_no_data_hold_neither_advances_nor_fails() -> None:
    sim = Sim(make_canary({"threshold": 1}, annotations={"progdel.dev/no-data": "hold"}))
    _to_first_analysis(sim)
    for _ in range(5):
        r = sim.step(NO_SR)
        assert r.status.phase is Phase.PROGRESSING and r.status.failed_checks == 0
    assert sim.weights == Weights(90, 10)
    sim.step(GOOD)
    assert sim.weights == Weights(80, 20)


def test_no_data_policy_is_per_metric() -> None:
    sim = Sim(make_canary(annotations={"progdel.dev/no-data": "request-duration=skip"}))
    _to_first_analysis(sim)
    r = sim.step(NO_SR)  # success rate has no policy entry: fail
    assert r.status.failed_checks == 1


def test_too_few_requests_hold_without_judging_then_judging_resumes() -> None:
    sim = Sim(make_canary({"threshold": 1}, annotations={"progdel.dev/min-requests": "100"}))
    _to_first_analysis(sim)
    for served in (0.0, 12.0, 99.4):
        r = sim.step(BAD_SR, requests=MetricResult.ok(served))  # a bad rate on a handful of requests
        assert r.status.phase is Phase.PROGRESSING and r.status.failed_checks == 0
        assert r.messages == [
            f"Halt podinfo.test advancement holding: podinfo.test served {served:.0f} requests in the "
            "last 1m, fewer than the 100 progdel.dev/min-requests asks for before judging"
        ]
        assert r.status.measurements["request-success-rate"].verdict == "hold"
        assert r.status.measurements["request-success-rate"].value == 69.17, "the value is still shown"
    assert sim.weights == Weights(90, 10)
    sim.step(GOOD, requests=MetricResult.no_data())  # no series at all: nothing served
    assert sim.weights == Weights(90, 10)
    sim.step(GOOD, requests=MetricResult.ok(150.0))
    assert sim.weights == Weights(80, 20)
    r = sim.step(BAD_SR, requests=MetricResult.ok(150.0))  # enough requests: judged, and it fails
    assert r.status.phase is Phase.FAILED


def test_request_count_that_cannot_be_read_is_an_infrastructure_error() -> None:
    sim = Sim(make_canary(annotations={"progdel.dev/min-requests": "100"}))
    _to_first_analysis(sim)
    r = sim.step(GOOD, requests=MetricResult.infra_error("cannot reach Prometheus"))
    assert r.status.infra_errors == 1 and r.status.failed_checks == 0
    assert sim.weights == Weights(90, 10)


# ---- infrastructure errors -----------------------------------------------------------------

DOWN = {
    "request-success-rate": MetricResult.infra_error(
        "cannot reach Prometheus at http://p:9090: connection refused"
    ),
    "request-duration": MetricResult.ok(100.0),
}


def test_infra_errors_hold_then_roll_back_after_the_limit() -> None:
    sim = Sim(make_canary({"threshold": 1}, annotations={"progdel.dev/max-infra-errors": "3"}))
    _to_first_analysis(sim)
    for n in (1, 2):
        r = sim.step(DOWN)
        assert r.status.phase is Phase.PROGRESSING
        assert r.status.failed_checks == 0 and r.status.infra_errors == n
        assert sim.weights == Weights(90, 10)
        assert r.messages == [
            "Metric query failed for request-success-rate: "
            "cannot reach Prometheus at http://p:9090: connection refused"
        ]
    r = sim.step(DOWN)
    assert r.status.phase is Phase.FAILED
    assert r.exit_hint is ExitCode.UNREACHABLE
    assert "Canary failed! Scaling down podinfo.test" in r.messages


def test_infra_error_count_is_consecutive() -> None:
    sim = Sim(make_canary(annotations={"progdel.dev/max-infra-errors": "2"}))
    _to_first_analysis(sim)
    sim.step(DOWN)
    sim.step(GOOD)
    assert sim.status.infra_errors == 0
    sim.step(DOWN)
    assert sim.status.phase is Phase.PROGRESSING


def test_api_infra_error_holds_without_counting_a_failure() -> None:
    sim = Sim(make_canary())
    _to_first_analysis(sim)
    r = sim.step(infra_error="GET virtualservices/podinfo: 503")
    assert r.status.infra_errors == 1 and r.status.failed_checks == 0
    assert [a for a in r.actions if not hasattr(a, "message")] == []


def test_rejected_query_is_fatal_spec_error() -> None:
    sim = Sim(make_canary())
    _to_first_analysis(sim)
    r = sim.step(
        {
            "request-success-rate": MetricResult.rejected("parse error"),
            "request-duration": GOOD["request-duration"],
        }
    )
    assert r.status.phase is Phase.FAILED and r.exit_hint is ExitCode.INVALID_INPUT


def test_metric_result_from_provider_errors() -> None:
    assert MetricResult.from_provider(NoData("x")).outcome == "no-data"
    assert MetricResult.from_provider(MetricsUnreachable("x")).outcome == "infra-error"
    assert MetricResult.from_provider(QueryRejected("x")).outcome == "rejected"
    assert MetricResult.from_provider(1.5).value == 1.5


# ---- operator commands -------------------------------------------------------------------------


def test_abort_rolls_back_now() -> None:
    sim = Sim(make_canary())
    _to_first_analysis(sim)
    r = sim.step(command=Command.ABORT)
    assert r.status.phase is Phase.FAILED and r.exit_hint is ExitCode.ABORTED
    assert r.messages[0] == "Rolling back podinfo.test aborted by operator"
    assert sim.weights == Weights(100, 0)
    assert sim.step().exit_hint is ExitCode.ABORTED  # the status remembers why


def test_promote_skips_the_rest_of_the_analysis() -> None:
    sim = Sim(make_canary())
    _to_first_analysis(sim)
    r = sim.step(BAD_SR, command=Command.PROMOTE)
    assert r.status.phase is Phase.PROMOTING and PromoteTemplate() in r.actions
    run_until_settled(sim)
    assert sim.status.phase is Phase.SUCCEEDED


# ---- readiness and deadlines ---------------------------------------------------------------------


def test_canary_not_ready_waits_then_rolls_back_past_the_deadline() -> None:
    sim = Sim(
        make_canary(),
    )
    sim.canary.spec.progress_deadline_seconds = 5
    sim.init_and_change()
    sim.step()  # scale up
    for _ in range(6):  # T+0..T+5 not ready: within the deadline
        r = sim.step(canary=Readiness.NOT_READY)
        assert r.status.phase is Phase.PROGRESSING
    assert sim.weights == Weights(100, 0)
    r = sim.step(canary=Readiness.NOT_READY)
    assert r.status.phase is Phase.FAILED
    assert r.messages[0].startswith("Rolling back podinfo.test progress deadline exceeded")


def test_deadline_reported_by_the_workload_rolls_back_at_once() -> None:
    sim = Sim(make_canary())
    _to_first_analysis(sim)
    assert sim.step(canary=Readiness.DEADLINE_EXCEEDED).status.phase is Phase.FAILED


def test_primary_deadline_during_promotion_routes_to_canary() -> None:
    sim = Sim(make_canary({"maxWeight": 10}))
    sim.init_and_change()
    for _ in range(3):
        sim.step()
    assert sim.status.phase is Phase.PROMOTING
    r = sim.step(primary=Readiness.DEADLINE_EXCEEDED)
    assert r.status.phase is Phase.FAILED and SetWeights(0, 100) in r.actions


def test_initialization_waits_for_primary() -> None:
    sim = Sim(make_canary())
    r = sim.step(primary=Readiness.NOT_READY)
    assert r.status.phase is Phase.INITIALIZING and r.actions == []
    assert r.status.conditions[0]["status"] == "Unknown"
    r = sim.step()
    assert r.status.phase is Phase.INITIALIZED and r.status.conditions[0]["status"] == "True"


# ---- revisions -------------------------------------------------------------------------------------


def test_revision_change_mid_run_restarts_the_analysis() -> None:
    sim = Sim(make_canary())
    _to_first_analysis(sim)
    sim.step(BAD_SR)
    sim.revision = "rev-3"
    r = sim.step()
    assert r.messages == ["New revision detected! Restarting analysis for podinfo.test"]
    assert sim.weights == Weights(100, 0)
    assert r.status.failed_checks == 0 and r.status.canary_weight == 0
    assert r.status.last_applied_spec == "rev-3"
    assert sim.step().messages[0] == "Starting canary analysis for podinfo.test"


def test_revert_to_the_promoted_revision_does_not_start_a_run() -> None:
    sim = Sim(make_canary({"threshold": 1}))
    _to_first_analysis(sim)
    sim.step(BAD_SR)
    assert sim.status.phase is Phase.FAILED
    sim.revision = "rev-1"  # back to what the primary runs
    r = sim.step()
    assert r.actions == [] and r.status.phase is Phase.FAILED
    sim.revision = "rev-4"
    assert sim.step().status.phase is Phase.PROGRESSING


def test_skip_analysis_promotes_at_once() -> None:
    sim = Sim(make_canary(skipAnalysis=True))
    sim.init_and_change()
    sim.step()
    r = sim.step()
    assert r.status.phase is Phase.SUCCEEDED
    assert PromoteTemplate() in r.actions and r.exit_hint is ExitCode.OK


def test_suspend_does_nothing_but_say_so() -> None:
    """Flagger's ``advanceCanary``: a suspended canary records "skipping canary run as object is
    suspended" on every tick and does nothing else."""
    sim = Sim(make_canary(suspend=True))
    r = sim.step()
    assert r.messages == ["skipping canary run as object is suspended"]
    assert r.events[0].type == "Normal" and r.events[0].alert is None
    assert [a for a in r.actions if not isinstance(a, Event)] == [] and r.status.phase is Phase.NONE


# ---- A/B and Blue/Green ------------------------------------------------------------------------------


def test_ab_testing_iterations() -> None:
    sim = Sim(
        make_canary(
            {
                "iterations": 3,
                "stepWeight": None,
                "maxWeight": None,
                "match": [{"headers": {"x-canary": {"exact": "insider"}}}],
            }
        )
    )
    sim.init_and_change()
    run_until_settled(sim)
    msgs = all_messages(sim)
    assert [m for m in msgs if "iteration" in m] == [
        "Advance podinfo.test canary iteration 1/3",
        "Advance podinfo.test canary iteration 2/3",
        "Advance podinfo.test canary iteration 3/3",
    ]
    assert [str(r.status.phase) for r in sim.history][-3:] == ["Promoting", "Finalising", "Succeeded"]


def test_blue_green_routes_all_to_canary_before_promoting() -> None:
    sim = Sim(make_canary({"iterations": 2, "stepWeight": None, "maxWeight": None}))
    sim.init_and_change()
    run_until_settled(sim)
    msgs = all_messages(sim)
    i_route = msgs.index("Routing all traffic to canary")
    i_copy = msgs.index("Copying podinfo.test template spec to podinfo-primary.test")
    assert msgs.index("Advance podinfo.test canary iteration 2/2") < i_route < i_copy
    assert sim.status.phase is Phase.SUCCEEDED


# ---- status -------------------------------------------------------------------------------------------


def test_status_round_trips_in_camel_case() -> None:
    sim = Sim(make_canary())
    _to_first_analysis(sim)
    sim.step(BAD_SR)
    d = sim.status.to_dict()
    assert d["phase"] == "Progressing" and d["canaryWeight"] == 10 and d["failedChecks"] == 1
    assert d["lastAppliedSpec"] == "rev-2" and d["conditions"][0]["reason"] == "Progressing"
    d["someFlaggerField"] = {"x": 1}
    back = CanaryStatus.from_dict(d)
    assert back.to_dict() == d
    assert back.phase is Phase.PROGRESSING
    assert back.measurements["request-success-rate"].verdict == "fail"


def _flagger_writes(
    stored: dict[str, Any], at: str, *, phase: str | None = None, **fields: Any
) -> dict[str, Any]:
    """What Flagger's ``syncCanaryStatus``/``setStatus*`` leave behind: its fields changed,
    ``lastTransitionTime`` stamped, and the conditions replaced by ``Promoted`` alone when the
    phase changes (``MakeStatusConditions``); otherwise the conditions are kept as they were."""
    out = {**stored, **fields, "lastTransitionTime": at}
    if phase is not None and phase != stored.get("phase"):
        out["phase"] = phase
        out["conditions"] = [{"type": "Promoted", "status": "Unknown", "reason": phase, "message": ""}]
    return out


def test_bookkeeping_is_a_condition_beside_promoted_and_read_back_only_while_current() -> None:
    sim = Sim(make_canary())
    _to_first_analysis(sim)
    sim.step(infra_error="api down")
    sim.step(BAD_SR)  # a failed check resets the infrastructure count
    sim.step(infra_error="api down")
    stored = sim.status.to_dict()
    promoted, run = stored["conditions"]
    assert promoted["type"] == "Promoted" and promoted["reason"] == "Progressing"
    assert run["type"] == "progdel.dev/Run" and run["status"] == "True" and run["reason"]
    assert progdel_wrote_last(stored)
    back = CanaryStatus.from_dict(stored)
    assert back.infra_errors == 1 and back.failed_checks == 1
    assert back.measurements["request-success-rate"].verdict == "fail"

    # Flagger counts a failed check on the same phase: its write keeps the conditions, so
    # progdel's is still there, but its fingerprint no longer matches
    later = _flagger_writes(stored, "2024-01-01T00:10:00Z", failedChecks=2)
    assert any(c["type"] == "progdel.dev/Run" for c in later["conditions"])
    assert not progdel_wrote_last(later)
    stale = CanaryStatus.from_dict(later)
    assert stale.failed_checks == 2, "Flagger's counters are kept"
    assert stale.infra_errors == 0 and stale.measurements == {}, "the stale bookkeeping is ignored"
    rewritten = CanaryStatus.from_dict(stale.to_dict()).to_dict()
    assert progdel_wrote_last(rewritten)
    assert [c["type"] for c in rewritten["conditions"]] == ["Promoted", "progdel.dev/Run"]

    # a phase change by Flagger drops progdel's condition altogether
    failed = _flagger_writes(stored, "2024-01-01T00:11:00Z", phase="Failed", canaryWeight=0)
    assert [c["type"] for c in failed["conditions"]] == ["Promoted"]
    assert CanaryStatus.from_dict(failed).failure_reason is None


def test_progdel_continues_a_run_flagger_started_from_flaggers_counters() -> None:
    flagger = {
        "phase": "Progressing",
        "canaryWeight": 20,
        "failedChecks": 1,
        "iterations": 0,
        "lastAppliedSpec": "rev-2",
        "lastPromotedSpec": "rev-1",
        "lastTransitionTime": "2023-12-31T23:59:00Z",
        "conditions": [{"type": "Promoted", "status": "Unknown", "reason": "Progressing", "message": "x"}],
    }
    sim = Sim(
        make_canary(), status=CanaryStatus.from_dict(flagger), revision="rev-2", weights=Weights(80, 20)
    )
    r = sim.step(BAD_SR)
    assert r.status.phase is Phase.FAILED, "Flagger's failed check counts toward the threshold of 2"
    assert r.messages[1] == "Rolling back podinfo.test failed checks threshold reached 2"


def test_the_promoted_condition_is_written_as_flagger_writes_it() -> None:
    sim = Sim(make_canary({"maxWeight": 10}))
    sim.step(primary=Readiness.NOT_READY)
    assert sim.status.promoted_condition == {
        "type": "Promoted",
        "status": "Unknown",
        "reason": "Initializing",
        "message": "New Deployment detected, starting initialization.",
        "lastUpdateTime": "2024-01-01T00:00:00Z",
        "lastTransitionTime": "2024-01-01T00:00:00Z",
    }
    sim.step()
    assert sim.status.promoted_condition is not None
    assert sim.status.promoted_condition["message"] == "Deployment initialization completed."
    sim.revision = "rev-2"
    sim.step()
    progressing = sim.status.promoted_condition
    assert progressing is not None and progressing["status"] == "Unknown"
    sim.step()  # the same phase: the condition is left as it was
    assert sim.status.promoted_condition == progressing
    while sim.status.phase is not Phase.PROMOTING:
        sim.step()
    promoting = sim.status.promoted_condition
    assert promoting is not None and promoting["reason"] == "Promoting"
    assert promoting["message"] == "Canary analysis completed, starting primary rolling update."
    assert promoting["lastTransitionTime"] == progressing["lastTransitionTime"], "Unknown stayed Unknown"
    assert promoting["lastUpdateTime"] != progressing["lastUpdateTime"]


# ---- mirroring, session affinity, post-rollout -----------------------------------------------------


def test_canary_with_mirror_mirrors_one_tick_before_the_first_weight() -> None:
    sim = Sim(make_canary({"mirror": True, "maxWeight": 20}))
    sim.init_and_change()
    run_until_settled(sim)
    mirrored = [a for r in sim.history for a in r.actions if isinstance(a, SetWeights) and a.mirror]
    assert mirrored == [SetWeights(100, 0, mirror=True)]
    # scale up, first step (mirror on), then the mirrored tick is analysed and advances to 10
    assert [w for p, w in sim.trace() if p == "Progressing"] == [0, 0, 10, 20]


def test_session_affinity_cookie_is_set_for_the_run_and_retired_after() -> None:
    sim = Sim(make_canary({"sessionAffinity": {"cookieName": "c"}}))
    sim.init_and_change()
    sim.step()
    cookie = sim.status.session_affinity_cookie
    assert cookie is not None and cookie.startswith("c=")
    run_until_settled(sim)
    assert sim.status.session_affinity_cookie is None
    assert sim.status.previous_session_affinity_cookie == cookie


def test_post_rollout_hooks_run_after_success() -> None:
    from progdel.canary.actions import CallWebhooks
    from progdel.canary.observation import HookType

    hook = {"name": "n", "type": "post-rollout", "url": "http://127.0.0.1:1/"}
    sim = Sim(make_canary({"webhooks": [hook]}))
    sim.init_and_change()
    run_until_settled(sim)
    assert CallWebhooks(HookType.POST_ROLLOUT, "Succeeded", "Succeeded") in sim.history[-1].actions
