"""Rendering charts with Helm's own template engine.

The ``helm`` CLI (``helm template``) is used when it is on the PATH; otherwise
the ``helm-python-sdk`` package (``pip install 'progdel[helm]'``), which runs
Helm's Go library in-process. progdel never interprets templates itself: the
output is what ``helm template`` would produce, CRDs from ``crds/`` included.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from progdel.errors import ExitCode, InvalidInput, ProgdelError


class RenderError(ProgdelError):
    """A chart failed to render (a template error, or values the chart rejects)."""

    exit_code = ExitCode.INVALID_INPUT


NO_HELM = (
    "rendering charts needs Helm: install the helm CLI (https://helm.sh/docs/intro/install/) "
    "or the Python package with `pip install 'progdel[helm]'` (helm-python-sdk)"
)


def engine() -> str:
    """``helm`` (the CLI), ``sdk`` (helm-python-sdk), or an error saying how to get one."""
    if shutil.which("helm"):
        return "helm"
    try:
        import helm_python  # noqa: F401
    except ImportError:
        raise InvalidInput(NO_HELM) from None
    return "sdk"


def engine_version() -> str:
    kind = engine()
    if kind == "helm":
        out = subprocess.run(["helm", "version", "--short"], capture_output=True, text=True, check=False)
        return f"helm CLI {out.stdout.strip()}"
    import helm_python

    return f"helm-python-sdk (Helm SDK {helm_python.helm_sdk_version()})"


def parse_set(expression: str) -> dict[str, Any]:
    """A ``--set`` expression (``a.b=1,c={x,y}``) as values, parsed by Helm's own rules when possible."""
    try:
        import helm_python
    except ImportError:
        return _parse_set_simple(expression)
    try:
        parsed: dict[str, Any] = helm_python.parse_set_string(expression)
    except helm_python.HelmError as err:
        raise InvalidInput(f"--set {expression}: {err}") from None
    return parsed


def _parse_set_simple(expression: str) -> dict[str, Any]:
    from progdel.config.yamlfile import load_yaml

    out: dict[str, Any] = {}
    for part in expression.split(","):
        key, sep, raw = part.partition("=")
        if not sep or not key:
            raise InvalidInput(f"--set {expression}: expected key=value")
        value: Any = load_yaml(raw, f"--set {key}") if raw else ""
        node = out
        keys = key.split(".")
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = value
    return out


def render(archive: Path, values: dict[str, Any], *, release: str, namespace: str) -> list[dict[str, Any]]:
    """The objects a chart archive renders to with ``values``, CRDs included, in file order."""
    texts = _render_helm(archive, values, release, namespace) if engine() == "helm" else None
    if texts is None:
        texts = _render_sdk(archive, values, release, namespace)
    return _parse(texts, archive)


def _render_helm(archive: Path, values: dict[str, Any], release: str, namespace: str) -> list[str]:
    import yaml

    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(values, f)
        values_file = f.name
    try:
        proc = subprocess.run(
            [
                "helm",
                "template",
                release,
                str(archive),
                "--namespace",
                namespace,
                "--include-crds",
                "--values",
                values_file,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        Path(values_file).unlink(missing_ok=True)
    if proc.returncode != 0:
        raise RenderError(f"helm template {archive.name} failed: {proc.stderr.strip()}")
    return [proc.stdout]


def _render_sdk(archive: Path, values: dict[str, Any], release: str, namespace: str) -> list[str]:
    import helm_python

    try:
        chart = helm_python.Chart.load(archive)
        crds = [c["data"] for c in chart.crds]
        rendered = chart.render(values, name=release, namespace=namespace, is_install=True)
    except helm_python.HelmError as err:
        raise RenderError(f"rendering {archive.name} failed: {err}") from None
    templates = [text for path, text in sorted(rendered.items()) if not path.endswith("NOTES.txt")]
    return crds + templates


def _parse(texts: list[str], archive: Path) -> list[dict[str, Any]]:
    import yaml

    out: list[dict[str, Any]] = []
    for text in texts:
        try:
            docs = list(yaml.safe_load_all(text))
        except yaml.YAMLError as err:
            raise RenderError(f"{archive.name} rendered invalid YAML: {err}") from None
        for doc in docs:
            if not doc:
                continue
            if not isinstance(doc, dict) or not doc.get("kind") or not doc.get("apiVersion"):
                raise RenderError(f"{archive.name} rendered a document that is not a Kubernetes object")
            if doc["kind"].endswith("List") and isinstance(doc.get("items"), list):
                out.extend(i for i in doc["items"] if isinstance(i, dict))
            else:
                out.append(doc)
    return out
