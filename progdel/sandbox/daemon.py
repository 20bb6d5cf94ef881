"""Running the sandbox cluster as a process: in the foreground, or detached in the background.

A detached sandbox keeps a pid file, a log file and its URLs in its data dir,
so that ``progdel sandbox down``/``status`` and ``progdel demo`` find it again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from progdel.errors import ExitCode, InvalidInput, ProgdelError, TimedOut

if TYPE_CHECKING:
    from progdel.sandbox.backend import ReplicaBackend
    from progdel.sandbox.kubeconfig import SandboxAccess
    from progdel.sandbox.server import SandboxServer

DEFAULT_PORT = 8443
PID_FILE = "sandbox.pid"
LOG_FILE = "sandbox.log"
URL_FILE = "sandbox.url"
MESH_FILE = "mesh.url"
PROMETHEUS_FILE = "prometheus.url"
DEFAULT_MESH_PORT = 15080
DEFAULT_PROMETHEUS_PORT = 19090
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


def port_error(port: int) -> InvalidInput:
    return InvalidInput(f"port {port} is already in use; choose another one with --port")


def read_pid(data_dir: Path) -> int | None:
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


def access(data_dir: Path) -> SandboxAccess | None:
    """How to reach the sandbox of ``data_dir``, from the kubeconfig it wrote (None: none yet)."""
    from progdel.sandbox.kubeconfig import SandboxAccess

    try:
        return SandboxAccess.from_kubeconfig(data_dir / "kubeconfig")
    except (OSError, ValueError, KeyError, AttributeError):
        return None


def ready(api: SandboxAccess, timeout: float = 1.0) -> bool:
    import httpx

    try:
        with api.http_client(timeout=timeout) as client:
            return client.get("/readyz").text == "ok"
    except (httpx.HTTPError, OSError):
        return False


def serve_main(argv: list[str]) -> int:
    """Foreground serving loop shared by ``sandbox up`` and ``python -m progdel.sandbox``."""
    import argparse

    parser = argparse.ArgumentParser(prog="progdel-sandbox")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--data-dir", type=Path, default=default_data_dir())
    parser.add_argument("--mesh", action="store_true")
    parser.add_argument("--mesh-port", type=int, default=DEFAULT_MESH_PORT)
    parser.add_argument("--prometheus-port", type=int, default=DEFAULT_PROMETHEUS_PORT)
    parser.add_argument("--allow-commands", action="store_true")
    args = parser.parse_args(argv)
    try:
        serve(
            args.data_dir,
            args.port,
            args.host,
            quiet=False,
            mesh=args.mesh,
            mesh_port=args.mesh_port,
            prometheus_port=args.prometheus_port,
            allow_commands=args.allow_commands,
        )
    except ProgdelError as err:
        print(f"error: {err}", file=sys.stderr)
        return int(err.exit_code)
    return 0


def register_prometheus(server: SandboxServer, kubeconfig: Path, local_url: str) -> None:
    """Make the data plane's Prometheus the Service progdel's default Prometheus URL names
    (``prometheus.istio-system:9090``, where the prometheus addon puts it): a Service without a
    selector, written through the API, whose backend the sandbox registers itself (its service
    proxy goes to no loopback address it did not register). The default URL then works against
    the sandbox, through the API server's service proxy."""
    from progdel.kube.client import connect
    from progdel.kube.resources import NAMESPACES, SERVICES
    from progdel.metrics.prometheus import DEFAULT_PROMETHEUS_URL, service_address

    address = service_address(DEFAULT_PROMETHEUS_URL)
    assert address is not None
    kube = connect(str(kubeconfig), None, address.namespace)
    if kube.get_or_none(NAMESPACES, address.namespace) is None:
        kube.create(NAMESPACES, {"metadata": {"name": address.namespace}})
    meta = {"name": address.service, "namespace": address.namespace}
    service = {"metadata": meta, "spec": {"ports": [{"name": "http", "port": address.port}]}}
    kube.apply(SERVICES, service, force=True)
    port = int(local_url.rsplit(":", 1)[1])
    server.register_backend(address.namespace, address.service, "127.0.0.1", port, "http")


def serve(
    data_dir: Path,
    port: int,
    host: str,
    quiet: bool,
    *,
    mesh: bool = False,
    mesh_port: int = DEFAULT_MESH_PORT,
    prometheus_port: int = DEFAULT_PROMETHEUS_PORT,
    allow_commands: bool = False,
) -> None:
    from progdel.sandbox.server import PortInUse

    plane = None
    if mesh:
        from progdel.sandbox.dataplane import DataPlane

        plane = DataPlane(
            data_dir / "dataplane",
            mesh_port=mesh_port,
            prometheus_port=prometheus_port,
            allow_commands=allow_commands,
        )
    server = build_server(data_dir, port, host, backend=plane.backend if plane else None)
    try:
        server.start()
    except PortInUse as err:
        raise port_error(port) from err
    if plane is not None:
        try:
            plane.start(server.access)
        except BaseException:
            server.stop()
            raise
        (data_dir / MESH_FILE).write_text(plane.mesh_url)
        (data_dir / PROMETHEUS_FILE).write_text(plane.prometheus_url or "")
    kubeconfig = server.write_kubeconfig()
    if plane is not None and plane.prometheus_url:
        register_prometheus(server, kubeconfig, plane.prometheus_url)
    (data_dir / URL_FILE).write_text(server.url)
    (data_dir / PID_FILE).write_text(str(os.getpid()))
    done = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"sandbox cluster serving at {server.url}", flush=True)
    print(f"kubeconfig: {kubeconfig}", flush=True)
    if plane is not None:
        print(f"mesh (Envoy) at {plane.mesh_url}, Prometheus at {plane.prometheus_url}", flush=True)
        if allow_commands:
            print(
                f"the load tester runs webhook commands in {data_dir / 'dataplane' / 'commands'}", flush=True
            )
    if not quiet:
        print(f"export KUBECONFIG={kubeconfig}", flush=True)
    try:
        while not done.wait(0.5):
            pass
    finally:
        if plane is not None:
            plane.stop()
        server.stop()
        for name in (PID_FILE, URL_FILE, MESH_FILE, PROMETHEUS_FILE):
            (data_dir / name).unlink(missing_ok=True)
        print("sandbox cluster stopped", flush=True)


