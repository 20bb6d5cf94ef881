"""The Canary's persisted status: Flagger's fields, progdel's bookkeeping, their round trip.

A tick reads a ``CanaryStatus`` and returns a new one (``engine.tick``); the runner stores it on
the Canary object. Everything here is data and its (de)serialisation: no decisions.
"""

from __future__ import annotations

import copy
import enum
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from progdel.canary.judge import Comparison
from progdel.errors import ExitCode


class Phase(enum.StrEnum):
    NONE = ""
    INITIALIZING = "Initializing"
    INITIALIZED = "Initialized"
    WAITING = "Waiting"
    PROGRESSING = "Progressing"
    WAITING_PROMOTION = "WaitingPromotion"
    PROMOTING = "Promoting"
    FINALISING = "Finalising"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


SETTLED = (Phase.INITIALIZED, Phase.SUCCEEDED, Phase.FAILED)
RUNNING = (Phase.PROGRESSING, Phase.WAITING_PROMOTION, Phase.PROMOTING, Phase.FINALISING)
ANALYSING = (Phase.PROGRESSING, Phase.WAITING_PROMOTION)  # the phases whose ticks judge metrics
#: the phases in which a run has moved traffic or replicas, and must be brought to an end
MOVING = RUNNING


class FailureReason(enum.StrEnum):
    """Why the last run failed (progdel's addition to the status); it picks the exit code."""

    ANALYSIS = "analysis"
    DEADLINE = "progress-deadline"
    ABORTED = "aborted"
    INFRA = "infrastructure"
    REJECTED_QUERY = "rejected-query"


FAILURE_EXIT = {
    FailureReason.ANALYSIS: ExitCode.CANARY_FAILED,
    FailureReason.DEADLINE: ExitCode.CANARY_FAILED,
    FailureReason.ABORTED: ExitCode.ABORTED,
    FailureReason.INFRA: ExitCode.UNREACHABLE,
    FailureReason.REJECTED_QUERY: ExitCode.INVALID_INPUT,
}


def promoted_condition_message(phase: Phase, kind: str) -> str:
    """The message of Flagger's ``Promoted`` condition for ``phase`` (``MakeStatusConditions``)."""
    return {
        Phase.INITIALIZED: f"{kind} initialization completed.",
        Phase.WAITING: "Waiting for approval.",
        Phase.WAITING_PROMOTION: "Waiting for approval.",
        Phase.PROGRESSING: "New revision detected, progressing canary analysis.",
        Phase.PROMOTING: "Canary analysis completed, starting primary rolling update.",
        Phase.FINALISING: "Canary analysis completed, routing all traffic to primary.",
        Phase.SUCCEEDED: "Canary analysis completed successfully, promotion finished.",
        Phase.FAILED: f"Canary analysis failed, {kind} scaled to zero.",
    }.get(phase, f"New {kind} detected, starting initialization.")


