"""What runs where: the version, pods and health of each app in each environment.

An app runs in an environment as the Deployment ``app.deployment_name`` in the
environment's namespace; its version is the image tag of the app's container
(``app.container``, else the first). Where the environment promotes through a
canary, the version that serves is the ``<deployment>-primary`` copy's: the
target Deployment holds the candidate and is scaled to 0 between runs, so it is
not what users get.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from progdel.canary.engine import Readiness
from progdel.canary.workloads import deployment_health
from progdel.config.project import App, Environment, Project
from progdel.kube.client import Kube
from progdel.kube.errors import NotFound
from progdel.kube.resources import DEPLOYMENTS
from progdel.promote.versions import image_tag


@dataclass(frozen=True)
class Placement:
    """One app in one environment, as the cluster reports it."""

    environment: str
    namespace: str
    deployment: str
    """The Deployment that serves: the app's, or its ``-primary`` copy in a canary environment."""
    found: bool
    version: str | None
    image: str | None
    ready: int
    desired: int
    healthy: bool
    health: str
    """Why it is (not) healthy, in one line."""
    canary: bool
    url: str | None

    @property
    def pods(self) -> str:
        """``ready/desired`` as ``kubectl get deploy`` shows it; blank when nothing runs."""
        return f"{self.ready}/{self.desired}" if self.found else ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "deployment": self.deployment if self.found else None,
            "version": self.version,
            "image": self.image,
            "pods": self.pods,
            "ready": self.ready,
            "desired": self.desired,
            "healthy": self.healthy,
            "canary": self.canary,
            "url": self.url,
        }


def container_of(deployment: dict[str, Any], container: str | None) -> dict[str, Any] | None:
    """The app's container in ``deployment``: the one named ``container``, else the first."""
    containers = (((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}).get(
        "containers"
    ) or []
    if container:
        return next((c for c in containers if c.get("name") == container), None)
    return containers[0] if containers else None


def deployment_image(deployment: dict[str, Any], container: str | None) -> str | None:
    c = container_of(deployment, container)
    return str(c["image"]) if c and c.get("image") else None


def deployment_version(deployment: dict[str, Any], container: str | None) -> str | None:
    """The version a Deployment runs: its container image's tag (or digest)."""
    image = deployment_image(deployment, container)
    return image_tag(image) if image else None


def environment_url(env: Environment, app: App) -> str | None:
    """The environment's ``url`` template filled in for ``app``; None when the environment has none."""
    if not env.url:
        return None
    return env.url.replace("{app}", app.name).replace("{namespace}", env.namespace).replace("{env}", env.name)


def serving_deployment_name(env: Environment, app: App) -> str:
    return f"{app.deployment_name}-primary" if env.canary else app.deployment_name


def locate(kube: Kube, env: Environment, app: App) -> Placement:
    """Where ``app`` runs in ``env`` and how healthy it is (``found`` False when it does not run)."""
    dep: dict[str, Any] | None = None
    name = app.deployment_name
    try:
        if env.canary:
            dep = kube.get_or_none(DEPLOYMENTS, f"{name}-primary", env.namespace)
            if dep is not None:
                name = f"{name}-primary"
        if dep is None:
            dep = kube.get_or_none(DEPLOYMENTS, name, env.namespace)
    except NotFound:  # the namespace itself does not exist
        dep = None
    url = environment_url(env, app)
    if dep is None:
        return Placement(
            env.name,
            env.namespace,
            name,
            False,
            None,
            None,
            0,
            0,
            False,
            f"deployment {env.namespace}/{name} not found",
            bool(env.canary),
            url,
        )
    status = dep.get("status") or {}
    health = deployment_health(dep)
    image = deployment_image(dep, app.container)
    return Placement(
        env.name,
        env.namespace,
        name,
        True,
        image_tag(image) if image else None,
        image,
        int(status.get("readyReplicas") or 0),
        int((dep.get("spec") or {}).get("replicas", 1)),
        health.readiness is Readiness.READY,
        health.message,
        bool(env.canary),
        url,
    )


@dataclass(frozen=True)
class Inventory:
    """Every environment's placement of one app, in environment order."""

    app: App
    placements: list[Placement]

    @property
    def versions_by_env(self) -> Mapping[str, str | None]:
        return {p.environment: p.version for p in self.placements if p.found}

    @property
    def healthy_by_env(self) -> Mapping[str, bool]:
        return {p.environment: p.healthy for p in self.placements}

    def placement(self, env: str) -> Placement:
        return next(p for p in self.placements if p.environment == env)


def inventory(
    kube: Kube, project: Project, app: App, environments: list[Environment] | None = None
) -> Inventory:
    envs = environments if environments is not None else project.ordered_environments()
    return Inventory(app, [locate(kube, env, app) for env in envs])


def applications(kube: Kube, project: Project, env: str | None = None) -> list[Inventory]:
    """One inventory per app of the project (only ``env``'s column when given)."""
    envs = [project.environment(env)] if env else project.ordered_environments()
    return [inventory(kube, project, app, envs) for app in project.apps]
