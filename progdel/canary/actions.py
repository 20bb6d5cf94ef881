"""What a tick wants done: the actions the engine returns, for the runner to carry out in order
(or a replay to apply to its simulated router)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from progdel.canary.observation import HookType

Severity = Literal["info", "warn", "error"]


@dataclass(frozen=True)
class ScaleCanary:
    """Scale the target (the canary) up: ``"up"`` restores its desired replicas (or the HPA's)."""

    replicas: int | Literal["up"] = "up"


@dataclass(frozen=True)
class ScaleCanaryToZero:
    """Scale the target to zero replicas (after init, promotion or rollback)."""


@dataclass(frozen=True)
class SetWeights:
    """Write the router's weights; ``mirror`` mirrors primary traffic to the canary."""

    primary: int
    canary: int
    mirror: bool = False


@dataclass(frozen=True)
class ConsumeApproval:
    """The approval of ``gate`` opened it: remove the approval so it is used once."""

    gate: HookType


@dataclass(frozen=True)
class CallWebhooks:
    """Call the webhooks of ``hook_type`` with ``phase`` (``post-rollout``), one after another,
    stopping at the first failure; each result is an Event ("Post-rollout check NAME passed", or
    the failure) on the canary as it is at ``event_phase``. Failures change nothing else."""

    hook_type: HookType
    phase: str
    event_phase: str = ""


@dataclass(frozen=True)
class PromoteTemplate:
    """Copy the target's pod template (and its ConfigMaps/Secrets) to the ``-primary`` workload."""


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event on the Canary (reason ``Synced``), worded as Flagger's.

    ``alert`` also sends it to the canary's alert providers at that severity, worded
    ``alert_message`` (Flagger words its alerts apart from its events); ``phase`` is the phase the
    canary has at this event, which event webhooks receive (Flagger sends the phase of the object
    it records the event on: "New revision detected!" already Progressing, "Canary failed!"
    already Failed)."""

    type: Literal["Normal", "Warning"]
    message: str
    alert: Severity | None = None
    alert_message: str | None = None
    phase: str = ""


Action = (
    ScaleCanary | ScaleCanaryToZero | SetWeights | PromoteTemplate | Event | ConsumeApproval | CallWebhooks
)
