"""The client-side canary: the pure tick (``engine``) and target revisions (``revision``)."""

from progdel.canary.engine import (
    Action,
    CanaryStatus,
    Command,
    Event,
    MetricResult,
    Observation,
    Phase,
    PromoteTemplate,
    Readiness,
    ScaleCanary,
    ScaleCanaryToZero,
    SetWeights,
    TickResult,
    Weights,
    needs_metrics,
    tick,
)

__all__ = [
    "Action",
    "CanaryStatus",
    "Command",
    "Event",
    "MetricResult",
    "Observation",
    "Phase",
    "PromoteTemplate",
    "Readiness",
    "ScaleCanary",
    "ScaleCanaryToZero",
    "SetWeights",
    "TickResult",
    "Weights",
    "needs_metrics",
    "tick",
]
