"""``progdel sandbox``: start, stop and inspect the sandbox cluster (a local Kubernetes API server).

The server itself lives in ``progdel.sandbox``; this module only parses flags,
manages the detached process (pid file and log file in the data dir) and
renders. ``build_server`` is the one place that turns CLI options into a
``SandboxServer``, so a later ``--mesh`` flag only has to choose another
``ReplicaBackend`` there.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from progdel.errors import ExitCode, InvalidInput, ProgdelError, TimedOut

if TYPE_CHECKING:
    from progdel.sandbox.backend import ReplicaBackend
    from progdel.sandbox.server import SandboxServer

app = typer.Typer(
    help="Run progdel's sandbox cluster: a local Kubernetes API server that kubectl and progdel can use.",
    no_args_is_help=True,
)

DEFAULT_PORT = 8443
PID_FILE = "sandbox.pid"
LOG_FILE = "sandbox.log"
URL_FILE = "sandbox.url"
READY_TIMEOUT = 20.0


def default_data_dir() -> Path:
    env = os.environ.get("PROGDEL_SANDBOX_DIR")
    return Path(env).expanduser() if env else Path.home() / ".progdel" / "sandbox"


def build_server(
    data_dir: Path, port: int, host: str = "127.0.0.1", backend: ReplicaBackend | None = None
) -> SandboxServer:
    """The server the CLI options describe; a mesh mode passes its own ``backend``."""
    from progdel.sandbox.server import SandboxServer

    return SandboxServer(data_dir, host=host, port=port, backend=backend)


def _port_error(port: int) -> InvalidInput:
    return InvalidInput(f"port {port} is already in use; choose another one with --port")


def _read_pid(data_dir: Path) -> int | None:
    try:
        pid = int((data_dir / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


def _ready(url: str, timeout: float = 1.0) -> bool:
    import httpx

    try:
        return httpx.get(f"{url}/readyz", timeout=timeout).text == "ok"
    except httpx.HTTPError:
        return False


def serve_main(argv: list[str]) -> int:
    """Foreground serving loop shared by ``sandbox up`` and ``python -m progdel.sandbox``."""
    import argparse

    parser = argparse.ArgumentParser(prog="progdel-sandbox")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--data-dir", type=Path, default=default_data_dir())
    args = parser.parse_args(argv)
    try:
        _serve(args.data_dir, args.port, args.host, quiet=False)
    except ProgdelError as err:
        print(f"error: {err}", file=sys.stderr)
        return int(err.exit_code)
    return 0


def _serve(data_dir: Path, port: int, host: str, quiet: bool) -> None:
    from progdel.sandbox.server import PortInUse

    server = build_server(data_dir, port, host)
    try:
        server.start()
    except PortInUse as err:
        raise _port_error(port) from err
    kubeconfig = server.write_kubeconfig()
    (data_dir / URL_FILE).write_text(server.url)
    (data_dir / PID_FILE).write_text(str(os.getpid()))
    done = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"sandbox cluster serving at {server.url}", flush=True)
    print(f"kubeconfig: {kubeconfig}", flush=True)
    if not quiet:
        print(f"export KUBECONFIG={kubeconfig}", flush=True)
    try:
        while not done.wait(0.5):
            pass
    finally:
        server.stop()
        for name in (PID_FILE, URL_FILE):
            (data_dir / name).unlink(missing_ok=True)
        print("sandbox cluster stopped", flush=True)


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
        int, typer.Option("--port", help="Port to serve on (plain HTTP on 127.0.0.1).")
    ] = DEFAULT_PORT,
    data_dir: DataDirOpt = None,
    detach: Annotated[
        bool, typer.Option("--detach", help="Run in the background and return once ready.")
    ] = False,
) -> None:
    """Start the sandbox cluster and write its kubeconfig.

    In the foreground it serves until Ctrl-C or SIGTERM. With --detach it starts a
    background process (pid and log file in the data dir), waits until it answers
    /readyz, and prints the kubeconfig to use.
    """
    from progdel.sandbox.server import port_free

    ddir = (data_dir or default_data_dir()).expanduser().resolve()
    running = _read_pid(ddir)
    if running is not None:
        raise InvalidInput(
            f"a sandbox is already running from {ddir} (pid {running}); stop it with 'progdel sandbox down'"
        )
    if not port_free("127.0.0.1", port):
        raise _port_error(port)
    if not detach:
        _serve(ddir, port, "127.0.0.1", quiet=False)
        return
    ddir.mkdir(parents=True, exist_ok=True)
    log_path = ddir / LOG_FILE
    (ddir / URL_FILE).unlink(missing_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "progdel.sandbox", "--port", str(port), "--data-dir", str(ddir)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            if proc.returncode == int(ExitCode.INVALID_INPUT):
                raise _port_error(port)
            raise ProgdelError(f"the sandbox exited with code {proc.returncode}; see {log_path}")
        if (ddir / URL_FILE).exists() and _ready(url, 0.5):
            break
        time.sleep(0.1)
    else:
        proc.terminate()
        raise TimedOut(f"the sandbox did not become ready within {READY_TIMEOUT:.0f}s; see {log_path}")
    kubeconfig = ddir / "kubeconfig"
    print(f"sandbox cluster running at {url} (pid {proc.pid}, log {log_path})")
    print(f"kubeconfig: {kubeconfig}")
    print(f"export KUBECONFIG={kubeconfig}")


@app.command()
def down(data_dir: DataDirOpt = None) -> None:
    """Stop the sandbox cluster started with 'up --detach' (SIGTERM, then wait for it to exit)."""
    ddir = (data_dir or default_data_dir()).expanduser().resolve()
    pid = _read_pid(ddir)
    if pid is None:
        print(f"no sandbox is running from {ddir}")
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if _read_pid(ddir) is None:
            break
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        raise TimedOut(f"the sandbox (pid {pid}) did not stop within 15s; see {ddir / LOG_FILE}")
    (ddir / PID_FILE).unlink(missing_ok=True)
    print(f"sandbox cluster stopped (pid {pid})")


@app.command()
def status(ctx: typer.Context, data_dir: DataDirOpt = None) -> None:
    """Say whether the sandbox cluster runs, where, with which kubeconfig, and how many objects it holds."""
    from progdel.cli.options import global_options
    from progdel.ui.output import emit

    ddir = (data_dir or default_data_dir()).expanduser().resolve()
    pid = _read_pid(ddir)
    url = None
    try:
        url = (ddir / URL_FILE).read_text().strip() or None
    except OSError:
        url = None
    running = pid is not None and url is not None and _ready(url)
    data: dict[str, Any] = {
        "running": running,
        "url": url if running else None,
        "pid": pid if running else None,
        "dataDir": str(ddir),
        "kubeconfig": str(ddir / "kubeconfig") if (ddir / "kubeconfig").exists() else None,
        "objects": _counts(url) if running and url else {},
    }

    def human(d: dict[str, Any]) -> str:
        if not d["running"]:
            return f"sandbox cluster: not running (data dir {d['dataDir']})"
        lines = [f"sandbox cluster: running at {d['url']} (pid {d['pid']})", f"kubeconfig: {d['kubeconfig']}"]
        lines += [f"  {k}: {v}" for k, v in sorted(d["objects"].items())]
        return "\n".join(lines)

    emit(global_options(ctx), data, human)


def _counts(url: str) -> dict[str, int]:
    """Object counts per resource, asked through the API like any client would."""
    import httpx

    out: dict[str, int] = {}
    with httpx.Client(base_url=url, timeout=5) as client:
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
