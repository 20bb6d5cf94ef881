"""RBAC in the sandbox: what a request asks to do, and whether the user's bindings allow it.

The decision follows Kubernetes' RBAC authorizer: a request is allowed when a
ClusterRoleBinding binds the user to a ClusterRole with a matching rule, or a
RoleBinding in the request's namespace binds the user to a Role of that
namespace or to a ClusterRole with a matching rule. Nothing denies; a request
no rule allows is forbidden. Members of ``system:masters`` are never checked.

Every authenticated user may read the discovery and health endpoints and
create SelfSubjectAccessReviews, like the default ``system:discovery``,
``system:public-info-viewer`` and ``system:basic-user`` bindings grant; the
health and version endpoints are open to ``system:unauthenticated`` too.

Writes of RBAC objects are held to Kubernetes' escalation rules (``escalation_guard``, after
``pkg/registry/rbac``): a Role or ClusterRole may only grant what its writer holds, unless the
writer may ``escalate`` roles; a RoleBinding or ClusterRoleBinding may only bind a role whose
rules its writer holds, unless the writer may ``bind`` that role. "Holds" is the rule coverage
of ``pkg/registry/rbac/validation``: each rule is broken down into one verb, group, resource
and name, and each piece must be covered by one of the writer's rules in the namespace.

The functions here are pure except ``policy_from_store``, which reads the RBAC
objects of the sandbox's store (a handful; they are read on every request).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from progdel.sandbox.auth import AUTHENTICATED, SERVICE_ACCOUNT_PREFIX, UNAUTHENTICATED, User
from progdel.sandbox.objects import ApiError
from progdel.sandbox.resources import (
    CLUSTER_ROLE_BINDING_KEY,
    CLUSTER_ROLE_KEY,
    RBAC_GROUP,
    ROLE_BINDING_KEY,
    ROLE_KEY,
)
from progdel.sandbox.store import Store

REVIEW_GROUP = "authorization.k8s.io"
REVIEW_API_VERSION = f"{REVIEW_GROUP}/v1"
REVIEW_KIND = "SelfSubjectAccessReview"
WATCH_VALUES = ("1", "true", "True")
NAMESPACE_SUBRESOURCES = ("status", "finalize")

# What every user may do: (name of the default binding, the groups it binds, its rules).
DEFAULT_GRANTS: list[tuple[str, tuple[str, ...], list[dict[str, Any]]]] = [
    (
        "system:discovery",
        (AUTHENTICATED,),
        [
            {
                "nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/openapi", "/openapi/*"],
                "verbs": ["get"],
            }
        ],
    ),
    (
        "system:public-info-viewer",
        (AUTHENTICATED, UNAUTHENTICATED),
        [{"nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"], "verbs": ["get"]}],
    ),
    (
        "system:basic-user",
        (AUTHENTICATED,),
        [
            {
                "apiGroups": [REVIEW_GROUP],
                "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                "verbs": ["create"],
            }
        ],
    ),
]


@dataclass(frozen=True)
class Attributes:
    """What a request does, in RBAC's terms.

    A resource request has a verb (get, list, watch, create, update, patch,
    delete, deletecollection), an API group, a resource and maybe a
    subresource, a namespace (empty for the cluster scope) and a name (empty for
    a collection). A non-resource request has only a path and the lower-case
    HTTP method as its verb.
    """

    verb: str
    group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""
    resource_request: bool = True


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""


@dataclass
class Policy:
    """The RBAC objects that can decide a request in one namespace (``""``: a cluster-scoped request)."""

    cluster_roles: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    cluster_role_bindings: Sequence[dict[str, Any]] = ()
    roles: Mapping[str, dict[str, Any]] = field(default_factory=dict)  # of the namespace, by name
    role_bindings: Sequence[dict[str, Any]] = ()  # of the namespace


# ---- request attributes -----------------------------------------------------------------------
def request_attributes(method: str, path: str, query: Mapping[str, str]) -> Attributes:
    """The RBAC attributes of an HTTP request to the API server (``query``: one value per parameter).

    ``path`` may be percent-encoded; it is judged decoded. Anything after a subresource
    (``services/NAME/proxy/api/v1/query``) belongs to it: the name stays the path segment as
    sent, ``NAME:PORT`` or ``https:NAME:`` for the service proxy, which is what
    ``resourceNames`` must list.
    """
    method = method.upper()
    path = unquote(path)
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["api"] and len(parts) >= 3:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 4:
        group, rest = parts[1], parts[3:]
    else:
        return Attributes(verb=method.lower(), path=path or "/", resource_request=False)
    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    if method in ("GET", "HEAD"):
        watch = query.get("watch") in WATCH_VALUES
        verb = "watch" if watch else "get" if name else "list"
    elif method == "POST":
        verb = "create"
    elif method == "PUT":
        verb = "update"
    elif method == "PATCH":
        verb = "patch"
    elif method == "DELETE":
        verb = "delete" if name else "deletecollection"
    else:
        verb = method.lower()
    if verb in ("list", "watch") and not name:
        name = _name_from_field_selector(query.get("fieldSelector") or "")
    return Attributes(verb, group, resource, subresource, namespace, name)


def impersonation_attributes(name: str, groups: list[str], uid: str = "") -> list[Attributes]:
    """What a request that impersonates ``name`` (in ``groups``, with ``uid``) must be allowed to do."""
    if name.startswith(SERVICE_ACCOUNT_PREFIX) and name.count(":") == 3:
        _, _, ns, sa = name.split(":")
        out = [Attributes("impersonate", "", "serviceaccounts", namespace=ns, name=sa)]
    else:
        out = [Attributes("impersonate", "", "users", name=name)]
    out += [Attributes("impersonate", "", "groups", name=g) for g in groups]
    if uid:
        out.append(Attributes("impersonate", "authentication.k8s.io", "uids", name=uid))
    return out


def _name_from_field_selector(selector: str) -> str:
    """The name a list or watch is narrowed to by ``fieldSelector=metadata.name=NAME``, else ``""``."""
    parts = [p.strip() for p in selector.split(",") if p.strip()]
    if len(parts) != 1:
        return ""
    for op in ("==", "="):
        key, sep, value = parts[0].partition(op)
        if sep and key.strip() == "metadata.name" and not key.endswith("!"):
            return value.strip()
    return ""


# ---- rules ------------------------------------------------------------------------------------
def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _resource_matches(rule_resources: list[str], resource: str, subresource: str) -> bool:
    wanted = f"{resource}/{subresource}" if subresource else resource
    for r in rule_resources:
        if r in ("*", wanted):
            return True
        if subresource and r == f"*/{subresource}":
            return True
    return False


def _path_matches(rule_urls: list[str], path: str) -> bool:
    return any(u in ("*", path) or (u.endswith("*") and path.startswith(u[:-1])) for u in rule_urls)


def rule_allows(rule: Mapping[str, Any], attrs: Attributes) -> bool:
    """Whether one PolicyRule allows the request.

    ``"*"`` matches any verb, API group, resource or URL; ``"*/scale"`` matches
    the scale subresource of any resource; a rule with ``resourceNames`` only
    matches requests that name one of them (so never a list or a create).
    """
    verbs = _strings(rule.get("verbs"))
    if "*" not in verbs and attrs.verb not in verbs:
        return False
    if not attrs.resource_request:
        return _path_matches(_strings(rule.get("nonResourceURLs")), attrs.path)
    groups = _strings(rule.get("apiGroups"))
    if "*" not in groups and attrs.group not in groups:
        return False
    if not _resource_matches(_strings(rule.get("resources")), attrs.resource, attrs.subresource):
        return False
    names = _strings(rule.get("resourceNames"))
    return not names or (bool(attrs.name) and attrs.name in names)


def rules_allow(rules: Any, attrs: Attributes) -> bool:
    return any(isinstance(r, dict) and rule_allows(r, attrs) for r in rules or [])


# ---- subjects and bindings --------------------------------------------------------------------
def subject_matches(subject: Mapping[str, Any], user: User, binding_namespace: str = "") -> bool:
    """Whether a binding's subject is the user.

    A ``ServiceAccount`` subject without a namespace is in the binding's namespace.
    """
    kind, name = subject.get("kind"), subject.get("name")
    if not isinstance(name, str) or not name:
        return False
    if kind == "User":
        return name == user.name
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        ns = subject.get("namespace") or binding_namespace
        return bool(ns) and user.name == f"system:serviceaccount:{ns}:{name}"
    return False


def _describe(subject: Mapping[str, Any], binding_namespace: str) -> str:
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "ServiceAccount":
        return f'ServiceAccount "{name}/{subject.get("namespace") or binding_namespace}"'
    return f'{kind} "{name}"'


def _bound_subject(binding: Mapping[str, Any], user: User, namespace: str) -> Mapping[str, Any] | None:
    for s in binding.get("subjects") or []:
        if isinstance(s, dict) and subject_matches(s, user, namespace):
            return s
    return None


def authorize(user: User, attrs: Attributes, policy: Policy) -> Decision:
    """Whether ``user`` may do ``attrs`` under ``policy``, with the binding that allows it as the reason."""
    if user.is_admin:
        return Decision(True)
    for grant, groups, rules in DEFAULT_GRANTS:
        group = next((g for g in groups if g in user.groups), None)
        if group is not None and rules_allow(rules, attrs):
            return Decision(
                True,
                f'RBAC: allowed by ClusterRoleBinding "{grant}" of ClusterRole "{grant}" to Group "{group}"',
            )
    for crb in policy.cluster_role_bindings:
        ref = crb.get("roleRef") or {}
        if ref.get("kind") != "ClusterRole":
            continue
        subject = _bound_subject(crb, user, "")
        if subject is None:
            continue
        role = policy.cluster_roles.get(str(ref.get("name")))
        if role is not None and rules_allow(role.get("rules"), attrs):
            name = (crb.get("metadata") or {}).get("name")
            return Decision(
                True,
                f'RBAC: allowed by ClusterRoleBinding "{name}" of ClusterRole "{ref.get("name")}" '
                f"to {_describe(subject, '')}",
            )
    if not attrs.resource_request or not attrs.namespace:
        return Decision(False)
    for rb in policy.role_bindings:
        meta = rb.get("metadata") or {}
        if meta.get("namespace", attrs.namespace) != attrs.namespace:
            continue
        ref = rb.get("roleRef") or {}
        kind = ref.get("kind")
        roles = policy.roles if kind == "Role" else policy.cluster_roles if kind == "ClusterRole" else {}
        subject = _bound_subject(rb, user, attrs.namespace)
        if subject is None:
            continue
        role = roles.get(str(ref.get("name")))
        if role is not None and rules_allow(role.get("rules"), attrs):
            return Decision(
                True,
                f'RBAC: allowed by RoleBinding "{meta.get("name")}/{attrs.namespace}" of {kind} '
                f'"{ref.get("name")}" to {_describe(subject, attrs.namespace)}',
            )
    return Decision(False)


def policy_from_store(store: Store, namespace: str) -> Policy:
    """The ClusterRoles and ClusterRoleBindings, and the Roles and RoleBindings of ``namespace``."""

    def by_name(key: str, ns: str | None) -> dict[str, dict[str, Any]]:
        return {e.obj["metadata"]["name"]: e.obj for e in store.list(key, ns)[0]}

    policy = Policy(
        cluster_roles=by_name(CLUSTER_ROLE_KEY, None),
        cluster_role_bindings=[e.obj for e in store.list(CLUSTER_ROLE_BINDING_KEY)[0]],
    )
    if namespace:
        policy.roles = by_name(ROLE_KEY, namespace)
        policy.role_bindings = [e.obj for e in store.list(ROLE_BINDING_KEY, namespace)[0]]
    return policy


# ---- escalation -------------------------------------------------------------------------------
ROLE_RESOURCES = {
    ROLE_KEY: "roles",
    CLUSTER_ROLE_KEY: "clusterroles",
    ROLE_BINDING_KEY: "rolebindings",
    CLUSTER_ROLE_BINDING_KEY: "clusterrolebindings",
}
# What setting an aggregationRule needs: it can gather anything.
FULL_AUTHORITY = [
    {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
    {"nonResourceURLs": ["*"], "verbs": ["*"]},
]
# Metadata a garbage collector changes: an update of only these is never an escalation.
GC_FIELDS = ("ownerReferences", "finalizers")


def rules_for(user: User, policy: Policy) -> list[dict[str, Any]]:
    """Every rule ``user`` holds in the policy's namespace (the cluster's when it has none)."""
    out: list[dict[str, Any]] = []
    for _, groups, rules in DEFAULT_GRANTS:
        if any(g in user.groups for g in groups):
            out += rules
    for crb in policy.cluster_role_bindings:
        ref = crb.get("roleRef") or {}
        role = policy.cluster_roles.get(str(ref.get("name")))
        if ref.get("kind") == "ClusterRole" and role is not None and _bound_subject(crb, user, ""):
            out += [r for r in role.get("rules") or [] if isinstance(r, dict)]
    for rb in policy.role_bindings:
        ns = str((rb.get("metadata") or {}).get("namespace") or "")
        ref = rb.get("roleRef") or {}
        roles = policy.roles if ref.get("kind") == "Role" else policy.cluster_roles
        role = roles.get(str(ref.get("name"))) if ref.get("kind") in ("Role", "ClusterRole") else None
        if role is not None and _bound_subject(rb, user, ns):
            out += [r for r in role.get("rules") or [] if isinstance(r, dict)]
    return out


def breakdown(rule: Mapping[str, Any]) -> list[dict[str, list[str]]]:
    """The rule as rules of one verb, group, resource and resource name (or URL) each."""
    verbs, names = _strings(rule.get("verbs")), _strings(rule.get("resourceNames"))
    out: list[dict[str, list[str]]] = []
    for group in _strings(rule.get("apiGroups")):
        for resource in _strings(rule.get("resources")):
            for verb in verbs:
                base = {"apiGroups": [group], "resources": [resource], "verbs": [verb]}
                out += [{**base, "resourceNames": [n]} for n in names] if names else [base]
    for url in _strings(rule.get("nonResourceURLs")):
        out += [{"nonResourceURLs": [url], "verbs": [verb]} for verb in verbs]
    return out


def _resources_cover(owned: list[str], wanted: list[str]) -> bool:
    if "*" in owned or set(wanted) <= set(owned):
        return True
    for resource in wanted:
        if resource in owned:
            continue
        if "/" not in resource or "*/" + resource.split("/", 1)[1] not in owned:
            return False
    return True


def _url_covers(owner: str, path: str) -> bool:
    return owner == path or (owner.endswith("*") and path.startswith(owner.rstrip("*")))


def rule_covers(owner: Mapping[str, Any], sub: Mapping[str, Any]) -> bool:
    """Whether the ``owner`` rule covers ``sub`` (a rule of one verb, resource and name)."""
    verbs, groups = _strings(owner.get("verbs")), _strings(owner.get("apiGroups"))
    owner_names, sub_names = _strings(owner.get("resourceNames")), _strings(sub.get("resourceNames"))
    owner_urls = _strings(owner.get("nonResourceURLs"))
    return (
        ("*" in verbs or set(_strings(sub.get("verbs"))) <= set(verbs))
        and ("*" in groups or set(_strings(sub.get("apiGroups"))) <= set(groups))
        and _resources_cover(_strings(owner.get("resources")), _strings(sub.get("resources")))
        and all(any(_url_covers(o, p) for o in owner_urls) for p in _strings(sub.get("nonResourceURLs")))
        and (not owner_names or (bool(sub_names) and set(sub_names) <= set(owner_names)))
    )


def uncovered(owner_rules: Sequence[Mapping[str, Any]], rules: Any) -> list[dict[str, list[str]]]:
    """The pieces of ``rules`` that no owner rule covers (empty: the owner holds them all)."""
    pieces = [p for r in rules or [] if isinstance(r, dict) for p in breakdown(r)]
    return [p for p in pieces if not any(rule_covers(o, p) for o in owner_rules)]


def compact(rules: list[dict[str, list[str]]]) -> list[dict[str, list[str]]]:
    """Pieces that differ only by verb, joined into one rule (as the real error lists them)."""
    out: list[dict[str, list[str]]] = []
    simple: dict[tuple[str, str, str | None], dict[str, list[str]]] = {}
    for rule in rules:
        names = rule.get("resourceNames") or []
        if "nonResourceURLs" in rule or len(names) > 1:
            out.append(rule)
            continue
        key = (rule["apiGroups"][0], rule["resources"][0], names[0] if names else None)
        if key in simple:
            simple[key]["verbs"] = simple[key]["verbs"] + rule["verbs"]
        else:
            simple[key] = {k: list(v) for k, v in rule.items()}
    return out + list(simple.values())


def _go_strings(values: list[str]) -> str:
    """A string list as Go's ``%q`` prints it: ``["a" "b"]``."""
    return "[" + " ".join(json.dumps(v, ensure_ascii=False) for v in values) + "]"


