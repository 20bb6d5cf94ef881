"""The sandbox data plane: demo replicas as processes, a real Envoy mesh and a real Prometheus.

``progdel sandbox up --mesh`` and ``progdel demo`` use it so that a canary in the sandbox
moves real traffic and is judged on real metrics::

    plane = DataPlane(data_dir)
    server = SandboxServer(data_dir, host, port, backend=plane.backend)
    server.start()
    plane.start(server.access)       # Envoy + config sync + Prometheus
    ...                              # plane.mesh_url, plane.prometheus_url
    plane.stop(); server.stop()

The mesh reads the API server over its REST interface like any other client; nothing here
reaches into the sandbox's internals. Every process the data plane starts ends on
``stop()``, at interpreter exit, and (through ``PR_SET_PDEATHSIG``) when the parent is killed.
"""

from __future__ import annotations

import atexit
import errno
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

from progdel.errors import ExitCode, ProgdelError
from progdel.sandbox.images import LaunchContext
from progdel.sandbox.kubeconfig import SandboxAccess
from progdel.sandbox.loadgen import LoadGenerator
from progdel.sandbox.mesh import Envoy, MeshSync
from progdel.sandbox.processes import ProcessReplicaBackend, free_port
from progdel.sandbox.prometheus import PrometheusServer


def check_port_free(port: int, what: str) -> None:
    """Raise a one-line error naming ``port`` when something already listens on it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ProgdelError(
                    f"port {port} on 127.0.0.1 ({what}) is already in use; choose another port",
                    ExitCode.INVALID_INPUT,
                ) from None
            raise


class DataPlane:
    """Process replicas + Envoy mesh + Prometheus for one sandbox cluster.

    Ports of 0 are picked free. ``prometheus=False`` skips the metrics store (faster to start,
    for callers that only need traffic). ``allow_commands`` lets the load tester run the
    commands of Canary webhooks (in ``<data dir>/commands``, through the mesh).
    """

    def __init__(
        self,
        data_dir: str | Path | None = None,
        *,
        mesh_port: int = 0,
        admin_port: int = 0,
        prometheus_port: int = 0,
        prometheus: bool = True,
        debounce: float = 0.05,
        allow_commands: bool = False,
    ) -> None:
        self._tmp = None if data_dir is not None else tempfile.mkdtemp(prefix="progdel-dataplane-")
        self.data_dir = Path(data_dir if data_dir is not None else self._tmp)  # type: ignore[arg-type]
        self.requested_ports = {"mesh": mesh_port, "envoy admin": admin_port, "prometheus": prometheus_port}
        # The mesh port is known before any replica starts: the load tester's commands use it.
        self._mesh_port = mesh_port or free_port()
        self.with_prometheus = prometheus
        self.debounce = debounce
        context = LaunchContext(
            python=sys.executable,
            mesh_proxy=f"http://127.0.0.1:{self._mesh_port}",
            allow_commands=allow_commands,
            work_dir=self.data_dir / "commands",
        )
        self.backend = ProcessReplicaBackend(log_dir=self.data_dir / "pods", context=context)
        self.envoy: Envoy | None = None
        self.sync: MeshSync | None = None
        self.prometheus: PrometheusServer | None = None
        self._started = False

    # Lifecycle ----------------------------------------------------------------------------

    def start(self, api: SandboxAccess) -> DataPlane:
        """Start Envoy, its sync with the API server ``api`` reaches, and Prometheus."""
        ports: dict[str, int] = {}
        for what, port in self.requested_ports.items():
            if port:
                check_port_free(port, what)
            ports[what] = port or free_port()
        ports["mesh"] = self._mesh_port
        atexit.register(self.stop)
        self._started = True
        try:
            self.envoy = Envoy(self.data_dir / "mesh", ports["mesh"], ports["envoy admin"])
            self.envoy.start()
            self.sync = MeshSync(self.envoy, api, self.backend.endpoints, debounce=self.debounce)
            self.backend.add_listener(self.sync.poke)
            self.sync.start()
            if self.with_prometheus:
                self.prometheus = PrometheusServer(
                    self.data_dir / "prometheus", ports["prometheus"], f"127.0.0.1:{ports['envoy admin']}"
                )
                self.prometheus.write_pod_targets(self.backend.endpoints())
                self.prometheus.start()
                self.backend.add_listener(self._scrape_pods)
        except BaseException:
            self.stop()
            raise
        return self

    def _scrape_pods(self) -> None:
        if self.prometheus is not None:
            self.prometheus.write_pod_targets(self.backend.endpoints())

    def stop(self) -> None:
        """Stop everything this data plane started (idempotent)."""
        if self.sync is not None:
            self.sync.stop()
        if self.prometheus is not None:
            self.prometheus.stop()
        if self.envoy is not None:
            self.envoy.stop()
        self.backend.close()
        if self._started:
            atexit.unregister(self.stop)
            self._started = False
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> DataPlane:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # Addresses ----------------------------------------------------------------------------

    @property
    def mesh_port(self) -> int:
        assert self.envoy is not None, "DataPlane.start() first"
        return self.envoy.mesh_port

    @property
    def mesh_url(self) -> str:
        return f"http://127.0.0.1:{self.mesh_port}"

    @property
    def envoy_admin_url(self) -> str:
        assert self.envoy is not None, "DataPlane.start() first"
        return self.envoy.admin_url

    @property
    def prometheus_url(self) -> str | None:
        return self.prometheus.url if self.prometheus is not None else None

    def pids(self) -> list[int]:
        """Every live process this data plane started (replicas, Envoy, Prometheus)."""
        pids = self.backend.pids()
        procs = (self.envoy.proc if self.envoy else None, self.prometheus.proc if self.prometheus else None)
        for proc in procs:
            if proc is not None and proc.poll() is None:
                pids.append(proc.pid)
        return pids

    # Traffic ------------------------------------------------------------------------------

    def wait_synced(self, timeout: float = 5.0) -> bool:
        """Wait until the mesh has applied a render that started after this call."""
        assert self.sync is not None, "DataPlane.start() first"
        generation = self.sync.generation
        self.sync.poke()
        return self.sync.wait_generation(generation, timeout)

    def load(self, host: str, rate: float = 50.0, duration: float = 60.0) -> LoadGenerator:
        """A started load generator calling ``host`` through the mesh."""
        return LoadGenerator(self.mesh_url, host, rate=rate, duration=duration).start()

    def served_split(self, host: str, seconds: float = 1.0, rate: float = 200.0) -> dict[str, int]:
        """Send ``seconds`` of traffic to ``host`` now; the answers per version and the errors."""
        gen = LoadGenerator(self.mesh_url, host, rate=rate, duration=seconds)
        since = time.monotonic()
        gen.start().wait()
        return gen.served_since(since)
