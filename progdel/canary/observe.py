"""Observe a canary that something else drives (Flagger in the cluster): read only, same view.

When a cluster runs Flagger, ``progdel canary watch NAME`` must never drive that canary too: two
drivers would fight over the weights. Instead it *observes*: it reads the Canary's status and its
Events and emits the same tick / event / result records the runner emits, so ``CanaryView`` shows
the same live panel, and it exits with the same codes (0 promoted, 3 rolled back, 5 still waiting
with ``--once``, 6 cluster unreachable with ``--once``, 7 timed out).

Who drives a canary (``detect_driver``), first rule that applies:

1. The annotation ``progdel.dev/driver`` decides when present: ``progdel`` means progdel drives,
   any other value (``flagger``) means observe.
2. ``metadata.managedFields`` shows a field manager other than ``progdel`` owning
   ``status.phase``: the last write of the phase was not progdel's, so someone else drives.
3. The status has a phase but no current ``progdel.dev/Run`` condition (the condition progdel
   writes with every status, holding its bookkeeping and a fingerprint of Flagger's fields, see
   ``status.CanaryStatus``): another driver wrote the status last.
4. Otherwise (no status yet, or a status progdel wrote last) progdel drives.

The ``progdel-canary-NAME`` Lease is deliberately not part of the rule: it says which progdel
process drives right now, not whether progdel or Flagger drives; a Lease left behind by an old
progdel run must not make progdel fight Flagger. ``--observe`` forces observe mode.

The observer never writes the canary, its routes or its Events: it reads (GET on the Canary and
a list of its Events), and keeps the run's history as the runner does (``history.RunRecorder``:
the ConfigMap per run, from the status the driver writes: phase, weight, failed checks, its
Events and the outcome; metrics with their thresholds, as Flagger does not publish their
values). The weights shown are the driver's ``status.canaryWeight`` (Flagger writes it with the
route). It polls every ``poll_interval`` seconds, which is enough for Flagger's ticks (10 s and
more) and survives API restarts without watch bookkeeping. A run the observer stops following
stays open in its history (its driver goes on): the next observer continues the record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from progdel.canary.clock import Clock, SystemClock
from progdel.canary.history import RunRecorder
from progdel.canary.records import (
    Sink,
    TickRecord,
    event_record,
    metric_rows,
    result_record,
    stamp,
    step_index,
    steps_of,
)
from progdel.canary.status import CanaryStatus, Phase, progdel_wrote_last
from progdel.config.canary import Canary, parse_canary
from progdel.errors import ExitCode, ProgdelError, Unreachable
from progdel.kube.client import Kube
from progdel.kube.errors import ServerError
from progdel.kube.events import list_events
from progdel.kube.lease import default_identity
from progdel.kube.resources import CANARIES

DRIVER_ANNOTATION = "progdel.dev/driver"
PROGDEL_MANAGER = "progdel"
_RUN_PHASES = {
    Phase.WAITING,
    Phase.PROGRESSING,
    Phase.WAITING_PROMOTION,
    Phase.PROMOTING,
    Phase.FINALISING,
}
#: events already in the cluster when observing starts that are shown first
BACKLOG_EVENTS = 10


@dataclass(frozen=True)
class DriverDecision:
    """Who drives the canary, and why (shown to the user)."""

    driver: str  # "progdel", or the other driver's name ("flagger", a field manager)
    reason: str

    @property
    def observe(self) -> bool:
        return self.driver != PROGDEL_MANAGER


def _status_phase_owner(obj: dict[str, Any]) -> str | None:
    """The field manager owning ``status.phase``, when it is not progdel."""
    for entry in (obj.get("metadata") or {}).get("managedFields") or []:
        manager = str(entry.get("manager") or "")
        status = (entry.get("fieldsV1") or {}).get("f:status") or {}
        if manager != PROGDEL_MANAGER and "f:phase" in status:
            return manager or "an unnamed field manager"
    return None


def detect_driver(obj: dict[str, Any]) -> DriverDecision:
    """Apply the rule in this module's docstring to a Canary object as read from the API."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    explicit = str(annotations.get(DRIVER_ANNOTATION) or "").strip().lower()
    if explicit:
        return DriverDecision(explicit, f"annotation {DRIVER_ANNOTATION}: {explicit}")
    owner = _status_phase_owner(obj)
    if owner is not None:
        driver = "flagger" if "flagger" in owner.lower() else owner
        return DriverDecision(driver, f"status.phase is written by field manager {owner!r}")
    status = obj.get("status") or {}
    if status.get("phase") and not progdel_wrote_last(status):
        return DriverDecision("flagger", "the status has a phase and progdel did not write it last")
    return DriverDecision(PROGDEL_MANAGER, "no status, or a status progdel wrote last")


