"""One tick of a canary as a pure function: ``tick(canary, status, observation) -> TickResult``.

The engine never sleeps, reads the clock or touches the network: everything it knows about the
world comes in an ``Observation`` (the time, the target's revision, readiness, the weights read
from the router, metric results, an operator command), and everything it wants done goes out
as a list of actions for the runner to execute, together with the new status. The same engine
runs a ten-step canary in milliseconds under a fake clock in a test and drives the real loop.

The order of a tick follows Flagger's scheduler, so the phase and weight sequences are the ones
Flagger users know, with these deliberate differences:

- the rollback happens on the tick where ``failedChecks`` reaches ``threshold`` (Flagger waits
  one more interval);
- a metric with no data follows its no-data policy (``fail``, Flagger's behaviour, ``skip`` or
  ``hold``, from the ``progdel.dev/no-data`` annotation);
- infrastructure errors (metrics server or API unreachable) are not failed checks: the canary
  holds its weight, and rolls back after ``progdel.dev/max-infra-errors`` consecutive erroring
  ticks; a query the server rejects is a spec error and rolls back at once;
- an operator can ``abort`` (roll back now) or ``promote`` (skip the rest of the analysis),
  ``pause`` a run (no advancement, no checks) and ``approve`` a closed confirm gate;
- a confirm gate (``confirm-rollout``, ``confirm-traffic-increase``, ``confirm-promotion``) can
  also be declared without any webhook in the ``progdel.dev/manual-gates`` annotation, and then
  opens only on an approval;
- a webhook succeeds on any 2xx status (Flagger accepts only up to 202), and a ``rollback`` hook
  that answers 2xx rolls back as an operator abort (exit 4).

Webhooks and metrics are never called here. ``needs`` answers, from the spec, the status and
what was observed so far, the next observation the tick lacks: the results of one webhook type
(and the phase to send it), or the metrics at ``obs.now``, in Flagger's order (a failing rollout
hook means no metric queries, failing metrics no confirm-traffic-increase hook). A driver
observes exactly that and asks again; once ``needs`` answers None it calls ``tick``, once. Calls
whose outcome changes nothing (``post-rollout``, ``event``) are actions.

The runner's own duties on every tick, before calling the engine, are Flagger's steps 2 to 5:
create the ``-primary`` workload if missing, and reconcile the Services, DestinationRules and
VirtualService without touching weights. The engine only decides.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from progdel.canary.actions import (
    Action,
    CallWebhooks,
    ConsumeApproval,
    Event,
    PromoteTemplate,
    ScaleCanary,
    ScaleCanaryToZero,
    SetWeights,
    Severity,
)
from progdel.canary.judge import (
    Comparison,
    Effect,
    MetricOutcome,
    MetricResult,
    judge_metric,
    ordered_metrics,
)
from progdel.canary.observation import (
    Command,
    HookResult,
    HookType,
    Observation,
    Weights,
    manual_gates,
    webhooks_of,
)
from progdel.canary.revision import configs_changed, is_legacy
from progdel.canary.status import (
    ANALYSING,
    FAILURE_EXIT,
    RUNNING,
    SETTLED,
    CanaryStatus,
    FailureReason,
    Measurement,
    Phase,
    format_time,
    parse_time,
    promoted_condition_message,
)
from progdel.config.canary import Canary, CanaryAnalysis, StrategyKind
from progdel.errors import ExitCode
from progdel.kube.readiness import Readiness


@dataclass
class TickResult:
    """The new status, the actions to execute in order, and what the tick means for a caller.

    ``exit_hint`` is ``None`` while the canary is still moving; ``settled`` is true when nothing
    will happen until the target changes (Initialized, Succeeded, Failed).
    """

    status: CanaryStatus
    actions: list[Action]
    exit_hint: ExitCode | None = None
    settled: bool = False
    note: str = ""

    @property
    def events(self) -> list[Event]:
        return [a for a in self.actions if isinstance(a, Event)]

    @property
    def messages(self) -> list[str]:
        return [e.message for e in self.events]


@dataclass(frozen=True)
class NeedsHooks:
    """The tick calls the ``hook_type`` webhooks with ``phase``: call them and put their results
    in ``obs.webhooks[hook_type]``."""

    hook_type: HookType
    phase: str


@dataclass(frozen=True)
class NeedsMetrics:
    """The tick judges the metrics: query them at ``obs.now`` into ``obs.metrics`` (and the
    canary's request count when ``progdel.dev/min-requests`` is on)."""


Need = NeedsHooks | NeedsMetrics


class ObservationMissing(ValueError):
    """``tick`` was given an observation that lacks what ``needs`` asks for: a driver's bug."""

    def __init__(self, need: Need) -> None:
        what = f"the {need.hook_type} webhooks" if isinstance(need, NeedsHooks) else "the metrics"
        super().__init__(f"this tick needs {what} observed: ask engine.needs before engine.tick")
        self.need = need


# --------------------------------------------------------------------------------------------
# The tick
# --------------------------------------------------------------------------------------------


def tick(canary: Canary, status: CanaryStatus, obs: Observation) -> TickResult:
    """Advance ``canary`` by one tick. ``status`` is not modified; the new one is returned.

    ``obs`` must hold everything ``needs`` asks for (else ``ObservationMissing``).
    """
    decided = _Tick(canary, status, obs)
    decided.run()
    if decided.need is not None:
        raise ObservationMissing(decided.need)
    return decided.result()


def needs(canary: Canary, status: CanaryStatus, obs: Observation) -> Need | None:
    """What the tick for ``obs`` still needs observed before it can be decided, or None when
    ``tick`` can decide it now. A pure function of the spec, the status and ``obs`` (the time,
    the cluster as read, and the webhook results and metrics observed so far): the first need
    in Flagger's order, so that nothing is called that the tick would not reach. A driver asks,
    observes exactly that, and asks again."""
    planned = _Tick(canary, status, obs)
    planned.run()
    return planned.need


def needs_metrics(canary: Canary, status: CanaryStatus, obs: Observation) -> bool:
    """Whether the tick for ``obs`` will judge metrics, with webhooks whose results ``obs``
    lacks assumed to pass."""
    planned = _Tick(canary, status, replace(obs, metrics=None), assume_hooks_pass=True)
    planned.run()
    return isinstance(planned.need, NeedsMetrics)


def session_cookie(canary: Canary, revision: str, since: str) -> str | None:
    """The session-affinity cookie of a run (``name=token``), or None without sessionAffinity.

    The token is derived from the run (revision and start), so a new run gets a new cookie and
    clients stuck to an old canary are not sent to the next one."""
    affinity = canary.analysis.session_affinity
    if affinity is None:
        return None
    token = hashlib.sha256(f"{canary.namespace}/{canary.name}/{revision}/{since}".encode()).hexdigest()[:20]
    return f"{affinity.cookie_name or 'progdel-cookie'}={token}"


def revision_changed(
    status: CanaryStatus,
    revision: str,
    configs: Mapping[str, str] | None = None,
    legacy: str = "",
) -> bool:
    """Flagger's rule (``shouldAdvance``): a new revision when the pod template's hash is neither
    the applied one nor the promoted one (a manual revert to the promoted version does not start
    a run), or when the tracked configs changed. ``configs`` None: not observed. ``legacy`` is
    progdel's own hash, compared with a status an older progdel wrote in that form."""
    applied = status.last_applied_spec
    if not applied:
        return True
    if legacy and is_legacy(applied):
        return legacy != applied and legacy != status.last_promoted_spec
    if revision != status.last_promoted_spec and revision != applied:
        return True
    return configs is not None and configs_changed(status.tracked_configs, configs)


def _next_weight(analysis: CanaryAnalysis, current: int) -> int:
    if analysis.step_weight > 0 or not analysis.step_weights:
        return current + analysis.step_weight
    steps = analysis.step_weights
    if current == 0:
        return steps[0]
    if current in steps:
        i = steps.index(current)
        return steps[i + 1] if i + 1 < len(steps) else 100
    return 100


class _Tick:
    def __init__(
        self, canary: Canary, status: CanaryStatus, obs: Observation, assume_hooks_pass: bool = False
    ) -> None:
        self.assume_hooks_pass = assume_hooks_pass
        self.c = canary
        self.a = canary.analysis
        self.settings = canary.settings
        self.old = status
        self.s = copy.deepcopy(status)
        self.obs = obs
        self.now = format_time(obs.now)
        self.actions: list[Action] = []
        self.exit_hint: ExitCode | None = None
        self.settled = False
        self.note = ""
        self.need: Need | None = None  # what the tick lacks to be decided (then it stops there)
        self.name = f"{canary.name}.{canary.namespace}"
        self.target = f"{canary.target_name}.{canary.namespace}"

    # ---- helpers -----------------------------------------------------------------------

    def event(
        self,
        message: str,
        warning: bool = False,
        alert: Severity | None = None,
        *,
        alert_message: str | None = None,
        phase: Phase | None = None,
    ) -> None:
        """Emit an Event; its phase is the canary's at this point of the tick unless given."""
        at = self.s.phase if phase is None else phase
        self.actions.append(Event("Warning" if warning else "Normal", message, alert, alert_message, str(at)))

    def set_phase(self, phase: Phase) -> None:
        self.s.phase = phase

    def reset_run(self, phase: Phase) -> None:
        self.s.phase = phase
        self.s.canary_weight = 0
        self.s.failed_checks = 0
        self.s.iterations = 0
        self.s.infra_errors = 0
        self.s.canary_not_ready_since = None
        self.s.pending_gate = None

    def end_run(self, phase: Phase, hooks_see: Phase | None = None) -> None:
        """Succeeded or Failed: reset the counters, retire the session cookie, post-rollout.

        ``hooks_see`` is the phase the post-rollout hooks' own events carry (Flagger records them
        on the canary as it was before a rollback, and as Succeeded after a promotion)."""
        self.reset_run(phase)
        if self.s.session_affinity_cookie:
            self.s.previous_session_affinity_cookie = self.s.session_affinity_cookie
            self.s.session_affinity_cookie = None
        if webhooks_of(self.c, HookType.POST_ROLLOUT):
            self.actions.append(CallWebhooks(HookType.POST_ROLLOUT, str(phase), str(hooks_see or phase)))

    def rollback(
        self,
        reason_message: str | None,
        reason: FailureReason,
        *,
        alert: Severity = "error",
        alert_message: str | None = None,
    ) -> None:
        """Flagger's rollback: all traffic to the primary, "Canary failed!", the target to zero,
        Failed, post-rollout hooks with Failed. ``reason_message`` is the Warning before it
        (with the alert); without one, "Canary failed!" carries the alert."""
        before = self.s.phase
        if reason_message:
            self.event(reason_message, warning=True, alert=alert, alert_message=alert_message)
        self.actions.append(SetWeights(100, 0))
        self.event(
            f"Canary failed! Scaling down {self.name}",
            warning=True,
            alert=None if reason_message else alert,
            alert_message=None if reason_message else alert_message,
            phase=Phase.FAILED,
        )
        self.actions.append(ScaleCanaryToZero())
        self.end_run(Phase.FAILED, hooks_see=before)
        self.s.failure_reason = reason
        self.exit_hint = FAILURE_EXIT[reason]
        self.settled = True

    def threshold_rollback(self) -> None:
        n = self.s.failed_checks
        self.rollback(
            f"Rolling back {self.name} failed checks threshold reached {n}",
            FailureReason.ANALYSIS,
            alert_message=f"Failed checks threshold reached {n}",
        )

    def failed_check(self, message: str) -> None:
        """A failed check (a hook, a metric, a broken spec): a Warning, one more failed check, and
        the rollback once ``threshold`` is reached (on this tick: Flagger waits for the next)."""
        self.event(message, warning=True)
        self.s.failed_checks += 1
        self.s.infra_errors = 0
        if self.s.failed_checks >= self.a.threshold:
            self.threshold_rollback()

    # ---- webhooks and gates ------------------------------------------------------------

    def hook_results(self, hook_type: HookType, phase: Phase | str) -> list[HookResult] | None:
        """Results of the ``hook_type`` webhooks ([] when there are none), in the spec's order
        and only as far as they were called (one after another, stopping at the first failure;
        at the first success for ``rollback``); None, with the need recorded, when they were not
        called yet: the tick then stops there."""
        hooks = webhooks_of(self.c, hook_type)
        if not hooks:
            return []
        got = (self.obs.webhooks or {}).get(hook_type)
        if got is None:
            if self.assume_hooks_pass:
                return [HookResult(h.name, hook_type is not HookType.ROLLBACK) for h in hooks]
            self.need = NeedsHooks(hook_type, str(phase))
            return None
        return list(got)

    def _muted(self, hook_name: str) -> bool:
        return any(w.name == hook_name and w.mute_alert for w in self.a.webhooks)

    def check_hooks(self, hook_type: HookType, label: str) -> bool:
        """Run pre-rollout or rollout hooks: a failure is a failed check (and maybe a rollback).
        As in Flagger, a failing hook is a Warning event and no alert of its own: only the
        rollback it may lead to alerts."""
        results = self.hook_results(hook_type, Phase.PROGRESSING)
        if results is None:
            return False
        for r in results:
            if not r.ok:
                self.failed_check(f"Halt {self.name} advancement {label} {r.name} failed {r.message}")
                return False
            if hook_type is HookType.PRE_ROLLOUT:
                self.event(f"Pre-rollout check {r.name} passed")
        return True

    def gate(self, gate: HookType, phase: Phase | str, waiting: str, alert_message: str) -> bool:
        """Whether the confirm gate ``gate`` is open. With no webhook of its type and no manual
        declaration there is no gate. An approval for the gate opens it (once); a manual gate
        opens only so; otherwise the hooks of the type are called in order and every one must
        pass ("Confirm-... check NAME passed" for each that did). A closed gate emits ``waiting``
        (Flagger's "Halt ... waiting for ... approval NAME": for confirm-traffic-increase on every
        tick, for the others when the wait begins) and records the gate; the wait's first tick
        alerts (``alert_message``, warn) unless the closing hook has ``muteAlert``."""
        manual = gate in manual_gates(self.c)
        if not manual and not webhooks_of(self.c, gate):
            return True
        if self.obs.approval is gate:
            self.actions.append(ConsumeApproval(gate))
            by = f" by {self.obs.approved_by}" if self.obs.approved_by else ""
            self.event(f"Gate {gate} of {self.name} opened: approved{by}")
            self.s.pending_gate = None
            return True
        blocker = "(progdel canary approve)"
        muted = False
        if not manual:
            results = self.hook_results(gate, phase)
            if results is None:
                return False
            for r in results:
                if not r.ok:
                    blocker, muted = r.name, self._muted(r.name)
                    break
                self.event(f"{str(gate).capitalize()} check {r.name} passed")
            else:
                self.s.pending_gate = None
                return True
        first = self.old.pending_gate != str(gate)
        self.s.pending_gate = str(gate)
        if first or gate is HookType.CONFIRM_TRAFFIC_INCREASE:
            self.event(
                f"Halt {self.name} advancement {waiting} {blocker}",
                warning=True,
                alert="warn" if first and not muted else None,
                alert_message=alert_message,
            )
        self.note = f"waiting at gate {gate}"
        return False

    def promote_gated(self) -> None:
        """The analysis is complete: pass the confirm-promotion gate, then promote."""
        if self._promotion_gate():
            self.promote()

    def _promotion_gate(self) -> bool:
        if self.gate(
            HookType.CONFIRM_PROMOTION,
            Phase.PROGRESSING,
            "waiting for promotion approval",
            "Canary promotion is waiting for approval.",
        ):
            return True
        self.set_phase(Phase.WAITING_PROMOTION)
        return False

    def promote(self) -> None:
        primary = f"{self.c.primary_name}.{self.c.namespace}"
        self.event(f"Copying {self.target} template spec to {primary}")
        self.actions.append(PromoteTemplate())
        self.set_phase(Phase.PROMOTING)

    def readiness(self, which: Literal["primary", "canary"], observed: Readiness) -> Readiness:
        attr = f"{which}_not_ready_since"
        if observed is Readiness.READY:
            setattr(self.s, attr, None)
            return Readiness.READY
        if observed is Readiness.DEADLINE_EXCEEDED:
            return observed
        since = getattr(self.s, attr) or self.now
        setattr(self.s, attr, since)
        waited = (self.obs.now - parse_time(since)).total_seconds()
        if waited > self.c.spec.progress_deadline_seconds:
            return Readiness.DEADLINE_EXCEEDED
        return Readiness.NOT_READY

    def infra(self, messages: list[str]) -> None:
        for m in messages:
            self.event(m, warning=True)
        self.s.infra_errors += 1
        limit = self.settings.max_infra_errors
        if self.s.infra_errors >= limit:
            self.rollback(
                f"Rolling back {self.name} infrastructure errors on {self.s.infra_errors} consecutive checks",
                FailureReason.INFRA,
            )
        else:
            self.note = f"holding: infrastructure error ({self.s.infra_errors}/{limit})"

    def _promoted_condition(self) -> None:
        """Flagger's ``Promoted`` condition, as ``MakeStatusConditions`` writes it: rewritten (and
        the conditions replaced by it) only when its status or reason (the phase) changes; its
        ``lastTransitionTime`` moves only when its status does."""
        s = self.s
        if s.phase is Phase.NONE:
            return
        word = {Phase.INITIALIZED: "True", Phase.SUCCEEDED: "True", Phase.FAILED: "False"}.get(
            s.phase, "Unknown"
        )
        current = s.promoted_condition
        if current is not None and current.get("status") == word and current.get("reason") == str(s.phase):
            return
        since = self.now
        if current is not None and current.get("status") == word and current.get("lastTransitionTime"):
            since = str(current["lastTransitionTime"])
        s.conditions = [
            {
                "type": "Promoted",
                "status": word,
                "reason": str(s.phase),
                "message": promoted_condition_message(s.phase, self.c.spec.target_ref.kind),
                "lastUpdateTime": self.now,
                "lastTransitionTime": since,
            }
        ]

    # ---- the tick ----------------------------------------------------------------------

    def result(self) -> TickResult:
        self._promoted_condition()
        s = self.s
        if s != self.old:
            s.last_transition_time = self.now
        return TickResult(s, self.actions, self.exit_hint, self.settled, self.note)

    def run(self) -> None:
        """Decide the tick, or stop where it lacks an observation (``self.need``)."""
        c, s, obs = self.c, self.s, self.obs
        if c.spec.suspend:
            self.event("skipping canary run as object is suspended")
            self.note = "suspended"
            return
        phase = s.phase
        if obs.infra_error is not None:
            if phase in (*RUNNING, Phase.WAITING):
                self.infra([obs.infra_error])
            else:
                self.note = f"infrastructure error: {obs.infra_error}"
            return

        # Initialisation: wait for the primary, then route everything to it.
        if phase in (Phase.NONE, Phase.INITIALIZING):
            if not c.skip_analysis and self.readiness("primary", obs.primary) is not Readiness.READY:
                self.set_phase(Phase.INITIALIZING)
                self.note = "waiting for the primary to become ready"
                return
            self.reset_run(Phase.INITIALIZED)
            s.primary_not_ready_since = None
            s.last_applied_spec = s.last_promoted_spec = obs.revision
            if obs.tracked_configs is not None:
                s.tracked_configs = dict(obs.tracked_configs)
            self.actions += [SetWeights(100, 0), ScaleCanaryToZero()]
            kind = c.spec.target_ref.kind
            self.event(
                f"Initialization done! {self.name}",
                alert="info",
                alert_message=f"New {kind} detected, initialization completed.",
            )
            self.settled, self.exit_hint = True, ExitCode.OK
            return

        changed = revision_changed(s, obs.revision, obs.tracked_configs, obs.legacy_revision)
        if phase in SETTLED and not changed:
            self.settled = True
            if phase is Phase.FAILED:
                self.exit_hint = FAILURE_EXIT[s.failure_reason or FailureReason.ANALYSIS]
            else:
                self.exit_hint = ExitCode.OK
            self.note = "no new revision"
            return

        # Paused by an operator: hold everything (an abort still rolls back).
        if obs.paused and not (obs.command is Command.ABORT and phase in ANALYSING):
            by = f" by {obs.paused_by}" if obs.paused_by else ""
            self.note = f"paused{by}"
            return

        # Primary readiness.
        if not c.skip_analysis:
            primary = self.readiness("primary", obs.primary)
            if primary is Readiness.DEADLINE_EXCEEDED:
                if phase in (Phase.PROMOTING, Phase.FINALISING):
                    self._failed_promotion()
                else:
                    self.rollback(
                        f"Rolling back {self.name} progress deadline exceeded: primary not ready",
                        FailureReason.DEADLINE,
                        alert_message=f"Progress deadline exceeded {self._primary_not_ready()}",
                    )
                return
            if primary is Readiness.NOT_READY:
                self.note = "waiting for the primary to become ready"
                return

        weights = obs.weights or Weights(100 - s.canary_weight, s.canary_weight)

        # A new run starts: scale the canary up; no analysis this tick.
        if phase not in RUNNING:
            if not self.gate(
                HookType.CONFIRM_ROLLOUT, phase, "waiting for approval", "Canary is waiting for approval."
            ):
                self.set_phase(Phase.WAITING)
                return
            self.reset_run(Phase.PROGRESSING)
            self.event(
                f"New revision detected! Scaling up {self.target}",
                alert="info",
                alert_message="New revision detected, progressing canary analysis.",
            )
            self.actions.append(ScaleCanary("up"))
            s.failure_reason = None
            s.last_applied_spec = obs.revision
            s.session_affinity_cookie = self._cookie()
            s.measurements = {}
            if obs.tracked_configs is not None:
                s.tracked_configs = dict(obs.tracked_configs)
            return

        # The target changed again during the analysis: start over.
        if phase in ANALYSING and changed:
            self.event(f"New revision detected! Restarting analysis for {self.target}")
            self.actions.append(SetWeights(100, 0))
            self.reset_run(Phase.PROGRESSING)
            s.last_applied_spec = obs.revision
            s.session_affinity_cookie = self._cookie()
            s.measurements = {}
            if obs.tracked_configs is not None:
                s.tracked_configs = dict(obs.tracked_configs)
            return

        if obs.command is Command.ABORT:
            if phase in ANALYSING:
                self.rollback(f"Rolling back {self.name} aborted by operator", FailureReason.ABORTED)
                return
            self.event(f"Abort of {self.name} ignored: promotion already under way", warning=True)

        # Canary readiness.
        canary_ready = self.readiness("canary", obs.canary)
        if canary_ready is Readiness.DEADLINE_EXCEEDED:
            reason = obs.not_ready_reason or "progress deadline exceeded"
            self.rollback(
                f"Rolling back {self.name} progress deadline exceeded: canary {self.target} not ready",
                FailureReason.DEADLINE,
                alert_message=f"Progress deadline exceeded canary {self.target} not ready: {reason}",
            )
            return
        if canary_ready is Readiness.NOT_READY:
            if self.old.canary_not_ready_since is None:
                reason = f": {obs.not_ready_reason}" if obs.not_ready_reason else ""
                self.event(
                    f"Halt advancement {self.target} waiting for rollout to finish{reason}", warning=True
                )
            self.note = "waiting for the canary to become ready"
            return

        if c.skip_analysis:
            self.actions.append(SetWeights(100, 0))
            self.promote()
            self.actions.append(ScaleCanaryToZero())
            self.end_run(Phase.SUCCEEDED)
            s.last_promoted_spec = s.last_applied_spec
            self.event(
                f"Promotion completed! Canary analysis was skipped for {self.target}",
                alert="info",
                alert_message="Canary analysis was skipped, promotion finished.",
            )
            self.exit_hint, self.settled = ExitCode.OK, True
            return

        # Rollback hooks, one after another: the first that answers 2xx rolls the canary back.
        if phase in ANALYSING:
            rollback_hooks = self.hook_results(HookType.ROLLBACK, phase)
            if rollback_hooks is None:
                return
            for r in rollback_hooks:
                if not r.ok:
                    self.event(f"Rollback hook {r.name} not signaling a rollback")
                    continue
                self.event(f"Rollback check {r.name} passed", warning=True)
                self.rollback(
                    f"Rolling back {self.name} manual webhook invoked",
                    FailureReason.ABORTED,
                    alert="warn",
                    alert_message="Rolling back manual webhook invoked",
                )
                return

        if obs.command is Command.PROMOTE and phase in ANALYSING:
            self.event(f"Promotion of {self.name} requested by operator, skipping the rest of the analysis")
            self.promote()
            return

        if phase is Phase.PROMOTING:
            self._promotion_traffic(weights)
            return

        if phase is Phase.FINALISING:
            self.actions.append(ScaleCanaryToZero())
            self.end_run(Phase.SUCCEEDED)
            s.last_promoted_spec = s.last_applied_spec
            self.event(
                f"Promotion completed! Scaling down {self.target}",
                alert="info",
                alert_message="Canary analysis completed successfully, promotion finished.",
            )
            self.exit_hint, self.settled = ExitCode.OK, True
            return

        # Threshold reached on an earlier tick (e.g. status written by Flagger).
        if s.failed_checks >= self.a.threshold:
            self.threshold_rollback()
            return

        # The Canary was edited into a spec that does not validate: no analysis can be trusted,
        # so every such tick is a failed check (the run goes on with the last valid spec, and
        # rolls back at the threshold, rather than stranding its traffic).
        if obs.spec_error is not None:
            self.failed_check(f"Halt {self.name} advancement invalid spec: {obs.spec_error}")
            return

        first_step = weights.canary == 0 and s.iterations == 0 and not (self.a.mirror and weights.mirrored)
        if first_step:
            self.event(f"Starting canary analysis for {self.target}")
            if not self.check_hooks(HookType.PRE_ROLLOUT, "pre-rollout check"):
                return
        elif not self.check_hooks(HookType.ROLLOUT, "external check") or not self._analyse():
            return

        strategy = c.strategy
        if strategy is StrategyKind.AB:
            self._step_ab()
        elif strategy is StrategyKind.BLUEGREEN:
            self._step_bluegreen(weights)
        else:
            self._step_canary(weights)

    def _primary_not_ready(self) -> str:
        why = self.obs.primary_not_ready_reason or "progress deadline exceeded"
        return f"{self.c.primary_name}.{self.c.namespace} not ready: {why}"

    def _failed_promotion(self) -> None:
        """The primary missed its deadline while Promoting or Finalising: it already runs the new
        template, so the canary is the only healthy copy. As Flagger 1.44: all traffic to the
        canary (which keeps its replicas), Failed with the canary's weight at 100, an error
        alert, and the post-rollout hooks with Failed."""
        s = self.s
        before = s.phase
        why = self._primary_not_ready()
        self.event(
            f"Promotion of {self.target} failed, primary not ready: {why}",
            warning=True,
            alert="error",
            alert_message=f"Promotion failed, primary not ready: {why}",
        )
        self.actions.append(SetWeights(0, 100))
        self.end_run(Phase.FAILED, hooks_see=before)
        s.canary_weight = 100
        s.failure_reason = FailureReason.DEADLINE
        self.exit_hint, self.settled = ExitCode.CANARY_FAILED, True

    # ---- analysis ----------------------------------------------------------------------

    def _analyse(self) -> bool:
        """Judge the metrics; True to advance. Records measurements and counts failures."""
        results = self.obs.metrics
        if results is None:
            self.need = NeedsMetrics()
            return False
        if self._too_little_traffic():
            return False
        failure: str | None = None
        infra: list[str] = []
        holds: list[str] = []
        for m in ordered_metrics(self.a):
            r = results.get(m.name) or MetricResult.infra_error("no result was collected")
            judged = judge_metric(self.c, m, r)
            self._measure(m.name, judged.value, judged.verdict, judged.message, judged.comparison)
            if judged.effect is Effect.FAIL:
                failure = judged.halt
                break
            if judged.verdict == "skipped":
                self.event(f"Skipping {m.name} check for {self.name}: {judged.message}")
            elif judged.effect is Effect.HOLD:
                holds.append(f"Halt {self.name} advancement holding: {judged.message}")
            elif judged.effect is Effect.INFRA:
                infra.append(f"Metric query failed for {m.name}: {judged.message}")
            elif judged.effect is Effect.REJECT:
                self.event(f"Metric query failed for {m.name}: {judged.message}", warning=True)
                self.rollback(
                    f"Rolling back {self.name} query for metric {m.name} was rejected",
                    FailureReason.REJECTED_QUERY,
                )
                return False

        s = self.s
        if failure is not None:
            self.failed_check(failure)
            return False
        if infra:
            self.infra(infra)
            return False
        s.infra_errors = 0
        if holds:
            for h in holds:
                self.event(h, warning=True)
            self.note = "holding: no data"
            return False
        return True

    def _too_little_traffic(self) -> bool:
        """The ``progdel.dev/min-requests`` guard: while the canary has served fewer requests than
        that in the metrics' window, nothing is judged (a few errors among a handful of requests
        say nothing yet) and the weight holds; no check is counted either way."""
        minimum = self.settings.min_requests
        counted = self.obs.canary_requests
        if not minimum or counted is None:
            return False
        if counted.outcome is MetricOutcome.INFRA_ERROR:
            self.infra([f"Metric query failed for the canary's request count: {counted.message}"])
            return True
        served = counted.value if counted.outcome is MetricOutcome.VALUE and counted.value else 0.0
        if served >= minimum:
            return False
        why = (
            f"{self.target} served {served:.0f} requests in the last {self.obs.requests_window}, "
            f"fewer than the {minimum} progdel.dev/min-requests asks for before judging"
        )
        for m in ordered_metrics(self.a):
            r = (self.obs.metrics or {}).get(m.name)
            self._measure(m.name, r.value if r is not None else None, "hold", why)
        self.s.infra_errors = 0
        self.event(f"Halt {self.name} advancement holding: {why}", warning=True)
        self.note = "holding: too little traffic"
        return True

    def _measure(
        self,
        name: str,
        value: float | None,
        verdict: Any,
        message: str,
        comparison: Comparison | None = None,
    ) -> None:
        self.s.measurements[name] = Measurement(value, verdict, message, self.now, comparison)

    # ---- strategies --------------------------------------------------------------------

    def _cookie(self) -> str | None:
        if self.c.strategy is not StrategyKind.CANARY:
            return None
        return session_cookie(self.c, self.obs.revision, self.now)

    def _step_canary(self, weights: Weights) -> None:
        # Flagger asks the confirm-traffic-increase hooks before every move of a Progressing run
        # that is not mirroring: before the mirrored step, before each weight step, and once more
        # at maxWeight before the confirm-promotion gate.
        moving = not weights.mirrored and self.s.phase is Phase.PROGRESSING
        if moving and not self.gate(
            HookType.CONFIRM_TRAFFIC_INCREASE,
            Phase.PROGRESSING,
            "waiting for traffic increase approval",
            "Canary traffic increase is waiting for approval.",
        ):
            return
        max_weight = self.a.effective_max_weight
        if weights.canary < max_weight:
            if self.a.mirror and weights.canary == 0 and not weights.mirrored:
                # one tick of mirrored traffic before the first weighted step
                self.actions.append(SetWeights(100, 0, mirror=True))
                self.s.canary_weight = 0
                self.event(f"Advance {self.name} canary weight 0")
                return
            canary_weight = min(100, _next_weight(self.a, weights.canary))
            self.actions.append(SetWeights(100 - canary_weight, canary_weight))
            self.s.canary_weight = canary_weight
            self.event(f"Advance {self.name} canary weight {canary_weight}")
            return
        self.promote_gated()

    def _step_ab(self) -> None:
        if self.a.iterations > self.s.iterations:
            self.actions.append(SetWeights(0, 100))
            self.s.iterations += 1
            self.event(f"Advance {self.name} canary iteration {self.s.iterations}/{self.a.iterations}")
            return
        self.promote_gated()

    def _step_bluegreen(self, weights: Weights) -> None:
        """Flagger's blue/green: ``iterations`` checks at 100/0 (mirrored with ``mirror``); then,
        past the confirm-promotion gate, all traffic to the canary and one more check (counted as
        iteration N+1); then the gate once more and the promotion."""
        n = self.a.iterations
        if n > self.s.iterations:
            if self.a.mirror and not weights.mirrored:
                self.actions.append(SetWeights(100, 0, mirror=True))
            self.s.iterations += 1
            self.event(f"Advance {self.name} canary iteration {self.s.iterations}/{n}")
            return
        if not self._promotion_gate():
            return
        if self.s.iterations == n:
            if self.a.mirror:
                self.event("Stop traffic mirroring and route all traffic to canary")
            else:
                self.event("Routing all traffic to canary")
            self.actions.append(SetWeights(0, 100))
            self.s.canary_weight = 100
            self.s.iterations = n + 1
            return
        self.promote()

    def _promotion_traffic(self, weights: Weights) -> None:
        step = self.a.step_weight_promotion
        if step <= 0 or weights.canary <= 0:
            if step <= 0:
                self.event("Routing all traffic to primary")
                self.actions.append(SetWeights(100, 0))
            self.s.canary_weight = 0
            self.set_phase(Phase.FINALISING)
            return
        primary = min(100, weights.primary + step)
        canary = max(0, weights.canary - step)
        self.actions.append(SetWeights(primary, canary))
        self.s.canary_weight = canary
        self.event(f"Advance {self.name} primary weight {primary}")
        if primary >= 100:
            self.set_phase(Phase.FINALISING)
