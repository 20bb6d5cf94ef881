"""The default replica backend: every replica is ready at once, unless its image cannot be pulled."""

from __future__ import annotations

from typing import Any

from progdel.sandbox.backend import ReplicaCounts, ReplicaSetKey


def registry_host(image: str) -> str:
    """The registry host of an image reference (``docker.io`` when the reference names none)."""
    first, sep, _ = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first.split(":", 1)[0] if first.count(":") == 1 and "]" not in first else first
    return "docker.io"


def pullable(template: dict[str, Any]) -> bool:
    """Whether every container image could be pulled (hosts under ``.invalid`` never resolve)."""
    spec = template.get("spec") or {}
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        if isinstance(c, dict) and registry_host(str(c.get("image", ""))).endswith(".invalid"):
            return False
    return True


class InstantReplicaBackend:
    """Replicas exist and are ready as soon as they are asked for; ``.invalid`` images never get ready."""

    def __init__(self) -> None:
        self.live: dict[ReplicaSetKey, int] = {}

    def reconcile(self, key: ReplicaSetKey, template: dict[str, Any], replicas: int) -> ReplicaCounts:
        self.live[key] = replicas
        return ReplicaCounts(current=replicas, ready=replicas if pullable(template) else 0)

    def forget(self, keep: set[ReplicaSetKey]) -> None:
        self.live = {k: v for k, v in self.live.items() if k in keep}

    def close(self) -> None:
        self.live.clear()