class FlaggerObserver:
    """Follow a canary driven by Flagger until its run ends, keeping its run history; never writes
    the canary, its routes or its Events."""

    def __init__(
        self,
        kube: Kube,
        name: str,
        namespace: str,
        sink: Sink,
        *,
        once: bool = False,
        follow: bool = False,
        timeout: float | None = None,
        poll_interval: float = 2.0,
        clock: Clock | None = None,
        decision: DriverDecision | None = None,
    ) -> None:
        self.kube = kube
        self.name = name
        self.namespace = namespace
        self.sink = sink
        self.once = once
        self.follow = follow
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.clock = clock or SystemClock()
        self.decision = decision
        self._seen_events: dict[str, int] = {}
        self._last_view: Any = None
        self._phase_before: Phase | None = None
        self.history = RunRecorder(kube, name, namespace, self._observer_identity(), self._warn)

    def _observer_identity(self) -> str:
        driver = self.decision.driver if self.decision else "another driver"
        return f"{driver} (observed by {default_identity()})"

    def _warn(self, message: str) -> None:
        self.sink(event_record("Warning", message, self.clock.now()))

    # -- reading -------------------------------------------------------------------------

    def _canary(self, obj: dict[str, Any]) -> Canary | None:
        try:
            body = {k: v for k, v in obj.items() if k != "status"}
            return parse_canary(body, f"canary {self.namespace}/{self.name}").model
        except ProgdelError:
            return None  # a field progdel does not know: still show phase and weight

    @staticmethod
    def _weights(status: dict[str, Any]) -> tuple[int, int]:
        canary_w = int(status.get("canaryWeight") or 0)
        return 100 - canary_w, canary_w

    def _events(self, first: bool) -> None:
        events = list_events(self.kube, "Canary", self.name, self.namespace)
        fresh = []
        for ev in events:
            key = (ev.get("metadata") or {}).get("uid") or (ev.get("metadata") or {}).get("name", "")
            count = int(ev.get("count") or 1)
            if self._seen_events.get(key) != count:
                self._seen_events[key] = count
                fresh.append(ev)
        if first:
            fresh = fresh[-BACKLOG_EVENTS:]
        for ev in fresh:
            record = event_record(
                ev.get("type") or "Normal",
                ev.get("message") or "",
                ev.get("lastTimestamp") or ev.get("eventTime") or self.clock.now(),
            )
            record["source"] = (ev.get("source") or {}).get("component") or ev.get("reportingComponent")
            self.history.event(record)
            self.sink(record)

    def tick_record(self, obj: dict[str, Any], canary: Canary | None) -> TickRecord:
        """The runner's tick record, built from the status someone else wrote."""
        status = obj.get("status") or {}
        primary_w, canary_w = self._weights(status)
        iterations = int(status.get("iterations") or 0)
        record: TickRecord = {
            "kind": "tick",
            "canary": f"{self.namespace}/{self.name}",
            "time": status.get("lastTransitionTime") or stamp(self.clock.now()),
            "phase": str(status.get("phase") or ""),
            "canaryWeight": canary_w,
            "primaryWeight": primary_w,
            "failedChecks": int(status.get("failedChecks") or 0),
            "iterations": iterations,
            "metrics": [],
            "note": f"observing: driven by {self.decision.driver if self.decision else 'another driver'}",
            "observed": True,
            "served": None,
        }
        if canary is not None:
            a = canary.analysis
            record["maxWeight"] = a.effective_max_weight
            record["step"] = step_index(canary, canary_w, iterations)
            record["steps"] = steps_of(canary)
            record["threshold"] = a.threshold
            record["metrics"] = metric_rows(canary)
        return record

    # -- the loop ------------------------------------------------------------------------

    def _record_tick(self, obj: dict[str, Any], canary: Canary | None, record: TickRecord) -> None:
        """Keep an observed tick in the run's history (the driver's status is the tick's state)."""
        status = CanaryStatus.from_dict(obj.get("status"))
        before, self._phase_before = self._phase_before, status.phase
        self.history.tick(canary, before, status, status.last_applied_spec, dict(record))

    def _result(self, phase: str, code: ExitCode) -> None:
        record = result_record(
            f"{self.namespace}/{self.name}",
            self.clock.now(),
            phase,
            "promoted" if code is ExitCode.OK else "rolled back",
            code,
            f"driven by {self.decision.driver if self.decision else 'another driver'}",
        )
        self.history.finish(record["outcome"], record["message"], record["exitCode"], record["time"])
        if self.history.last is not None:
            record["run"] = self.history.last.id
        self.sink(record)

    def run(self) -> ExitCode:
        """Observe until the run ends: 0 Succeeded, 3 Failed (see the module docstring)."""
        started = self.clock.now()
        first = True
        saw_run = False
        while True:
            try:
                obj = self.kube.get(CANARIES, self.name, self.namespace)
                if self.decision is None:
                    self.decision = detect_driver(obj)
                    self.history.identity = self._observer_identity()
                canary = self._canary(obj)
                self._events(first)
                record = self.tick_record(obj, canary)
            except (Unreachable, ServerError) as err:
                self.sink(event_record("Warning", str(err), self.clock.now()))
                if self.once:
                    return ExitCode.UNREACHABLE
            else:
                view = {k: v for k, v in record.items() if k != "time"}
                if view != self._last_view:
                    self._last_view = view
                    self._record_tick(obj, canary, record)
                    self.sink(record)
                first = False
                phase = Phase(record["phase"]) if record["phase"] in set(Phase) else Phase.NONE
                if phase in _RUN_PHASES:
                    saw_run = True
                if self.once:
                    if phase in (Phase.SUCCEEDED, Phase.INITIALIZED):
                        return ExitCode.OK
                    return ExitCode.CANARY_FAILED if phase is Phase.FAILED else ExitCode.WAITING
                if saw_run and phase in (Phase.SUCCEEDED, Phase.FAILED):
                    code = ExitCode.OK if phase is Phase.SUCCEEDED else ExitCode.CANARY_FAILED
                    self._result(str(phase), code)
                    if not self.follow:
                        return code
                    saw_run = False
            elapsed = (self.clock.now() - started).total_seconds()
            if self.timeout is not None and elapsed >= self.timeout:
                raise ProgdelError(
                    f"canary {self.namespace}/{self.name}: still running after {self.timeout:.0f}s",
                    ExitCode.TIMEOUT,
                )
            self.clock.sleep(self.poll_interval)


__all__ = [
    "DRIVER_ANNOTATION",
    "DriverDecision",
    "FlaggerObserver",
    "detect_driver",
]
