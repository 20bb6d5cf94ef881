"""Rehearse a canary on recorded history: what would this spec have decided on traffic that
already happened?

A replay runs the same engine as ``canary watch`` (``engine.needs`` and ``engine.tick``, so the
same judging of every metric), tick by tick at the spec's interval from a start time, each
metric's query evaluated at its tick's time against Prometheus' history, with the weights the
spec would have set. Nothing else is observed and nothing is written: no cluster is involved,
the target and its primary are taken to be ready, the revision is new at the first tick.

Webhooks and manual gates cannot be replayed (their answers were not recorded): they are
skipped, as if the spec had none, and reported so; with ``assume_hooks_pass`` they are taken to
pass (a rollback hook to not signal a rollback, a manual gate to be approved).

The run ends as ``watch`` would end it: promoted (0), rolled back (3, or 4 aborted by a hook, 6
on infrastructure errors), or still running when the window ends (5).

Every tick evaluates the same queries, so each is fetched over the whole window in a few range
queries on its first use and each tick reads its value from them (``progdel.metrics.window``):
the same values as a query per tick, at the cost of a few requests per metric.

A replay can keep the record a run keeps (``replay_recorder``): the run history's recorder fed
as ``watch`` feeds it, its record kept in memory rather than in a cluster, for a file or a report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from progdel.canary import engine, records
from progdel.canary.actions import Action, CallWebhooks, Event, SetWeights
from progdel.canary.measure import CanaryMetrics
from progdel.canary.observation import HookResult, HookType, Observation, Weights, hook_type_of, webhooks_of
from progdel.canary.records import ComparisonRecord, Record, ResultRecord, Sink, TickRecord
from progdel.canary.status import CanaryStatus, Phase, parse_time
from progdel.config.canary import ANNOTATION_MANUAL_GATES, Canary, MetricTemplate
from progdel.errors import ExitCode, InvalidInput, Unreachable
from progdel.metrics.prometheus import configured_prometheus_url, resolve_prometheus_url
from progdel.metrics.servers import MetricsServers
from progdel.metrics.templates import metric_queries
from progdel.metrics.window import TickWindow

if TYPE_CHECKING:
    from progdel.canary.history import RunRecord, RunRecorder

#: the revisions of the replayed run: the one promoted before the window, and the new one
BEFORE, RELEASE = "replay-before", "replay-release"

_RUN_PHASES = (Phase.WAITING, Phase.PROGRESSING, Phase.WAITING_PROMOTION, Phase.PROMOTING, Phase.FINALISING)


def without_hooks(canary: Canary) -> tuple[Canary, list[str]]:
    """``canary`` without webhooks and manual gates, and what was left out (``name (type)``)."""
    left = [f"{w.name} ({hook_type_of(w)})" for w in canary.analysis.webhooks]
    left += [f"{gate} (manual gate)" for gate in sorted(canary.settings.manual_gates)]
    if not left:
        return canary, []
    bare = canary.model_copy(deep=True)
    bare.analysis.webhooks = []
    bare.metadata.annotations = {
        k: v for k, v in (bare.metadata.annotations or {}).items() if k != ANNOTATION_MANUAL_GATES
    }
    return bare, left


def _passing(canary: Canary, hook_type: HookType) -> list[HookResult]:
    """The results of ``hook_type``'s webhooks as if each had answered as a healthy release's:
    2xx, except a rollback hook, which signals no rollback."""
    return [HookResult(w.name, hook_type is not HookType.ROLLBACK) for w in webhooks_of(canary, hook_type)]


class Replay:
    """One replay of ``canary`` over ``[start, end]``, its records into ``sink``."""

    def __init__(
        self,
        canary: Canary,
        metrics: CanaryMetrics,
        sink: Sink,
        *,
        start: datetime,
        end: datetime,
        assume_hooks_pass: bool = False,
        history: RunRecorder | None = None,
    ) -> None:
        """``history``: the run recorder to feed as ``watch`` feeds it (``replay_recorder``)."""
        if end <= start:
            raise InvalidInput(f"--to {records.stamp(end)} is not after --from {records.stamp(start)}")
        interval = canary.analysis.interval_seconds
        if interval <= 0:
            raise InvalidInput(f"canary {canary.namespace}/{canary.name}: spec.analysis.interval must be > 0")
        self.spec = canary
        self.canary, self.skipped = (canary, []) if assume_hooks_pass else without_hooks(canary)
        self.assume_hooks_pass = assume_hooks_pass
        self.metrics = metrics
        self.sink = sink
        self.start, self.end = start, end
        self.interval = timedelta(seconds=interval)
        self.ticks = 0
        self.history = history
        if history is not None:  # the run's events go to its record too, as a watcher's do

            def keep(record: Record) -> None:
                if record["kind"] == "event":
                    history.event(record)
                sink(record)

            self.sink = keep

    def _decide(self, status: CanaryStatus, obs: Observation) -> engine.TickResult:
        c = self.canary
        for _ in range(len(HookType) + 2):
            need = engine.needs(c, status, obs)
            if need is None:
                return engine.tick(c, status, obs)
            if isinstance(need, engine.NeedsHooks):
                obs = replace(
                    obs, webhooks={**(obs.webhooks or {}), need.hook_type: _passing(c, need.hook_type)}
                )
            else:
                obs = self.metrics.observe(c, obs)
        raise RuntimeError("the engine kept asking for observations")  # pragma: no cover

    def _carry_out(self, actions: Sequence[Action], at: datetime, weights: Weights) -> Weights:
        """What of ``actions`` a replay can carry out: the weights (on the simulated router) and
        the events; post-rollout hooks are reported as they were taken to answer."""
        for action in actions:
            if isinstance(action, SetWeights):
                weights = Weights(action.primary, action.canary, action.mirror)
            elif isinstance(action, Event):
                self.sink(records.event_record(action.type, action.message, at))
            elif isinstance(action, CallWebhooks):
                label = str(action.hook_type).capitalize()
                for r in _passing(self.canary, action.hook_type):
                    self.sink(records.event_record("Normal", f"{label} check {r.name} passed", at))
        return weights

    def run(self) -> ExitCode:
        """Replay the window; the exit code ``watch`` would have ended with (5: still running)."""
        c = self.canary
        where = f"{c.namespace}/{c.name}"
        if self.skipped:
            self.sink(
                records.event_record(
                    "Normal",
                    f"Replay skips what it cannot replay: {', '.join(self.skipped)} "
                    "(--assume-hooks-pass takes them to pass)",
                    self.start,
                )
            )
        status = CanaryStatus(phase=Phase.SUCCEEDED, last_applied_spec=BEFORE, last_promoted_spec=BEFORE)
        weights = Weights(100, 0)
        at = self.start
        while at <= self.end:
            obs = Observation(now=at, revision=RELEASE, weights=weights)
            result = self._decide(status, obs)
            self.ticks += 1
            weights = self._carry_out(result.actions, at, weights)
            tick = records.tick_record(
                c,
                result.status,
                at,
                canary_weight=weights.canary,
                primary_weight=weights.primary,
                note=result.note,
            )
            if self.history is not None:
                self.history.tick(c, status.phase, result.status, RELEASE, tick)
            self.sink(tick)
            before, status = status.phase, result.status
            if result.settled and result.exit_hint is not None and before in _RUN_PHASES:
                end = records.result_record(
                    where,
                    at,
                    str(status.phase),
                    records.outcome_of(str(status.phase), result.exit_hint),
                    result.exit_hint,
                    str(status.failure_reason or ""),
                )
                if self.history is not None:
                    self.history.finish(end["outcome"], end["message"], end["exitCode"], end["time"])
                self.sink(end)
                return result.exit_hint
            at += self.interval
        last = at - self.interval
        why = f"the window ends at {records.stamp(self.end)}"
        if self.history is not None and self.history.record is not None:
            # as a run still under way when its driver stops: no outcome yet
            self.history.record.message = f"still running: {why}"
            self.history.record.exit_code = int(ExitCode.WAITING)
        self.sink(
            records.result_record(where, last, str(status.phase), "still running", ExitCode.WAITING, why)
        )
        return ExitCode.WAITING


class ReplayMetrics:
    """The metrics port of replays: Prometheus servers reached directly (there is no cluster to go
    through), with progdel's own credentials for the configured server only, as for ``watch``;
    closed with ``close``.

    ``batched``: each query is fetched over the whole window in a few range queries, and every
    tick reads its value from them (``progdel.metrics.window``); else one query per tick."""

    def __init__(
        self, prometheus_url: str | None = None, project_url: str | None = None, *, batched: bool = True
    ) -> None:
        self.prometheus_url, self.project_url = prometheus_url, project_url
        self.configured = configured_prometheus_url(prometheus_url, project_default=project_url)
        self.batched = batched
        self.servers = [MetricsServers(None, self.configured)]  # progdel's credentials checked now

    def for_canary(
        self, canary: Canary, templates: Sequence[MetricTemplate], start: datetime, end: datetime
    ) -> CanaryMetrics:
        """The metrics of ``canary`` replayed from ``start`` to ``end``: every query must render
        with ``templates`` and need no Secret (else the spec is refused, exit 2), and its metrics
        server must answer (else exit 6), before any tick."""
        for q in metric_queries(canary, templates):
            if q.secret is not None:
                raise InvalidInput(
                    f"metric {q.name}: its MetricTemplate reads credentials from secret "
                    f"{q.secret[0]}/{q.secret[1]}, which a replay (no cluster) cannot read"
                )
        url = resolve_prometheus_url(
            self.prometheus_url, metrics_server=canary.spec.metrics_server, project_default=self.project_url
        )
        window = TickWindow(start, canary.analysis.interval_seconds, end) if self.batched else None
        servers = MetricsServers(None, self.configured, window=window)
        self.servers.append(servers)
        if not servers.provider(url).is_online():
            raise Unreachable(
                f"Prometheus at {url} does not answer (a replay reaches it directly: --prometheus-url)"
            )
        return CanaryMetrics(servers, url, list(templates))

    def queries_sent(self) -> int:
        """The requests sent to metrics servers so far."""
        return sum(servers.queries_sent() for servers in self.servers)

    def close(self) -> None:
        for servers in self.servers:
            servers.close()


# --------------------------------------------------------------------------------------------
# The record of a replayed run
# --------------------------------------------------------------------------------------------


def replay_identity(start: datetime, end: datetime) -> str:
    """Who a replayed run's record says drove it: a replay, and of which window."""
    return f"progdel canary replay of {records.stamp(start)} to {records.stamp(end)} (nothing deployed)"


