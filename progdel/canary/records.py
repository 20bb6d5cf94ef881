"""The records a canary run streams: one type per kind, the same wherever a run is shown or kept.

A driver of a canary (the runner, the Flagger observer, a replay) emits records into a ``Sink``;
the live view, the plain lines and ``-o ndjson`` show them, promotion's canary step reads its
outcome from them, and a run's history can store them as they are. Each record is a ``TypedDict``:
it is its own JSON form (``-o ndjson`` prints it unchanged, a stored line reads back as the same
type), and mypy checks every place that builds or reads one.

- ``TickRecord``: the state after one tick (phase, weights, step, failed checks, every metric's
  last value against its threshold and verdict);
- ``EventRecord``: one Event (Flagger's wording), as recorded on the Canary;
- ``ResultRecord``: how a run ended (outcome and the exit code the command ends with);
- ``CountdownRecord``: the time to the next tick, for the live view only (never printed);
- ``OutageRecord``: the cluster API does not answer and the run holds, for the live view only;
- ``VerifyRecord``: one check of a verified environment's soak;
- ``ComparisonRecord``: where two specs replayed over one window first differ (``canary replay
  --compare``);
- ``DemoRunRecord``: one release of ``progdel demo`` and how it ended against what was expected.

Times are RFC 3339 in UTC with a ``Z`` (``stamp``). (No ``from __future__ import annotations``
here: ``NotRequired`` must stay visible at run time, in ``__optional_keys__``.)
"""

import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, NotRequired, TypedDict

from progdel.errors import ExitCode

if TYPE_CHECKING:
    from progdel.canary.status import CanaryStatus, Measurement
    from progdel.config.canary import Canary


class MetricRow(TypedDict):
    """One metric in a tick: its last value (None before the first judgement or without data),
    its threshold range, the verdict (``pass``, ``fail``, ``no-data``, ``skipped``, ``hold``,
    ``error``, ``rejected``; None before the first judgement) and why; for a metric the
    statistical judge compares with the primary, its comparison (``Comparison.to_dict``: verdict,
    pValue, effect, samples, direction, message)."""

    name: str
    value: float | None
    min: float | None
    max: float | None
    verdict: str | None
    message: str
    comparison: NotRequired[dict[str, Any]]


class ServedSplit(TypedDict, total=False):
    """The split the mesh served during the last interval: shares of ``primary`` and ``canary``
    (0 to 1), the requests counted, their rate, and the canary ``weight`` set for that time."""

    primary: float
    canary: float
    requests: int
    errors: int
    rps: float
    weight: int


class TickRecord(TypedDict):
    kind: Literal["tick"]
    canary: str  # namespace/name
    time: str
    phase: str
    canaryWeight: int
    primaryWeight: int
    failedChecks: int
    iterations: int
    metrics: list[MetricRow]
    note: str
    # absent when the spec is unknown (an observer reading a Canary progdel cannot parse)
    maxWeight: NotRequired[int]
    step: NotRequired[int]
    steps: NotRequired[int]
    threshold: NotRequired[int]
    served: NotRequired[ServedSplit | None]
    servedIstio: NotRequired[ServedSplit | None]  # the demo keeps the runner's reading here
    observed: NotRequired[bool]  # True: another driver (Flagger) runs it; progdel only reads
    nextTickIn: NotRequired[float]  # seconds, set by the live view from countdowns


class EventRecord(TypedDict):
    kind: Literal["event"]
    type: str  # Normal | Warning
    message: str
    time: str
    source: NotRequired[str | None]  # the component that recorded it, when observed


Outcome = Literal["promoted", "rolled back", "aborted", "initialized", "still running"]


class ResultRecord(TypedDict):
    kind: Literal["result"]
    canary: str
    time: str
    phase: str
    outcome: str  # an ``Outcome``, or the phase for an end progdel has no word for
    exitCode: int
    message: str
    run: NotRequired[str]  # the id of the run's history record, when one is kept


class CountdownRecord(TypedDict):
    kind: Literal["countdown"]
    seconds: float


class OutageRecord(TypedDict):
    """The cluster API does not answer: the run holds, retrying for ``seconds`` more at most."""

    kind: Literal["outage"]
    seconds: float
    message: str


class VerifyRecord(TypedDict):
    """One check of a verified environment's soak (``promote/verify.py``), shown as a tick is."""

    kind: Literal["verify"]
    environment: str
    target: str  # namespace/deployment
    version: str
    time: str
    state: str  # verifying | verified | failed | stopped
    check: int
    passed: int
    needed: int
    soak: str
    interval: str
    infraErrors: int
    maxInfraErrors: int
    metrics: list[MetricRow]
    note: str