def compact_string(rule: Mapping[str, list[str]]) -> str:
    """A rule as kube-apiserver's escalation error writes it."""
    parts = [
        f"{label}:{_go_strings(rule[key])}"
        for key, label in (
            ("apiGroups", "APIGroups"),
            ("resources", "Resources"),
            ("nonResourceURLs", "NonResourceURLs"),
            ("resourceNames", "ResourceNames"),
            ("verbs", "Verbs"),
        )
        if rule.get(key)
    ]
    return "{" + ", ".join(parts) + "}"


def rbac_forbidden(resource: str, name: str, message: str) -> ApiError:
    """The 403 of an RBAC registry: ``roles.rbac.authorization.k8s.io "x" is forbidden: ...``."""
    target = f'{resource}.{RBAC_GROUP} "{name}"' if name else f"{resource}.{RBAC_GROUP}"
    details: dict[str, Any] = {"name": name} if name else {}
    details |= {"group": RBAC_GROUP, "kind": resource}
    return ApiError(403, "Forbidden", f"{target} is forbidden: {message}", details)


def confirm_no_escalation(user: User, policy: Policy, rules: Any, resource: str, name: str) -> None:
    """Refuse (403) ``rules`` that ``user`` does not hold in the policy's namespace."""
    missing = uncovered(rules_for(user, policy), rules)
    if not missing:
        return
    lines = sorted({compact_string(r) for r in compact(missing)})
    raise rbac_forbidden(
        resource,
        name,
        f"user {json.dumps(user.name)} (groups={_go_strings(list(user.groups))}) is attempting to grant "
        "RBAC permissions not currently held:\n" + "\n".join(lines),
    )


