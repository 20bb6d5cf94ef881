"""``progdel env``: the environments of progdel.yaml, in promotion order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from progdel.cli.options import connect_clusters, global_options
from progdel.errors import ProgdelError

app = typer.Typer(help="The environments versions move through (from progdel.yaml).", no_args_is_help=True)


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """List environments by order: cluster (kubeconfig context), namespace, strategy, kind, canary,
    verification soak time and repository. Nothing is asked of the clusters."""
    from progdel.config.project import load_project
    from progdel.ui.output import emit, table

    opts = global_options(ctx)
    project = load_project(opts.config, Path.cwd())
    clusters = connect_clusters(opts)

    def cluster(e: Any) -> str:
        try:
            return clusters.context(e)  # reads the kubeconfig only
        except ProgdelError:  # no kubeconfig, or a context it lacks: still say what is configured
            return str(e.context or "")

    rows = [
        {
            "name": e.name,
            "cluster": cluster(e),
            "namespace": e.namespace,
            "order": e.order,
            "promotionStrategy": e.promotion_strategy,
            "kind": e.kind,
            "canary": e.canary is not None,
            "verify": {"soak": e.verify.soak, "checks": e.verify.checks} if e.verify else None,
            "repository": e.gitops.repository if e.gitops else None,
        }
        for e in project.ordered_environments()
    ]

    def human(rs: list[dict[str, Any]]) -> Any:
        return table(
            ["name", "cluster", "namespace", "order", "strategy", "kind", "canary", "verify", "repository"],
            [
                [
                    r["name"],
                    r["cluster"],
                    r["namespace"],
                    r["order"],
                    r["promotionStrategy"],
                    r["kind"],
                    "yes" if r["canary"] else "no",
                    f"soak {r['verify']['soak']}" if r["verify"] else "no",
                    r["repository"] or "",
                ]
                for r in rs
            ],
        )

    emit(opts, rows, human)
