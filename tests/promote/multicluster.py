"""Two sandboxes standing in for two clusters, dev and production, joined in one kubeconfig.

Each sandbox writes its own kubeconfig (its address, and whatever credentials it hands out); the
joined one is built from those files, each one's current context renamed (``dev``, ``prod``), so
the tests never spell a server address or a credential themselves.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from progdel.config.project import Project, load_project
from progdel.kube.client import Kube, connect
from progdel.kube.resources import DEPLOYMENTS, NAMESPACES
from progdel.promote.clusters import Clusters
from progdel.sandbox.server import SandboxServer

from .test_direct import IMAGE, deployment


def merge_kubeconfigs(sources: dict[str, Path], current: str, out: Path) -> Path:
    """One kubeconfig holding the current context of each file in ``sources``, its context,
    cluster and user all renamed to the key; ``current`` is the merged file's current context."""
    merged: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [],
        "contexts": [],
        "users": [],
    }
    for name, path in sources.items():
        config = yaml.safe_load(path.read_text())
        context = next(c for c in config["contexts"] if c["name"] == config["current-context"])["context"]
        cluster = next(c for c in config["clusters"] if c["name"] == context["cluster"])["cluster"]
        user = next(u for u in config["users"] if u["name"] == context["user"])["user"]
        merged["clusters"].append({"name": name, "cluster": cluster})
        merged["users"].append({"name": name, "user": user})
        merged["contexts"].append({"name": name, "context": {**context, "cluster": name, "user": name}})
    merged["current-context"] = current
    out.write_text(yaml.safe_dump(merged, sort_keys=False))
    out.chmod(0o600)
    return out


@dataclass
class TwoClusters:
    """dev (context ``dev``, the current one) and production (context ``prod``), with ``web``
    1.2.0 running in dev and 1.1.0 in production."""

    servers: dict[str, SandboxServer]
    kubeconfig: Path
    namespaces: dict[str, str]
    tmp: Path
    kubes: dict[str, Kube] = field(default_factory=dict)

    CONTEXTS = {"dev": "dev", "production": "prod"}

    def kube(self, env: str) -> Kube:
        context = self.CONTEXTS[env]
        if context not in self.kubes:
            self.kubes[context] = connect(str(self.kubeconfig), context, None)
        return self.kubes[context]

    def clusters(self) -> Clusters:
        """The environments' clusters, as the command line makes them from the joined kubeconfig."""
        return Clusters(lambda context: connect(str(self.kubeconfig), context, None))

    def image(self, env: str, name: str = "web") -> str:
        dep = self.kube(env).get(DEPLOYMENTS, name, self.namespaces[env])
        return str(dep["spec"]["template"]["spec"]["containers"][0]["image"])

    def stop(self, env: str) -> None:
        self.servers[self.CONTEXTS[env]].stop()

    def config(self, name: str = "progdel.yaml", **env_extra: dict[str, Any]) -> Path:
        """progdel.yaml: dev (Auto, context dev) → production (Manual, context prod); ``env_extra``
        adds fields per environment (``dev={"verify": ...}``)."""
        envs = [
            {
                "name": env,
                "namespace": self.namespaces[env],
                "order": order,
                "promotionStrategy": strategy,
                "context": self.CONTEXTS[env],
                **env_extra.get(env, {}),
            }
            for env, order, strategy in (("dev", 100, "Auto"), ("production", 200, "Manual"))
        ]
        path = self.tmp / name
        data = {"environments": envs, "apps": [{"name": "web", "image": IMAGE}]}
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    def project(self, config: Path | None = None) -> Project:
        path = config or self.config()
        return load_project(str(path), path.parent)


@pytest.fixture(name="two")
def two_fixture(tmp_path: Path) -> Iterator[TwoClusters]:
    servers = {name: SandboxServer(tmp_path / f"sandbox-{name}") for name in ("dev", "prod")}
    started: list[SandboxServer] = []
    try:
        for server in servers.values():
            server.start()
            started.append(server)
            server.write_kubeconfig()
        kubeconfig = merge_kubeconfigs(
            {name: Path(s.kubeconfig or "") for name, s in servers.items()}, "dev", tmp_path / "kubeconfig"
        )
        suffix = uuid.uuid4().hex[:8]
        two = TwoClusters(
            servers, kubeconfig, {"dev": f"dev-{suffix}", "production": f"prod-{suffix}"}, tmp_path
        )
        for env, version in (("dev", "1.2.0"), ("production", "1.1.0")):
            kube = two.kube(env)
            kube.create(NAMESPACES, {"metadata": {"name": two.namespaces[env]}})
            kube.create(DEPLOYMENTS, deployment("web", f"{IMAGE}:{version}"), two.namespaces[env])
        for env in ("dev", "production"):
            wait_ready(two, env)
        yield two
    finally:
        for server in started:
            if server._httpd is not None:
                server.stop()


def wait_ready(two: TwoClusters, env: str) -> None:
    from progdel.promote.direct import wait_for_version
    from progdel.promote.inventory import deployment_version

    kube, ns = two.kube(env), two.namespaces[env]
    version = deployment_version(kube.get(DEPLOYMENTS, "web", ns), None) or ""
    wait_for_version(kube, ns, "web", None, version, timeout=30)
