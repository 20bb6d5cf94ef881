"""Flagger's scheduler test sequences, tick by tick, against progdel's pure engine.

Each test names the Flagger 1.44 test (``pkg/controller/*_test.go``) or the scheduler code
(``pkg/controller/scheduler*.go``) whose sequence it follows. Webhooks are answered by a
stand-in for the runner's ``WebhookCaller`` that follows its calling rules (the hooks of one type
one after another, up to the first failure; up to the first success for ``rollback``), so the
engine's decisions and Events are checked as Flagger's scheduler makes and words them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from progdel.canary.actions import CallWebhooks, Event, ScaleCanaryToZero, SetWeights
from progdel.canary.engine import NeedsHooks, TickResult, needs, tick
from progdel.canary.judge import MetricResult
from progdel.canary.observation import HookResult, HookType, Observation, Weights, webhooks_of
from progdel.canary.status import CanaryStatus, Phase
from progdel.config.canary import Canary, parse_canary
from progdel.errors import ExitCode
from progdel.kube.readiness import Readiness

T0 = datetime(2024, 1, 1, tzinfo=UTC)
GOOD = {"request-success-rate": MetricResult.ok(100.0), "request-duration": MetricResult.ok(50.0)}


def canary(analysis: Mapping[str, Any], hooks: Sequence[tuple[str, str]] = (), **spec: Any) -> Canary:
    """Flagger's ``newDeploymentTestCanary`` (scheduler_deployment_fixture_test.go): podinfo with
    the two built-in metrics, here with ``analysis`` and webhooks ``(name, type)`` added."""
    a: dict[str, Any] = {
        "interval": "1m",
        "threshold": 10,
        "metrics": [
            {"name": "request-success-rate", "thresholdRange": {"min": 99}, "interval": "1m"},
            {"name": "request-duration", "thresholdRange": {"max": 500}, "interval": "1m"},
        ],
        "webhooks": [{"name": n, "type": t, "url": f"http://hooks.invalid/{n}"} for n, t in hooks],
    }
    a.update(analysis)
    doc = {
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": "default"},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898},
            "analysis": a,
            **spec,
        },
    }
    return parse_canary(doc, "test").model


@dataclass
class Flagger:
    """The fixture of Flagger's scheduler tests: ``advance()`` is ``advanceCanary``, the router
    follows the weights set, ``update()`` is ``newDeploymentTestDeploymentV2``; webhooks answer
    ``answers[name]`` (True by default) and every call is recorded with its phase."""

    canary: Canary
    status: CanaryStatus = field(default_factory=CanaryStatus)
    now: datetime = T0
    revision: str = "v1"
    weights: Weights = field(default_factory=lambda: Weights(100, 0))
    answers: dict[str, bool] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    events: list[tuple[str, str]] = field(default_factory=list)  # (message, phase)
    results: list[TickResult] = field(default_factory=list)
    primary: Readiness = Readiness.READY

    def call(self, hook_type: HookType, phase: str) -> list[HookResult]:
        results = []
        for hook in webhooks_of(self.canary, hook_type):
            ok = self.answers.get(hook.name, True)
            self.calls.append((hook.name, phase))
            results.append(HookResult(hook.name, ok, "" if ok else "403 closed"))
            if ok == (hook_type is HookType.ROLLBACK):
                break
        return results

    def advance(self, metrics: Mapping[str, MetricResult] = GOOD) -> TickResult:
        obs = Observation(now=self.now, revision=self.revision, weights=self.weights, primary=self.primary)
        while (need := needs(self.canary, self.status, obs)) is not None:
            if isinstance(need, NeedsHooks):
                got = self.call(need.hook_type, need.phase)
                obs = replace(obs, webhooks={**(obs.webhooks or {}), need.hook_type: got})
            else:
                obs = replace(obs, metrics=metrics)
        result = tick(self.canary, self.status, obs)
        for action in result.actions:
            if isinstance(action, SetWeights):
                self.weights = Weights(action.primary, action.canary, action.mirror)
            elif isinstance(action, Event):
                self.events.append((action.message, action.phase))
            elif isinstance(action, CallWebhooks):  # as the runner records each result
                for r in self.call(action.hook_type, action.phase):
                    label = str(action.hook_type).capitalize()
                    text = f"{label} check {r.name} passed" if r.ok else f"{label} hook {r.name} failed"
                    self.events.append((text, action.event_phase))
        self.status = CanaryStatus.from_dict(result.status.to_dict())
        self.results.append(result)
        self.now += timedelta(minutes=1)
        return result

    def initialized_then_updated(self) -> None:
        """ "initializing", "initialized", then "update" (a new pod template)."""
        assert self.advance().status.phase is Phase.INITIALIZED
        self.revision = "v2"

    @property
    def phase(self) -> Phase:
        return self.status.phase


# ---- scheduler_deployment_test.go ------------------------------------------------------------


def test_deployment_analysis_phases() -> None:
    """TestScheduler_DeploymentAnalysisPhases: stepWeight 100, stepWeightPromotion 50."""
    f = Flagger(canary({"stepWeight": 100, "stepWeightPromotion": 50}))
    f.initialized_then_updated()
    seen = []
    for _ in range(6):
        f.advance()
        seen.append((str(f.phase), f.status.canary_weight))
    assert seen == [
        ("Progressing", 0),  # detect changes
        ("Progressing", 100),  # progressing
        ("Promoting", 100),  # start promotion
        ("Promoting", 50),  # end promotion
        ("Finalising", 0),  # finalising
        ("Succeeded", 0),  # succeeded
    ]


def test_deployment_blue_green_analysis_phases() -> None:
    """TestScheduler_DeploymentBlueGreenAnalysisPhases: iterations 1."""
    f = Flagger(canary({"iterations": 1}))
    f.initialized_then_updated()
    phases = [str(f.advance().status.phase) for _ in range(6)]
    assert phases == [
        "Progressing",  # detect changes
        "Progressing",  # advance: iteration 1/1
        "Progressing",  # route traffic to the canary
        "Promoting",
        "Finalising",
        "Succeeded",
    ]
    assert ("Routing all traffic to canary", "Progressing") in f.events


def test_deployment_promotion_primary_not_ready() -> None:
    """TestScheduler_DeploymentPromotionPrimaryNotReady: Promoting at 50/50, the promoted primary
    misses its deadline: all traffic to the canary (kept at its replicas), Failed at weight 100,
    an error alert, post-rollout hooks with Failed."""
    f = Flagger(canary({"stepWeight": 50, "maxWeight": 50}, [("notify", "post-rollout")]))
    f.initialized_then_updated()
    while f.phase is not Phase.PROMOTING:
        f.advance()
    assert f.weights == Weights(50, 50)
    f.primary = Readiness.DEADLINE_EXCEEDED
    r = f.advance()
    assert f.weights == Weights(0, 100), "no traffic must remain on the unhealthy primary"
    assert ScaleCanaryToZero() not in r.actions, "the canary is the only healthy copy"
    assert r.status.phase is Phase.FAILED and r.status.canary_weight == 100
    assert r.exit_hint is ExitCode.CANARY_FAILED
    loud = r.events[0]
    assert loud.type == "Warning" and loud.message.startswith(
        "Promotion of podinfo.default failed, primary not ready: podinfo-primary.default not ready"
    )
    assert loud.alert == "error" and (loud.alert_message or "").startswith(
        "Promotion failed, primary not ready: podinfo-primary.default not ready"
    )
    assert CallWebhooks(HookType.POST_ROLLOUT, "Failed", "Promoting") in r.actions
    assert ("notify", "Failed") in f.calls


def test_deployment_promotion_failed_after_traffic_shift() -> None:
    """TestScheduler_DeploymentPromotionFailedAfterTrafficShift: Finalising, all traffic already
    on the primary, which then fails: traffic goes back to the canary."""
    f = Flagger(canary({"stepWeight": 50, "maxWeight": 50}))
    f.initialized_then_updated()
    while f.phase is not Phase.FINALISING:
        f.advance()
    assert f.weights == Weights(100, 0)
    f.primary = Readiness.DEADLINE_EXCEEDED
    r = f.advance()
    assert f.weights == Weights(0, 100)
    assert ScaleCanaryToZero() not in r.actions
    assert r.status.phase is Phase.FAILED and r.status.canary_weight == 100


def test_deployment_mirroring() -> None:
    """TestScheduler_DeploymentMirroring: one mirrored tick at 100/0, then 90/10 unmirrored."""
    f = Flagger(canary({"stepWeight": 10, "maxWeight": 50, "mirror": True}))
    f.initialized_then_updated()
    f.advance()  # detect pod spec changes
    f.advance()
    assert f.weights == Weights(100, 0, mirrored=True)
    f.advance()
    assert f.weights == Weights(90, 10, mirrored=False)


def test_deployment_ab_testing() -> None:
    """TestScheduler_DeploymentABTesting: the match route at 0/100, iterations, then promotion."""
    match = [{"headers": {"x-canary": {"exact": "insider"}}}]
    f = Flagger(canary({"iterations": 10, "match": match}))
    f.initialized_then_updated()
    f.advance()
    f.advance()
    assert f.weights == Weights(0, 100)
    f.status.iterations = 10  # "set max iterations"
    f.advance()
    assert f.phase is Phase.PROMOTING
    f.advance()
    assert f.phase is Phase.FINALISING
    f.advance()
    assert f.phase is Phase.SUCCEEDED


# ---- scheduler.go: gates ------------------------------------------------------------------------

ALL_GATES = [("more", "confirm-traffic-increase"), ("promo", "confirm-promotion")]


def test_traffic_increase_is_confirmed_before_the_mirror_step() -> None:
    """advanceCanary: the confirm-traffic-increase hooks run whenever the traffic is not mirrored,
    the mirrored step included; while mirrored they are not asked."""
    f = Flagger(canary({"stepWeight": 10, "maxWeight": 20, "mirror": True}, ALL_GATES))
    f.initialized_then_updated()
    f.advance()
    f.answers["more"] = False
    r = f.advance()
    assert f.weights == Weights(100, 0) and not f.weights.mirrored, "no mirroring without approval"
    assert r.messages[-1] == "Halt podinfo.default advancement waiting for traffic increase approval more"
    f.answers["more"] = True
    f.calls.clear()
    r = f.advance()
    assert f.weights == Weights(100, 0, mirrored=True)
    assert f.calls == [("more", "Progressing")]
    assert r.messages[-2:] == [
        "Confirm-traffic-increase check more passed",
        "Advance podinfo.default canary weight 0",
    ]
    f.calls.clear()
    f.advance()
    assert f.weights == Weights(90, 10) and f.calls == [], "not asked while mirrored"


def test_traffic_increase_is_confirmed_again_at_max_weight_before_promotion() -> None:
    """advanceCanary then runCanary: at maxWeight the confirm-traffic-increase hooks run once more,
    then the confirm-promotion hooks; in WaitingPromotion only the latter."""
    f = Flagger(canary({"stepWeight": 50, "maxWeight": 50}, ALL_GATES))
    f.initialized_then_updated()
    f.advance()
    f.advance()
    assert f.weights == Weights(50, 50)
    f.calls.clear()
    f.answers["more"] = False
    f.advance()
    assert f.calls == [("more", "Progressing")], "the promotion gate is not reached"
    assert f.phase is Phase.PROGRESSING
    f.answers.update(more=True, promo=False)
    f.calls.clear()
    r = f.advance()
    assert f.calls == [("more", "Progressing"), ("promo", "Progressing")]
    assert f.phase is Phase.WAITING_PROMOTION
    assert r.messages[-2:] == [
        "Confirm-traffic-increase check more passed",
        "Halt podinfo.default advancement waiting for promotion approval promo",
    ]
    f.calls.clear()
    f.answers["promo"] = True
    r = f.advance()
    assert f.calls == [("promo", "Progressing")] and f.phase is Phase.PROMOTING
    assert r.messages[-2:] == [
        "Confirm-promotion check promo passed",
        "Copying podinfo.default template spec to podinfo-primary.default",
    ]


def test_blue_green_asks_for_promotion_before_routing_to_the_canary_and_before_copying() -> None:
    """runBlueGreen: the confirm-promotion hooks gate both the switch of all traffic to the canary
    and, a tick later, the promotion; with mirroring the switch says "Stop traffic mirroring"."""
    f = Flagger(canary({"iterations": 1, "mirror": True}, [("promo", "confirm-promotion")]))
    f.initialized_then_updated()
    f.advance()
    f.advance()  # iteration 1/1, mirrored
    assert f.weights == Weights(100, 0, mirrored=True)
    f.answers["promo"] = False
    f.advance()
    assert f.phase is Phase.WAITING_PROMOTION and f.weights.primary == 100
    f.answers["promo"] = True
    f.calls.clear()
    r = f.advance()
    assert f.calls == [("promo", "Progressing")] and f.weights == Weights(0, 100)
    assert r.messages[-1] == "Stop traffic mirroring and route all traffic to canary"
    f.calls.clear()
    r = f.advance()
    assert f.calls == [("promo", "Progressing")] and f.phase is Phase.PROMOTING
    assert "Copying podinfo.default template spec to podinfo-primary.default" in r.messages


def test_closed_gates_alert_once_in_flaggers_words_unless_muted() -> None:
    """scheduler_hooks.go: a closed gate alerts at warn ("Canary is waiting for approval.", "Canary
    promotion is waiting for approval.", "Canary traffic increase is waiting for approval.")
    unless its hook has muteAlert; confirm-rollout and confirm-promotion record their Halt event
    when the wait begins."""
    c = canary({"stepWeight": 50, "maxWeight": 50}, [("go", "confirm-rollout")])
    f = Flagger(c, answers={"go": False})
    f.initialized_then_updated()
    r = f.advance()
    assert f.phase is Phase.WAITING
    assert [(e.message, e.type, e.alert, e.alert_message) for e in r.events] == [
        (
            "Halt podinfo.default advancement waiting for approval go",
            "Warning",
            "warn",
            "Canary is waiting for approval.",
        )
    ]
    assert f.advance().events == [], "Flagger records the wait once"
    doc = c.model_dump(by_alias=True, exclude_none=True)
    doc["spec"]["analysis"]["webhooks"][0]["muteAlert"] = True
    muted = Flagger(parse_canary(doc, "test").model, answers={"go": False})
    muted.initialized_then_updated()
    assert muted.advance().events[0].alert is None


def test_a_failing_rollout_hook_is_a_warning_and_only_the_rollback_alerts() -> None:
    """runAnalysis: "Halt ... external check NAME failed ERR" is a Warning with no alert of its
    own; the rollback at the threshold alerts at error "Failed checks threshold reached N"."""
    f = Flagger(canary({"stepWeight": 10, "maxWeight": 50, "threshold": 2}, [("load", "rollout")]))
    f.initialized_then_updated()
    f.advance()
    f.advance()  # 0 -> 10: the first step runs no rollout hooks
    f.answers["load"] = False
    r = f.advance()
    assert [(e.message, e.type, e.alert) for e in r.events] == [
        ("Halt podinfo.default advancement external check load failed 403 closed", "Warning", None)
    ]
    r = f.advance()
    alerts = [(e.alert, e.alert_message) for e in r.events if e.alert]
    assert alerts == [("error", "Failed checks threshold reached 2")]
    assert f.phase is Phase.FAILED


def test_rollback_hooks_are_asked_in_order_until_one_signals() -> None:
    """runRollbackHooks: each hook that does not answer 2xx is "not signaling a rollback"; the
    first that does is "Rollback check NAME passed" and the run rolls back ("manual webhook
    invoked", alert at warn); hooks after it are not called."""
    hooks = [("a", "rollback"), ("b", "rollback"), ("c", "rollback")]
    f = Flagger(
        canary({"stepWeight": 10, "maxWeight": 50}, hooks), answers={"a": False, "b": False, "c": False}
    )
    f.initialized_then_updated()
    f.advance()
    r = f.advance()
    assert r.messages[:2] == [
        "Rollback hook a not signaling a rollback",
        "Rollback hook b not signaling a rollback",
    ]
    f.answers["b"] = True
    f.calls.clear()
    r = f.advance()
    assert f.calls == [("a", "Progressing"), ("b", "Progressing")]
    assert r.messages[1:3] == [
        "Rollback check b passed",
        "Rolling back podinfo.default manual webhook invoked",
    ]
    assert f.phase is Phase.FAILED and f.weights == Weights(100, 0)
    assert r.events[2].alert == "warn" and r.events[2].alert_message == "Rolling back manual webhook invoked"


# ---- events_test.go: the phase each event carries ------------------------------------------------


def test_events_carry_the_phase_of_the_canary_at_that_event() -> None:
    """TestWebhooks "canary": the messages and phases Flagger sends to event webhooks (without its
    "all the metrics providers are available!" and not-ready notices)."""
    hooks = [
        ("pre-rollout-webhook", "pre-rollout"),
        ("rollout-webhook", "rollout"),
        ("confirm-promotion-webhook", "confirm-promotion"),
        ("confirm-rollout-webhook", "confirm-rollout"),
        ("post-rollout-webhook", "post-rollout"),
        ("confirm-traffic-increase-webhook", "confirm-traffic-increase"),
    ]
    f = Flagger(canary({"stepWeight": 100, "stepWeightPromotion": 50}, hooks))
    f.initialized_then_updated()
    while f.phase is not Phase.SUCCEEDED:
        f.advance()
    assert f.events == [
        ("Initialization done! podinfo.default", "Initialized"),
        ("Confirm-rollout check confirm-rollout-webhook passed", "Initialized"),
        ("New revision detected! Scaling up podinfo.default", "Progressing"),
        ("Starting canary analysis for podinfo.default", "Progressing"),
        ("Pre-rollout check pre-rollout-webhook passed", "Progressing"),
        ("Confirm-traffic-increase check confirm-traffic-increase-webhook passed", "Progressing"),
        ("Advance podinfo.default canary weight 100", "Progressing"),
        ("Confirm-traffic-increase check confirm-traffic-increase-webhook passed", "Progressing"),
        ("Confirm-promotion check confirm-promotion-webhook passed", "Progressing"),
        ("Copying podinfo.default template spec to podinfo-primary.default", "Progressing"),
        ("Advance podinfo.default primary weight 50", "Promoting"),
        ("Advance podinfo.default primary weight 100", "Promoting"),
        ("Post-rollout check post-rollout-webhook passed", "Succeeded"),
        ("Promotion completed! Scaling down podinfo.default", "Succeeded"),
    ]
    by_hook: dict[str, list[str]] = {}
    for name, phase in f.calls:
        by_hook.setdefault(name, []).append(phase)
    assert by_hook == {
        "confirm-rollout-webhook": ["Initialized"],
        "pre-rollout-webhook": ["Progressing"],
        "confirm-traffic-increase-webhook": ["Progressing", "Progressing"],
        "rollout-webhook": ["Progressing"],
        "confirm-promotion-webhook": ["Progressing"],
        "post-rollout-webhook": ["Succeeded"],
    }


def test_skip_analysis_events_and_phases() -> None:
    """TestWebhooks "skip-analysis"."""
    hooks = [("confirm-rollout-webhook", "confirm-rollout"), ("post-rollout-webhook", "post-rollout")]
    f = Flagger(canary({"stepWeight": 10}, hooks, skipAnalysis=True))
    f.initialized_then_updated()
    while f.phase is not Phase.SUCCEEDED:
        f.advance()
    assert f.events == [
        ("Initialization done! podinfo.default", "Initialized"),
        ("Confirm-rollout check confirm-rollout-webhook passed", "Initialized"),
        ("New revision detected! Scaling up podinfo.default", "Progressing"),
        ("Copying podinfo.default template spec to podinfo-primary.default", "Progressing"),
        ("Post-rollout check post-rollout-webhook passed", "Succeeded"),
        ("Promotion completed! Canary analysis was skipped for podinfo.default", "Succeeded"),
    ]
    assert f.calls == [("confirm-rollout-webhook", "Initialized"), ("post-rollout-webhook", "Succeeded")]


def test_a_rollback_records_failed_on_canary_failed_and_the_hooks_see_the_run_before() -> None:
    """rollback(): "Rolling back ... threshold reached" on the running canary, "Canary failed!"
    on its Failed copy, then the post-rollout hooks with Failed, recorded on the running canary."""
    f = Flagger(canary({"stepWeight": 10, "threshold": 1}, [("notify", "post-rollout")]))
    f.initialized_then_updated()
    f.advance()
    f.advance()
    f.events.clear()
    f.advance({"request-success-rate": MetricResult.ok(50.0), "request-duration": MetricResult.ok(1.0)})
    assert f.events == [
        ("Halt podinfo.default advancement success rate 50.00% < 99%", "Progressing"),
        ("Rolling back podinfo.default failed checks threshold reached 1", "Progressing"),
        ("Canary failed! Scaling down podinfo.default", "Failed"),
        ("Post-rollout check notify passed", "Progressing"),
    ]
    assert f.calls[-1] == ("notify", "Failed")


# ---- scheduler_metrics.go: metrics that cannot be evaluated ------------------------------------


def test_a_metric_that_cannot_be_evaluated_is_a_failed_check() -> None:
    """runMetricChecks: "Metric template NAME.NS error: ..." (a template or its Secret missing)
    counts a failed check, and the run rolls back at the threshold instead of stranding traffic."""
    f = Flagger(canary({"stepWeight": 10, "maxWeight": 50, "threshold": 2}))
    f.initialized_then_updated()
    f.advance()
    f.advance()
    broken = {**GOOD, "request-duration": MetricResult.error("Metric template latency.default error: gone")}
    r = f.advance(broken)
    assert r.messages == ["Metric template latency.default error: gone"]
    assert r.events[0].type == "Warning" and r.status.failed_checks == 1 and f.weights == Weights(90, 10)
    f.advance(broken)
    assert f.phase is Phase.FAILED and f.weights == Weights(100, 0)
    assert f.results[-1].exit_hint is ExitCode.CANARY_FAILED


def test_a_spec_edited_invalid_mid_run_fails_checks_then_rolls_back() -> None:
    """A Canary edited into a spec that does not validate cannot be judged: each analysing tick is
    a failed check saying why, and the run ends as Flagger ends runs whose checks fail."""
    f = Flagger(canary({"stepWeight": 10, "maxWeight": 50, "threshold": 2}))
    f.initialized_then_updated()
    f.advance()
    f.advance()
    obs = Observation(
        now=f.now, revision="v2", weights=f.weights, spec_error="spec.analysis: stepWeight: bad"
    )
    r = tick(f.canary, f.status, obs)
    assert r.messages == ["Halt podinfo.default advancement invalid spec: spec.analysis: stepWeight: bad"]
    assert r.status.failed_checks == 1 and not [a for a in r.actions if isinstance(a, SetWeights)]
    r = tick(f.canary, r.status, replace(obs, now=obs.now + timedelta(minutes=1)))
    assert r.status.phase is Phase.FAILED and SetWeights(100, 0) in r.actions
