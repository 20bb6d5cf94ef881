"""What RBAC allows the current user, asked before acting: SelfSubjectAccessReview.

A command that writes many objects (an addon install) asks first, so that a
user without the rights gets one message listing everything missing, and the
cluster is left untouched, instead of a 403 halfway through.

RBAC's escalation rules are asked too, as kube-apiserver enforces them: creating
a Role or ClusterRole that grants rights one does not hold needs ``escalate`` on
it, and binding one (a RoleBinding or ClusterRoleBinding) needs ``bind`` on the
role it names, unless one holds every right it grants, in the binding's scope.
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
    name: str | None = None


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
        if access.name:
            attributes["name"] = access.name
        allowed = _review(kube, {"resourceAttributes": attributes})
        if allowed is None:
            return None
        if not allowed:
            out.append(access)
    return out


def _review(kube: Kube, spec: dict[str, Any]) -> bool | None:
    try:
        answer = kube.create(SELF_SUBJECT_ACCESS_REVIEWS, {"spec": spec})
    except KubeError as err:
        if err.status in (403, 404, 405):
            return None
        raise
    return bool((answer.get("status") or {}).get("allowed"))


RBAC_GROUP = "rbac.authorization.k8s.io"
ROLES = Resource(RBAC_GROUP, "v1", "roles", "Role")
CLUSTER_ROLES = Resource(RBAC_GROUP, "v1", "clusterroles", "ClusterRole", namespaced=False)


def _atoms(rules: Any) -> list[dict[str, Any]]:
    """Each PolicyRule split into single rights: one verb on one resource (and name), or one URL."""
    out: list[dict[str, Any]] = []
    for rule in rules or []:
        if not isinstance(rule, dict):
            continue
        verbs = [str(v) for v in rule.get("verbs") or []]
        for url in rule.get("nonResourceURLs") or []:
            out += [{"nonResourceAttributes": {"verb": v, "path": str(url)}} for v in verbs]
        names: list[str | None] = [str(n) for n in rule.get("resourceNames") or []] or [None]
        for group in rule.get("apiGroups") or []:
            for res in rule.get("resources") or []:
                plural, _, sub = str(res).partition("/")
                for verb in verbs:
                    for name in names:
                        attrs = {"verb": verb, "group": str(group), "resource": plural}
                        if sub:
                            attrs["subresource"] = sub
                        if name:
                            attrs["name"] = name
                        out.append({"resourceAttributes": attrs})
    return out


def _holds_all(kube: Kube, rules: Any, namespace: str | None) -> bool | None:
    """Whether the user holds every right ``rules`` grant (in ``namespace``, else cluster-wide)."""
    for atom in _atoms(rules):
        spec = {k: dict(v) for k, v in atom.items()}
        if namespace and "resourceAttributes" in spec:
            spec["resourceAttributes"]["namespace"] = namespace
        if "nonResourceAttributes" in spec and namespace:
            return False  # non-resource rights exist only cluster-wide: a Role cannot hold them
        allowed = _review(kube, spec)
        if not allowed:
            return allowed
    return True


def escalations(kube: Kube, objects: list[dict[str, Any]]) -> list[Access] | None:
    """The ``escalate`` and ``bind`` rights that writing ``objects`` needs and RBAC does not grant.

    A role that grants only rights the user holds needs no ``escalate``; a binding to such a
    role needs no ``bind``. A binding whose role is neither among ``objects`` nor readable
    needs ``bind``. None when the cluster cannot be asked.
    """
    roles: dict[tuple[str, str, str], Any] = {}
    for obj in objects:
        if obj.get("apiVersion") == f"{RBAC_GROUP}/v1" and obj.get("kind") in ("Role", "ClusterRole"):
            meta = obj.get("metadata") or {}
            ns = str(meta.get("namespace") or "") if obj["kind"] == "Role" else ""
            roles[(str(obj["kind"]), ns, str(meta.get("name")))] = obj.get("rules") or []
    out: list[Access] = []
    for (role_kind, ns, name), rules in roles.items():
        res = ROLES if role_kind == "Role" else CLUSTER_ROLES
        access = Access("escalate", res, ns or None, name=name)
        answer = denied(kube, [access])
        if answer is None:
            return None
        if answer and not _holds_all(kube, rules, ns or None):
            out.append(access)
    for obj in objects:
        kind = obj.get("kind")
        if obj.get("apiVersion") != f"{RBAC_GROUP}/v1" or kind not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        meta = obj.get("metadata") or {}
        scope = str(meta.get("namespace") or "") if kind == "RoleBinding" else ""
        ref = obj.get("roleRef") or {}
        ref_kind, ref_name = str(ref.get("kind", "")), str(ref.get("name", ""))
        role_ns = scope if ref_kind == "Role" else ""
        res = ROLES if ref_kind == "Role" else CLUSTER_ROLES
        access = Access("bind", res, role_ns or None, name=ref_name)
        answer = denied(kube, [access])
        if answer is None:
            return None
        if not answer:
            continue
        rules = roles.get((ref_kind, role_ns, ref_name))
        if rules is None:
            live = _read_role(kube, res, ref_name, role_ns)
            rules = live.get("rules") if live is not None else None
        if rules is None or not _holds_all(kube, rules, scope or None):
            out.append(access)
    return out


def _read_role(kube: Kube, res: Resource, name: str, namespace: str) -> dict[str, Any] | None:
    try:
        return kube.get_or_none(res, name, namespace or None)
    except KubeError:
        return None


@dataclass(frozen=True)
class MissingRights:
    """Verbs RBAC does not grant on one resource (``canaries.flagger.app/status``) in one namespace."""

    verbs: tuple[str, ...]
    resource: str
    namespace: str | None
    name: str | None = None

    def __str__(self) -> str:
        where = f' in namespace "{self.namespace}"' if self.namespace else " at cluster scope"
        named = f' "{self.name}"' if self.name else ""
        return f"{', '.join(self.verbs)} {self.resource}{named}{where}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "verbs": list(self.verbs),
            "resource": self.resource,
            "namespace": self.namespace,
            "name": self.name,
            "message": str(self),
        }


def group_rights(missing: Iterable[Access]) -> list[MissingRights]:
    """``missing`` grouped per resource (and subresource) and namespace, in order."""
    grouped: dict[tuple[str, str | None, str | None], list[str]] = {}
    for a in missing:
        what = a.resource.qualified + (f"/{a.subresource}" if a.subresource else "")
        ns = a.namespace if a.resource.namespaced else None
        grouped.setdefault((what, ns, a.name), []).append(a.verb)
    return [
        MissingRights(tuple(dict.fromkeys(verbs)), what, ns, name)
        for (what, ns, name), verbs in grouped.items()
    ]


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
