"""What runs where: the version, pods, health and verification of each app in each environment.

An app runs in an environment as the Deployment ``app.deployment_name`` in the
environment's namespace; its version is the image tag of the app's container
(``app.container``, else the first). Where the environment promotes through a
canary, the version that serves is the ``<deployment>-primary`` copy's: the
target Deployment holds the candidate and is scaled to 0 between runs, so it is
not what users get.

Each environment is read in its own cluster (``clusters.py``). ``applications``
reads all environments at once, one thread each, and a cluster that does not
answer marks its environment's rows unreachable instead of failing the others.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from progdel.config.project import App, Environment, Project
from progdel.errors import ProgdelError
from progdel.kube.client import Kube
from progdel.kube.errors import NotFound
from progdel.kube.readiness import Readiness, deployment_health
from progdel.kube.resources import DEPLOYMENTS
from progdel.promote import history
from progdel.promote.clusters import Clusters, clusters_of
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
    verification: str = ""
    """Of the version running there, where the environment declares ``verify``: ``verified``,
    ``failed-verification``, ``pending`` or ``unverified`` (no record says); else empty."""
    cluster: str = ""
    """The kubeconfig context of the environment's cluster."""
    error: str = ""
    """Why the environment could not be read (its cluster did not answer): one line."""
    error_code: int = 0

    @property
    def pods(self) -> str:
        """``ready/desired`` as ``kubectl get deploy`` shows it; blank when nothing runs."""
        return f"{self.ready}/{self.desired}" if self.found else ""

    @property
    def reachable(self) -> bool:
        return not self.error

    def to_dict(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "cluster": self.cluster,
            "reachable": self.reachable,
            "error": self.error or None,
            "namespace": self.namespace,
            "deployment": self.deployment if self.found else None,
            "version": self.version,
            "image": self.image,
            "pods": self.pods,
            "ready": self.ready,
            "desired": self.desired,
            "healthy": self.healthy,
            "canary": self.canary,
            "verification": self.verification or None,
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


def locate(
    kube: Kube, env: Environment, app: App, records: Sequence[history.PromotionRecord] | None = None
) -> Placement:
    """Where ``app`` runs in ``env``, how healthy it is (``found`` False when it does not run) and,
    where ``env`` declares ``verify``, whether that version is verified there (from ``records``,
    the environment's promotion records, read when not given)."""
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
    cluster = kube.context if env.context is None else env.context
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
            cluster=cluster,
        )
    status = dep.get("status") or {}
    health = deployment_health(dep)
    image = deployment_image(dep, app.container)
    version = image_tag(image) if image else None
    verification = ""
    if env.verify is not None and version is not None:
        if records is None:
            records = history.records_in(kube, env, app.name)
        verification = history.verification_state(records, app.name, env.name, version)
    return Placement(
        env.name,
        env.namespace,
        name,
        True,
        version,
        image,
        int(status.get("readyReplicas") or 0),
        int((dep.get("spec") or {}).get("replicas", 1)),
        health.readiness is Readiness.READY,
        health.message,
        bool(env.canary),
        url,
        verification,
        cluster,
    )


def unreached(env: Environment, app: App, context: str, error: ProgdelError) -> Placement:
    """The placement of ``app`` in an environment that could not be read."""
    return Placement(
        env.name,
        env.namespace,
        serving_deployment_name(env, app),
        False,
        None,
        None,
        0,
        0,
        False,
        error.message,
        bool(env.canary),
        environment_url(env, app),
        cluster=context,
        error=error.message,
        error_code=int(error.exit_code),
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

    @property
    def verification_by_env(self) -> Mapping[str, str]:
        return {p.environment: p.verification for p in self.placements if p.found}

    def placement(self, env: str) -> Placement:
        return next(p for p in self.placements if p.environment == env)


def inventory(
    source: Clusters | Kube, project: Project, app: App, environments: list[Environment] | None = None
) -> Inventory:
    """``app`` in ``environments`` (default: all), each read in its own cluster; a cluster that
    does not answer raises ``Unreachable`` naming its context (exit 6)."""
    clusters = clusters_of(source)
    envs = environments if environments is not None else project.ordered_environments()
    return Inventory(app, [locate(clusters.kube(env), env, app) for env in envs])


def applications(source: Clusters | Kube, project: Project, env: str | None = None) -> list[Inventory]:
    """One inventory per app of the project (only ``env``'s placements when given).

    The environments are read concurrently, each in its cluster. An environment that cannot
    be read (its cluster is unreachable, RBAC refuses) gives placements whose ``error`` says why;
    the others are complete."""
    clusters = clusters_of(source)
    envs = [project.environment(env)] if env else project.ordered_environments()
    clusters.connect_all(envs)

    def read(e: Environment) -> list[Placement]:
        kube = clusters.kube(e)
        try:
            try:
                records = history.records_in(kube, e) if e.verify is not None else []
            except NotFound:
                records = []
            return [locate(kube, e, app, records) for app in project.apps]
        except ProgdelError as err:
            return [unreached(e, app, clusters.context(e), err) for app in project.apps]

    with ThreadPoolExecutor(max_workers=max(1, min(8, len(envs)))) as pool:
        by_env = list(pool.map(read, envs))
    return [Inventory(app, [placements[i] for placements in by_env]) for i, app in enumerate(project.apps)]
