"""Layers point one way: what each part of progdel may import, read from its source (imports
inside functions included) and, for what a module pulls in at import time, from a fresh process."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "progdel"


def imports_of(path: Path) -> set[str]:
    """Every progdel module ``path`` imports, at any level of its code."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):  # progdel imports absolutely
            base = node.module or ""
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
    return {m for m in found if m.startswith("progdel")}


def sources(part: str) -> list[Path]:
    root = ROOT / part
    return sorted(root.rglob("*.py")) if root.is_dir() else [root]


@pytest.mark.parametrize(
    ("part", "forbidden"),
    [
        ("config", ("progdel.promote", "progdel.routing")),
        ("ui", ("progdel.cli",)),
        ("promote", ("progdel.canary.engine",)),
        ("canary/engine.py", ("progdel.metrics", "progdel.kube.client", "progdel.routing")),
        ("kube/readiness.py", ("progdel.canary",)),
        ("canary/records.py", ("progdel.ui", "progdel.cli")),
        ("cli/canary_check.py", ("progdel.cli.canary",)),
    ],
)
def test_a_layer_imports_nothing_above_it(part: str, forbidden: tuple[str, ...]) -> None:
    wrong = {
        f"{path.relative_to(ROOT)} imports {m}"
        for path in sources(part)
        for m in imports_of(path)
        if any(m == f or m.startswith(f + ".") for f in forbidden)
    }
    assert not wrong, sorted(wrong)


def loaded_by(module: str) -> list[str]:
    code = f"import sys, {module}; print(' '.join(m for m in sys.modules if m.startswith('progdel')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_promotion_does_not_load_the_canary_engine() -> None:
    loaded = loaded_by("progdel.promote.orchestrate")
    assert "progdel.canary.engine" not in loaded and "progdel.canary.runner" not in loaded


def test_the_engine_loads_no_cluster_client() -> None:
    assert not [
        m
        for m in loaded_by("progdel.canary.engine")
        if m.startswith(("progdel.kube.client", "progdel.routing"))
    ]
