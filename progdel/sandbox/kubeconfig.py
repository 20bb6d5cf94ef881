"""The kubeconfig the sandbox writes, and the one way its clients are built from it.

The kubeconfig holds what kubectl and the kubernetes client need, as a real cluster's does:
the ``https://`` address, the sandbox's certificate authority (``certificate-authority-data``)
and the admin's bearer token. ``SandboxAccess`` is the same three things for progdel's own
HTTP clients of the sandbox (the mesh, ``sandbox status``, tests, benches): read from the
kubeconfig, or handed out by a running ``SandboxServer``, never put together by hand.
"""

from __future__ import annotations

import base64
import functools
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from progdel.sandbox.credentials import write_private

if TYPE_CHECKING:
    import httpx

NAME = "progdel-sandbox"


@dataclass(frozen=True)
class SandboxAccess:
    """Where a sandbox serves, the CA its certificate is signed by (PEM), and a bearer token."""

    url: str
    ca_pem: bytes
    token: str

    @classmethod
    def from_kubeconfig(cls, path: Path) -> SandboxAccess:
        """The access a kubeconfig the sandbox wrote gives (its current context's)."""
        import yaml

        config = yaml.safe_load(Path(path).read_text())
        context = _named(config.get("contexts"), config.get("current-context"), "context")
        cluster = _named(config.get("clusters"), context.get("cluster"), "cluster")
        user = _named(config.get("users"), context.get("user"), "user")
        return cls(
            url=str(cluster["server"]),
            ca_pem=base64.b64decode(cluster.get("certificate-authority-data") or ""),
            token=str(user.get("token") or ""),
        )

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this sandbox's CA only (shared: contexts are thread-safe)."""
        return _client_context(self.ca_pem)

    def headers(self, token: str | None = None, anonymous: bool = False) -> dict[str, str]:
        if anonymous:
            return {}
        return {"Authorization": f"Bearer {token if token is not None else self.token}"}

    def http_client(
        self, *, token: str | None = None, anonymous: bool = False, **kwargs: Any
    ) -> httpx.Client:
        """An ``httpx.Client`` for this sandbox: ``base_url`` set, the CA trusted, the admin token
        sent (``token``: another user's; ``anonymous``: none). Other arguments go to httpx."""
        import httpx

        headers = {**self.headers(token, anonymous), **kwargs.pop("headers", {})}
        kwargs.setdefault("timeout", 10.0)
        return httpx.Client(base_url=self.url, verify=self.ssl_context(), headers=headers, **kwargs)


@functools.cache
def _client_context(ca_pem: bytes) -> ssl.SSLContext:
    return ssl.create_default_context(cadata=ca_pem.decode("ascii"))


def _named(items: Any, name: Any, field: str) -> dict[str, Any]:
    for item in items or []:
        if isinstance(item, dict) and item.get("name") == name and isinstance(item.get(field), dict):
            return dict(item[field])
    raise ValueError(f"the kubeconfig has no {field} named {name!r}")


def kubeconfig_text(access: SandboxAccess, namespace: str = "default") -> str:
    """A kubeconfig whose cluster, context and user are all named ``progdel-sandbox``."""
    ca = base64.b64encode(access.ca_pem).decode("ascii")
    return (
        "apiVersion: v1\n"
        "kind: Config\n"
        "clusters:\n"
        f"- name: {NAME}\n"
        "  cluster:\n"
        f"    server: {access.url}\n"
        f"    certificate-authority-data: {ca}\n"
        "contexts:\n"
        f"- name: {NAME}\n"
        "  context:\n"
        f"    cluster: {NAME}\n"
        f"    user: {NAME}\n"
        f"    namespace: {namespace}\n"
        f"current-context: {NAME}\n"
        "users:\n"
        f"- name: {NAME}\n"
        "  user:\n"
        f"    token: {access.token}\n"
        "preferences: {}\n"
    )


def write_kubeconfig(path: Path, access: SandboxAccess) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private(path, kubeconfig_text(access).encode())
    return path
