"""Which REST resource serves a rendered object, and the order objects are applied in.

Resources are looked up through API discovery (``/api/v1``, ``/apis/GROUP/VERSION``),
so a kind the cluster does not serve is caught before anything is applied.
"""

from __future__ import annotations

from typing import Any

from progdel.errors import InvalidInput
from progdel.kube.client import Kube
from progdel.kube.errors import NotFound
from progdel.kube.resources import Resource

# Dependencies first: namespaces before what lives in them, config before workloads that
# mount it, Services before the workloads behind them, webhooks after their backends.
KIND_ORDER = [
    "CustomResourceDefinition",
    "Namespace",
    "ResourceQuota",
    "LimitRange",
    "PriorityClass",
    "ServiceAccount",
    "Secret",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicaSet",
    "Deployment",
    "StatefulSet",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
]


def kind_rank(kind: str) -> int:
    """Position of ``kind`` in the apply order; custom resources come after every built-in kind."""
    try:
        return KIND_ORDER.index(kind)
    except ValueError:
        return len(KIND_ORDER)


def split_api_version(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


class ApiDiscovery:
    """Cached discovery documents of one cluster."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self._docs: dict[str, list[dict[str, Any]] | None] = {}

    def _resources(self, api_version: str) -> list[dict[str, Any]] | None:
        if api_version not in self._docs:
            try:
                doc = self.kube.discover(api_version)
            except NotFound:
                self._docs[api_version] = None
            else:
                self._docs[api_version] = list(doc.get("resources") or [])
        return self._docs[api_version]

    def listable(self, api_version: str, *, namespaced: bool) -> list[Resource]:
        """The resources at ``api_version`` that can be listed (subresources left out)."""
        group, version = split_api_version(api_version)
        return [
            Resource(group, version, r["name"], r.get("kind", ""), namespaced)
            for r in self._resources(api_version) or []
            if "/" not in str(r.get("name", ""))
            and bool(r.get("namespaced")) == namespaced
            and "list" in (r.get("verbs") or [])
        ]

    def forget(self, api_version: str) -> None:
        self._docs.pop(api_version, None)

    def resource(self, api_version: str, kind: str) -> Resource | None:
        """The resource serving ``kind`` at ``api_version``, or None when the cluster does not serve it."""
        for r in self._resources(api_version) or []:
            if r.get("kind") == kind and "/" not in str(r.get("name", "")):
                group, version = split_api_version(api_version)
                return Resource(group, version, r["name"], kind, bool(r.get("namespaced")))
        return None

    def require(self, api_version: str, kind: str, where: str) -> Resource:
        res = self.resource(api_version, kind)
        if res is None:
            raise InvalidInput(
                f"the cluster does not serve {kind} ({api_version}), which {where} needs; nothing was applied"
            )
        return res


def crd_serves(crd: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    """(apiVersion, kind, plural, namespaced) for every served version a CRD object defines."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group = spec.get("group", "")
    out = []
    for v in spec.get("versions") or []:
        if v.get("served", True):
            out.append(
                (
                    f"{group}/{v['name']}",
                    str(names.get("kind", "")),
                    str(names.get("plural", "")),
                    spec.get("scope", "Namespaced") == "Namespaced",
                )
            )
    return out
