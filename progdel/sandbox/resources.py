"""The registry of resources the sandbox serves: built-in kinds and CRD-defined ones.

A resource is identified by its group and plural name (``apps/deployments``,
``/configmaps`` for the core group). Custom resources may be served at several
versions; the sandbox stores one copy of each object and only rewrites its
``apiVersion`` on the way out, which is what a CRD without conversion webhooks
does.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
CLUSTER_VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]


@dataclass
class ResourceType:
    """One served resource (all of its versions)."""

    group: str
    versions: list[str]
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    status_subresource: bool = False
    scale_subresource: bool = False
    builtin: bool = True
    schemas: dict[str, dict[str, Any]] = field(default_factory=dict)  # version -> openAPIV3Schema
    printer_columns: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    storage_version: str = ""
    served_verbs: list[str] = field(default_factory=list)  # when set, the only verbs served
    proxy_subresource: bool = False  # ``/proxy[/...]`` forwards requests to a backend (services)
    # DELETE answers with the deleted object rather than a ``Status`` (the registry's
    # ``ReturnDeletedObject``: namespaces, services, serviceaccounts on kube-apiserver).
    returns_deleted_object: bool = False
    # The resourceVersion of the CRD these schemas come from: objects stored at or before it were
    # pruned and defaulted under an older schema, so reads prune and default them again.
    schema_rv: int = 0
    # Compiled validation rules per version (``cel.RuleSet``), built on first use.
    rules: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def key(self) -> str:
        return f"{self.group}/{self.plural}"

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    @property
    def qualified(self) -> str:
        """The name Kubernetes uses in messages: ``deployments.apps``, ``configmaps``."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def preferred_version(self) -> str:
        return self.storage_version or self.versions[0]

    def api_version(self, version: str | None = None) -> str:
        v = version or self.preferred_version
        return f"{self.group}/{v}" if self.group else v

    def verbs(self) -> list[str]:
        if self.served_verbs:
            return self.served_verbs
        return ALL_VERBS if self.namespaced else [*CLUSTER_VERBS, "deletecollection"]


def _builtin(
    group: str,
    version: str,
    plural: str,
    kind: str,
    namespaced: bool,
    short: list[str] | None = None,
    categories: list[str] | None = None,
    status: bool = False,
    scale: bool = False,
    verbs: list[str] | None = None,
    proxy: bool = False,
    returns_deleted: bool = False,
) -> ResourceType:
    return ResourceType(
        group=group,
        versions=[version],
        plural=plural,
        singular=kind.lower(),
        kind=kind,
        namespaced=namespaced,
        short_names=short or [],
        categories=categories or [],
        status_subresource=status,
        scale_subresource=scale,
        builtin=True,
        served_verbs=verbs or [],
        proxy_subresource=proxy,
        returns_deleted_object=returns_deleted,
    )


