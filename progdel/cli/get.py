"""``progdel get``: what runs where, as ``kubectl get`` shows objects."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from progdel.cli import complete
from progdel.cli.options import connect_clusters, global_options

app = typer.Typer(help="Show what runs in the environments.", no_args_is_help=True)

_UNREACHABLE = "<unreachable>"


@app.command("applications")
def applications(
    ctx: typer.Context,
    env: Annotated[
        str | None,
        typer.Option("-e", "--env", help="Only this environment.", autocompletion=complete.environments),
    ] = None,
) -> None:
    """One row per app and environment: its cluster, version, ready/desired pods, verification, URL.

    Every environment is read in its own cluster (its context), all at once. In an environment
    that promotes through a canary, the version shown is the one that serves (the -primary
    Deployment's), not the candidate's. VERIFIED says, where the environment declares verify,
    whether the version running there passed: verified, failed-verification, pending or
    unverified. An environment whose cluster cannot be reached shows <unreachable>, the error
    is printed on stderr, and the command exits 6 after showing the others.
    """
    from progdel.config.project import load_project
    from progdel.promote.inventory import applications as read_applications
    from progdel.ui.output import emit, exit_after_partial, table

    opts = global_options(ctx)
    project = load_project(opts.config, Path.cwd())
    if env:
        project.environment(env)
    inventories = read_applications(connect_clusters(opts), project, env)
    rows = [{"app": inv.app.name, **p.to_dict()} for inv in inventories for p in inv.placements]

    def human(rs: list[dict[str, Any]]) -> Any:
        columns = ["application", "environment", "cluster", "version", "pods", "verified", "url"]
        body = [
            [
                r["app"],
                r["environment"],
                r["cluster"],
                (r["version"] or "") if r["reachable"] else _UNREACHABLE,
                r["pods"],
                r["verification"] or "",
                r["url"] or "",
            ]
            for r in rs
        ]
        return table(columns, body)

    emit(opts, rows, human)
    exit_after_partial([(p.environment, p.error, p.error_code) for p in inventories[0].placements if p.error])


@app.command("application", hidden=True)
def application(
    ctx: typer.Context,
    env: Annotated[
        str | None,
        typer.Option("-e", "--env", help="Only this environment.", autocompletion=complete.environments),
    ] = None,
) -> None:
    """Alias of ``get applications``."""
    applications(ctx, env)