def check_can_start(
    ddir: Path,
    port: int,
    *,
    mesh: bool = False,
    mesh_port: int = DEFAULT_MESH_PORT,
    prometheus_port: int = DEFAULT_PROMETHEUS_PORT,
    allow_commands: bool = False,
) -> None:
    """Refuse early, in one line, when a sandbox already runs from ``ddir`` or a port is taken."""
    from progdel.sandbox.server import port_free

    if allow_commands and not mesh:
        raise InvalidInput("--allow-commands needs --mesh: only the mesh's load tester runs commands")

    running = read_pid(ddir)
    if running is not None:
        raise InvalidInput(
            f"a sandbox is already running from {ddir} (pid {running}); stop it with 'progdel sandbox down'"
        )
    if not port_free("127.0.0.1", port):
        raise port_error(port)
    if mesh:
        from progdel.sandbox.dataplane import check_port_free

        check_port_free(mesh_port, "mesh")
        check_port_free(prometheus_port, "prometheus")


@dataclass
class Detached:
    url: str
    pid: int
    kubeconfig: Path
    log: Path
    mesh_url: str | None = None
    prometheus_url: str | None = None


def start_detached(
    ddir: Path,
    port: int,
    *,
    mesh: bool = False,
    mesh_port: int = DEFAULT_MESH_PORT,
    prometheus_port: int = DEFAULT_PROMETHEUS_PORT,
    allow_commands: bool = False,
) -> Detached:
    """Start the sandbox in a background process and return once it answers /readyz."""
    check_can_start(
        ddir,
        port,
        mesh=mesh,
        mesh_port=mesh_port,
        prometheus_port=prometheus_port,
        allow_commands=allow_commands,
    )
    ddir.mkdir(mode=0o700, parents=True, exist_ok=True)
    log_path = ddir / LOG_FILE
    (ddir / URL_FILE).unlink(missing_ok=True)
    argv = [sys.executable, "-m", "progdel.sandbox", "--port", str(port), "--data-dir", str(ddir)]
    if mesh:
        argv += ["--mesh", "--mesh-port", str(mesh_port), "--prometheus-port", str(prometheus_port)]
    if allow_commands:
        argv.append("--allow-commands")
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            if proc.returncode == int(ExitCode.INVALID_INPUT):
                raise ProgdelError(
                    f"the sandbox could not start: {_last_error(log_path)}", ExitCode.INVALID_INPUT
                )
            raise ProgdelError(f"the sandbox exited with code {proc.returncode}; see {log_path}")
        api = access(ddir) if (ddir / URL_FILE).exists() else None
        if api is not None and ready(api, 0.5):
            break
        time.sleep(0.1)
    else:
        proc.terminate()
        raise TimedOut(f"the sandbox did not become ready within {READY_TIMEOUT:.0f}s; see {log_path}")
    assert api is not None
    return Detached(
        url=api.url,
        pid=proc.pid,
        kubeconfig=ddir / "kubeconfig",
        log=log_path,
        mesh_url=read_text(ddir / MESH_FILE),
        prometheus_url=read_text(ddir / PROMETHEUS_FILE),
    )


def _last_error(log_path: Path) -> str:
    lines = [ln for ln in read_text(log_path, "").splitlines() if ln.startswith("error:")]
    return lines[-1].removeprefix("error:").strip() if lines else f"see {log_path}"


def stop_detached(ddir: Path, timeout: float = 15) -> int | None:
    """Stop a detached sandbox (SIGTERM, then wait); its pid, or None when none was running."""
    pid = read_pid(ddir)
    if pid is None:
        return None
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _exited(pid):
            break
        time.sleep(0.1)
    else:
        raise TimedOut(f"the sandbox (pid {pid}) did not stop within {timeout:.0f}s; see {ddir / LOG_FILE}")
    (ddir / PID_FILE).unlink(missing_ok=True)
    return pid


def _exited(pid: int) -> bool:
    """Whether ``pid`` is gone; reaps it when it is our own child (as after ``progdel demo``)."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return True
    except ChildProcessError:
        pass  # not our child: another process started it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def read_text(path: Path, default: Any = None) -> Any:
    try:
        return path.read_text().strip() or default
    except OSError:
        return default
