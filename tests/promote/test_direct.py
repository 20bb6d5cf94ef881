"""Direct promotion against the sandbox: the image is set, the rollout is waited for, and a
version that never becomes ready is undone. The helpers here build a small shop (environments as
namespaces, the app's Deployments, a progdel.yaml) for the other promotion tests too."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from progdel.config.project import Project, load_project
from progdel.errors import ExitCode, InvalidInput
from progdel.kube.client import Kube, connect
from progdel.kube.resources import DEPLOYMENTS, NAMESPACES
from progdel.promote import history
from progdel.promote.inventory import inventory
from progdel.promote.orchestrate import PromoteOptions, PromotionFailed, QuietReporter, StepOutcome, run_plan
from progdel.promote.plan import plan_promotion

IMAGE = "registry.example.com/shop/web"


def deployment(name: str, image: str, replicas: int = 2, deadline: int | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "replicas": replicas,
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "app", "image": image, "ports": [{"containerPort": 9898}]}]},
        },
    }
    if deadline is not None:
        spec["progressDeadlineSeconds"] = deadline
    return {"metadata": {"name": name, "labels": {"app": name}}, "spec": spec}


@dataclass
class Shop:
    """Environments dev (Auto) → staging (Auto) → production (Manual) → sandbox (Never)."""

    kube: Kube
    config: Path
    namespaces: dict[str, str]
    kubeconfig: Path
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def project(self) -> Project:
        return load_project(str(self.config), self.config.parent)

    def image(self, env: str, name: str = "web") -> str:
        dep = self.kube.get(DEPLOYMENTS, name, self.namespaces[env])
        return str(dep["spec"]["template"]["spec"]["containers"][0]["image"])

    def deploy(self, env: str, image: str, name: str = "web", **kw: Any) -> None:
        self.kube.create(DEPLOYMENTS, deployment(name, image, **kw), self.namespaces[env])

    def wait_ready(self, env: str, name: str = "web") -> None:
        from progdel.promote.direct import wait_for_version
        from progdel.promote.inventory import deployment_version

        dep = self.kube.get(DEPLOYMENTS, name, self.namespaces[env])
        version = deployment_version(dep, None) or ""
        wait_for_version(self.kube, self.namespaces[env], name, None, version, timeout=60)


def write_config(path: Path, namespaces: dict[str, str], image: str = IMAGE, **env_extra: Any) -> Path:
    order = {"dev": 100, "staging": 200, "production": 300, "sandbox": 400}
    strategy = {"dev": "Auto", "staging": "Auto", "production": "Manual", "sandbox": "Never"}
    envs = []
    for name, ns in namespaces.items():
        env: dict[str, Any] = {
            "name": name,
            "namespace": ns,
            "order": order[name],
            "promotionStrategy": strategy[name],
            "url": "https://{app}.{env}.example.com/{namespace}",
        }
        env.update(env_extra.get(name, {}))
        envs.append(env)
    path.write_text(
        yaml.safe_dump({"environments": envs, "apps": [{"name": "web", "image": image}]}, sort_keys=False)
    )
    return path


@pytest.fixture(name="kube")
def kube_fixture(sandbox: Any) -> Kube:
    return connect(str(sandbox.kubeconfig), None, "default")


@pytest.fixture(name="shop")
def shop_fixture(kube: Kube, sandbox: Any, tmp_path: Path) -> Iterator[Shop]:
    suffix = uuid.uuid4().hex[:8]
    namespaces = {e: f"{e[:4]}-{suffix}" for e in ("dev", "staging", "production", "sandbox")}
    for ns in namespaces.values():
        kube.create(NAMESPACES, {"metadata": {"name": ns}})
    config = write_config(tmp_path / "progdel.yaml", namespaces)
    s = Shop(kube, config, namespaces, Path(sandbox.kubeconfig))
    s.deploy("dev", f"{IMAGE}:1.2.0")
    s.deploy("staging", f"{IMAGE}:1.2.0")
    s.deploy("production", f"{IMAGE}:1.1.0", deadline=2)
    for env in ("dev", "staging", "production"):
        s.wait_ready(env)
    yield s
    for ns in namespaces.values():
        kube.delete(NAMESPACES, ns, missing_ok=True)


def promote(
    shop: Shop,
    env: str | None,
    version: str | None = None,
    *,
    timeout: float = 20,
    project: Project | None = None,
    wait: bool = True,
    **kw: Any,
) -> list[StepOutcome]:
    project = project or shop.project
    app = project.app("web")
    inv = inventory(shop.kube, project, app)
    plan = plan_promotion(
        project,
        app,
        env,
        version,
        batch=True,
        versions_by_env=inv.versions_by_env,
        healthy_by_env=inv.healthy_by_env,
        **kw,
    )
    return run_plan(shop.kube, project, plan, PromoteOptions(timeout=timeout, wait=wait), QuietReporter())


def test_direct_promotion_sets_the_image_waits_and_records(shop: Shop) -> None:
    outcomes = promote(shop, "production")  # no --version: the newest in staging
    assert [(o.environment, o.version, o.previous, o.result) for o in outcomes] == [
        ("production", "1.2.0", "1.1.0", "succeeded")
    ]
    assert shop.image("production") == f"{IMAGE}:1.2.0"
    placement = inventory(shop.kube, shop.project, shop.project.app("web")).placement("production")
    assert placement.healthy and placement.ready == 2 and placement.version == "1.2.0"
    [record] = history.list_records(shop.kube, shop.project, "web")
    assert (record.environment, record.from_version, record.to_version, record.result) == (
        "production",
        "1.1.0",
        "1.2.0",
        "succeeded",
    )
    assert record.kind == "direct" and "@" in record.by and record.finished_at


def test_all_auto_promotes_every_auto_environment_in_order(shop: Shop) -> None:
    outcomes = promote(shop, None, "1.3.0", all_auto=True)
    assert [(o.environment, o.result) for o in outcomes] == [("dev", "succeeded"), ("staging", "succeeded")]
    assert shop.image("dev") == shop.image("staging") == f"{IMAGE}:1.3.0"
    assert shop.image("production") == f"{IMAGE}:1.1.0"
    records = history.list_records(shop.kube, shop.project)
    assert [r.environment for r in records] == ["staging", "dev"], "newest first"


def test_no_wait_sets_the_image_and_records_a_pending_promotion(shop: Shop) -> None:
    [outcome] = promote(shop, "production", wait=False)
    assert (outcome.result, outcome.version) == ("pending", "1.2.0")
    assert "not waiting: --no-wait" in outcome.message
    assert shop.image("production") == f"{IMAGE}:1.2.0"
    [record] = history.list_records(shop.kube, shop.project, "web")
    assert record.result == "pending"


def test_no_wait_refuses_to_promote_through_several_environments(shop: Shop) -> None:
    # the next environment's gate is that this one runs the version: not waiting would skip it
    before = shop.image("dev")
    with pytest.raises(
        InvalidInput, match="--no-wait promotes into one environment at a time, not dev, staging"
    ):
        promote(shop, None, "1.3.0", all_auto=True, wait=False)
    assert shop.image("dev") == before, "nothing was changed"


def test_an_image_that_never_becomes_ready_is_rolled_back(shop: Shop, tmp_path: Path) -> None:
    # production's progressDeadlineSeconds is 2: the sandbox never readies *.invalid registries
    config = write_config(tmp_path / "invalid.yaml", shop.namespaces, image="registry.invalid/shop/web")
    project = load_project(str(config), tmp_path)
    with pytest.raises(PromotionFailed) as err:
        promote(shop, "production", "1.2.0", project=project, timeout=30)
    assert err.value.exit_code == ExitCode.TIMEOUT
    message = err.value.message
    assert "web 1.2.0 failed to roll out" in message and "progress deadline" in message
    assert f"kubectl -n {shop.namespaces['production']} describe deploy web" in message
    assert "rolled web back to 1.1.0" in message
    assert shop.image("production") == f"{IMAGE}:1.1.0"
    [record] = history.list_records(shop.kube, project, "web", "production")
    assert record.result == "rolled-back" and record.exit_code == "7"


def test_timeout_names_what_is_missing_and_rolls_back(shop: Shop, tmp_path: Path) -> None:
    config = write_config(tmp_path / "invalid.yaml", shop.namespaces, image="registry.invalid/shop/web")
    project = load_project(str(config), tmp_path)
    shop.kube.patch(
        DEPLOYMENTS, "web", {"spec": {"progressDeadlineSeconds": 600}}, shop.namespaces["production"]
    )
    with pytest.raises(PromotionFailed) as err:
        promote(shop, "production", "1.2.0", project=project, timeout=1)
    assert err.value.exit_code == ExitCode.TIMEOUT
    ns = shop.namespaces["production"]
    assert f"0 of 2 replicas of web 1.2.0 ready after 1s; see kubectl -n {ns} describe deploy web" in (
        err.value.message
    )
    assert shop.image("production") == f"{IMAGE}:1.1.0"
