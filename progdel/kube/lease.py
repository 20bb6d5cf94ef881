"""``coordination.k8s.io`` Leases: one driver per canary at a time.

A watcher holds the Lease while it drives a canary and renews it every tick;
a second watcher is refused while the Lease is fresh, and takes it over once
the holder stopped renewing (a crash, a closed laptop). Every change is a
conditional write, so two contenders can never both win.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from progdel.errors import ExitCode, ProgdelError
from progdel.kube.client import Kube
from progdel.kube.errors import AlreadyExists, Conflict, NotFound
from progdel.kube.events import now_micro
from progdel.kube.resources import LEASES


class LeaseHeld(ProgdelError):
    """Another driver holds the lease."""

    exit_code = ExitCode.WAITING

    def __init__(self, message: str, holder: str, expires: datetime) -> None:
        super().__init__(message)
        self.holder = holder
        self.expires = expires


def default_identity() -> str:
    try:
        user = getpass.getuser()
    except Exception:
        user = "unknown"
    return f"{user}@{socket.gethostname()}/{os.getpid()}"


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    text = value.replace("Z", "+00:00")
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


@dataclass
class Lease:
    kube: Kube
    name: str
    namespace: str
    identity: str
    duration_seconds: int = 30

    def _spec(self, previous: dict[str, Any] | None, *, taking_over: bool) -> dict[str, Any]:
        prev = previous or {}
        stamp = now_micro()
        transitions = int(prev.get("leaseTransitions") or 0) + (1 if taking_over else 0)
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": self.duration_seconds,
            "acquireTime": stamp if taking_over or not prev.get("acquireTime") else prev["acquireTime"],
            "renewTime": stamp,
            "leaseTransitions": transitions,
        }

    def holder(self) -> tuple[str | None, datetime | None]:
        """Who holds the lease and until when (None when free or missing)."""
        obj = self.kube.get_or_none(LEASES, self.name, self.namespace)
        if obj is None:
            return None, None
        spec = obj.get("spec") or {}
        return _holder_of(spec)

    def acquire(self) -> None:
        """Take the lease, or raise ``LeaseHeld`` naming who holds it."""
        for _ in range(5):
            obj = self.kube.get_or_none(LEASES, self.name, self.namespace)
            if obj is None:
                try:
                    self.kube.create(
                        LEASES,
                        {
                            "metadata": {"name": self.name, "namespace": self.namespace},
                            "spec": self._spec(None, taking_over=True),
                        },
                        self.namespace,
                    )
                    return
                except AlreadyExists:
                    continue
            spec = obj.get("spec") or {}
            holder, expires = _holder_of(spec)
            now = datetime.now(UTC)
            held_by_other = holder is not None and holder != self.identity and not _holder_is_dead(holder)
            if held_by_other and expires is not None and expires > now:
                left = int((expires - now).total_seconds()) + 1
                raise LeaseHeld(
                    f'lease {self.namespace}/{self.name} is held by "{holder}"; it expires in {left}s '
                    "unless renewed",
                    holder or "",
                    expires,
                )
            obj["spec"] = self._spec(spec, taking_over=holder != self.identity)
            try:
                self.kube.replace(LEASES, obj)
                return
            except Conflict:
                continue
        raise LeaseHeld(f"lease {self.namespace}/{self.name} is contended", "", datetime.now(UTC))

    def renew(self) -> None:
        """Extend the lease; raise ``LeaseHeld`` if someone else took it meanwhile."""

        def mutate(obj: dict[str, Any]) -> None:
            spec = obj.get("spec") or {}
            if spec.get("holderIdentity") not in (self.identity, None, ""):
                holder, expires = _holder_of(spec)
                raise LeaseHeld(
                    f'lease {self.namespace}/{self.name} was taken over by "{holder}"',
                    holder or "",
                    expires or datetime.now(UTC),
                )
            obj["spec"] = self._spec(spec, taking_over=False)

        try:
            self.kube.update(LEASES, self.name, mutate, self.namespace)
        except NotFound:
            self.acquire()

    def release(self) -> None:
        """Give the lease up so the next driver does not have to wait for it to expire."""

        def mutate(obj: dict[str, Any]) -> None:
            spec = obj.get("spec") or {}
            if spec.get("holderIdentity") == self.identity:
                spec["holderIdentity"] = None
                spec["renewTime"] = None
                obj["spec"] = spec

        with contextlib.suppress(NotFound, Conflict):
            self.kube.update(LEASES, self.name, mutate, self.namespace)


def _holder_is_dead(holder: str) -> bool:
    """True when ``holder`` names a process on this host that no longer exists.

    Identities are ``user@host/pid``: a driver killed on this machine need not be waited for.
    """
    _, _, rest = holder.partition("@")
    host, _, pid = rest.rpartition("/")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _holder_of(spec: dict[str, Any]) -> tuple[str | None, datetime | None]:
    holder = spec.get("holderIdentity") or None
    renewed = _parse_time(spec.get("renewTime"))
    duration = int(spec.get("leaseDurationSeconds") or 0)
    expires = renewed + timedelta(seconds=duration) if renewed else None
    return holder, expires
