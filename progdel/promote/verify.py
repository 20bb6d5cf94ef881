"""Verified environments: a version proves itself by the canary's metric checks over a soak time.

An environment that declares ``verify`` (progdel.yaml) lets a version go further only once it has
run there, healthy, and passed every metric check taken every ``interval`` for ``soak``: so many
consecutive passing checks (``VerifyConfig.checks``). The metrics are a Canary's (built-ins,
custom queries, MetricTemplates) and are rendered, queried and judged by the canary's own code:
the environment's serving Deployment is the target the built-ins select, ``judge_metric`` gives
every verdict, with the same no-data policy and the same handling of infrastructure errors.

How a check counts:

- every metric passes (or has no data under ``skip``): one more passing check; enough in a row
  and the version is ``verified``;
- a metric fails (or has no data under ``fail``): the verification fails (exit 3);
- no data under ``hold``, a Deployment that is not ready: the run of passing checks starts over;
- an infrastructure error (Prometheus or the cluster does not answer): the run starts over, and
  ``maxInfraErrors`` erroring checks in a row fail the verification (exit 6);
- a query Prometheus rejects, or a metric that cannot be rendered: a spec error (exit 2);
- a Deployment past its progress deadline: the verification fails (exit 3);
- the Deployment runs another version meanwhile: the verification stops (exit 4), as it no
  longer verifies anything;
- holding checks stretch the verification by at most the promotion's timeout beyond the soak
  time; then it fails (exit 7).

``judge_check`` decides (pure: no clock, no network); ``run_checks`` is the loop, which waits on
a ``Clock``, so a soak runs over recorded metrics history in moments under a replay clock;
``Checker`` observes one environment's cluster and Prometheus for it. What to do with the
outcome (record it, put the previous image back, name the revert to make) is the caller's
(``orchestrate.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from progdel.canary.clock import Clock
from progdel.canary.judge import Effect, MetricJudgement, MetricResult, judge_metric, ordered_metrics
from progdel.canary.records import Sink, VerifyRecord, event_record
from progdel.config.canary import Canary
from progdel.config.project import App, Environment, Project
from progdel.errors import ExitCode, ProgdelError
from progdel.kube.readiness import Readiness
from progdel.metrics.builtin import threshold_bounds
from progdel.promote.versions import same_version

State = Literal["verifying", "verified", "failed", "stopped"]


def serving_deployment(env: Environment, app: App) -> str:
    """The Deployment users are served by: the app's, or its ``-primary`` where a canary runs."""
    return f"{app.deployment_name}-primary" if env.canary else app.deployment_name


def verification_canary(env: Environment, app: App) -> Canary:
    """``env``'s verify metrics as the analysis of a Canary whose target is the serving Deployment."""
    assert env.verify is not None
    return env.verify.canary(name=app.name, namespace=env.namespace, target=serving_deployment(env, app))


@dataclass(frozen=True)
class Observed:
    """What one check saw: the time its metrics are evaluated at, the version the Deployment runs,
    its readiness, and the metrics (None when not queried: not ready, or an error before)."""

    at: datetime
    version: str | None
    readiness: Readiness = Readiness.READY
    not_ready: str = ""
    metrics: Mapping[str, MetricResult] | None = None
    infra_error: str | None = None
    """The cluster or Prometheus did not answer."""
    spec_error: str | None = None
    """A metric could not be rendered (a MetricTemplate is missing...)."""


@dataclass(frozen=True)
class Progress:
    """Where a verification stands."""

    needed: int
    """Consecutive passing checks that make the version verified."""
    checks: int = 0
    passed: int = 0
    """Consecutive passing checks so far."""
    infra_errors: int = 0
    """Consecutive checks with an infrastructure error."""
    state: State = "verifying"
    exit_code: ExitCode = ExitCode.OK
    message: str = ""
    """Why it ended (or what the last check held on)."""
    judged: tuple[tuple[str, MetricJudgement], ...] = field(default=())

    @property
    def done(self) -> bool:
        return self.state != "verifying"


Event = tuple[Literal["Normal", "Warning"], str]


