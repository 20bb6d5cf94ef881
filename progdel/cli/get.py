"""``progdel get``: what runs where, as ``kubectl get`` shows objects."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from progdel.cli import complete
from progdel.cli.options import connect, global_options

app = typer.Typer(help="Show what runs in the environments.", no_args_is_help=True)


@app.command("applications")
def applications(
    ctx: typer.Context,
    env: Annotated[
        str | None,
        typer.Option(
            "-e", "--env", help="Only this environment's columns.", autocompletion=complete.environments
        ),
    ] = None,
) -> None:
    """One row per app: per environment (in order) its version, ready/desired pods and URL.

    In an environment that promotes through a canary, the version shown is the one that serves
    (the -primary Deployment's), not the candidate's.
    """
    from progdel.config.project import load_project
    from progdel.promote.inventory import applications as read_applications
    from progdel.ui.output import emit, table

    opts = global_options(ctx)
    project = load_project(opts.config, Path.cwd())
    envs = [project.environment(env)] if env else project.ordered_environments()
    kube = connect(opts)
    rows = [
        {"name": inv.app.name, "environments": {p.environment: p.to_dict() for p in inv.placements}}
        for inv in read_applications(kube, project, env)
    ]

    def human(rs: list[dict[str, Any]]) -> Any:
        columns = ["application"]
        for e in envs:
            columns += [e.name, "pods", "url"]
        body = []
        for r in rs:
            line: list[Any] = [r["name"]]
            for e in envs:
                p = r["environments"][e.name]
                line += [p["version"] or "", p["pods"], p["url"] or ""]
            body.append(line)
        return table(columns, body)

    emit(opts, rows, human)


@app.command("application", hidden=True)
def application(
    ctx: typer.Context,
    env: Annotated[
        str | None,
        typer.Option(
            "-e", "--env", help="Only this environment's columns.", autocompletion=complete.environments
        ),
    ] = None,
) -> None:
    """Alias of ``get applications``."""
    applications(ctx, env)
