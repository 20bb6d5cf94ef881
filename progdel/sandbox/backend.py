"""How the sandbox's deployment controller learns which replicas are ready.

The controller owns Deployment ``status``; a ``ReplicaBackend`` owns the
replicas themselves. The default backend (``instant``) makes every replica
ready at once, except images from a registry host ending in ``.invalid``
(RFC 6761: such a host never resolves, so a real kubelet could never pull
them), which never become ready. The mesh backend (``progdel sandbox up
--mesh``) runs one local process per replica of the demo image and reports a
replica ready when its health endpoint answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class ReplicaSetKey:
    """Identifies the replicas of one Deployment revision."""

    namespace: str
    deployment: str
    template_hash: str


@dataclass(frozen=True)
class ReplicaCounts:
    current: int
    ready: int


class ReplicaBackend(Protocol):
    def reconcile(self, key: ReplicaSetKey, template: dict[str, Any], replicas: int) -> ReplicaCounts:
        """Make ``replicas`` replicas of ``template`` exist; return how many exist and are ready.

        Called by the controller whenever the Deployment changes and then
        periodically until the counts settle. Must be quick (no blocking waits).
        """
        ...

    def forget(self, keep: set[ReplicaSetKey]) -> None:
        """Stop every replica whose key is not in ``keep`` (old revisions, deleted Deployments)."""
        ...

    def close(self) -> None:
        """Stop every replica (sandbox shutdown)."""
        ...
