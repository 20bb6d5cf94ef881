"""Shell completion of names: addons from the catalog, canaries from the cluster, apps and
environments from progdel.yaml, contexts from the kubeconfig, and the versions a promotion may
take from the environment before the target (read in that environment's cluster).

Completion runs on every TAB, so it imports only what it needs, asks the cluster with a short
timeout, and answers nothing rather than an error. The global flags it honours are those given
before the command (``progdel -n test canary status <TAB>``), as they are parsed by then.
"""

from __future__ import annotations

import os
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


def verified_environments(ctx: typer.Context, incomplete: str) -> list[str]:
    """The environments that declare ``verify``."""
    project = _project(ctx)
    names = [e.name for e in project.environments if e.verify is not None] if project else []
    return _matching(names, incomplete)


def contexts(ctx: typer.Context, incomplete: str) -> list[str]:
    """The contexts of the kubeconfig (``--kubeconfig``, else ``$KUBECONFIG``, else ~/.kube/config)."""
    import yaml

    given = _root(ctx).get("kubeconfig") or os.environ.get("KUBECONFIG") or "~/.kube/config"
    names: list[str] = []
    for path in (p for p in str(given).split(os.pathsep) if p):
        try:
            config = yaml.safe_load(Path(path).expanduser().read_text()) or {}
            names += [
                str(c["name"]) for c in config.get("contexts") or [] if isinstance(c, dict) and "name" in c
            ]
        except Exception:
            continue
    return _matching(names, incomplete)


def versions(ctx: typer.Context, incomplete: str) -> list[str]:
    """``promote --version``: the version running in the environment before ``--env``, read in
    that environment's cluster (what ``promote`` without ``--version`` would pick)."""
    project = _project(ctx)
    target = ctx.params.get("env")
    if project is None or not target:
        return []
    root = _root(ctx)
    try:
        from progdel.kube.client import connect
        from progdel.promote.inventory import locate

        app = project.resolve_app(ctx.params.get("app_name"), Path.cwd())
        previous = project.previous_environment(target)
        if previous is None:
            return []
        kube = connect(root.get("kubeconfig"), previous.context or root.get("context"), None)
        kube.timeout = CLUSTER_TIMEOUT
        version = locate(kube, previous, app, []).version
    except Exception:
        return []
    return _matching([version] if version else [], incomplete)
