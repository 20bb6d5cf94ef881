"""The ``Router`` interface: one implementation per mesh (Istio today)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Weights:
    primary: int
    canary: int
    mirrored: bool = False


@dataclass(frozen=True)
class RouteNames:
    """The names a canary's routing objects get (Flagger's naming)."""

    apex: str
    namespace: str

    @property
    def primary(self) -> str:
        return f"{self.apex}-primary"

    @property
    def canary(self) -> str:
        return f"{self.apex}-canary"


@dataclass(frozen=True)
class TrafficPlan:
    """What a router writes: the split, plus the shape of the strategy's routes.

    - ``weights``: primary/canary weights; ``weights.mirrored`` mirrors the primary's traffic to
      the canary, ``mirror_percentage`` (the analysis' ``mirrorWeight``) how much of it.
    - ``ab_match``: A/B testing. Requests matching these conditions take a route split by
      ``weights``; all others go to the primary alone.
    - ``canary_cookie`` / ``primary_cookie`` (``name=value``): session affinity during a weighted
      rollout. Responses from the canary (primary) set the cookie for ``cookie_max_age`` seconds,
      and requests carrying it are routed to the canary (primary) whatever the weights.
    """

    weights: Weights
    mirror_percentage: int | None = None
    ab_match: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    canary_cookie: str | None = None
    primary_cookie: str | None = None
    cookie_max_age: int = 86400


class Router(Protocol):
    def reconcile(self) -> None:
        """Create or update the routing objects, keeping the current weights."""
        ...

    def get_weights(self) -> Weights: ...

    def set_weights(self, weights: Weights) -> None:
        """Write a plain split (no strategy routes): ``set_traffic(TrafficPlan(weights))``."""
        ...

    def revert(self) -> None:
        """Put the routing objects back as they were before progdel managed them."""
        ...


class StrategyRouter(Router, Protocol):
    """A router that also writes the strategies' routes; a router without ``set_traffic`` gets
    plain splits only."""

    def set_traffic(self, plan: TrafficPlan) -> None:
        """Write the split and the strategy's routes (A/B, mirroring, session affinity)."""
        ...
