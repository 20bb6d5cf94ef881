"""The revision of a canary's target: its pod template's hash and its configs' checksums.

A new revision is what starts a canary run. Like Flagger, progdel counts a change to the pod
template *or* to the data of a ConfigMap or Secret the pods use (volumes, projected volumes,
``env.valueFrom``, ``envFrom``, in containers and init containers) as a new revision, and
stores them as Flagger does, so that a canary moves between Flagger and progdel without being
seen as a new revision:

- ``status.lastAppliedSpec``/``lastPromotedSpec``: Flagger's hash of the pod template
  (``flaggerhash.pod_template_hash``); for a template whose Go rendering progdel cannot
  reproduce (a set ``creationTimestamp``...), progdel's own canonical hash (16 hex digits);
- ``status.trackedConfigs``: ``configmap/NAME`` and ``secret/NAME`` mapped to Flagger's
  checksum of their ``data``; an object annotated ``flagger.app/config-tracking: disabled``,
  a Secret of another type than Opaque, basic-auth, ssh-auth or TLS, and one that does not
  exist are not tracked, as in Flagger's ``config_tracker.go``.

Statuses written by progdel before it computed Flagger's hashes hold a 16-hex-digit hash of the
template and its configs together; ``legacy_revision_hash`` still computes it, so such a canary
is not seen as changed either.

All functions are pure: the caller fetches the referenced objects.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from progdel.canary.flaggerhash import Unsupported, config_checksum, pod_template_hash

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


_LEGACY = re.compile(r"[0-9a-f]{16}")


def is_legacy(value: str) -> bool:
    """Whether a stored revision is progdel's own hash (16 hex digits; Flagger's have at most 10
    characters of another alphabet)."""
    return bool(_LEGACY.fullmatch(value))


def legacy_revision_hash(
    template: Mapping[str, Any], configs: Mapping[ConfigRef, Mapping[str, Any] | None]
) -> str:
    """progdel's own revision: a canonical hash of ``template`` together with the data of the
    configs it references (extra entries of ``configs`` are ignored)."""
    tracked = {f"{ref.kind}/{ref.name}": _tracked(configs.get(ref)) for ref in referenced_configs(template)}
    return canonical_hash({"template": template, "configs": tracked})


@dataclass(frozen=True)
class Revision:
    """A target's revision: ``spec`` for ``lastAppliedSpec`` (Flagger's hash of the pod template,
    or progdel's own when the template cannot be hashed as Flagger does), ``configs`` for
    ``trackedConfigs``, and ``legacy`` for statuses an older progdel wrote."""

    spec: str
    configs: dict[str, str]
    legacy: str


def revision_of(
    template: Mapping[str, Any], configs: Mapping[ConfigRef, Mapping[str, Any] | None]
) -> Revision:
    """The revision of ``template`` with the configs it references (each fetched object, or None
    when it does not exist)."""
    legacy = legacy_revision_hash(template, configs)
    try:
        spec = pod_template_hash(template)
    except Unsupported:
        spec = legacy
    return Revision(spec, tracked_configs(configs), legacy)


#: the Secret types Flagger's config tracker follows (registry credentials are left alone)
TRACKED_SECRET_TYPES = ("Opaque", "kubernetes.io/basic-auth", "kubernetes.io/ssh-auth", "kubernetes.io/tls")


def is_tracked(obj: Mapping[str, Any], kind: str) -> bool:
    """Whether Flagger tracks this ConfigMap or Secret: not annotated
    ``flagger.app/config-tracking: disabled``, and a Secret only of a ``TRACKED_SECRET_TYPES`` type."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    if str(annotations.get(CONFIG_TRACKING_ANNOTATION, "")).startswith("disable"):
        return False
    return kind == "ConfigMap" or (obj.get("type") or "Opaque") in TRACKED_SECRET_TYPES


def tracked_configs(configs: Mapping[ConfigRef, Mapping[str, Any] | None]) -> dict[str, str]:
    """Flagger's ``trackedConfigs``: ``configmap/NAME`` or ``secret/NAME`` to the checksum of the
    object's ``data``, for the objects that exist and are tracked."""
    return {
        f"{ref.kind.lower()}/{ref.name}": config_checksum(obj.get("data"))
        for ref, obj in sorted(configs.items())
        if obj is not None and is_tracked(obj, ref.kind)
    }


def configs_changed(tracked: Mapping[str, str] | None, current: Mapping[str, str]) -> bool:
    """Flagger's ``HasConfigChanged``: the tracked configs differ from those the target uses now."""
    if tracked is None:
        return bool(current)
    return len(tracked) != len(current) or any(tracked.get(k) != v for k, v in current.items())
