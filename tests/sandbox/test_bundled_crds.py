"""The CRDs the sandbox starts with hold custom objects exactly as the real ones do.

Each bundled CRD is compared, version by version, with the one a real cluster gets: Flagger's from
its chart (``flagger-1.44.0.tgz``, ``crds/crd.yaml``), Istio's from ``base-1.27.1.tgz``
(``files/crd-all.gen.yaml``), the Gateway API's from ``crds/gateway-api-v1.3.0/``, all in
``../shared``. Any difference in what decides pruning (declared properties, additionalProperties,
preserve-unknown, embedded resources), defaulting or validation (types, formats, enums, patterns,
ranges, required fields, list types, CEL rules) fails, named by its path in the schema.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from progdel.sandbox.server import bundled_crds

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

import crd_structure  # noqa: E402

PROSE = crd_structure.DROP
PRUNING = (
    "properties",
    "additionalProperties",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-embedded-resource",
)


def upstream() -> dict[str, dict[str, Any]]:
    if not (SHARED / "charts-mirror").is_dir() or not (SHARED / "crds").is_dir():
        pytest.skip(f"the upstream charts and CRDs are not at {SHARED} (the shared test data)")
    found: dict[str, dict[str, Any]] = {}
    for _, _, source, _ in crd_structure.SOURCES:
        found.update(crd_structure.upstream_crds(SHARED, source))
    return found


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def differences(bundled: Any, real: Any, path: str = "") -> list[str]:
    """Where two schemas disagree on anything but prose, each worded by its effect."""
    if not isinstance(bundled, dict) or not isinstance(real, dict):
        return [] if bundled == real else [f"{path or '.'}: {bundled!r} where the real CRD has {real!r}"]
    out: list[str] = []
    for key in sorted(set(bundled) | set(real)):
        if key in PROSE:
            continue
        here = f"{path}.{key}" if path else key
        if key == "properties":
            mine, theirs = bundled.get(key) or {}, real.get(key) or {}
            for name in sorted(set(mine) - set(theirs)):
                out.append(f"{_join(path, name)}: kept by the bundled CRD, pruned by the real one")
            for name in sorted(set(theirs) - set(mine)):
                out.append(f"{_join(path, name)}: pruned by the bundled CRD, kept by the real one")
            for name in sorted(set(mine) & set(theirs)):
                out += differences(mine[name], theirs[name], _join(path, name))
        elif key not in bundled:
            effect = "prunes more" if key in PRUNING else "accepts what the real one refuses"
            out.append(f"{here}: missing from the bundled CRD ({effect})")
        elif key not in real:
            effect = "keeps more" if key in PRUNING else "refuses what the real one accepts"
            out.append(f"{here}: only in the bundled CRD ({effect})")
        elif isinstance(bundled[key], dict) and key not in ("default",):
            out += differences(bundled[key], real[key], here)
        elif isinstance(bundled[key], list) and key in ("anyOf", "oneOf", "allOf"):
            if len(bundled[key]) != len(real[key]):
                out.append(
                    f"{here}: {len(bundled[key])} alternatives where the real CRD has {len(real[key])}"
                )
            for i, (a, b) in enumerate(zip(bundled[key], real[key], strict=False)):
                out += differences(a, b, f"{here}[{i}]")
        elif bundled[key] != real[key]:
            out.append(f"{here}: {bundled[key]!r} where the real CRD has {real[key]!r}")
    return out


BUNDLED = {crd["metadata"]["name"]: crd for crd in bundled_crds()}


def test_every_bundled_crd_has_an_upstream_source() -> None:
    named = {n for _, _, _, names in crd_structure.SOURCES for n in names}
    assert set(BUNDLED) == named


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_bundled_crd_matches_the_real_one_version_by_version(name: str) -> None:
    real = upstream()[name]
    mine = BUNDLED[name]
    assert mine["spec"]["group"] == real["spec"]["group"]
    assert mine["spec"]["scope"] == real["spec"]["scope"]
    assert mine["spec"]["names"] == real["spec"]["names"]
    real_versions = {v["name"]: v for v in real["spec"]["versions"]}
    my_versions = {v["name"]: v for v in mine["spec"]["versions"]}
    assert sorted(my_versions) == sorted(real_versions)
    problems: list[str] = []
    for version, theirs in real_versions.items():
        ours = my_versions[version]
        for key in ("served", "storage", "subresources"):
            if ours.get(key) != theirs.get(key):
                problems.append(
                    f"{version} {key}: {ours.get(key)!r} where the real CRD has {theirs.get(key)!r}"
                )
        schema_diff = differences(
            ours["schema"]["openAPIV3Schema"], theirs["schema"]["openAPIV3Schema"], "openAPIV3Schema"
        )
        problems += [f"{version} {p}" for p in schema_diff]
    assert problems == []


def test_the_comparison_catches_what_matters() -> None:
    """The comparison itself: a preserve-unknown marker, a missing property and a laxer enum all show."""
    real = {"type": "object", "properties": {"a": {"type": "string", "enum": ["x"]}, "b": {"type": "string"}}}
    lax = {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
        "properties": {"a": {"type": "string", "description": "prose is ignored"}},
    }
    assert differences(lax, real) == [
        "b: pruned by the bundled CRD, kept by the real one",
        "a.enum: missing from the bundled CRD (accepts what the real one refuses)",
        "x-kubernetes-preserve-unknown-fields: only in the bundled CRD (keeps more)",
    ]
