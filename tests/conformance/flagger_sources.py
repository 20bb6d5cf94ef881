"""Flagger's own Canaries, found at run time in its source tree (``/work/upstream/flagger``), with
the installation each was written for and the targets its tests apply.

Every Canary of ``README.md`` and ``docs/`` (fenced YAML of the Markdown), ``artifacts/examples``,
``test/`` (the heredocs the e2e scripts pipe to ``kubectl apply``) and ``charts/`` is found. For
each, as Flagger's tests and tutorials set it up:

- the installation: the ``kustomize/<mesh>`` overlay or the ``--set meshProvider=`` of the Helm
  chart that the file (or its directory's ``install.sh``, or for an example its mesh's overlay)
  installs Flagger with, giving the ``-mesh-provider`` and ``-include-label-prefix`` flags
  (Flagger's defaults, ``istio`` and no prefix, when the file installs nothing);
- the targets: ``test/workloads/*.yaml`` as ``test/workloads/init.sh`` applies them for the e2e
  tests, ``kustomize/podinfo`` for the tutorials and the other docs;
- the objects applied in the same ``kubectl apply`` as the Canary, before it (a Service and a
  VirtualService of the app, in ``test/istio/test-canary.sh``).

A Canary that is only a fragment (no ``targetRef`` or no name) or a Helm template is listed with
the reason it is left out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

UPSTREAM = Path(__file__).resolve().parents[3] / "upstream" / "flagger"
DRIVEN = ("istio", "gatewayapi:v1", "gatewayapi:v1beta1")


@dataclass(frozen=True)
class Installation:
    provider: str
    label_prefixes: tuple[str, ...]
    source: str  # where the flags come from


@dataclass
class FlaggerCanary:
    file: str  # relative to the Flagger tree
    index: int  # which Canary of the file (0-based)
    canary: dict[str, Any]
    installation: Installation
    workloads: list[dict[str, Any]] = field(default_factory=list)
    companions: list[dict[str, Any]] = field(default_factory=list)
    left_out: str = ""  # why it is not initialized (empty: it is)

    @property
    def id(self) -> str:
        name = (self.canary.get("metadata") or {}).get("name") or "?"
        return f"{self.file}#{self.index}:{name}"

    @property
    def provider(self) -> str:
        """The provider Flagger uses: spec.provider, else its installation's flag."""
        return str((self.canary.get("spec") or {}).get("provider") or self.installation.provider)


def _blocks(path: Path) -> list[str]:
    text = path.read_text()
    if path.suffix == ".md":
        return re.findall(r"```[a-z]*\n(.*?)```", text, re.S)
    if path.suffix == ".sh":
        return re.findall(r"<<\s*'?EOF'?[^\n]*\n(.*?)\n\s*EOF", text, re.S)
    return [text]


def _flags(args: str) -> tuple[str | None, tuple[str, ...] | None]:
    provider = re.search(r"-mesh-provider=(\S+)", args)
    prefixes = re.search(r"-include-label-prefix=(\S+)", args)
    return (
        provider.group(1) if provider else None,
        tuple(p for p in prefixes.group(1).split(",") if p) if prefixes else None,
    )


def installation_for(path: Path) -> Installation:
    """How the file installs Flagger (its own text, else its directory's ``install.sh``; an
    example ``artifacts/examples/<mesh>-*.yaml``, the ``kustomize/<mesh>`` overlay)."""
    texts = [path.read_text()]
    if path.parent == UPSTREAM / "artifacts" / "examples":
        texts.append(f"kustomize/{path.name.partition('-')[0]}")
    if path.suffix == ".sh" and (path.parent / "install.sh").exists():
        texts.append((path.parent / "install.sh").read_text())
    for text in texts:
        for overlay in re.findall(r"kustomize/([\w-]+)", text):
            patch = UPSTREAM / "kustomize" / overlay / "patch.yaml"
            if overlay in ("podinfo", "tester") or not patch.exists():
                continue
            provider, prefixes = _flags(patch.read_text())
            return Installation(provider or "istio", prefixes or (), f"kustomize/{overlay}/patch.yaml")
        helm = re.search(r"meshProvider=([\w:.-]+)", text)
        if helm:
            prefixes = re.search(r"includeLabelPrefix=(\S+)", text)
            where = path.relative_to(UPSTREAM)
            return Installation(
                helm.group(1),
                tuple(prefixes.group(1).split(",")) if prefixes else (),
                f"{where} (Helm chart, --set meshProvider={helm.group(1)})",
            )
    return Installation("istio", (), "Flagger's defaults (-mesh-provider istio, no label prefix)")


def _load(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]


def workloads_for(path: Path) -> list[dict[str, Any]]:
    """The targets Flagger's tests (or tutorials) apply before the file's Canaries."""
    if path.suffix == ".sh":
        init = (UPSTREAM / "test" / "workloads" / "init.sh").read_text()
        files = re.findall(r"test/workloads/([\w-]+\.yaml)", init)
        return [d for f in files if f != "daemonset.yaml" for d in _load(UPSTREAM / "test" / "workloads" / f)]
    base = UPSTREAM / "kustomize" / "podinfo"
    resources = yaml.safe_load((base / "kustomization.yaml").read_text()).get("resources") or []
    return [d for r in resources for d in _load(base / r)]


def flagger_canaries() -> list[FlaggerCanary]:
    """Every Canary of Flagger's README, docs, examples, e2e tests and charts, in file order."""
    files = sorted(
        [
            UPSTREAM / "README.md",
            *UPSTREAM.glob("docs/**/*.md"),
            *UPSTREAM.glob("artifacts/examples/*.yaml"),
            *UPSTREAM.glob("test/**/*.sh"),
            *UPSTREAM.glob("charts/**/*.yaml"),
        ]
    )
    out: list[FlaggerCanary] = []
    for path in files:
        rel = str(path.relative_to(UPSTREAM))
        index = 0
        for block in _blocks(path):
            if "kind: Canary" not in block:
                continue
            try:
                docs = [d for d in yaml.safe_load_all(block) if isinstance(d, dict)]
            except yaml.YAMLError:
                found = FlaggerCanary(rel, index, {}, installation_for(path))
                found.left_out = (
                    "a Helm template: the chart's values fill it in, it is not a Canary as written"
                )
                out.append(found)
                index += 1
                continue
            for i, doc in enumerate(docs):
                if doc.get("kind") != "Canary":
                    continue
                found = FlaggerCanary(rel, index, doc, installation_for(path))
                found.companions = [d for d in docs[:i] if d.get("kind") != "Canary"]
                spec = doc.get("spec") or {}
                if not (doc.get("metadata") or {}).get("name") or not (spec.get("targetRef") or {}).get(
                    "name"
                ):
                    found.left_out = (
                        "a fragment of a Canary (no metadata.name or targetRef) to show some fields"
                    )
                else:
                    found.workloads = workloads_for(path)
                    names = {(w.get("metadata") or {}).get("name") for w in found.workloads}
                    if spec["targetRef"].get("kind", "Deployment") == "Deployment" and (
                        spec["targetRef"]["name"] not in names
                    ):
                        found.left_out = (
                            f"its target {spec['targetRef']['name']} is not among the workloads the file's "
                            "tests or tutorial apply"
                        )
                out.append(found)
                index += 1
    return out


__all__ = ["DRIVEN", "UPSTREAM", "FlaggerCanary", "Installation", "flagger_canaries"]
