"""The services/proxy subresource and core/v1 Endpoints: reaching a backend through the API server.

Each test that needs a backend starts a small echo server on loopback, writes a selector-less
Service through the API and registers the echo server as its backend with the sandbox, the
one way a loopback address becomes reachable through the proxy (an Endpoints object cannot
name one, as on a real cluster). The attack this guards against is tested last.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from progdel.sandbox import proxy
from progdel.sandbox.backend import ReplicaSetKey
from progdel.sandbox.credentials import TOKEN_FILE
from progdel.sandbox.objects import ApiError
from progdel.sandbox.processes import Endpoint, free_port
from progdel.sandbox.rbac import Attributes, request_attributes
from progdel.sandbox.replicas import InstantReplicaBackend
from progdel.sandbox.server import SandboxServer

RBAC_API = "/apis/rbac.authorization.k8s.io/v1"


class EchoHandler(BaseHTTPRequestHandler):
    """Answers every request with what it received, as JSON; ``/redirect`` answers a 302."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", "/target?from=redirect")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path, _, query = self.path.partition("?")
        out = json.dumps(
            {
                "method": self.command,
                "path": path,
                "query": query,
                "echo": self.headers.get("X-Echo"),
                "authorization": self.headers.get("Authorization"),
                "host": self.headers.get("Host"),
                "body": body.decode(),
            }
        ).encode()
        self.send_response(201 if self.command == "POST" else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Backend", "echo")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _answer


@pytest.fixture(scope="module")
def echo() -> Iterator[int]:
    """The port of a running echo server on 127.0.0.1."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), EchoHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


@pytest.fixture
def admin(sandbox: SandboxServer) -> Iterator[httpx.Client]:
    with sandbox.http_client() as c:
        yield c


def service(name: str, ports: list[dict[str, Any]], selector: dict[str, str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"ports": ports}
    if selector:
        spec["selector"] = selector
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


def endpoints(name: str, ip: str, ports: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": name},
        "subsets": [{"addresses": [{"ip": ip}], "ports": ports}],
    }


def create(client: httpx.Client, namespace: str, plural: str, obj: dict[str, Any]) -> dict[str, Any]:
    r = client.post(f"/api/v1/namespaces/{namespace}/{plural}", json=obj)
    assert r.status_code == 201, r.text
    return dict(r.json())


@pytest.fixture
def external_service(sandbox: SandboxServer, admin: httpx.Client):  # type: ignore[no-untyped-def]
    """Makes a selector-less Service on port 80 (named ``http``) whose backend, registered with the
    sandbox, is 127.0.0.1:PORT."""

    def make(namespace: str, name: str, backend_port: int) -> None:
        create(admin, namespace, "services", service(name, [{"name": "http", "port": 80}]))
        sandbox.register_backend(namespace, name, "127.0.0.1", backend_port, "http")

    return make


def status_of(r: httpx.Response) -> tuple[int, str, str]:
    body = r.json()
    assert body["kind"] == "Status" and body["code"] == r.status_code
    return r.status_code, body["reason"], body["message"]


# ---- Endpoints as a resource ------------------------------------------------------------------
def test_endpoints_are_served_and_listed_in_discovery(admin: httpx.Client, namespace: str) -> None:
    created = create(admin, namespace, "endpoints", endpoints("db", "10.0.0.7", [{"port": 5432}]))
    assert created["kind"] == "Endpoints"
    assert created["subsets"][0]["ports"] == [{"port": 5432, "protocol": "TCP"}]
    got = admin.get(f"/api/v1/namespaces/{namespace}/endpoints/db").json()
    assert got["subsets"][0]["addresses"] == [{"ip": "10.0.0.7"}]

    resources = {r["name"]: r for r in admin.get("/api/v1").json()["resources"]}
    assert resources["endpoints"]["shortNames"] == ["ep"]
    assert resources["endpoints"]["namespaced"] is True
    assert resources["services/proxy"]["kind"] == "ServiceProxyOptions"
    assert set(resources["services/proxy"]["verbs"]) == {"create", "delete", "get", "patch", "update"}


def test_kubectl_gets_endpoints(sandbox: SandboxServer, admin: httpx.Client, namespace: str) -> None:
    exe = shutil.which("kubectl")
    if exe is None:
        pytest.skip("kubectl is not on PATH")
    create(admin, namespace, "endpoints", endpoints("db", "10.0.0.7", [{"port": 5432}]))
    out = subprocess.run(
        [exe, "--kubeconfig", str(sandbox.kubeconfig), "-n", namespace, "get", "ep"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[:3] == ["NAME", "ENDPOINTS", "AGE"]
    assert out.stdout.split()[3:5] == ["db", "10.0.0.7:5432"]


# ---- proxying, through each client --------------------------------------------------------------
def test_get_and_post_through_the_proxy_with_httpx(
    external_service: Any, admin: httpx.Client, namespace: str, echo: int
) -> None:
    external_service(namespace, "web", echo)
    base = f"/api/v1/namespaces/{namespace}/services/web:80/proxy"

    r = admin.get(
        f"{base}/some/path?x=1&y=a%20b",
        headers={"X-Echo": "hello"},  # the client sends its bearer token too
    )
    assert r.status_code == 200, r.text
    assert r.headers["x-backend"] == "echo" and r.headers["content-type"] == "application/json"
    seen = r.json()
    assert seen["method"] == "GET" and seen["path"] == "/some/path" and seen["query"] == "x=1&y=a%20b"
    assert seen["echo"] == "hello"
    assert seen["authorization"] is None  # the API server's credentials stay with it
    assert seen["host"] == f"127.0.0.1:{echo}"

    r = admin.post(f"{base}/submit", content=b'{"a": 1}', headers={"Content-Type": "application/json"})
    assert r.status_code == 201
    assert r.json()["method"] == "POST" and r.json()["body"] == '{"a": 1}'

    for method in ("PUT", "PATCH", "DELETE"):
        r = admin.request(method, f"{base}/x", content=b"data")
        assert r.status_code == 200 and r.json()["method"] == method and r.json()["body"] == "data"

    r = admin.head(f"{base}/x")
    assert r.status_code == 200 and r.content == b"" and int(r.headers["content-length"]) > 0


def test_every_form_of_the_service_reference(
    external_service: Any, admin: httpx.Client, namespace: str, echo: int
) -> None:
    external_service(namespace, "web", echo)
    for ref in ("web", "web:80", "web:http", "http:web:80", "http:web:", "web%3Ahttp"):
        r = admin.get(f"/api/v1/namespaces/{namespace}/services/{ref}/proxy")
        assert r.status_code == 200, (ref, r.text)
        assert r.json()["path"] == "/"
    r = admin.get(f"/api/v1/namespaces/{namespace}/services/web/proxy/dir/")
    assert r.json()["path"] == "/dir/"
    r = admin.get(f"/api/v1/namespaces/{namespace}/services/web/proxy/a%2Fb%20c")
    assert r.json()["path"] == "/a/b%20c"  # decoded, then escaped again, as a real API server does


def test_redirects_from_the_backend_stay_behind_the_proxy(
    external_service: Any, admin: httpx.Client, namespace: str, echo: int
) -> None:
    external_service(namespace, "web", echo)
    r = admin.get(f"/api/v1/namespaces/{namespace}/services/web:80/proxy/redirect")
    assert r.status_code == 302
    assert r.headers["location"] == (
        f"/api/v1/namespaces/{namespace}/services/web:80/proxy/target?from=redirect"
    )


def test_the_kubernetes_python_client(
    external_service: Any, api_client: Any, admin: httpx.Client, namespace: str, echo: int
) -> None:
    from kubernetes import client

    external_service(namespace, "web", echo)
    core = client.CoreV1Api(api_client)
    text = core.connect_get_namespaced_service_proxy_with_path("web:http", namespace, "api/v1/query")
    # The generated client parses the JSON body and hands it back as a string of its repr.
    assert "'path': '/api/v1/query'" in text and "'method': 'GET'" in text

    for method, body in (("GET", None), ("POST", {"q": "up"})):
        params = api_client.param_serialize(
            method=method,
            resource_path="/api/v1/namespaces/{namespace}/services/{name}/proxy/{path}",
            path_params={"namespace": namespace, "name": "web:80", "path": "some/path"},
            query_params=[("x", "1")],
            header_params={"X-Echo": "from-python", "Content-Type": "application/json"},
            body=body,
            auth_settings=["BearerToken"],
        )
        response = api_client.call_api(*params)
        response.read()
        assert response.status == (201 if method == "POST" else 200)
        seen = json.loads(response.data)
        assert (seen["method"], seen["path"], seen["query"]) == (method, "/some/path", "x=1")
        assert seen["echo"] == "from-python"
        assert seen["body"] == ("" if body is None else json.dumps(body))


def test_kubectl_get_raw_and_create_raw(
    external_service: Any,
    sandbox: SandboxServer,
    admin: httpx.Client,
    namespace: str,
    echo: int,
    tmp_path: Path,
) -> None:
    exe = shutil.which("kubectl")
    if exe is None:
        pytest.skip("kubectl is not on PATH")
    external_service(namespace, "prometheus", echo)
    url = f"/api/v1/namespaces/{namespace}/services/prometheus:80/proxy/api/v1/query?query=up"

    def kubectl(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [exe, "--kubeconfig", str(sandbox.kubeconfig), *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30)

    out = kubectl("get", "--raw", url)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    assert (seen["method"], seen["path"], seen["query"]) == ("GET", "/api/v1/query", "query=up")

    body = tmp_path / "body.json"
    body.write_text('{"hello": "world"}')
    out = kubectl("create", "--raw", url, "-f", str(body))
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    assert seen["method"] == "POST" and json.loads(seen["body"]) == {"hello": "world"}

    out = kubectl("get", "--raw", f"/api/v1/namespaces/{namespace}/services/missing/proxy/")
    assert out.returncode == 1
    assert 'services "missing" not found' in out.stderr


# ---- errors ---------------------------------------------------------------------------------
def test_unknown_service_is_404(admin: httpx.Client, namespace: str) -> None:
    r = admin.get(f"/api/v1/namespaces/{namespace}/services/nope:80/proxy/x")
    assert status_of(r) == (404, "NotFound", 'services "nope" not found')
    assert r.json()["details"] == {"name": "nope", "kind": "services"}


def test_service_without_endpoints_is_503(admin: httpx.Client, namespace: str) -> None:
    create(admin, namespace, "services", service("lonely", [{"port": 80}]))
    create(admin, namespace, "services", service("selected", [{"port": 80}], {"app": "nothing-runs"}))
    for name in ("lonely", "selected"):
        r = admin.get(f"/api/v1/namespaces/{namespace}/services/{name}/proxy/")
        assert status_of(r) == (503, "ServiceUnavailable", f'no endpoints available for service "{name}"')


def test_unknown_port_and_bad_references(
    external_service: Any, admin: httpx.Client, namespace: str, echo: int
) -> None:
    external_service(namespace, "web", echo)
    r = admin.get(f"/api/v1/namespaces/{namespace}/services/web:8080/proxy/")
    assert status_of(r) == (503, "ServiceUnavailable", 'no service port "8080" found for service "web"')
    r = admin.get(f"/api/v1/namespaces/{namespace}/services/ftp:web:80/proxy/")
    assert status_of(r) == (400, "BadRequest", 'invalid service request "ftp:web:80"')
    r = admin.get("/api/v1/services/web/proxy/")
    assert r.status_code == 404


def test_backend_down_is_503(external_service: Any, admin: httpx.Client, namespace: str) -> None:
    port = free_port()  # nothing listens there once free_port has closed its socket
    external_service(namespace, "down", port)
    r = admin.get(f"/api/v1/namespaces/{namespace}/services/down:80/proxy/")
    code, reason, message = status_of(r)
    assert (code, reason) == (503, "ServiceUnavailable")
    assert message.startswith(f"error trying to reach service: http://127.0.0.1:{port}: ")
    assert "refused" in message.lower()


def test_https_scheme_speaks_tls_to_the_backend(
    external_service: Any, admin: httpx.Client, namespace: str, echo: int
) -> None:
    external_service(namespace, "web", echo)
    r = admin.get(f"/api/v1/namespaces/{namespace}/services/https:web:80/proxy/")
    code, reason, message = status_of(r)  # the echo server speaks plain HTTP: the handshake fails
    assert (code, reason) == (503, "ServiceUnavailable")
    assert message.startswith(f"error trying to reach service: https://127.0.0.1:{echo}: ")


# ---- RBAC -----------------------------------------------------------------------------------------
def add_token(sandbox: SandboxServer, name: str) -> str:
    token = uuid.uuid4().hex
    with (sandbox.data_dir / TOKEN_FILE).open("a") as f:
        f.write(f"{token},{name},{uuid.uuid4().hex[:6]}\n")
    return token


def grant(admin: httpx.Client, namespace: str, user: str, rule: dict[str, Any]) -> None:
    name = f"proxy-{uuid.uuid4().hex[:6]}"
    r = admin.post(
        f"{RBAC_API}/namespaces/{namespace}/roles",
        json={"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": name}}
        | {"rules": [rule]},
    )
    assert r.status_code == 201, r.text
    r = admin.post(
        f"{RBAC_API}/namespaces/{namespace}/rolebindings",
        json={
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": user}],
        },
    )
    assert r.status_code == 201, r.text


def test_proxy_needs_the_services_proxy_subresource(
    external_service: Any, sandbox: SandboxServer, admin: httpx.Client, namespace: str, echo: int
) -> None:
    external_service(namespace, "web", echo)
    user = f"dev-{uuid.uuid4().hex[:6]}"
    token = add_token(sandbox, user)
    dev = sandbox.http_client(token=token)
    url = f"/api/v1/namespaces/{namespace}/services/web:80/proxy/x"
    with dev:
        grant(admin, namespace, user, {"apiGroups": [""], "resources": ["services"], "verbs": ["get"]})
        r = dev.get(url)
        assert status_of(r) == (
            403,
            "Forbidden",
            f'services "web:80" is forbidden: User "{user}" cannot get resource "services/proxy" '
            f'in API group "" in the namespace "{namespace}"',
        )
        grant(
            admin,
            namespace,
            user,
            {
                "apiGroups": [""],
                "resources": ["services/proxy"],
                "resourceNames": ["web:80"],
                "verbs": ["get"],
            },
        )
        r = dev.get(url)
        assert r.status_code == 200 and r.json()["authorization"] is None
        assert dev.post(url, content=b"x").status_code == 403  # create is another verb
        assert dev.get(f"/api/v1/namespaces/{namespace}/services/web/proxy/x").status_code == 403


def test_request_attributes_of_proxy_paths() -> None:
    base = "/api/v1/namespaces/ns1/services"
    assert request_attributes("GET", f"{base}/prom:9090/proxy/api/v1/query", {"query": "up"}) == Attributes(
        "get", "", "services", "proxy", "ns1", "prom:9090"
    )
    assert request_attributes("POST", f"{base}/prom%3A9090/proxy/", {}) == Attributes(
        "create", "", "services", "proxy", "ns1", "prom:9090"
    )
    assert request_attributes("HEAD", f"{base}/https:dash:/proxy", {}) == Attributes(
        "get", "", "services", "proxy", "ns1", "https:dash:"
    )
    assert request_attributes("DELETE", f"{base}/prom/proxy/a/b", {}).verb == "delete"


# ---- resolution, without a server -------------------------------------------------------------------
def test_resolution_rules() -> None:
    svc = service(
        "web", [{"name": "http", "port": 80, "targetPort": 8080}, {"name": "metrics", "port": 9090}]
    )
    registered = [proxy.Backend("127.0.0.1", 18080, "http"), proxy.Backend("127.0.0.1", 19091, "metrics")]
    ref = proxy.parse_ref
    target = proxy.resolve("ns", ref("web:metrics"), svc, registered, None)
    assert target == proxy.Target("http", "127.0.0.1", 19091)
    target = proxy.resolve("ns", ref("https:web:80"), svc, registered, None)
    assert target == proxy.Target("https", "127.0.0.1", 18080)
    assert proxy.resolve("ns", ref("web"), svc, registered, None).port == 18080  # no port given: the first
    every = [proxy.Backend("127.0.0.1", 17000)]
    assert proxy.resolve("ns", ref("web:metrics"), svc, every, None).port == 17000

    # A selector picks ready replicas of the namespace; their own address stands for the pod's.
    selected = service("api", [{"port": 80, "targetPort": 8080}], {"app": "api"})
    replicas = {
        ReplicaSetKey("ns", "api", "h1"): [
            Endpoint("127.0.0.1", 40001, False, {"app": "api"}, "api-h1-a"),
            Endpoint("127.0.0.1", 40002, True, {"app": "api", "v": "1"}, "api-h1-b"),
        ],
        ReplicaSetKey("other", "api", "h1"): [Endpoint("127.0.0.1", 40003, True, {"app": "api"}, "x")],
    }
    assert proxy.resolve("ns", ref("api"), selected, [], replicas) == proxy.Target("http", "127.0.0.1", 40002)
    with pytest.raises(ApiError) as err:  # registered backends win, for their ports only
        proxy.resolve("ns", ref("api"), selected, [proxy.Backend("127.0.0.1", 1, "other")], replicas)
    assert err.value.code == 503
    with pytest.raises(ApiError) as err:
        proxy.resolve("ns", ref("lonely"), service("lonely", [{"port": 80}]), [], replicas)
    assert err.value.message == 'no endpoints available for service "lonely"'


def test_selected_replicas_of_the_backend_are_proxied_to(tmp_path: Path, echo: int) -> None:
    """A backend that lists replica addresses (as the mesh mode's does) serves Services with selectors."""

    class ListingBackend(InstantReplicaBackend):
        def endpoints(self) -> dict[ReplicaSetKey, list[Endpoint]]:
            labels = {"app": "api"}
            return {
                ReplicaSetKey("default", "api", "h1"): [Endpoint("127.0.0.1", echo, True, labels, "api-1")]
            }

    server = SandboxServer(tmp_path / "sandbox", backend=ListingBackend())
    with server, server.http_client() as c:
        create(c, "default", "services", service("api", [{"port": 80, "targetPort": 9898}], {"app": "api"}))
        r = c.get("/api/v1/namespaces/default/services/api/proxy/hello?x=1")
        assert r.status_code == 200, r.text
        assert (r.json()["path"], r.json()["query"]) == ("/hello", "x=1")


# ---- the proxy as a way around RBAC -------------------------------------------------------------------
@pytest.fixture
def relay(sandbox: SandboxServer) -> Iterator[int]:
    """The port of a TCP relay to the sandbox's own port: a backend that leads back to the API server."""
    target = urlsplit(sandbox.url).port
    listener = socket.create_server(("127.0.0.1", 0))

    def pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                inbound, _ = listener.accept()
                outbound = socket.create_connection(("127.0.0.1", target))
                threading.Thread(target=pump, args=(inbound, outbound), daemon=True).start()
                threading.Thread(target=pump, args=(outbound, inbound), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield int(listener.getsockname()[1])
    listener.close()


def test_a_user_who_may_edit_endpoints_cannot_reach_the_api_as_admin_through_the_proxy(
    sandbox: SandboxServer, admin: httpx.Client, namespace: str
) -> None:
    """The attack: a user who may only edit Services and Endpoints, and use their proxy, in one
    namespace points a Service at the API server's own port and asks through the proxy for another
    namespace's Secret, or to create a ClusterRoleBinding. Endpoints cannot name the server's
    address, and the proxy follows no Endpoints object anyway."""
    other = f"t-{uuid.uuid4().hex[:10]}"
    assert admin.post("/api/v1/namespaces", json={"metadata": {"name": other}}).status_code == 201
    create(admin, other, "secrets", {"metadata": {"name": "db"}, "stringData": {"password": "hunter2"}})
    user = f"dev-{uuid.uuid4().hex[:6]}"
    token = add_token(sandbox, user)
    rules = {"apiGroups": [""], "resources": ["services", "endpoints", "services/proxy"], "verbs": ["*"]}
    grant(admin, namespace, user, rules)
    port = urlsplit(sandbox.url).port
    crb = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": f"pwned-{user}"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
        "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": user}],
    }
    with sandbox.http_client(token=token) as dev:
        create(dev, namespace, "services", service("api", [{"name": "https", "port": 443}]))
        for ip in ("127.0.0.1", "::1", "0.0.0.0", "127.9.9.9", "::ffff:127.0.0.1", "169.254.169.254"):
            r = dev.post(
                f"/api/v1/namespaces/{namespace}/endpoints",
                json=endpoints("api", ip, [{"name": "https", "port": port}]),
            )
            assert r.status_code == 422, (ip, r.text)
        # An address Endpoints may name is stored, and still never proxied to.
        create(dev, namespace, "endpoints", endpoints("api", "192.0.2.1", [{"name": "https", "port": port}]))
        base = f"/api/v1/namespaces/{namespace}/services/https:api:443/proxy"
        r = dev.get(f"{base}/api/v1/namespaces/{other}/secrets/db")
        assert status_of(r) == (503, "ServiceUnavailable", 'no endpoints available for service "api"')
        r = dev.post(f"{base}/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", json=crb)
        assert r.status_code == 503
        assert dev.get(f"/api/v1/namespaces/{other}/secrets/db").status_code == 403
    assert (
        admin.get(
            f"/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/{crb['metadata']['name']}"
        ).status_code
        == 404
    )
    admin.delete(f"/api/v1/namespaces/{other}")


def test_a_proxied_request_never_comes_back_in_as_the_admin(
    sandbox: SandboxServer, admin: httpx.Client, namespace: str, relay: int
) -> None:
    """A backend at the API server's own address is refused outright; one that leads back to it
    (a relay) delivers the request without credentials, so the API server answers 401."""
    create(admin, namespace, "services", service("self", [{"name": "https", "port": 443}]))
    sandbox.register_backend(namespace, "self", "127.0.0.1", int(urlsplit(sandbox.url).port or 0), "https")
    r = admin.get(f"/api/v1/namespaces/{namespace}/services/https:self:443/proxy/api/v1/namespaces")
    assert status_of(r) == (400, "BadRequest", "address not allowed")

    create(admin, namespace, "services", service("relay", [{"name": "https", "port": 443}]))
    sandbox.register_backend(namespace, "relay", "127.0.0.1", relay, "https")
    r = admin.get(f"/api/v1/namespaces/{namespace}/services/https:relay:443/proxy/api/v1/namespaces")
    assert status_of(r) == (401, "Unauthorized", "Unauthorized")