class ComparisonRecord(TypedDict):
    """Two specs replayed over one window: the first tick time at which they decide differently
    (None: never), how each ended (by spec name; None while still running at the window's end),
    and the comparison in words."""

    kind: Literal["comparison"]
    first: str
    second: str
    firstDifference: str | None
    outcomes: dict[str, ResultRecord | None]
    lines: list[str]


class DemoRunRecord(TypedDict):
    """One release of the demo: its version, how its canary run ended against the outcome the
    demo expects of it, the run's exit code and how long it took."""

    kind: Literal["run"]
    version: str
    outcome: str
    expected: str
    exitCode: int
    seconds: float


Record = (
    TickRecord
    | EventRecord
    | ResultRecord
    | CountdownRecord
    | OutageRecord
    | VerifyRecord
    | ComparisonRecord
    | DemoRunRecord
)
Sink = Callable[[Record], None]


def stamp(t: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def event_record(type_: str, message: str, at: datetime | str) -> EventRecord:
    time = at if isinstance(at, str) else stamp(at)
    return {"kind": "event", "type": type_, "message": message, "time": time}


def result_record(
    canary: str, at: datetime, phase: str, outcome: str, exit_code: ExitCode | int, message: str = ""
) -> ResultRecord:
    return {
        "kind": "result",
        "canary": canary,
        "time": stamp(at),
        "phase": phase,
        "outcome": outcome,
        "exitCode": int(exit_code),
        "message": message,
    }


def outcome_of(phase: str, exit_code: ExitCode | None) -> str:
    """The word for how a run that ended in ``phase`` with ``exit_code`` ended."""
    if phase == "Succeeded":
        return "promoted"
    if phase == "Failed":
        return "aborted" if exit_code is ExitCode.ABORTED else "rolled back"
    if phase == "Initialized":
        return "initialized"
    return phase


def steps_of(canary: "Canary") -> int:
    """How many steps a run of ``canary`` has (weight steps, or iterations)."""
    a = canary.analysis
    if a.iterations:
        return a.iterations
    if a.step_weights:
        return len(a.step_weights)
    if a.step_weight:
        return math.ceil(a.effective_max_weight / a.step_weight)
    return 0


def step_index(canary: "Canary", weight: int, iterations: int) -> int:
    """The step a run of ``canary`` is at with ``weight`` and ``iterations``."""
    a = canary.analysis
    if a.iterations:
        return iterations
    if a.step_weights:
        return sum(1 for w in a.step_weights if w <= weight)
    if a.step_weight:
        return math.ceil(weight / a.step_weight)
    return 0


def metric_rows(canary: "Canary", measurements: "Mapping[str, Measurement] | None" = None) -> list[MetricRow]:
    """Every metric of ``canary`` in the spec's order, with its last measurement (if any)."""
    rows: list[MetricRow] = []
    for m in canary.analysis.metrics:
        meas = (measurements or {}).get(m.name)
        rng = m.threshold_range
        rows.append(
            {
                "name": m.name,
                "value": meas.value if meas else None,
                "min": rng.min if rng else None,
                "max": rng.max if rng else None,
                "verdict": meas.verdict if meas else None,
                "message": meas.message if meas else "",
            }
        )
        if meas is not None and meas.comparison is not None:
            rows[-1]["comparison"] = meas.comparison.to_dict()
    return rows


_DONE = ("Promoting", "Finalising", "Succeeded")


def tick_record(
    canary: "Canary",
    status: "CanaryStatus",
    at: datetime,
    *,
    canary_weight: int,
    primary_weight: int,
    note: str,
) -> TickRecord:
    """The record of a tick whose new status is ``status``, with the weights it leaves set."""
    phase = str(status.phase) or ""
    steps = steps_of(canary)
    return {
        "kind": "tick",
        "canary": f"{canary.namespace}/{canary.name}",
        "time": stamp(at),
        "phase": phase,
        "canaryWeight": canary_weight,
        "primaryWeight": primary_weight,
        "maxWeight": canary.analysis.effective_max_weight,
        "step": steps if phase in _DONE else step_index(canary, status.canary_weight, status.iterations),
        "steps": steps,
        "failedChecks": status.failed_checks,
        "threshold": canary.analysis.threshold,
        "iterations": status.iterations,
        "metrics": metric_rows(canary, status.measurements),
        "note": note,
    }


__all__ = [
    "ComparisonRecord",
    "CountdownRecord",
    "DemoRunRecord",
    "EventRecord",
    "MetricRow",
    "OutageRecord",
    "Outcome",
    "Record",
    "ResultRecord",
    "ServedSplit",
    "Sink",
    "TickRecord",
    "VerifyRecord",
    "event_record",
    "metric_rows",
    "outcome_of",
    "result_record",
    "stamp",
    "step_index",
    "steps_of",
    "tick_record",
]