def judge_check(
    canary: Canary, version: str, progress: Progress, observed: Observed
) -> tuple[Progress, list[Event]]:
    """One check of ``version`` (the target and metrics of ``canary``): the new progress, and the
    events to show."""
    what = f"{canary.target_name}.{canary.namespace}"
    p = replace(progress, checks=progress.checks + 1)
    max_infra = canary.settings.max_infra_errors

    def infra(message: str) -> tuple[Progress, list[Event]]:
        n = p.infra_errors + 1
        if n >= max_infra:
            why = f"infrastructure errors on {n} consecutive checks ({message})"
            return replace(
                p, passed=0, infra_errors=n, state="failed", exit_code=ExitCode.UNREACHABLE, message=why
            ), [
                ("Warning", message),
                ("Warning", f"Verification of {what} failed: {why}"),
            ]
        note = f"holding: infrastructure error ({n}/{max_infra})"
        return replace(p, passed=0, infra_errors=n, message=note), [("Warning", message)]

    def fail(code: ExitCode, why: str) -> tuple[Progress, list[Event]]:
        return replace(p, passed=0, infra_errors=0, state="failed", exit_code=code, message=why), [
            ("Warning", f"Verification of {what} failed: {why}")
        ]

    if observed.infra_error is not None:
        return infra(observed.infra_error)
    if observed.version is None or not same_version(observed.version, version):
        why = f"{what} runs {observed.version or 'nothing'} now, not {version}"
        return replace(p, state="stopped", exit_code=ExitCode.ABORTED, message=why), [
            ("Warning", f"Verification of {version} stopped: {why}")
        ]
    if observed.readiness is Readiness.DEADLINE_EXCEEDED:
        return fail(ExitCode.CANARY_FAILED, f"{what} not ready: {observed.not_ready}")
    if observed.readiness is not Readiness.READY:
        note = f"holding: {observed.not_ready or 'not ready'}"
        return replace(p, passed=0, infra_errors=0, message=note), [
            ("Warning", f"Halt verification of {what}: {observed.not_ready or 'not ready'}")
        ]
    if observed.spec_error is not None:
        return fail(ExitCode.INVALID_INPUT, observed.spec_error)
    results = observed.metrics or {}
    judged = tuple(
        (
            m.name,
            judge_metric(
                canary, m, results.get(m.name) or MetricResult.infra_error("no result was collected")
            ),
        )
        for m in ordered_metrics(canary.analysis)
    )
    p = replace(p, judged=judged)
    by_effect: dict[Effect, list[tuple[str, MetricJudgement]]] = {}
    for name, j in judged:
        by_effect.setdefault(j.effect, []).append((name, j))
    events: list[Event] = [
        ("Normal", f"Skipping {name} check for {what}: {j.message}")
        for name, j in judged
        if j.verdict == "skipped"
    ]
    if Effect.REJECT in by_effect:
        name, j = by_effect[Effect.REJECT][0]
        p2, ev = fail(ExitCode.INVALID_INPUT, f"query for metric {name} was rejected: {j.message}")
        return p2, events + ev
    if Effect.FAIL in by_effect:
        _name, j = by_effect[Effect.FAIL][0]
        p2, ev = fail(ExitCode.CANARY_FAILED, j.message)
        return p2, events + ev
    if Effect.INFRA in by_effect:
        p2, ev = infra(
            "; ".join(f"Metric query failed for {n}: {j.message}" for n, j in by_effect[Effect.INFRA])
        )
        return p2, events + ev
    if Effect.HOLD in by_effect:
        holds: list[Event] = [
            ("Warning", f"Halt verification of {what} holding: {j.message}")
            for _n, j in by_effect[Effect.HOLD]
        ]
        return replace(p, passed=0, infra_errors=0, message="holding: no data"), events + holds
    passed = p.passed + 1
    if passed >= p.needed:
        why = f"{passed} checks in a row passed"
        return replace(p, passed=passed, infra_errors=0, state="verified", message=why), [
            *events,
            ("Normal", f"Verification of {what} passed: {why}"),
        ]
    return replace(p, passed=passed, infra_errors=0, message=""), events


def check_record(
    canary: Canary, env: Environment, version: str, progress: Progress, at: datetime
) -> VerifyRecord:
    """A ``verify`` record for the live view and ``-o ndjson``."""
    assert env.verify is not None
    bounds = {m.name: threshold_bounds(m) for m in canary.analysis.metrics}
    return {
        "kind": "verify",
        "environment": env.name,
        "target": f"{canary.namespace}/{canary.target_name}",
        "version": version,
        "time": _stamp(at),
        "state": progress.state,
        "check": progress.checks,
        "passed": progress.passed,
        "needed": progress.needed,
        "soak": env.verify.soak,
        "interval": _seconds(env.verify.interval_seconds),
        "infraErrors": progress.infra_errors,
        "maxInfraErrors": canary.settings.max_infra_errors,
        "metrics": [
            {
                "name": name,
                "value": j.value if j.value is None or math.isfinite(j.value) else None,
                "min": bounds.get(name, (None, None))[0],
                "max": bounds.get(name, (None, None))[1],
                "verdict": j.verdict,
                "message": j.message,
            }
            for name, j in progress.judged
        ],
        "note": "" if progress.done else progress.message,
    }


