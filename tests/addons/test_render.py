"""Both rendering engines: the helm CLI and helm-python-sdk render the project's test charts alike."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from progdel.addons.render import RenderError, engine, render

from .conftest import ChartRepo, _package

HELM_DIR = Path(sys.executable).parent  # helm-binary, a dev dependency, installs helm beside python


@pytest.fixture
def helm_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (HELM_DIR / "helm").exists(), "the helm CLI comes with the dev extra (helm-binary)"
    monkeypatch.setenv("PATH", f"{HELM_DIR}{os.pathsep}{os.environ.get('PATH', '')}")


def _without_helm(monkeypatch: pytest.MonkeyPatch) -> None:
    dirs = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d and not (Path(d) / "helm").exists()]
    monkeypatch.setenv("PATH", os.pathsep.join(dirs))


def canonical(objects: list[dict[str, Any]]) -> list[str]:
    return sorted(json.dumps(o, sort_keys=True) for o in objects)


def test_cli_and_sdk_render_every_test_chart_alike(
    chart_repo: ChartRepo, helm_cli: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    archives = sorted((chart_repo.root / "charts").glob("*.tgz"))
    assert len(archives) >= 5
    by_cli = {}
    assert engine() == "helm"
    for archive in archives:
        by_cli[archive.name] = render(archive, {}, release="rel", namespace="ns1")
    _without_helm(monkeypatch)
    assert engine() == "sdk"
    for archive in archives:
        by_sdk = render(archive, {}, release="rel", namespace="ns1")
        assert by_cli[archive.name], archive.name
        assert canonical(by_cli[archive.name]) == canonical(by_sdk), archive.name


def test_cli_template_error_names_the_chart(tmp_path: Path, helm_cli: None) -> None:
    chart = tmp_path / "broken"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: broken\nversion: 0.1.0\n")
    (chart / "templates" / "cm.yaml").write_text('{{ fail "replicas must be set" }}\n')
    _, data = _package(chart)
    archive = tmp_path / "broken-0.1.0.tgz"
    archive.write_bytes(data)
    assert engine() == "helm"
    expected = r"helm template broken-0\.1\.0\.tgz failed: .*replicas must be set"
    with pytest.raises(RenderError, match=expected):
        render(archive, {}, release="rel", namespace="n")
