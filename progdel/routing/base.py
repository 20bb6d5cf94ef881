"""The ``Router`` interface: one implementation per traffic API (Istio, Gateway API)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from progdel.errors import InvalidInput


class RoutingError(InvalidInput):
    """progdel's route is missing from, or unusable in, a routing object (exit 2: the route, or
    the spec, has to change)."""


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
      rollout. Responses from the canary (primary) set the cookie for ``cookie_max_age``
      (``primary_cookie_max_age``) seconds, with ``cookie_attributes``, and requests carrying it
      are routed to the canary (primary) whatever the weights.
    """

    weights: Weights
    mirror_percentage: int | None = None
    ab_match: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    canary_cookie: str | None = None
    primary_cookie: str | None = None
    cookie_max_age: int = 86400
    primary_cookie_max_age: int | None = None  # Flagger: the analysis interval
    cookie_attributes: str = ""  # "; Domain=...; HttpOnly; ..." (sessionAffinity's attributes)

    def set_cookie(self, cookie: str, primary: bool = False) -> str:
        """The ``Set-Cookie`` value for ``cookie`` (``name=value``), as Flagger builds it."""
        max_age = (
            self.primary_cookie_max_age if primary and self.primary_cookie_max_age else self.cookie_max_age
        )
        return f"{cookie}; Max-Age={max_age}{self.cookie_attributes}"

    def cookies(self) -> tuple[str | None, str | None]:
        """The (canary, primary) cookies in force: only while the split is weighted, as Flagger."""
        if not 0 < self.weights.canary < 100:
            return None, None
        return self.canary_cookie, self.primary_cookie


class Router(Protocol):
    def reconcile(self) -> None:
        """Create or update the routing objects, keeping the current weights."""
        ...

    def get_weights(self) -> Weights: ...

    def set_weights(self, weights: Weights) -> None:
        """Write a plain split (no strategy routes): ``set_traffic(TrafficPlan(weights))``."""
        ...

    def set_traffic(self, plan: TrafficPlan) -> None:
        """Write the split and the strategy's routes (A/B, mirroring, session affinity).

        A router must write all of ``plan`` or fail: an A/B plan written as a plain split would
        send every user to the canary.
        """
        ...

    def revert(self) -> None:
        """Put the routing objects back as they were before progdel managed them."""
        ...


def split_weights(backends: Iterable[tuple[str, int]], names: RouteNames, what: str) -> tuple[int, int]:
    """Primary and canary weights from the ``(backend name, weight)`` pairs of progdel's route.

    A route that still sends to the apex (or the primary) alone is 100/0; both at 0 is an error
    naming ``what`` (e.g. ``virtualservice test/podinfo``).
    """
    primary = canary = 0
    found_canary = False
    for name, weight in backends:
        if name in (names.primary, names.apex):
            primary = weight
        elif name == names.canary:
            canary, found_canary = weight, True
    if not found_canary and primary == 0:
        primary = 100
    if primary == 0 and canary == 0:
        raise RoutingError(f"{what}: primary and canary weights are both 0")
    return primary, canary
