"""The CRDs a real cluster installs, read at run time from the real charts and manifests in
``../shared``, and what a real API server would prune from an object by them.

- Flagger 1.44.0: ``charts-mirror/flagger-1.44.0.tgz`` ``flagger/crds/crd.yaml`` (Canary,
  MetricTemplate, AlertProvider);
- Istio 1.27.1: ``charts-mirror/base-1.27.1.tgz`` ``base/files/crd-all.gen.yaml``
  (VirtualService, DestinationRule...);
- Gateway API v1.3.0: ``crds/gateway-api-v1.3.0/httproutes.yaml``.

Tests that use them skip, saying why, where ``../shared`` is absent. Pruning is the structural
pruning the sandbox serves custom objects with (``progdel.kube.structural``, the
apiextensions-apiserver algorithm), so these tests and the sandbox agree on what a server keeps.
"""

from __future__ import annotations

import copy
import functools
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from progdel.kube.structural import prune

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
_SOURCES = {
    "flagger.app": ("charts-mirror/flagger-1.44.0.tgz", "flagger/crds/crd.yaml"),
    "networking.istio.io": ("charts-mirror/base-1.27.1.tgz", "base/files/crd-all.gen.yaml"),
    "gateway.networking.k8s.io": ("crds/gateway-api-v1.3.0/httproutes.yaml", None),
}


@functools.cache
def _crds(group: str) -> list[dict[str, Any]]:
    path, member = _SOURCES[group]
    source = SHARED / path
    if not source.exists():
        pytest.skip(f"{source} is absent: the real CRDs are read from ../shared at run time")
    if member is None:
        text = source.read_text()
    else:
        with tarfile.open(source) as tar:
            handle = tar.extractfile(member)
            assert handle is not None, f"{member} not in {source}"
            text = handle.read().decode()
    return [
        d
        for d in yaml.safe_load_all(text)
        if isinstance(d, dict) and d.get("kind") == "CustomResourceDefinition"
    ]


def schema(api_version: str, kind: str) -> dict[str, Any]:
    """The ``openAPIV3Schema`` the real CRD declares for ``kind`` at ``api_version``."""
    group, _, version = api_version.partition("/")
    for crd in _crds(group):
        spec = crd["spec"]
        if spec["names"]["kind"] != kind:
            continue
        for v in spec["versions"]:
            if v["name"] == version:
                return v["schema"]["openAPIV3Schema"]
    raise AssertionError(f"no CRD for {kind} {api_version} in {_SOURCES[group][0]}")


def dropped(obj: dict[str, Any]) -> list[str]:
    """The paths a real API server would prune from ``obj`` (by its apiVersion and kind)."""
    return list(prune(copy.deepcopy(obj), schema(obj["apiVersion"], obj["kind"])))