def role_reference_rules(ref: Mapping[str, Any], policy: Policy) -> Any:
    """The rules of the role a binding's ``roleRef`` names (404 when it does not exist)."""
    kind, name = ref.get("kind"), str(ref.get("name") or "")
    roles, resource = (policy.roles, "roles") if kind == "Role" else (policy.cluster_roles, "clusterroles")
    role = roles.get(name)
    if role is None:
        raise ApiError(
            404,
            "NotFound",
            f'{resource}.{RBAC_GROUP} "{name}" not found',
            {"name": name, "group": RBAC_GROUP, "kind": resource},
        )
    return role.get("rules")


def _only_gc_fields(new: Mapping[str, Any], old: Mapping[str, Any] | None) -> bool:
    if old is None:
        return False

    def rest(obj: Mapping[str, Any]) -> dict[str, Any]:
        meta = {
            k: v
            for k, v in (obj.get("metadata") or {}).items()
            if k not in (*GC_FIELDS, "managedFields", "resourceVersion", "generation")
        }
        return {**{k: v for k, v in obj.items() if k != "metadata"}, "metadata": meta}

    return rest(new) == rest(old)


def escalation_guard(
    user: User,
    key: str,
    namespace: str,
    request_name: str,
    policy: Callable[[str], Policy],
    allowed: Callable[[Attributes], bool],
) -> Callable[[dict[str, Any], dict[str, Any] | None], None] | None:
    """The check a write of an RBAC object by ``user`` must pass, or None when there is none.

    ``policy(namespace)`` gives the RBAC objects that decide the namespace; ``allowed(attrs)``
    whether the user may do ``attrs`` (for ``escalate`` and ``bind``).
    """
    resource = ROLE_RESOURCES.get(key)
    if resource is None or user.is_admin:
        return None
    if key in (ROLE_KEY, CLUSTER_ROLE_KEY):
        if allowed(Attributes("escalate", RBAC_GROUP, resource, "", namespace, request_name)):
            return None

        def check_role(new: dict[str, Any], old: dict[str, Any] | None) -> None:
            if _only_gc_fields(new, old):
                return
            name = str(new["metadata"].get("name") or "")
            current = policy(namespace)
            confirm_no_escalation(user, current, new.get("rules"), resource, name)
            aggregates = [
                o for o in (new, old) if o and ((o.get("aggregationRule") or {}).get("clusterRoleSelectors"))
            ]
            if key == CLUSTER_ROLE_KEY and aggregates and uncovered(rules_for(user, current), FULL_AUTHORITY):
                raise rbac_forbidden(
                    resource, name, "must have cluster-admin privileges to use the aggregationRule"
                )

        return check_role

    def check_binding(new: dict[str, Any], old: dict[str, Any] | None) -> None:
        if _only_gc_fields(new, old):
            return
        ref = new.get("roleRef") or {}
        if ref.get("kind") not in ("Role", "ClusterRole"):
            return  # validation refuses it
        role_resource = "roles" if ref["kind"] == "Role" else "clusterroles"
        attrs = Attributes(
            "bind", str(ref.get("apiGroup") or ""), role_resource, "", namespace, str(ref.get("name") or "")
        )
        if allowed(attrs):
            return
        current = policy(namespace)
        rules = role_reference_rules(ref, current)
        confirm_no_escalation(user, current, rules, resource, str(new["metadata"].get("name") or ""))

    return check_binding