BUILTINS: list[ResourceType] = [
    # No deletecollection: kube-apiserver's namespace registry does not offer it.
    _builtin(
        "",
        "v1",
        "namespaces",
        "Namespace",
        False,
        ["ns"],
        status=True,
        verbs=CLUSTER_VERBS,
        returns_deleted=True,
    ),
    _builtin(
        "", "v1", "services", "Service", True, ["svc"], ["all"], status=True, proxy=True, returns_deleted=True
    ),
    # Stored as given: no controller fills them (see proxy.py for who reads them).
    _builtin("", "v1", "endpoints", "Endpoints", True, ["ep"]),
    _builtin("", "v1", "configmaps", "ConfigMap", True, ["cm"]),
    _builtin("", "v1", "secrets", "Secret", True),
    _builtin("", "v1", "events", "Event", True, ["ev"]),
    _builtin("", "v1", "serviceaccounts", "ServiceAccount", True, ["sa"], returns_deleted=True),
    _builtin("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True, ["pvc"], status=True),
    _builtin("apps", "v1", "deployments", "Deployment", True, ["deploy"], ["all"], status=True, scale=True),
    _builtin("coordination.k8s.io", "v1", "leases", "Lease", True),
    _builtin(
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        True,
        ["hpa"],
        ["all"],
        status=True,
    ),
    _builtin(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        False,
        ["crd", "crds"],
        ["api-extensions"],
        status=True,
    ),
    # Stored and validated; nothing calls the webhooks or acts on the others (see kinds.py).
    _builtin(
        "admissionregistration.k8s.io",
        "v1",
        "validatingwebhookconfigurations",
        "ValidatingWebhookConfiguration",
        False,
        categories=["api-extensions"],
    ),
    _builtin(
        "admissionregistration.k8s.io",
        "v1",
        "mutatingwebhookconfigurations",
        "MutatingWebhookConfiguration",
        False,
        categories=["api-extensions"],
    ),
    _builtin("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True, ["pdb"], status=True),
    _builtin("networking.k8s.io", "v1", "ingresses", "Ingress", True, ["ing"], status=True),
    _builtin("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True, ["netpol"]),
    _builtin("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
    _builtin("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
    _builtin("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
    _builtin("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
    # Answered from the RBAC objects for the requesting user, never stored.
    _builtin(
        "authorization.k8s.io",
        "v1",
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
        False,
        verbs=["create"],
    ),
]

CRD_KEY = "apiextensions.k8s.io/customresourcedefinitions"
NAMESPACE_KEY = "/namespaces"
SERVICE_KEY = "/services"
ENDPOINTS_KEY = "/endpoints"
SERVICE_ACCOUNT_KEY = "/serviceaccounts"
DEPLOYMENT_KEY = "apps/deployments"
EVENT_KEY = "/events"
RBAC_GROUP = "rbac.authorization.k8s.io"
ROLE_KEY = f"{RBAC_GROUP}/roles"
ROLE_BINDING_KEY = f"{RBAC_GROUP}/rolebindings"
CLUSTER_ROLE_KEY = f"{RBAC_GROUP}/clusterroles"
CLUSTER_ROLE_BINDING_KEY = f"{RBAC_GROUP}/clusterrolebindings"
SSAR_KEY = "authorization.k8s.io/selfsubjectaccessreviews"


def resource_from_crd(crd: dict[str, Any]) -> ResourceType:
    """Build the served resource described by a CustomResourceDefinition object."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    versions = [v for v in spec.get("versions") or [] if v.get("served", True)]
    storage = next((v["name"] for v in versions if v.get("storage")), versions[0]["name"] if versions else "")
    rt = ResourceType(
        group=spec.get("group", ""),
        versions=[v["name"] for v in versions],
        plural=names.get("plural", ""),
        singular=names.get("singular") or str(names.get("kind", "")).lower(),
        kind=names.get("kind", ""),
        namespaced=spec.get("scope", "Namespaced") == "Namespaced",
        short_names=list(names.get("shortNames") or []),
        categories=list(names.get("categories") or []),
        builtin=False,
        storage_version=storage,
        schema_rv=int((crd.get("metadata") or {}).get("resourceVersion") or 0),
    )
    for v in versions:
        sub = v.get("subresources") or {}
        if "status" in sub:
            rt.status_subresource = True
        if "scale" in sub:
            rt.scale_subresource = True
        schema = (v.get("schema") or {}).get("openAPIV3Schema")
        if schema:
            # Versions with equal schemas share one object, so a write is pruned and validated once.
            rt.schemas[v["name"]] = next((o for o in rt.schemas.values() if o == schema), schema)
        if v.get("additionalPrinterColumns"):
            rt.printer_columns[v["name"]] = list(v["additionalPrinterColumns"])
    return rt


class ResourceRegistry:
    """Thread-safe lookup of served resources by group/version/plural and by kind."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_key: dict[str, ResourceType] = {}
        for rt in BUILTINS:
            self._by_key[rt.key] = rt

    def add(self, rt: ResourceType) -> None:
        with self._lock:
            self._by_key = {**self._by_key, rt.key: rt}

    def remove(self, key: str) -> None:
        with self._lock:
            new = dict(self._by_key)
            new.pop(key, None)
            self._by_key = new

    def get(self, group: str, version: str, plural: str) -> ResourceType | None:
        rt = self._by_key.get(f"{group}/{plural}")
        if rt is None or version not in rt.versions:
            return None
        return rt

    def by_key(self, key: str) -> ResourceType | None:
        return self._by_key.get(key)

    def all(self) -> list[ResourceType]:
        return list(self._by_key.values())

    def group_versions(self) -> dict[str, list[str]]:
        """Group name -> served versions, preferred first; core group is ``""``."""
        out: dict[str, list[str]] = {}
        for rt in self.all():
            vs = out.setdefault(rt.group, [])
            for v in [rt.preferred_version, *rt.versions]:
                if v not in vs:
                    vs.append(v)
        for g, vs in out.items():
            out[g] = sorted(vs, key=_version_priority)
        return out

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return sorted(
            (rt for rt in self.all() if rt.group == group and version in rt.versions), key=lambda r: r.plural
        )


def _version_priority(v: str) -> tuple[int, int, int]:
    """Kubernetes' version ordering: GA > beta > alpha, higher numbers first."""
    import re

    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", v)
    if not m:
        return (3, 0, 0)
    major = int(m.group(1))
    stage = {"": 0, "beta": 1, "alpha": 2}[m.group(2) or ""]
    minor = int(m.group(3) or 0)
    return (stage, -major, -minor)
