"""The sandbox as a boundary on its users' laptops: TLS with its own CA, a private data dir, and
no request a web page could send, nor a body that could exhaust it.

What a real kube-apiserver does is the reference: its self-signed serving certificate and the
kubeconfig's ``certificate-authority-data``, the media types its handlers decode
(``apiserver/pkg/endpoints/handlers/negotiation``), its 3 MiB request limit
(``MaxRequestBodyBytes``) and go-yaml's bound on alias expansion.
"""

from __future__ import annotations

import base64
import os
import socket
import ssl
import stat
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from progdel.sandbox import credentials
from progdel.sandbox.kubeconfig import SandboxAccess
from progdel.sandbox.processes import free_port
from progdel.sandbox.server import SandboxServer
from tests.sandbox.processes import peak_rss, serve

CRD_API = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


def raw_exchange(port: int, request: bytes, tls: ssl.SSLContext | None = None, host: str = "") -> bytes:
    """Send ``request`` as it is and read the answer until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as plain:
        sock = tls.wrap_socket(plain, server_hostname=host or None) if tls else plain
        sock.sendall(request)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
        return out


# ---- TLS and the kubeconfig -------------------------------------------------------------------
def machine_address() -> str | None:
    """An address of this machine other than loopback (the one its default route leaves by)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 9))  # no packet is sent: this only picks a route
        except OSError:
            return None
        address = str(probe.getsockname()[0])
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def test_the_sandbox_listens_on_loopback_only(tmp_path: Path) -> None:
    """Other machines on the network never reach it: nothing listens on the machine's address."""
    address = machine_address()
    if address is None:
        pytest.skip("this machine has no address other than loopback to try")
    port = free_port()
    proc, api = serve(tmp_path / "sb", port)
    try:
        with api.http_client() as http:
            assert http.get("/readyz").status_code == 200
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((address, port), timeout=10).close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_https_only_with_a_certificate_of_its_own_ca(sandbox: SandboxServer) -> None:
    port = int(urlsplit(sandbox.url).port or 0)
    assert sandbox.url == f"https://127.0.0.1:{port}"
    answer = raw_exchange(port, b"GET /version HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    assert answer == b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"

    trusted = sandbox.access.ssl_context()
    for name in ("localhost", "127.0.0.1"):  # the names the certificate is for, checked by the client
        request = f"GET /version HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode()
        assert raw_exchange(port, request, trusted, name).startswith(b"HTTP/1.1 200 OK\r\n")
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        raw_exchange(port, b"", trusted, "kubernetes.example.com")
    with pytest.raises(ssl.SSLCertVerificationError, match=r"self-signed|unable to get local issuer"):
        raw_exchange(port, b"", ssl.create_default_context(), "127.0.0.1")  # the system's CAs only


def test_the_kubeconfig_holds_the_server_its_ca_and_a_token(sandbox: SandboxServer) -> None:
    assert sandbox.kubeconfig is not None
    config = yaml.safe_load(sandbox.kubeconfig.read_text())
    cluster, user = config["clusters"][0]["cluster"], config["users"][0]["user"]
    assert cluster["server"] == sandbox.url
    ca = base64.b64decode(cluster["certificate-authority-data"])
    assert ca == (sandbox.data_dir / credentials.CA_CERT).read_bytes()
    assert ca.startswith(b"-----BEGIN CERTIFICATE-----")
    assert user == {"token": sandbox.access.token}
    assert len(user["token"]) >= 32


def test_a_restart_keeps_the_ca_and_the_token(tmp_path: Path) -> None:
    with SandboxServer(tmp_path / "sb") as first:
        before = first.access
        kubeconfig = first.write_kubeconfig()
    with SandboxServer(tmp_path / "sb", port=int(urlsplit(before.url).port or 0)) as second:
        assert (second.access.ca_pem, second.access.token) == (before.ca_pem, before.token)
        with SandboxAccess.from_kubeconfig(kubeconfig).http_client() as c:  # the old kubeconfig works
            assert c.get("/api/v1/namespaces").status_code == 200


# ---- the data dir -----------------------------------------------------------------------------
def modes(data: Path) -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in data.iterdir() if p.is_file()}