def replay_recorder(canary: Canary, start: datetime, end: datetime) -> RunRecorder:
    """The run history's recorder for a replay of ``canary``: fed by ``Replay`` as ``watch`` feeds
    it, it builds the record ``watch`` writes to the cluster, and keeps it (``replayed_run``)."""
    from progdel.canary.history import unstored_recorder

    return unstored_recorder(canary.name, canary.namespace, replay_identity(start, end))


def replayed_run(recorder: RunRecorder) -> RunRecord | None:
    """The record of the run a replay fed ``recorder`` with, bounded as a stored record is (None
    when no run started)."""
    run = recorder.last or recorder.record
    if run is not None:
        run.packed()  # thins the ticks until the record fits where a run's history keeps it
    return run


def run_document(
    record: RunRecord, *, start: datetime, end: datetime, spec: str, assume_hooks_pass: bool
) -> dict[str, Any]:
    """The record as the history's ConfigMap holds it (``RunRecord.to_dict``), with what was
    replayed: the window, the spec and whether hooks were taken to pass."""
    return {
        **record.to_dict(),
        "replay": {
            "from": records.stamp(start),
            "to": records.stamp(end),
            "spec": spec,
            "assumeHooksPass": assume_hooks_pass,
        },
    }


# --------------------------------------------------------------------------------------------
# Comparing two replays
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Divergence:
    """Where two replays of one window first differ, and how each ended."""

    first: str  # the two specs' names, as the user gave them
    second: str
    time: str | None  # the first tick whose state differs, None when they never do
    first_tick: TickRecord | None
    second_tick: TickRecord | None
    first_result: ResultRecord | None
    second_result: ResultRecord | None
    interval_seconds: float

    def lines(self) -> list[str]:
        """The comparison in words: the first difference, then each outcome and which came first."""
        if self.time is None:
            lines = [f"{self.first} and {self.second} decide the same at every tick"]
        else:
            lines = [
                f"first difference at {self.time}: {self.first} {_state(self.first_tick)}, "
                f"{self.second} {_state(self.second_tick)}"
            ]
        a, b = self.first_result, self.second_result
        for name, r in ((self.first, a), (self.second, b)):
            if r is not None:
                lines.append(f"{name} {_verb(r)} at {r['time']}")
        if a is not None and b is not None and a["outcome"] == b["outcome"] and a["time"] != b["time"]:
            ta, tb = records_time(a["time"]), records_time(b["time"])
            earlier, later = (self.second, self.first) if tb < ta else (self.first, self.second)
            n = round(abs((ta - tb).total_seconds()) / self.interval_seconds)
            lines.append(f"{earlier} {_verb(a)} {n} interval{'s' if n != 1 else ''} earlier than {later}")
        return lines

    def to_dict(self) -> ComparisonRecord:
        return {
            "kind": "comparison",
            "first": self.first,
            "second": self.second,
            "firstDifference": self.time,
            "outcomes": {self.first: self.first_result, self.second: self.second_result},
            "lines": self.lines(),
        }


