"""``progdel env``: the environments of progdel.yaml, in promotion order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from progdel.cli.options import global_options

app = typer.Typer(help="The environments versions move through (from progdel.yaml).", no_args_is_help=True)


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """List environments by order: namespace, strategy, kind, canary and repository."""
    from progdel.config.project import load_project
    from progdel.ui.output import emit, table

    opts = global_options(ctx)
    project = load_project(opts.config, Path.cwd())
    rows = [
        {
            "name": e.name,
            "namespace": e.namespace,
            "order": e.order,
            "promotionStrategy": e.promotion_strategy,
            "kind": e.kind,
            "canary": e.canary is not None,
            "repository": e.gitops.repository if e.gitops else None,
        }
        for e in project.ordered_environments()
    ]

    def human(rs: list[dict[str, Any]]) -> Any:
        return table(
            ["name", "namespace", "order", "strategy", "kind", "canary", "repository"],
            [
                [
                    r["name"],
                    r["namespace"],
                    r["order"],
                    r["promotionStrategy"],
                    r["kind"],
                    "yes" if r["canary"] else "no",
                    r["repository"] or "",
                ]
                for r in rs
            ],
        )

    emit(opts, rows, human)