def format_time(t: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, as Kubernetes writes times."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=UTC)


@dataclass
class Measurement:
    """The last result of one metric: its value (if any), the verdict and a short message."""

    value: float | None
    verdict: Literal["pass", "fail", "no-data", "skipped", "hold", "error", "rejected"]
    message: str
    time: str
    comparison: Comparison | None = None  # the statistical judge's, for a metric that has one

    def to_dict(self) -> dict[str, Any]:
        value = self.value if self.value is None or math.isfinite(self.value) else None
        out: dict[str, Any] = {"value": value, "verdict": self.verdict, "message": self.message}
        out["time"] = self.time
        if self.comparison is not None:
            out["comparison"] = self.comparison.to_dict()
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Measurement:
        raw = d.get("comparison")
        comparison = Comparison.from_dict(raw) if isinstance(raw, Mapping) else None
        return cls(
            d.get("value"), d.get("verdict", "pass"), d.get("message", ""), d.get("time", ""), comparison
        )


_FLAGGER_FIELDS = {
    "phase": "phase",
    "canary_weight": "canaryWeight",
    "failed_checks": "failedChecks",
    "iterations": "iterations",
    "last_applied_spec": "lastAppliedSpec",
    "last_promoted_spec": "lastPromotedSpec",
    "last_transition_time": "lastTransitionTime",
    "tracked_configs": "trackedConfigs",
    "conditions": "conditions",
    "session_affinity_cookie": "sessionAffinityCookie",
    "previous_session_affinity_cookie": "previousSessionAffinityCookie",
}
#: progdel's bookkeeping, kept in the run condition's message (``RUN_CONDITION``)
_BOOKKEEPING = {
    "infra_errors": "infraErrors",
    "failure_reason": "failureReason",
    "canary_not_ready_since": "canaryNotReadySince",
    "primary_not_ready_since": "primaryNotReadySince",
    "pending_gate": "pendingGate",
}
#: status fields older progdel versions wrote beside Flagger's; a real API server prunes them,
#: so they are dropped when read and never written again
_RETIRED_FIELDS = (*_BOOKKEEPING.values(), "progressingSince", "measurements")

#: the type of the status condition holding progdel's bookkeeping
RUN_CONDITION = "progdel.dev/Run"
_RUN_REASON = "DrivenByProgdel"
#: the Flagger fields the run condition's fingerprint covers; another driver's write changes at
#: least ``lastTransitionTime`` (Flagger stamps it on every write)
_FINGERPRINTED = (
    "phase",
    "canaryWeight",
    "failedChecks",
    "iterations",
    "lastAppliedSpec",
    "lastPromotedSpec",
    "lastTransitionTime",
    "trackedConfigs",
)
_NUMBERS = ("canaryWeight", "failedChecks", "iterations")


def _canonical(key: str, value: Any) -> Any:
    if key in _NUMBERS:
        try:
            number = float(value or 0)
        except (TypeError, ValueError):
            return str(value)
        return int(number) if number.is_integer() else number
    if key == "trackedConfigs":
        return {str(k): str(v) for k, v in value.items()} if isinstance(value, Mapping) else {}
    return "" if value is None else str(value)


def status_fingerprint(status: Mapping[str, Any]) -> str:
    """A hash of the Flagger fields of a status as stored (numbers and absent fields normalised)."""
    values = [_canonical(key, status.get(key)) for key in _FINGERPRINTED]
    text = json.dumps(values, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_bookkeeping(status: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """progdel's bookkeeping from the run condition of a stored status, or None when there is
    none or it is stale: its fingerprint no longer matches the Flagger fields beside it, so
    another driver wrote the status after progdel did."""
    status = status or {}
    conditions = status.get("conditions")
    if not isinstance(conditions, list):
        return None
    mine = [c for c in conditions if isinstance(c, Mapping) and c.get("type") == RUN_CONDITION]
    if not mine:
        return None
    try:
        book = json.loads(str(mine[-1].get("message") or ""))
    except ValueError:
        return None
    if not isinstance(book, dict) or book.get("fp") != status_fingerprint(status):
        return None
    return book


def progdel_wrote_last(status: Mapping[str, Any] | None) -> bool:
    """Whether progdel made the last write of this status (its run condition is current)."""
    return run_bookkeeping(status) is not None


@dataclass
class CanaryStatus:
    """The Canary's ``.status``: Flagger's fields, and progdel's bookkeeping.

    Everything is stored in fields Flagger's CRD declares, so that a real API server, which
    prunes undeclared fields, keeps it all. progdel's bookkeeping (the counters, timers, pending
    gate and measurements below) is compact JSON in the message of one more status condition,
    of type ``progdel.dev/Run``, written with Flagger's fields in the same status write and
    carrying a fingerprint of them (``status_fingerprint``). When another driver writes the
    status (Flagger replaces the conditions on a phase change, and otherwise changes at least
    ``lastTransitionTime``), the fingerprint no longer matches and the bookkeeping is read as
    absent: a run continues from Flagger's counters with fresh bookkeeping.

    ``to_dict``/``from_dict`` use Flagger's camelCase; keys progdel does not know (written by
    Flagger or a newer progdel) are kept in ``extra`` and written back unchanged.
    """

    phase: Phase = Phase.NONE
    canary_weight: int = 0
    failed_checks: int = 0
    iterations: int = 0
    last_applied_spec: str = ""
    last_promoted_spec: str = ""
    last_transition_time: str | None = None
    # None: the status has none; {} is written when the target uses no tracked config (as Flagger)
    tracked_configs: dict[str, str] | None = None
    conditions: list[dict[str, Any]] = field(default_factory=list)  # without the run condition
    session_affinity_cookie: str | None = None
    previous_session_affinity_cookie: str | None = None
    # progdel's bookkeeping
    infra_errors: int = 0
    failure_reason: FailureReason | None = None
    canary_not_ready_since: str | None = None
    primary_not_ready_since: str | None = None
    pending_gate: str | None = None  # the confirm gate the run waits at (for `canary approve`)
    measurements: dict[str, Measurement] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        for attr, key in _FLAGGER_FIELDS.items():
            value = getattr(self, attr)
            if value is None:
                continue
            out[key] = str(value) if isinstance(value, enum.Enum) else copy.deepcopy(value)
        out["conditions"] = [*out.get("conditions", []), self.run_condition(out)]
        return out

    def run_condition(self, flagger_fields: Mapping[str, Any]) -> dict[str, Any]:
        """The ``progdel.dev/Run`` condition for a status holding ``flagger_fields``."""
        book: dict[str, Any] = {"fp": status_fingerprint(flagger_fields)}
        for attr, key in _BOOKKEEPING.items():
            value = getattr(self, attr)
            if value:
                book[key] = str(value) if isinstance(value, enum.Enum) else value
        if self.measurements:
            book["measurements"] = {k: m.to_dict() for k, m in self.measurements.items()}
        condition = {
            "type": RUN_CONDITION,
            "status": "True",
            "reason": _RUN_REASON,
            "message": json.dumps(book, sort_keys=True, separators=(",", ":"), allow_nan=False),
        }
        if self.last_transition_time:
            condition["lastUpdateTime"] = condition["lastTransitionTime"] = self.last_transition_time
        return condition

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> CanaryStatus:
        book = run_bookkeeping(data) or {}
        data = dict(data or {})
        kwargs: dict[str, Any] = {}
        for attr, key in _FLAGGER_FIELDS.items():
            if key in data:
                kwargs[attr] = copy.deepcopy(data.pop(key))
        for key in _RETIRED_FIELDS:
            data.pop(key, None)
        if "phase" in kwargs:
            try:
                kwargs["phase"] = Phase(kwargs["phase"] or "")
            except ValueError:
                kwargs["phase"] = Phase.NONE
        conditions = kwargs.get("conditions")
        kwargs["conditions"] = [
            c
            for c in (conditions if isinstance(conditions, list) else [])
            if isinstance(c, dict) and c.get("type") != RUN_CONDITION
        ]
        for attr, key in _BOOKKEEPING.items():
            if book.get(key):
                kwargs[attr] = book[key]
        if kwargs.get("failure_reason"):
            try:
                kwargs["failure_reason"] = FailureReason(kwargs["failure_reason"])
            except ValueError:
                kwargs["failure_reason"] = FailureReason.ANALYSIS
        for attr in ("canary_weight", "failed_checks", "iterations", "infra_errors"):
            kwargs[attr] = int(kwargs.get(attr) or 0)
        raw = book.get("measurements")
        measurements = {
            str(k): Measurement.from_dict(v)
            for k, v in (raw.items() if isinstance(raw, dict) else ())
            if isinstance(v, Mapping)
        }
        return cls(**kwargs, measurements=measurements, extra=data)

    @property
    def promoted_condition(self) -> dict[str, Any] | None:
        return next((c for c in self.conditions if c.get("type") == "Promoted"), None)