def test_the_data_dir_is_private(tmp_path: Path) -> None:
    data = tmp_path / "sb"
    with SandboxServer(data) as server:
        server.write_kubeconfig()
        with server.http_client() as c:  # a write, so that the WAL exists
            c.post("/api/v1/namespaces/default/secrets", json={"metadata": {"name": "s"}}).raise_for_status()
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        found = modes(data)
    for name in credentials.PRIVATE_FILES:
        assert found.get(name) == 0o600, (name, found)


def test_a_data_dir_with_loose_modes_is_made_private(tmp_path: Path) -> None:
    data = tmp_path / "sb"
    with SandboxServer(data) as server:
        server.write_kubeconfig()
    os.chmod(data, 0o755)
    for path in data.iterdir():
        os.chmod(path, 0o644)
    assert (data / "sandbox.db").exists() and (data / credentials.CA_KEY).exists()
    with SandboxServer(data):
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        found = modes(data)
    for name in (*credentials.PRIVATE_FILES, credentials.SERVER_KEY):
        if name in found:
            assert found[name] == 0o600, (name, found)
    assert {"sandbox.db", credentials.CA_KEY, credentials.TOKEN_FILE, "kubeconfig"} <= set(found)


# ---- requests a web page could send -----------------------------------------------------------
@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded", "multipart/form-data"],
)
def test_bodies_in_other_media_types_are_415(
    sandbox: SandboxServer, namespace: str, content_type: str
) -> None:
    """What a form or fetch() sends without a preflight is not read as JSON."""
    body = b'{"metadata": {"name": "from-a-page"}}'
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    with sandbox.http_client() as c:
        r = c.post(path, content=body, headers={"Content-Type": content_type})
        assert r.status_code == 415
        assert r.json() == {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": "the body of the request was in an unknown format - accepted media types include: "
            "application/json, application/yaml, application/vnd.kubernetes.protobuf",
            "reason": "UnsupportedMediaType",
            "code": 415,
        }
        r = c.put(f"{path}/from-a-page", content=body, headers={"Content-Type": content_type})
        assert r.status_code == 415
        r = c.patch(f"{path}/from-a-page", content=b"{}", headers={"Content-Type": content_type})
        assert r.json()["message"] == (
            "the body of the request was in an unknown format - accepted media types include: "
            "application/json-patch+json, application/merge-patch+json, "
            "application/strategic-merge-patch+json, application/apply-patch+yaml"
        )
        r = c.post(
            f"/apis/flagger.app/v1beta1/namespaces/{namespace}/canaries",
            content=b"{}",
            headers={"Content-Type": "application/vnd.kubernetes.protobuf"},
        )
        assert r.json()["message"].endswith(
            "accepted media types include: application/json, application/yaml"
        )
        assert c.get(path).json()["items"] == [], "nothing was written"
        accepted = {"Content-Type": "application/json; charset=utf-8"}
        assert c.post(path, content=body, headers=accepted).status_code == 201


def test_requests_from_web_pages_and_foreign_hosts_are_refused(sandbox: SandboxServer) -> None:
    """A browser sends an Origin; DNS rebinding sends its own host name. Even with a valid token,
    neither gets an answer; the addresses the sandbox serves on do."""
    port = urlsplit(sandbox.url).port
    with sandbox.http_client() as c:
        for origin in ("https://attacker.example", "null", f"https://127.0.0.1:{port}"):
            r = c.get("/api/v1/namespaces", headers={"Origin": origin})
            assert (r.status_code, r.json()["reason"]) == (403, "Forbidden"), origin
            assert "web pages" in r.json()["message"]
        for host in (f"rebound.attacker.example:{port}", "attacker.example", f"10.0.0.1:{port}"):
            r = c.get("/api/v1/namespaces", headers={"Host": host})
            assert r.status_code == 403, host
            assert r.json()["message"].startswith(f"host '{host}' is not an address this server serves on")
        for host in (
            f"127.0.0.1:{port}",
            f"localhost:{port}",
            "localhost",
            f"[::1]:{port}",
            f"LOCALHOST:{port}",
        ):
            assert c.get("/api/v1/namespaces", headers={"Host": host}).status_code == 200, host


