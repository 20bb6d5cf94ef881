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
        # the data a tick reads and returns is below the tick, and needs no cluster
        ("canary/status.py", ("progdel.canary.engine", "progdel.kube", "progdel.metrics")),
        ("canary/observation.py", ("progdel.canary.engine", "progdel.kube.client", "progdel.metrics")),
        ("canary/actions.py", ("progdel.canary.engine", "progdel.kube", "progdel.metrics")),
        # the runner is given its ports: it builds no client, router, Event recorder or hook caller
        (
            "canary/runner.py",
            (
                "progdel.kube.client",
                "progdel.kube.events",
                "progdel.routing.istio",
                "progdel.routing.gatewayapi",
                "progdel.routing.router_for",
                "progdel.canary.webhooks",
                "progdel.canary.cluster",
            ),
        ),
        # a replay needs no cluster
        ("canary/replay.py", ("progdel.kube", "progdel.routing", "progdel.canary.runner")),
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


def test_the_engine_module_holds_the_tick_and_nothing_else() -> None:
    """The persisted status, the observation and the action types live in modules of their own;
    what engine.py defines is the tick, its result and what it needs observed."""
    tree = ast.parse((ROOT / "canary" / "engine.py").read_text())
    classes = {node.name for node in tree.body if isinstance(node, ast.ClassDef)}
    assert classes == {"TickResult", "NeedsHooks", "NeedsMetrics", "ObservationMissing", "_Tick"}


def test_no_exception_carries_what_a_tick_needs() -> None:
    """The engine answers what a tick needs (``needs``) instead of raising it, and its drivers
    catch nothing of the engine's: neither the engine nor the tick's drivers catch to decide."""
    engine = ast.parse((ROOT / "canary" / "engine.py").read_text())
    assert not [n for n in ast.walk(engine) if isinstance(n, ast.Try)]
    for driver in ("runner.py", "replay.py"):
        source = (ROOT / "canary" / driver).read_text()
        assert "RequiredError" not in source and "ObservationMissing" not in source, driver
