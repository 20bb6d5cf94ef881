"""What RBAC allows the current user, asked before acting: SelfSubjectAccessReview.

A command that writes many objects (an addon install) asks first, so that a
user without the rights gets one message listing everything missing, and the
cluster is left untouched, instead of a 403 halfway through.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from progdel.kube.client import Kube
from progdel.kube.errors import Forbidden, KubeError
from progdel.kube.resources import Resource

SELF_SUBJECT_ACCESS_REVIEWS = Resource(
    "authorization.k8s.io", "v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview", namespaced=False
)


@dataclass(frozen=True)
class Access:
    """One verb on one resource (or one of its subresources, e.g. ``status``), in a namespace or
    (``namespace`` None) at cluster scope."""

    verb: str
    resource: Resource
    namespace: str | None = None
    subresource: str | None = None


def denied(kube: Kube, wanted: Iterable[Access]) -> list[Access] | None:
    """Those of ``wanted`` RBAC does not allow, in order; None when the cluster cannot be asked
    (no SelfSubjectAccessReview API, or the review itself forbidden): the caller then acts and
    meets any 403 as it comes."""
    out: list[Access] = []
    for access in dict.fromkeys(wanted):
        attributes = {
            "verb": access.verb,
            "group": access.resource.group,
            "resource": access.resource.plural,
        }
        if access.subresource:
            attributes["subresource"] = access.subresource
        if access.namespace and access.resource.namespaced:
            attributes["namespace"] = access.namespace
        review = {"spec": {"resourceAttributes": attributes}}
        try:
            answer = kube.create(SELF_SUBJECT_ACCESS_REVIEWS, review)
        except KubeError as err:
            if err.status in (403, 404, 405):
                return None
            raise
        if not (answer.get("status") or {}).get("allowed"):
            out.append(access)
    return out


@dataclass(frozen=True)
class MissingRights:
    """Verbs RBAC does not grant on one resource (``canaries.flagger.app/status``) in one namespace."""

    verbs: tuple[str, ...]
    resource: str
    namespace: str | None

    def __str__(self) -> str:
        where = f' in namespace "{self.namespace}"' if self.namespace else " at cluster scope"
        return f"{', '.join(self.verbs)} {self.resource}{where}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "verbs": list(self.verbs),
            "resource": self.resource,
            "namespace": self.namespace,
            "message": str(self),
        }


def group_rights(missing: Iterable[Access]) -> list[MissingRights]:
    """``missing`` grouped per resource (and subresource) and namespace, in order."""
    grouped: dict[tuple[str, str | None], list[str]] = {}
    for a in missing:
        what = a.resource.qualified + (f"/{a.subresource}" if a.subresource else "")
        ns = a.namespace if a.resource.namespaced else None
        grouped.setdefault((what, ns), []).append(a.verb)
    return [MissingRights(tuple(dict.fromkeys(verbs)), what, ns) for (what, ns), verbs in grouped.items()]


def refused(action: str, missing: Iterable[Access], outcome: str) -> Forbidden:
    """The one-line error for ``action`` (``installing istio``) that RBAC would stop: every missing
    right, grouped per resource, then ``outcome`` (``Nothing was applied``)."""
    lines = [str(m) for m in group_rights(missing)]
    more = f" (and {len(lines) - 6} more)" if len(lines) > 6 else ""
    return Forbidden(
        f"{action} needs what RBAC does not allow you: {'; '.join(lines[:6])}{more}. {outcome}",
        403,
        "Forbidden",
    )