# ---- 403 --------------------------------------------------------------------------------------
def forbidden(user: User, attrs: Attributes) -> ApiError:
    """The 403 Status a Kubernetes API server answers when RBAC denies the request."""
    if not attrs.resource_request:
        return ApiError(
            403, "Forbidden", f'forbidden: User "{user.name}" cannot {attrs.verb} path "{attrs.path}"', {}
        )
    qualified = f"{attrs.resource}.{attrs.group}" if attrs.group else attrs.resource
    resource = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    scope = f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope"
    target = f'{qualified} "{attrs.name}"' if attrs.name else qualified
    details: dict[str, Any] = {}
    if attrs.name:
        details["name"] = attrs.name
    if attrs.group:
        details["group"] = attrs.group
    details["kind"] = attrs.resource
    return ApiError(
        403,
        "Forbidden",
        f'{target} is forbidden: User "{user.name}" cannot {attrs.verb} resource "{resource}" '
        f'in API group "{attrs.group}" {scope}',
        details,
    )


# ---- SelfSubjectAccessReview ------------------------------------------------------------------
def _invalid_review(message: str) -> ApiError:
    return ApiError(
        422,
        "Invalid",
        f'{REVIEW_KIND}.{REVIEW_GROUP} "" is invalid: spec.resourceAttributes: Invalid value: "null": '
        f"{message}",
        {
            "group": REVIEW_GROUP,
            "kind": REVIEW_KIND,
            "causes": [
                {"reason": "FieldValueInvalid", "message": message, "field": "spec.resourceAttributes"}
            ],
        },
    )


