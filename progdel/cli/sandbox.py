"""``progdel sandbox``: start, stop and inspect the sandbox cluster (a local Kubernetes API server).

The server lives in ``progdel.sandbox``, its process management in
``progdel.sandbox.daemon``; this module parses flags and renders.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from progdel.sandbox import daemon

if TYPE_CHECKING:
    from progdel.sandbox.kubeconfig import SandboxAccess

app = typer.Typer(
    help="Run progdel's sandbox cluster: a local Kubernetes API server that kubectl and progdel can use.",
    no_args_is_help=True,
)

DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Where objects, kubeconfig, pid and log live "
        "(default: $PROGDEL_SANDBOX_DIR or ~/.progdel/sandbox).",
    ),
]


@app.command()
def up(
    port: Annotated[
        int, typer.Option("--port", help="Port to serve HTTPS on, on 127.0.0.1.")
    ] = daemon.DEFAULT_PORT,
    data_dir: DataDirOpt = None,
    detach: Annotated[
        bool, typer.Option("--detach", help="Run in the background and return once ready.")
    ] = False,
    mesh: Annotated[
        bool,
        typer.Option(
            "--mesh",
            help="Also run the data plane: demo-app, podinfo and load tester replicas as processes, "
            "a real Envoy routing Services and following the VirtualServices, and a real Prometheus "
            "with Istio's metrics and the apps' own.",
        ),
    ] = False,
    allow_commands: Annotated[
        bool,
        typer.Option(
            "--allow-commands",
            help="Let the load tester run the commands of Canary webhooks (hey, curl, bash) on this "
            "machine, in a folder of the data dir (with --mesh).",
        ),
    ] = False,
    mesh_port: Annotated[
        int, typer.Option("--mesh-port", help="Envoy's listener (with --mesh).")
    ] = daemon.DEFAULT_MESH_PORT,
    prometheus_port: Annotated[
        int, typer.Option("--prometheus-port", help="Prometheus' port (with --mesh).")
    ] = daemon.DEFAULT_PROMETHEUS_PORT,
) -> None:
    """Start the sandbox cluster and write its kubeconfig.

    In the foreground it serves until Ctrl-C or SIGTERM. With --detach it starts a
    background process (pid and log file in the data dir), waits until it answers
    /readyz, and prints the kubeconfig to use.
    """
    ddir = (data_dir or daemon.default_data_dir()).expanduser().resolve()
    mesh_options: dict[str, Any] = {
        "mesh": mesh,
        "mesh_port": mesh_port,
        "prometheus_port": prometheus_port,
        "allow_commands": allow_commands,
    }
    if not detach:
        daemon.check_can_start(ddir, port, **mesh_options)
        daemon.serve(ddir, port, "127.0.0.1", quiet=False, **mesh_options)
        return
    d = daemon.start_detached(ddir, port, **mesh_options)
    print(f"sandbox cluster running at {d.url} (pid {d.pid}, log {d.log})")
    print(f"kubeconfig: {d.kubeconfig}")
    if d.mesh_url:
        print(f"mesh (Envoy) at {d.mesh_url}, Prometheus at {d.prometheus_url}")
    print(f"export KUBECONFIG={d.kubeconfig}")


@app.command()
def down(data_dir: DataDirOpt = None) -> None:
    """Stop the sandbox cluster started with 'up --detach' (SIGTERM, then wait for it to exit)."""
    ddir = (data_dir or daemon.default_data_dir()).expanduser().resolve()
    pid = daemon.stop_detached(ddir)
    if pid is None:
        print(f"no sandbox is running from {ddir}")
    else:
        print(f"sandbox cluster stopped (pid {pid})")


@app.command()
def status(ctx: typer.Context, data_dir: DataDirOpt = None) -> None:
    """Say whether the sandbox cluster runs, where, with which kubeconfig, and how many objects it holds."""
    from progdel.cli.options import global_options
    from progdel.ui.output import emit

    ddir = (data_dir or daemon.default_data_dir()).expanduser().resolve()
    pid = daemon.read_pid(ddir)
    url = None
    try:
        url = (ddir / daemon.URL_FILE).read_text().strip() or None
    except OSError:
        url = None
    api = daemon.access(ddir) if pid is not None and url is not None else None
    running = api is not None and daemon.ready(api)
    data: dict[str, Any] = {
        "running": running,
        "url": url if running else None,
        "pid": pid if running else None,
        "dataDir": str(ddir),
        "kubeconfig": str(ddir / "kubeconfig") if (ddir / "kubeconfig").exists() else None,
        "mesh": daemon.read_text(ddir / daemon.MESH_FILE) if running else None,
        "prometheus": daemon.read_text(ddir / daemon.PROMETHEUS_FILE) if running else None,
        "objects": _counts(api) if running and api is not None else {},
    }

    def human(d: dict[str, Any]) -> str:
        if not d["running"]:
            return f"sandbox cluster: not running (data dir {d['dataDir']})"
        lines = [f"sandbox cluster: running at {d['url']} (pid {d['pid']})", f"kubeconfig: {d['kubeconfig']}"]
        if d["mesh"]:
            lines.append(f"mesh (Envoy): {d['mesh']}   Prometheus: {d['prometheus']}")
        lines += [f"  {k}: {v}" for k, v in sorted(d["objects"].items())]
        return "\n".join(lines)

    emit(global_options(ctx), data, human)


def _counts(api: SandboxAccess) -> dict[str, int]:
    """Object counts per resource, asked through the API like any client would."""
    out: dict[str, int] = {}
    with api.http_client(timeout=5) as client:
        gvs = ["/api/v1"]
        for g in client.get("/apis").json().get("groups", []):
            gvs.append("/apis/" + g["preferredVersion"]["groupVersion"])
        for gv in gvs:
            for res in client.get(gv).json().get("resources", []):
                if "/" in res["name"] or "list" not in res["verbs"]:
                    continue
                items = client.get(f"{gv}/{res['name']}").json().get("items", [])
                if items:
                    group = gv.split("/")[2] if gv.startswith("/apis/") else ""
                    out[f"{res['name']}.{group}" if group else res["name"]] = len(items)
    return out
