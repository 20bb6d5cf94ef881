"""Writes the sandbox's bundled CRDs from the upstream ones: their structure, without prose.

The sandbox starts with the CRDs of a cluster that runs Istio, the Gateway API
and Flagger. Each bundled file keeps what decides how a real API server prunes,
defaults and validates (properties, types, formats, enums, patterns, ranges,
required fields, defaults, list types, preserve-unknown markers, CEL rules and
their messages) and drops descriptions and examples. Versions that share one
schema share it in the file too (YAML anchors).

Run when an upstream version moves (the paths are the shared test data beside
the repository):

    .venv/bin/python scripts/crd_structure.py ../shared

``tests/sandbox/test_bundled_crds.py`` fails whenever a bundled CRD no longer
matches its upstream, version by version.
"""

from __future__ import annotations

import io
import sys
import tarfile
from pathlib import Path
from typing import Any

import yaml

DROP = {"description", "example", "title", "externalDocs"}

# (bundled file, header, where the upstream CRDs are, which CRDs)
SOURCES = [
    (
        "flagger.yaml",
        "Flagger 1.44.0 (chart flagger-1.44.0, crds/crd.yaml)",
        ("charts-mirror/flagger-1.44.0.tgz", "flagger/crds/crd.yaml"),
        ["canaries.flagger.app", "metrictemplates.flagger.app", "alertproviders.flagger.app"],
    ),
    (
        "istio-networking.yaml",
        "Istio 1.27.1 (chart base-1.27.1, files/crd-all.gen.yaml)",
        ("charts-mirror/base-1.27.1.tgz", "base/files/crd-all.gen.yaml"),
        [
            "virtualservices.networking.istio.io",
            "destinationrules.networking.istio.io",
            "gateways.networking.istio.io",
        ],
    ),
    (
        "gateway-api.yaml",
        "Gateway API v1.3.0, standard channel (config/crd/standard)",
        ("crds/gateway-api-v1.3.0/httproutes.yaml", None),
        ["httproutes.gateway.networking.k8s.io"],
    ),
]


def upstream_crds(shared: Path, source: tuple[str, str | None]) -> dict[str, dict[str, Any]]:
    """The CRDs of one upstream file, by name (a file inside a chart archive, or a plain file)."""
    path, member = source
    if member is None:
        text = (shared / path).read_text()
    else:
        with tarfile.open(shared / path) as tar:
            handle = tar.extractfile(member)
            assert handle is not None
            text = handle.read().decode()
    return {
        d["metadata"]["name"]: d
        for d in yaml.load_all(text, Loader=yaml.CSafeLoader)
        if d and d.get("kind") == "CustomResourceDefinition"
    }


def structure(schema: Any) -> Any:
    """A schema node without its prose; ``properties`` keys are field names, kept as they are."""
    if isinstance(schema, list):
        return [structure(x) for x in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for k, v in schema.items():
        if k in DROP:
            continue
        if k == "properties" and isinstance(v, dict):
            out[k] = {name: structure(sub) for name, sub in v.items()}
        elif k in ("default", "enum", "x-kubernetes-validations", "required", "x-kubernetes-list-map-keys"):
            out[k] = v
        else:
            out[k] = structure(v)
    return out


def bundled(crd: dict[str, Any]) -> dict[str, Any]:
    spec = crd["spec"]
    versions = []
    shared: dict[str, Any] = {}  # one object per distinct schema, so YAML writes it once
    for v in spec["versions"]:
        out: dict[str, Any] = {"name": v["name"], "served": v.get("served", True), "storage": v["storage"]}
        if v.get("deprecated"):
            out["deprecated"] = True
        if v.get("subresources"):
            out["subresources"] = v["subresources"]
        if v.get("additionalPrinterColumns"):
            out["additionalPrinterColumns"] = [
                {k: x for k, x in col.items() if k not in DROP} for col in v["additionalPrinterColumns"]
            ]
        schema = structure(v["schema"]["openAPIV3Schema"])
        key = yaml.safe_dump(schema, sort_keys=True)
        out["schema"] = {"openAPIV3Schema": shared.setdefault(key, schema)}
        versions.append(out)
    names = {k: v for k, v in spec["names"].items()}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": crd["metadata"]["name"]},
        "spec": {"group": spec["group"], "names": names, "scope": spec["scope"], "versions": versions},
    }


class _Dumper(yaml.SafeDumper):
    def generate_anchor(self, node: Any) -> str:
        self._anchors = getattr(self, "_anchors", 0) + 1
        return f"schema{self._anchors}"


def write(target: Path, header: str, crds: list[dict[str, Any]]) -> None:
    out = io.StringIO()
    out.write(f"# The structure of {header}:\n")
    out.write("# what a real API server prunes, defaults and validates custom objects by.\n")
    out.write("# Written by scripts/crd_structure.py (descriptions left out).\n")
    for crd in crds:
        out.write("---\n")
        yaml.dump(crd, out, Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True)
    target.write_text(out.getvalue())


def main(shared: Path) -> None:
    folder = Path(__file__).resolve().parent.parent / "progdel" / "kube" / "crds"
    for filename, header, source, names in SOURCES:
        upstream = upstream_crds(shared, source)
        write(folder / filename, header, [bundled(upstream[n]) for n in names])
        print(f"wrote {folder / filename}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "../shared"))