def review_attributes(body: Any) -> Attributes:
    """The attributes a SelfSubjectAccessReview asks about (422 when it names neither kind or both)."""
    spec = body.get("spec") if isinstance(body, dict) else None
    spec = spec if isinstance(spec, dict) else {}
    res, non = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if isinstance(res, dict) == isinstance(non, dict):
        raise _invalid_review("exactly one of nonResourceAttributes or resourceAttributes must be specified")
    if isinstance(non, dict):
        return Attributes(
            verb=str(non.get("verb") or ""), path=str(non.get("path") or ""), resource_request=False
        )
    assert isinstance(res, dict)
    return Attributes(
        verb=str(res.get("verb") or ""),
        group=str(res.get("group") or ""),
        resource=str(res.get("resource") or ""),
        subresource=str(res.get("subresource") or ""),
        namespace=str(res.get("namespace") or ""),
        name=str(res.get("name") or ""),
    )


def review_response(body: Any, decision: Decision) -> dict[str, Any]:
    """The SelfSubjectAccessReview as the server answers it: the request with its ``status`` filled in."""
    meta = body.get("metadata") if isinstance(body, dict) else None
    status: dict[str, Any] = {"allowed": decision.allowed}
    if decision.reason:
        status["reason"] = decision.reason
    return {
        "kind": REVIEW_KIND,
        "apiVersion": REVIEW_API_VERSION,
        "metadata": {**(meta if isinstance(meta, dict) else {}), "creationTimestamp": None},
        "spec": body.get("spec") if isinstance(body, dict) else {},
        "status": status,
    }
