"""``progdel demo``: a canary that promotes and one that rolls back, on this machine."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from progdel.cli.options import OutputFormat, global_options
from progdel.errors import ExitCode, InvalidInput


def demo(
    ctx: typer.Context,
    keep: Annotated[
        bool, typer.Option("--keep", help="Leave the sandbox running afterwards, to explore with kubectl.")
    ] = False,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Where the demo's sandbox keeps its data (default ~/.progdel/demo)."),
    ] = None,
    rate: Annotated[float, typer.Option(help="Requests per second sent through the mesh.")] = 40.0,
    interval: Annotated[str, typer.Option(help="The canary's analysis interval.")] = "3s",
) -> None:
    """Run progdel's main job on this machine: real traffic through a real Envoy, real metrics.

    Starts the sandbox cluster with its data plane, deploys the demo app 1.0.0 behind a
    Flagger-style canary, then releases 1.1.0 (healthy: promoted) and 1.2.0 (20% errors:
    rolled back), showing each step live with the split the mesh actually served. Exits 0
    when both outcomes are as expected; every process it started is stopped at the end
    (also on Ctrl-C) unless --keep.
    """
    from progdel.demo import DemoOptions, run_demo
    from progdel.ui.canary_view import CanaryView
    from progdel.ui.output import emit_line

    opts = global_options(ctx)
    if opts.output in (OutputFormat.json, OutputFormat.yaml):
        raise InvalidInput("the demo streams its progress: use -o ndjson (or the default view)")
    ndjson = opts.output is OutputFormat.ndjson
    ddir = (data_dir or Path.home() / ".progdel" / "demo").expanduser().resolve()

    def say(message: str) -> None:
        if ndjson:
            emit_line({"kind": "info", "message": message})
        else:
            print(f"==> {message}", file=sys.stderr, flush=True)

    demo_opts = DemoOptions(data_dir=ddir, keep=keep, rate=rate, interval=interval)
    with CanaryView("ndjson" if ndjson else "auto") as view:
        result = run_demo(demo_opts, view.show, say)
    if not ndjson:
        for r in result.runs:
            mark = "ok" if r["outcome"] == r["expected"] else "UNEXPECTED"
            print(
                f"{r['version']}: {r['outcome']} in {r['seconds']}s (expected {r['expected']}) {mark}",
                flush=True,
            )
        if keep:
            print(
                f"the sandbox keeps running: export KUBECONFIG={result.kubeconfig}; "
                f"mesh at {result.mesh_url}, Prometheus at {result.prometheus_url}; stop it with "
                f"'progdel sandbox down --data-dir {ddir}'"
            )
    raise typer.Exit(int(ExitCode.OK if result.ok else ExitCode.INTERNAL))
