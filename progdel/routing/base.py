"""The ``Router`` interface: one implementation per mesh (Istio today)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


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


class Router(Protocol):
    def reconcile(self) -> None:
        """Create or update the routing objects, keeping the current weights."""
        ...

    def get_weights(self) -> Weights: ...

    def set_weights(self, weights: Weights) -> None: ...

    def revert(self) -> None:
        """Put the routing objects back as they were before progdel managed them."""
        ...
