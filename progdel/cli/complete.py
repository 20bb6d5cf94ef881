"""Shell completion of names: addons from the catalog, canaries from the cluster, apps and
environments from progdel.yaml.

Completion runs on every TAB, so it imports only what it needs, asks the cluster with a short
timeout, and answers nothing rather than an error. The global flags it honours are those given
before the command (``progdel -n test canary status <TAB>``), as they are parsed by then.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

CLUSTER_TIMEOUT = 2.0


def _root(ctx: typer.Context) -> dict[str, Any]:
    return dict(ctx.find_root().params)


def _matching(names: list[str], incomplete: str) -> list[str]:
    return sorted({n for n in names if n.startswith(incomplete)})


def addons(incomplete: str) -> list[str]:
    from progdel.addons.catalog import CATALOG

    return _matching(list(CATALOG), incomplete)


def canaries(ctx: typer.Context, incomplete: str) -> list[str]:
    root = _root(ctx)
    try:
        from progdel.kube.client import connect
        from progdel.kube.resources import CANARIES

        kube = connect(root.get("kubeconfig"), root.get("context"), root.get("namespace"))
        kube.timeout = CLUSTER_TIMEOUT
        items = kube.items(CANARIES)
    except Exception:
        return []
    return _matching([str(o["metadata"]["name"]) for o in items], incomplete)


def _project(ctx: typer.Context) -> Any:
    from progdel.config.project import load_project

    try:
        return load_project(_root(ctx).get("config"), Path.cwd())
    except Exception:
        return None


def apps(ctx: typer.Context, incomplete: str) -> list[str]:
    project = _project(ctx)
    return _matching([a.name for a in project.apps], incomplete) if project else []


def environments(ctx: typer.Context, incomplete: str) -> list[str]:
    project = _project(ctx)
    return _matching([e.name for e in project.environments], incomplete) if project else []
