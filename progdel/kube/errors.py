"""Kubernetes API errors, turned into one line a person can act on.

Connection problems name the server URL (exit 6); 403 names the verb, resource
and namespace missing from RBAC; 404 names the object; 409 is a ``Conflict``
that read-modify-write loops retry; 422 carries the server's field causes.
"""

from __future__ import annotations

import json
from typing import Any

from progdel.errors import ExitCode, ProgdelError, Unreachable
from progdel.kube.resources import Resource


class KubeError(ProgdelError):
    """An error answered by the API server, with its HTTP status and Status reason."""

    def __init__(self, message: str, status: int, reason: str = "", exit_code: ExitCode | None = None):
        super().__init__(message, exit_code)
        self.status = status
        self.reason = reason


class NotFound(KubeError):
    exit_code = ExitCode.INVALID_INPUT


class AlreadyExists(KubeError):
    exit_code = ExitCode.INVALID_INPUT


class Conflict(KubeError):
    """The object changed since it was read (stale resourceVersion)."""


class Forbidden(KubeError):
    exit_code = ExitCode.INVALID_INPUT


class Invalid(KubeError):
    exit_code = ExitCode.INVALID_INPUT


class NamespaceTerminating(KubeError):
    """Nothing new may be created in a namespace that is being deleted (kube-apiserver's 403)."""

    exit_code = ExitCode.INVALID_INPUT

    def __init__(self, message: str, status: int, reason: str, namespace: str) -> None:
        super().__init__(message, status, reason)
        self.namespace = namespace


class ServerError(KubeError):
    exit_code = ExitCode.UNREACHABLE


_VERBS = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def describe_object(resource: Resource, name: str | None, namespace: str | None) -> str:
    what = f'{resource.kind.lower()} "{name}"' if name else resource.qualified
    if resource.namespaced and namespace:
        what += f' in namespace "{namespace}"'
    return what


def from_status(
    status: int,
    body: bytes | str | None,
    *,
    method: str,
    resource: Resource | None,
    name: str | None,
    namespace: str | None,
    server: str,
) -> KubeError:
    """Build the error for an HTTP error answer of the API server."""
    data: dict[str, Any] = {}
    if body:
        try:
            parsed = json.loads(body)
            if isinstance(parsed, dict):
                data = parsed
        except ValueError:
            pass
    reason = str(data.get("reason") or "")
    message = str(data.get("message") or "").strip() or (
        body.decode() if isinstance(body, bytes) else body or ""
    )
    if status == 404:
        if resource is not None and name and (not message or reason == "NotFound"):
            # the server's own message may name a missing namespace rather than the object
            details = data.get("details") or {}
            if details.get("kind") == "namespaces" or message.startswith("namespaces "):
                return NotFound(f'namespace "{details.get("name") or namespace}" not found', status, reason)
            where = f' in namespace "{namespace}"' if resource.namespaced and namespace else ""
            return NotFound(f'{resource.kind.lower()} "{name}" not found{where}', status, reason)
        if resource is not None and not message:
            return NotFound(
                f"the server does not serve {resource.qualified}/{resource.version}: is its CRD installed?",
                status,
                reason,
            )
        return NotFound(message or "not found", status, reason)
    if status == 403:
        causes = (data.get("details") or {}).get("causes") or []
        if any(c.get("reason") == "NamespaceTerminating" for c in causes if isinstance(c, dict)):
            what = describe_object(resource, name, None) if resource is not None else "the object"
            return NamespaceTerminating(
                f'cannot create {what}: namespace "{namespace}" is being deleted (Terminating); '
                "wait until it is gone, or use another namespace",
                status,
                reason,
                namespace or "",
            )
        verb = _VERBS.get(method.upper(), method.lower())
        if verb == "get" and not name:
            verb = "list"
        target = resource.qualified if resource is not None else "this resource"
        where = f' in namespace "{namespace}"' if namespace else " at cluster scope"
        return Forbidden(
            f"forbidden: RBAC does not allow {verb} on {target}{where} ({message})", status, reason
        )
    if status == 401:
        return Forbidden(
            f"unauthorized at {server}: check the credentials in your kubeconfig", status, reason
        )
    if status == 409 and reason == "AlreadyExists":
        return AlreadyExists(message, status, reason)
    if status == 409:
        return Conflict(message, status, reason)
    if status in (400, 415, 422):
        causes = (data.get("details") or {}).get("causes") or []
        extra = "; ".join(
            f"{c.get('field')}: {c.get('message')}" for c in causes if c.get("field") and c.get("message")
        )
        text = message if not extra or extra in message else f"{message} ({extra})"
        return Invalid(text, status, reason)
    if status >= 500:
        return ServerError(f"the Kubernetes API at {server} failed: {status} {message}", status, reason)
    return KubeError(f"{status} {reason}: {message}", status, reason)


def unreachable(server: str, err: BaseException) -> Unreachable:
    text = str(err)
    if "refused" in text.lower():
        why = "connection refused"
    elif "timed out" in text.lower() or "timeout" in text.lower():
        why = "timed out"
    elif "Name or service not known" in text or "nodename nor servname" in text:
        why = "host not found"
    else:
        why = type(err).__name__
    return Unreachable(f"cannot reach the Kubernetes API at {server}: {why}")
