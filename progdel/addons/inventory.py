"""The inventory: what progdel applied for an addon, kept in the cluster beside it.

A ConfigMap ``progdel-addon-NAME`` in the addon's namespace, labelled
``app.kubernetes.io/managed-by=progdel``. ``data["inventory.json"]`` lists every
object (apiVersion, kind, resource, namespace, name, the sha256 of its rendered
form), namespace labels progdel set, the addon and chart versions and the
state (``applying`` while an install runs, ``installed`` after).
``binaryData["applied.json.gz"]`` keeps the applied objects themselves, so
``status`` can tell which field drifted without fetching the chart again.

The inventory is written *before* objects are applied (listing the old and the
new objects), so an install that fails midway can always be removed or re-run.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from progdel.kube.client import Kube
from progdel.kube.resources import CONFIGMAPS, Resource

MANAGED_BY = "app.kubernetes.io/managed-by"
ADDON_LABEL = "progdel.dev/addon"
PREFIX = "progdel-addon-"


def object_hash(obj: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True)
class ObjectRef:
    api_version: str
    kind: str
    plural: str
    namespaced: bool
    namespace: str
    name: str
    hash: str = ""
    chart: str = ""
    #: a CRD the cluster had before the addon's first install: never applied, never deleted by default
    preexisting: bool = False

    @property
    def resource(self) -> Resource:
        group, _, version = self.api_version.rpartition("/")
        return Resource(group, version, self.plural, self.kind, self.namespaced)

    @property
    def key(self) -> str:
        group = self.api_version.rpartition("/")[0]
        return f"{group}/{self.kind}/{self.namespace}/{self.name}"

    def describe(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"


@dataclass(frozen=True)
class LabelRef:
    """A label progdel put on a namespace; ``previous`` is the value it replaced (None: absent)."""

    namespace: str
    key: str
    value: str
    previous: str | None = None


@dataclass
class Inventory:
    addon: str
    namespace: str
    version: str
    repo: str
    charts: dict[str, str] = field(default_factory=dict)
    state: str = "applying"
    objects: list[ObjectRef] = field(default_factory=list)
    labels: list[LabelRef] = field(default_factory=list)
    applied: dict[str, dict[str, Any]] = field(default_factory=dict)  # ObjectRef.key -> object
    updated: str = ""

    @property
    def name(self) -> str:
        return PREFIX + self.addon

    def to_configmap(self) -> dict[str, Any]:
        doc = {
            "addon": self.addon,
            "namespace": self.namespace,
            "version": self.version,
            "repo": self.repo,
            "charts": self.charts,
            "state": self.state,
            "updated": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "objects": [asdict(o) for o in self.objects],
            "labels": [asdict(lb) for lb in self.labels],
        }
        packed = gzip.compress(json.dumps(self.applied, sort_keys=True).encode(), mtime=0)
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": {MANAGED_BY: "progdel", ADDON_LABEL: self.addon},
            },
            "data": {"inventory.json": json.dumps(doc, indent=1)},
            "binaryData": {"applied.json.gz": base64.b64encode(packed).decode()},
        }

    @classmethod
    def from_configmap(cls, cm: dict[str, Any]) -> Inventory:
        doc = json.loads((cm.get("data") or {}).get("inventory.json") or "{}")
        raw = (cm.get("binaryData") or {}).get("applied.json.gz")
        applied = json.loads(gzip.decompress(base64.b64decode(raw))) if raw else {}
        return cls(
            addon=doc.get("addon", ""),
            namespace=doc.get("namespace") or cm["metadata"].get("namespace", ""),
            version=doc.get("version", ""),
            repo=doc.get("repo", ""),
            charts=dict(doc.get("charts") or {}),
            state=doc.get("state", ""),
            objects=[ObjectRef(**o) for o in doc.get("objects") or []],
            labels=[LabelRef(**lb) for lb in doc.get("labels") or []],
            applied=applied,
            updated=doc.get("updated", ""),
        )


def write(kube: Kube, inv: Inventory) -> None:
    kube.apply(CONFIGMAPS, inv.to_configmap(), force=True)


def delete(kube: Kube, inv: Inventory) -> None:
    kube.delete(CONFIGMAPS, inv.name, inv.namespace, missing_ok=True)


def find_all(kube: Kube, namespace: str | None = None) -> list[Inventory]:
    """Every addon inventory in ``namespace``, or in every namespace the user may list: all of
    them, or the connection's own when RBAC does not allow listing across namespaces."""
    from progdel.kube.errors import Forbidden

    selector = f"{MANAGED_BY}=progdel,{ADDON_LABEL}"
    try:
        items = kube.items(CONFIGMAPS, namespace, all_namespaces=namespace is None, label_selector=selector)
    except Forbidden:
        if namespace is not None:
            raise
        items = kube.items(CONFIGMAPS, kube.namespace, label_selector=selector)
    return [Inventory.from_configmap(cm) for cm in items if cm["metadata"]["name"].startswith(PREFIX)]


def find(kube: Kube, addon: str, namespace: str | None = None) -> Inventory | None:
    """The inventory of ``addon`` (in ``namespace`` if given); an error if it is in several namespaces."""
    from progdel.errors import InvalidInput

    found = [i for i in find_all(kube, namespace) if i.addon == addon]
    if len(found) > 1:
        where = ", ".join(sorted(i.namespace for i in found))
        raise InvalidInput(f"addon {addon} is installed in several namespaces ({where}): pass -n NAMESPACE")
    return found[0] if found else None
