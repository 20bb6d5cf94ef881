"""Hold a Canary or MetricTemplate file to Flagger's CRD before anything is written.

A real API server prunes every field the CRD's structural schema does not declare (Flagger's
declares no ``x-kubernetes-preserve-unknown-fields``) and refuses values its schema forbids
(an enum, a pattern, ``analysis``'s ``oneOf``). progdel passes Istio's blocks (``trafficPolicy``,
``retries``, ``corsPolicy``...) through as written, so a field Istio knows but Flagger's CRD does
not (``trafficPolicy.connectionPool.tcp``, ``retries.retryRemoteLocalities``...) would silently
vanish from the stored Canary. Both are spec errors here, naming file, line and field, with the
same pruning and validation code the sandbox serves custom objects with, and the bundled copy of
Flagger's CRD (equal to the chart's).
"""

from __future__ import annotations

import copy
import functools
import re
from importlib import resources
from typing import Any

import yaml

PathKey = tuple[str | int, ...]
_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


@functools.cache
def flagger_schemas() -> dict[str, dict[str, Any]]:
    """``openAPIV3Schema`` of Flagger's v1beta1 kinds (Canary, MetricTemplate, AlertProvider)."""
    text = (resources.files("progdel.kube") / "crds" / "flagger.yaml").read_text()
    out: dict[str, dict[str, Any]] = {}
    for doc in yaml.safe_load_all(text):
        if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
            for version in doc["spec"]["versions"]:
                if version["name"] == "v1beta1":
                    out[doc["spec"]["names"]["kind"]] = version["schema"]["openAPIV3Schema"]
    return out


def path_key(path: str) -> PathKey:
    """``spec.analysis.metrics[0].name`` as ``("spec", "analysis", "metrics", 0, "name")``."""
    return tuple(int(index) if index else name for name, index in _PART.findall(path))


def crd_problems(data: dict[str, Any], kind: str) -> list[tuple[PathKey, str]]:
    """What Flagger's CRD would drop from, or refuse in, the ``spec`` of ``data``."""
    from progdel.kube.schema import validate_custom_object
    from progdel.kube.structural import prune

    schema = flagger_schemas()[kind]
    body = {k: copy.deepcopy(v) for k, v in data.items() if k not in ("status", "metadata")}
    body["metadata"] = {}
    problems: list[tuple[PathKey, str]] = [
        (path_key(p), "unknown field: Flagger's CRD does not declare it, so a cluster would drop it")
        for p in prune(copy.deepcopy(body), schema)
    ]
    for error in validate_custom_object(body, schema):
        if error.field.startswith("spec"):
            problems.append((path_key(error.field), error.message))
    return problems
