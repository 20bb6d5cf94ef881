"""``SandboxServer``: the sandbox cluster as one object to start, point clients at, and stop."""

from __future__ import annotations

import functools
import socket
import ssl
import threading
from importlib import resources as package_files
from pathlib import Path
from typing import Any

from progdel.sandbox import credentials
from progdel.sandbox.apiserver import SandboxHTTPServer
from progdel.sandbox.auth import TokenAuthenticator
from progdel.sandbox.backend import ReplicaBackend
from progdel.sandbox.controllers import DeploymentController
from progdel.sandbox.kubeconfig import SandboxAccess, write_kubeconfig
from progdel.sandbox.lifecycle import CRDCleanupController, NamespaceController
from progdel.sandbox.objects import ApiError, Objects
from progdel.sandbox.proxy import Backend, Backends
from progdel.sandbox.replicas import InstantReplicaBackend
from progdel.sandbox.resources import CRD_KEY, NAMESPACE_KEY, ResourceRegistry, resource_from_crd
from progdel.sandbox.store import Store

DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
SYSTEM_MANAGER = "progdel-sandbox"


class PortInUse(OSError):
    """The requested port is taken by another process."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(f"port {port} on {host} is already in use")
        self.host = host
        self.port = port


@functools.cache
def bundled_crds() -> list[dict[str, Any]]:
    """The CRDs a cluster with Istio, the Gateway API and Flagger has (shipped in ``crds/``).

    Read once per process: treat the result as read-only.
    """
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    out: list[dict[str, Any]] = []
    folder = package_files.files("progdel.kube") / "crds"
    for item in sorted(folder.iterdir(), key=lambda p: p.name):
        if item.name.endswith(".yaml"):
            out.extend(d for d in yaml.load_all(item.read_text(), Loader=loader) if d)
    return out


class SandboxServer:
    """progdel's local Kubernetes API server on SQLite, with its deployment and lifecycle controllers.

    It serves HTTPS with a certificate of its own CA and wants a bearer token on every request
    (see ``credentials.py``); clients get both from the kubeconfig it writes, or from
    ``access``/``http_client()`` in the same process. ``backend`` decides when replicas are
    ready (default: at once, see ``InstantReplicaBackend``); the mesh mode passes a
    process-running one.
    """

    def __init__(
        self,
        data_dir: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        backend: ReplicaBackend | None = None,
        watch_cache_size: int = 10000,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.host = host
        self.port = port
        self.backend: ReplicaBackend = backend if backend is not None else InstantReplicaBackend()
        self.watch_cache_size = watch_cache_size
        self.kubeconfig: Path | None = None
        self.store: Store | None = None
        self.objects: Objects | None = None
        self._httpd: SandboxHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._controller: DeploymentController | None = None
        self._namespaces: NamespaceController | None = None
        self._crd_cleanup: CRDCleanupController | None = None
        self._access: SandboxAccess | None = None
        self.backends = Backends()

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the sandbox server is not started")
        host, port = self._httpd.server_address[:2]
        host_text = host.decode() if isinstance(host, bytes) else str(host)
        return f"https://[{host_text}]:{port}" if ":" in host_text else f"https://{host_text}:{port}"

    @property
    def access(self) -> SandboxAccess:
        """The URL, CA and admin token a client of this server needs (what its kubeconfig holds)."""
        if self._access is None:
            raise RuntimeError("the sandbox server is not started")
        return self._access

    def http_client(self, **kwargs: Any) -> Any:
        """An ``httpx.Client`` for this server (see ``SandboxAccess.http_client``): the admin's,
        ``token=`` another user's, ``anonymous=True`` without credentials."""
        return self.access.http_client(**kwargs)

    def register_backend(
        self, namespace: str, service: str, host: str, port: int, port_name: str = ""
    ) -> None:
        """Put ``host:port`` behind the Service ``namespace/service`` (its port named ``port_name``;
        "": every port) for the service proxy: the one way to reach a loopback address through it."""
        self.backends.register(namespace, service, Backend(host, port, port_name))

    def start(self) -> None:
        """Open the store, install defaults, bind, and serve in a background thread."""
        credentials.make_private(self.data_dir)
        token = credentials.admin_token(self.data_dir)
        cert = credentials.serving_certificate(self.data_dir, self.host)
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.minimum_version = ssl.TLSVersion.TLSv1_2
        tls.load_cert_chain(cert.cert_file, cert.key_file)
        store = Store(self.data_dir / credentials.DATABASE, ring_size=self.watch_cache_size)
        registry = ResourceRegistry()
        objects = Objects(store, registry)
        for entry in store.list(CRD_KEY)[0]:
            registry.add(resource_from_crd(entry.obj))
        self._install_defaults(objects)
        try:
            httpd = SandboxHTTPServer(
                (self.host, self.port),
                objects,
                TokenAuthenticator(token, self.data_dir / credentials.TOKEN_FILE),
                tls,
                # Backends whose replicas have addresses (the mesh mode's processes) list them.
                getattr(self.backend, "endpoints", None),
                self.backends,
            )
        except OSError as err:
            store.close()
            if err.errno in (98, 48):  # EADDRINUSE on Linux, macOS
                raise PortInUse(self.host, self.port) from err
            raise
        self.store, self.objects, self._httpd = store, objects, httpd
        self._access = SandboxAccess(self.url, cert.ca_pem, token)
        self._controller = DeploymentController(objects, self.backend)
        self._controller.start()
        self._namespaces = NamespaceController(objects)
        self._namespaces.start()
        self._crd_cleanup = CRDCleanupController(objects)
        self._crd_cleanup.start()
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="sandbox-apiserver", daemon=True
        )
        self._thread.start()

    def _install_defaults(self, objects: Objects) -> None:
        ns_rt = objects.registry.by_key(NAMESPACE_KEY)
        crd_rt = objects.registry.by_key(CRD_KEY)
        assert ns_rt is not None and crd_rt is not None
        for name in DEFAULT_NAMESPACES:
            if objects.store.get(NAMESPACE_KEY, "", name) is None:
                objects.create(ns_rt, "v1", "", {"metadata": {"name": name}}, SYSTEM_MANAGER)
        for crd in bundled_crds():
            if objects.store.get(CRD_KEY, "", crd["metadata"]["name"]) is None:
                try:
                    objects.create(crd_rt, "v1", "", crd, SYSTEM_MANAGER)
                except ApiError as err:  # a broken bundled CRD is a bug: say which
                    raise RuntimeError(f"bundled CRD {crd['metadata']['name']}: {err.message}") from err

    def write_kubeconfig(self, path: Path | None = None) -> Path:
        target = Path(path) if path is not None else self.data_dir / credentials.KUBECONFIG
        self.kubeconfig = write_kubeconfig(target, self.access)
        return self.kubeconfig

    def counts(self) -> dict[str, int]:
        """Number of stored objects per resource (``deployments.apps``: 3, ...)."""
        if self.objects is None:
            return {}
        out: dict[str, int] = {}
        for rt in self.objects.registry.all():
            n = self.objects.store.count(rt.key)
            if n:
                out[rt.qualified] = n
        return out

    def stop(self) -> None:
        """Stop serving, stop the controller, close the backend and the store."""
        if self._httpd is not None:
            self._httpd.stopping = True
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._crd_cleanup is not None:
            self._crd_cleanup.stop()
        if self._namespaces is not None:
            self._namespaces.stop()
        if self._controller is not None:
            self._controller.stop()
        try:
            self.backend.close()
        finally:
            if self.store is not None:
                self.store.close()
            self._httpd = None
            self._controller = None
            self._namespaces = None
            self._crd_cleanup = None

    def __enter__(self) -> SandboxServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True