def records_time(text: str) -> datetime:
    return parse_time(text)


def _state(tick: TickRecord | None) -> str:
    if tick is None:
        return "has ended"
    return f"{tick['phase']} at weight {tick['canaryWeight']}, failed checks {tick['failedChecks']}"


def _verb(result: ResultRecord) -> str:
    return {"promoted": "promotes", "rolled back": "rolls back", "aborted": "aborts"}.get(
        result["outcome"], f"is {result['outcome']}"
    )


def compare_specs(
    first: str,
    first_records: Sequence[Record],
    second: str,
    second_records: Sequence[Record],
    interval: float,
) -> Divergence:
    """Where the replays ``first_records`` and ``second_records`` of one window first differ: the
    first tick time at which phase, weight or failed checks are not the same."""
    ticks_a = {r["time"]: r for r in first_records if r["kind"] == "tick"}
    ticks_b = {r["time"]: r for r in second_records if r["kind"] == "tick"}

    def key(t: TickRecord | None) -> tuple[object, ...] | None:
        return None if t is None else (t["phase"], t["canaryWeight"], t["failedChecks"])

    when = None
    for t in sorted(set(ticks_a) | set(ticks_b)):
        if key(ticks_a.get(t)) != key(ticks_b.get(t)):
            when = t
            break
    result_a = next((r for r in first_records if r["kind"] == "result"), None)
    result_b = next((r for r in second_records if r["kind"] == "result"), None)
    return Divergence(
        first,
        second,
        when,
        ticks_a.get(when) if when else None,
        ticks_b.get(when) if when else None,
        result_a,
        result_b,
        interval,
    )