def run_checks(
    canary: Canary,
    env: Environment,
    version: str,
    *,
    observe: Callable[[datetime], Observed],
    clock: Clock,
    sink: Sink,
    timeout: float,
) -> Progress:
    """Check ``version`` every interval until it is verified, fails or stops; holding checks may
    stretch the soak by at most ``timeout`` seconds. Time is ``clock``'s only."""
    verify = env.verify
    assert verify is not None
    interval = verify.interval_seconds
    start = clock.now()
    deadline = verify.soak_seconds + timeout
    progress = Progress(needed=verify.checks)
    sink(check_record(canary, env, version, progress, start))
    while not progress.done:
        _wait(clock, interval, sink)
        now = clock.now()
        progress, events = judge_check(canary, version, progress, observe(now))
        for kind, message in events:
            sink(event_record(kind, message, now))
        sink(check_record(canary, env, version, progress, now))
        if not progress.done and (now - start).total_seconds() >= deadline:
            why = (
                f"{progress.passed} of {progress.needed} checks in a row passed after "
                f"{_seconds((now - start).total_seconds())} ({progress.message or 'still verifying'})"
            )
            progress = replace(progress, state="failed", exit_code=ExitCode.TIMEOUT, message=why)
    return progress


def _wait(clock: Clock, seconds: float, sink: Sink) -> None:
    start = clock.now()
    while True:
        left = seconds - (clock.now() - start).total_seconds()
        if left <= 0:
            return
        sink({"kind": "countdown", "seconds": round(left, 1)})
        clock.sleep(min(left, 0.5))


def _stamp(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _seconds(seconds: float) -> str:
    from progdel.promote.direct import format_duration

    return format_duration(seconds)


class Checker:
    """Observes one environment for its checks: the serving Deployment in the environment's
    cluster, and the metrics, queried as a canary's are (the same rendering, templates from that
    cluster, Prometheus reached directly or through that cluster's service proxy)."""

    def __init__(self, kube: Any, project: Project, env: Environment, app: App, clock: Clock) -> None:
        from progdel.canary.cluster import runner_for
        from progdel.canary.runner import RunOptions

        assert env.verify is not None
        self.kube = kube
        self.env = env
        self.app = app
        self.canary = verification_canary(env, app)
        options = RunOptions(
            prometheus_url=env.verify.prometheus_url, project_prometheus_url=project.defaults.prometheus_url
        )
        self.runner = runner_for(kube, self.canary.name, env.namespace, lambda _r: None, options, clock)

    def preflight(self, at: datetime) -> None:
        """Render every metric and run its query once (at ``at``): a metric that cannot be rendered,
        or a query Prometheus rejects, is a spec error (exit 2) before anything changes. No data, or
        Prometheus not answering, are not errors yet."""
        from progdel.canary.judge import MetricOutcome
        from progdel.errors import InvalidInput

        where = f"environment {self.env.name} verify"
        try:
            results = self.runner.measure(self.canary, at)
        except InvalidInput as err:
            raise InvalidInput(f"{where}: {err.message}") from None
        for name, result in results.items():
            if result.outcome is MetricOutcome.REJECTED:
                raise InvalidInput(f"{where}: metric {name}: {result.message}")

    def observe(self, at: datetime) -> Observed:
        from progdel.kube.errors import NotFound
        from progdel.kube.readiness import deployment_health
        from progdel.kube.resources import DEPLOYMENTS
        from progdel.promote.inventory import deployment_version

        name = self.canary.target_name
        try:
            dep = self.kube.get(DEPLOYMENTS, name, self.env.namespace)
        except NotFound:
            return Observed(
                at, None, Readiness.NOT_READY, f"deployment {self.env.namespace}/{name} not found"
            )
        except ProgdelError as err:
            if err.exit_code is not ExitCode.UNREACHABLE:
                raise
            return Observed(at, None, infra_error=str(err))
        health = deployment_health(dep)
        version = deployment_version(dep, self.app.container)
        observed = Observed(at, version, health.readiness, health.message)
        if health.readiness is not Readiness.READY:
            return observed
        try:
            return replace(observed, metrics=self.runner.measure(self.canary, at))
        except ProgdelError as err:
            if err.exit_code is ExitCode.UNREACHABLE:
                return replace(observed, infra_error=str(err))
            return replace(observed, spec_error=str(err))

    def close(self) -> None:
        self.runner.close()
