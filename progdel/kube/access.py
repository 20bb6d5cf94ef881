"""What RBAC allows the current user, asked before acting: SelfSubjectAccessReview.

A command that writes many objects (an addon install) asks first, so that a
user without the rights gets one message listing everything missing, and the
cluster is left untouched, instead of a 403 halfway through.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from progdel.kube.client import Kube
from progdel.kube.errors import KubeError
from progdel.kube.resources import Resource

SELF_SUBJECT_ACCESS_REVIEWS = Resource(
    "authorization.k8s.io", "v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview", namespaced=False
)


@dataclass(frozen=True)
class Access:
    """One verb on one resource, in a namespace or (``namespace`` None) at cluster scope."""

    verb: str
    resource: Resource
    namespace: str | None = None


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