def rehearse(
    canary: Canary,
    sink: Sink,
    *,
    start: datetime,
    end: datetime,
    templates: Sequence[MetricTemplate] = (),
    prometheus_url: str | None = None,
    project_url: str | None = None,
    assume_hooks_pass: bool = False,
    compare: tuple[str, str, Canary] | None = None,
    history: RunRecorder | None = None,
    batched: bool = True,
) -> tuple[ExitCode, Divergence | None]:
    """``canary replay``: replay ``canary`` over the window into ``sink``; with ``compare`` (the
    two specs' names and the other spec) replay the other too, silently, and say where they
    first differ. The exit code is the first spec's. ``history`` records the first spec's run
    (``replay_recorder``); ``batched=False`` sends one query per metric and tick."""
    metrics = ReplayMetrics(prometheus_url, project_url, batched=batched)
    try:
        first: list[Record] = []

        def keep(record: Record) -> None:
            first.append(record)
            sink(record)

        def replay(spec: Canary, into: Sink, recorder: RunRecorder | None) -> ExitCode:
            port = metrics.for_canary(spec, templates, start, end)
            return Replay(
                spec, port, into, start=start, end=end, assume_hooks_pass=assume_hooks_pass, history=recorder
            ).run()

        code = replay(canary, keep, history)
        if compare is None:
            return code, None
        name, other_name, other = compare
        second: list[Record] = []
        replay(other, second.append, None)
        return code, compare_specs(name, first, other_name, second, canary.analysis.interval_seconds)
    finally:
        metrics.close()


__all__ = [
    "Divergence",
    "Replay",
    "ReplayMetrics",
    "compare_specs",
    "rehearse",
    "replay_identity",
    "replay_recorder",
    "replayed_run",
    "run_document",
    "without_hooks",
]
