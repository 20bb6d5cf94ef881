"""What the engine learns about the world for one tick: an ``Observation``, and the webhook
types and results it may carry. The runner (or a replay) builds them; the engine only reads them.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from progdel.canary.judge import MetricResult
from progdel.config.canary import CONFIRM_GATE_NAMES, Canary, CanaryWebhook
from progdel.kube.readiness import Readiness


class Command(enum.StrEnum):
    ABORT = "abort"
    PROMOTE = "promote"


@dataclass(frozen=True)
class Weights:
    """Weights read from the router (the first route that carries the canary)."""

    primary: int
    canary: int
    mirrored: bool = False


class HookType(enum.StrEnum):
    """Flagger's webhook types (an empty or missing type means ``rollout``)."""

    CONFIRM_ROLLOUT = "confirm-rollout"
    PRE_ROLLOUT = "pre-rollout"
    ROLLOUT = "rollout"
    CONFIRM_TRAFFIC_INCREASE = "confirm-traffic-increase"
    CONFIRM_PROMOTION = "confirm-promotion"
    POST_ROLLOUT = "post-rollout"
    ROLLBACK = "rollback"
    EVENT = "event"


CONFIRM_GATES = tuple(HookType(name) for name in CONFIRM_GATE_NAMES)


def hook_type_of(webhook: CanaryWebhook) -> HookType:
    return HookType(webhook.type) if webhook.type else HookType.ROLLOUT


def webhooks_of(canary: Canary, hook_type: HookType) -> list[CanaryWebhook]:
    return [w for w in canary.analysis.webhooks if hook_type_of(w) is hook_type]


def manual_gates(canary: Canary) -> set[HookType]:
    """Confirm gates declared in ``progdel.dev/manual-gates``; they open only on
    ``progdel canary approve`` (the spec loader rejects words that name no confirm gate)."""
    return {HookType(word) for word in canary.settings.manual_gates}


@dataclass(frozen=True)
class HookResult:
    """The outcome of one webhook call: ``ok`` on a 2xx answer; ``message`` says why not."""

    name: str
    ok: bool
    message: str = ""
    status_code: int | None = None


@dataclass(frozen=True)
class Observation:
    """Everything the engine learns about the world for one tick.

    ``metrics`` is ``None`` when they were not queried (see ``needs_metrics``); ``infra_error``
    carries an API failure the runner met while observing (the tick then holds).
    """

    now: datetime
    revision: str
    primary: Readiness = Readiness.READY
    canary: Readiness = Readiness.READY
    weights: Weights | None = None
    metrics: Mapping[str, MetricResult] | None = None
    # requests the canary served in the metrics' window (queried with the metrics when the
    # ``progdel.dev/min-requests`` guard is on), and that window as a Go duration
    canary_requests: MetricResult | None = None
    requests_window: str = ""
    command: Command | None = None
    infra_error: str | None = None
    tracked_configs: Mapping[str, str] | None = None
    # progdel's own revision hash of the target, for a status an older progdel wrote
    legacy_revision: str = ""
    not_ready_reason: str = ""
    primary_not_ready_reason: str = ""
    # the Canary as stored no longer validates (it was edited mid-run): the tick runs on the last
    # valid spec, and an analysing tick counts a failed check saying why
    spec_error: str | None = None
    # webhook results by type, for the types the runner has called (see ``engine.needs``)
    webhooks: Mapping[HookType, Sequence[HookResult]] | None = None
    approval: HookType | None = None  # a confirm gate an operator has approved
    approved_by: str = ""
    paused: bool = False  # `progdel canary pause`: hold at the current weight
    paused_by: str = ""
