"""The revision of a canary's target: a canonical hash of its pod template and its configs.

A new revision is what starts a canary run. Like Flagger, progdel counts a change to the pod
template *or* to the data of a ConfigMap or Secret the pods use (volumes, projected volumes,
``env.valueFrom``, ``envFrom``, in containers and init containers) as a new revision. The hash
is progdel's own (canonical JSON, SHA-256): stable across key order and across runs, so it can
be stored in the Canary's status and compared by any later process.

Both functions are pure: the caller fetches the referenced objects.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

CONFIG_TRACKING_ANNOTATION = "flagger.app/config-tracking"


@dataclass(frozen=True, order=True)
class ConfigRef:
    """A ConfigMap or Secret that a pod template uses, in the template's namespace."""

    kind: Literal["ConfigMap", "Secret"]
    name: str


def _containers(spec: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in spec.get(key) or []:
            if isinstance(c, Mapping):
                yield c


def referenced_configs(template: Mapping[str, Any]) -> list[ConfigRef]:
    """The ConfigMaps and Secrets a pod template (``spec.template``) refers to, sorted."""
    spec = template.get("spec") or {}
    refs: set[ConfigRef] = set()

    def add(kind: Literal["ConfigMap", "Secret"], name: object) -> None:
        if isinstance(name, str) and name:
            refs.add(ConfigRef(kind, name))

    for vol in spec.get("volumes") or []:
        if not isinstance(vol, Mapping):
            continue
        add("ConfigMap", (vol.get("configMap") or {}).get("name"))
        add("Secret", (vol.get("secret") or {}).get("secretName"))
        for src in (vol.get("projected") or {}).get("sources") or []:
            add("ConfigMap", (src.get("configMap") or {}).get("name"))
            add("Secret", (src.get("secret") or {}).get("name"))
    for c in _containers(spec):
        for env in c.get("env") or []:
            value_from = env.get("valueFrom") or {}
            add("ConfigMap", (value_from.get("configMapKeyRef") or {}).get("name"))
            add("Secret", (value_from.get("secretKeyRef") or {}).get("name"))
        for src in c.get("envFrom") or []:
            add("ConfigMap", (src.get("configMapRef") or {}).get("name"))
            add("Secret", (src.get("secretRef") or {}).get("name"))
    return sorted(refs)


def _tracked(obj: Mapping[str, Any] | None) -> Any:
    if obj is None:
        return None  # an optional reference that does not exist (yet)
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    if annotations.get(CONFIG_TRACKING_ANNOTATION) == "disabled":
        return "untracked"
    return {"data": obj.get("data") or {}, "binaryData": obj.get("binaryData") or {}}


def canonical_hash(value: Any) -> str:
    """SHA-256 of canonical JSON (sorted keys, no spaces), as 16 hex digits."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def revision_hash(template: Mapping[str, Any], configs: Mapping[ConfigRef, Mapping[str, Any] | None]) -> str:
    """The revision of ``template`` together with the data of the configs it references.

    ``configs`` maps each of ``referenced_configs(template)`` to the fetched object (or ``None``
    when it does not exist); extra entries are ignored, so the caller may pass everything it has.
    """
    tracked = {f"{ref.kind}/{ref.name}": _tracked(configs.get(ref)) for ref in referenced_configs(template)}
    return canonical_hash({"template": template, "configs": tracked})


def tracked_configs(configs: Mapping[ConfigRef, Mapping[str, Any] | None]) -> dict[str, str]:
    """Per-config checksums, for the status' ``trackedConfigs`` (``kind/name`` → hash)."""
    return {f"{ref.kind}/{ref.name}": canonical_hash(_tracked(obj)) for ref, obj in sorted(configs.items())}