# ---- request heads -----------------------------------------------------------------------------
def exchange(sandbox: SandboxServer, head: str) -> bytes:
    """Send a request head as written, over TLS, with the kubeconfig's token, and read the answer."""
    port = urlsplit(sandbox.url).port
    assert port is not None
    token = f"Authorization: Bearer {sandbox.access.token}\r\n"
    request = head.replace("\r\n\r\n", f"\r\n{token}\r\n", 1).encode("iso-8859-1")
    return raw_exchange(port, request, sandbox.access.ssl_context(), "127.0.0.1")


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def test_request_heads_are_read_as_http_server_reads_them(sandbox: SandboxServer) -> None:
    """The sandbox reads headers itself (``httphead``): names are case-insensitive, a folded line
    continues its header, and the standard library's limits and refusals hold."""
    host = "Host: 127.0.0.1\r\nConnection: close\r\n"
    ok = exchange(sandbox, f"GET /api/v1/namespaces/default HTTP/1.1\r\n{host}\r\n")
    assert status_of(ok) == 200 and b'"name":"default"' in ok
    lower = exchange(sandbox, "GET /version HTTP/1.1\r\nhOsT: 127.0.0.1\r\nconnection: CLOSE\r\n\r\n")
    assert status_of(lower) == 200
    # a folded Origin is still an Origin: a web page's request stays refused
    folded = exchange(
        sandbox, f"GET /api/v1/namespaces HTTP/1.1\r\n{host}Origin:\r\n  https://a.example\r\n\r\n"
    )
    assert status_of(folded) == 403 and b"https://a.example" in folded
    many = "".join(f"X-H{i}: v\r\n" for i in range(101))
    assert status_of(exchange(sandbox, f"GET /version HTTP/1.1\r\n{host}{many}\r\n")) == 431
    long_line = "X-Long: " + "a" * 70000 + "\r\n"
    assert status_of(exchange(sandbox, f"GET /version HTTP/1.1\r\n{host}{long_line}\r\n")) == 431
    for bad in ("NoColonHere\r\n", "Bad Name: v\r\n", "Space : v\r\n"):
        assert status_of(exchange(sandbox, f"GET /version HTTP/1.1\r\n{host}{bad}\r\n")) == 400, bad
    assert status_of(exchange(sandbox, f"GET /version HTTP/2.0\r\n{host}\r\n")) == 505
    assert status_of(exchange(sandbox, f"GET /version HTTP/x\r\n{host}\r\n")) == 400
    assert status_of(exchange(sandbox, f"GET /version\r\n{host}\r\n")) == 400


def test_keep_alive_follows_the_http_version_and_connection_header(sandbox: SandboxServer) -> None:
    """HTTP/1.1 keeps the connection for a second request; HTTP/1.0 and ``Connection: close`` end it."""
    first = "GET /version HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    two = first + "GET /version HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    port = urlsplit(sandbox.url).port
    assert port is not None
    token = f"Authorization: Bearer {sandbox.access.token}\r\n"
    answer = raw_exchange(
        port, two.replace("\r\n\r\n", f"\r\n{token}\r\n").encode(), sandbox.access.ssl_context(), "127.0.0.1"
    )
    assert answer.count(b"HTTP/1.1 200 OK") == 2
    one = exchange(sandbox, "GET /version HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
    assert status_of(one) == 200 and b"Connection: close" in one


# ---- request bodies ---------------------------------------------------------------------------
LIMIT = 3 * 1024 * 1024
TOO_LARGE = {
    "kind": "Status",
    "apiVersion": "v1",
    "metadata": {},
    "status": "Failure",
    "message": f"Request entity too large: limit is {LIMIT}",
    "reason": "RequestEntityTooLarge",
    "code": 413,
}


def test_request_bodies_are_limited_to_3_mib(sandbox: SandboxServer, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    head = b'{"metadata": {"name": "big"}}'
    with sandbox.http_client() as c:
        r = c.post(path, content=head + b" " * (LIMIT + 1 - len(head)))
        assert (r.status_code, r.json()) == (413, TOO_LARGE)
        chunks = (head + b" " * 65536 for _ in range(60))  # sent chunked: no Content-Length
        r = c.post(path, content=chunks)
        assert (r.status_code, r.json()) == (413, TOO_LARGE)
        r = c.post(f"/api/v1/namespaces/{namespace}/services/none/proxy/", content=b"x" * (LIMIT + 1))
        assert r.status_code == 413, "bodies for the service proxy are bounded too"
        assert c.get(path).json()["items"] == []
        r = c.post(path, content=head + b" " * (LIMIT - len(head)))
        assert r.status_code == 201, "a body of exactly the limit is read"
        r = c.post(path, content=b"[" * 100_000)
        assert (r.status_code, r.json()["reason"]) == (400, "BadRequest"), "nested too deeply"


def bomb(levels: int, fanout: int = 9) -> str:
    """A custom object whose aliases nest ``levels`` deep: ``fanout ** levels`` strings once expanded."""
    lines = [
        "apiVersion: example.com/v1",
        "kind: Blob",
        "metadata: {name: bomb}",
        "spec:",
        f"  l0: &l0 [{', '.join(['lol'] * fanout)}]",
    ]
    for i in range(1, levels):
        lines.append(f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * fanout)}]")
    return "\n".join(lines) + "\n"


BLOB_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "blobs.example.com"},
    "spec": {
        "group": "example.com",
        "scope": "Namespaced",
        "names": {"plural": "blobs", "singular": "blob", "kind": "Blob"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                },
            }
        ],
    },
}


def test_a_yaml_alias_bomb_is_refused_without_using_memory(tmp_path: Path) -> None:
    """A 500-byte body that expands to 43 million strings (over 300 MB as JSON) is a 400 naming the
    aliasing, as kube-apiserver's go-yaml answers, and the sandbox process' peak memory barely
    moves; a document with a few aliases is read as before."""
    body = bomb(8)
    assert len(body) < 520
    proc, api = serve(tmp_path / "sb", free_port())
    try:
        with api.http_client(timeout=60) as c:
            c.post(CRD_API, json=BLOB_CRD).raise_for_status()
            blobs = "/apis/example.com/v1/namespaces/default/blobs"
            deadline = time.monotonic() + 60
            while c.get(blobs).status_code != 200:  # the new resource is served
                assert time.monotonic() < deadline
                time.sleep(0.05)
            before = peak_rss(proc.pid)
            yaml_body = {"Content-Type": "application/yaml"}
            r = c.post(blobs, content=body, headers=yaml_body)
            assert (r.status_code, r.json()["message"]) == (
                400,
                "error converting YAML to JSON: yaml: document contains excessive aliasing",
            )
            r = c.patch(
                f"{blobs}/bomb?fieldManager=test",
                content=body,
                headers={"Content-Type": "application/apply-patch+yaml"},
            )
            assert (r.status_code, r.json()["reason"]) == (400, "BadRequest")
            assert "excessive aliasing" in r.json()["message"]
            r = c.post(blobs, content="metadata: {name: loop}\nspec: &a [*a]\n", headers=yaml_body)
            assert r.status_code == 400 and "contains itself" in r.json()["message"]
            assert peak_rss(proc.pid) - before < 50 * 1024 * 1024
            assert c.get(f"{blobs}/bomb").status_code == 404

            fine = bomb(3).replace("name: bomb", "name: fine")  # 729 strings from 90 aliases
            r = c.post(blobs, content=fine, headers=yaml_body)
            assert r.status_code == 201, r.text
            assert r.json()["spec"]["l2"][8][8] == ["lol"] * 9
    finally:
        proc.kill()
        proc.wait(timeout=30)


def test_alias_expansion_follows_go_yaml() -> None:
    from progdel.sandbox import yamlbody

    assert yamlbody.load(bomb(3))[0]["spec"]["l2"][0][0] == ["lol"] * 9
    for levels in (5, 9):
        with pytest.raises(Exception, match="excessive aliasing"):
            yamlbody.load(bomb(levels))
    # Many aliases in a large document pass: expansion is not most of it.
    wide = "a: &a {x: 1}\nitems:\n" + "".join(f"- {{n: {i}, ref: *a}}\n" for i in range(5000))
    assert len(yamlbody.load(wide)[0]["items"]) == 5000


def test_clients_get_the_same_from_the_access_and_the_kubeconfig(sandbox: SandboxServer) -> None:
    assert sandbox.kubeconfig is not None
    access = SandboxAccess.from_kubeconfig(sandbox.kubeconfig)
    with access.http_client() as c:
        assert c.get("/api/v1/namespaces/default").status_code == 200
    with httpx.Client(base_url=sandbox.url, verify=access.ssl_context()) as c:
        assert c.get("/api/v1/namespaces/default").status_code == 401, "the CA alone is not a credential"
