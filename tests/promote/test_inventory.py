"""What runs where, read from the sandbox: versions, pods, URLs, and a canary environment's
serving (primary) version; `progdel get applications` in each output format."""

from __future__ import annotations

from pathlib import Path

import yaml

from progdel.canary import store
from progdel.canary.cluster import initialize
from progdel.errors import ExitCode
from progdel.kube.resources import DEPLOYMENTS
from progdel.promote.inventory import inventory

from .test_canary_env import canary_doc
from .test_cli_promote import progdel
from .test_direct import IMAGE, Shop, kube_fixture, shop_fixture, write_config  # noqa: F401  (fixtures)


def canary_shop(s: Shop, tmp_path: Path) -> Path:
    """production promotes through a canary: initialized, with 1.2.0 waiting as the candidate."""
    ns = s.namespaces["production"]
    (tmp_path / "canary.yaml").write_text(yaml.safe_dump(canary_doc()))
    config = write_config(
        tmp_path / "canary-env.yaml", s.namespaces, production={"canary": {"spec": "canary.yaml"}}
    )
    store.apply_canary(s.kube, canary_doc(), ns)
    assert initialize(s.kube, "web", ns, lambda _r: None, timeout=30) is ExitCode.OK
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": f"{IMAGE}:1.2.0"}]}}}}
    s.kube.patch(DEPLOYMENTS, "web", patch, ns, content_type="application/strategic-merge-patch+json")
    return config


def test_inventory_reads_versions_pods_health_and_urls(shop: Shop) -> None:
    project = shop.project
    inv = inventory(shop.kube, project, project.app("web"))
    assert inv.versions_by_env == {"dev": "1.2.0", "staging": "1.2.0", "production": "1.1.0"}
    assert inv.healthy_by_env == {"dev": True, "staging": True, "production": True, "sandbox": False}
    prod = inv.placement("production")
    assert (prod.pods, prod.url) == (
        "2/2",
        f"https://web.production.example.com/{shop.namespaces['production']}",
    )
    assert not inv.placement("sandbox").found


def test_canary_environment_shows_the_primarys_version(shop: Shop, tmp_path: Path) -> None:
    config = canary_shop(shop, tmp_path)
    out = progdel(shop, "-o", "json", "get", "applications", config=config)
    assert out.returncode == 0, out.stderr
    [prod] = [r for r in yaml.safe_load(out.stdout) if r["environment"] == "production"]
    assert (prod["deployment"], prod["version"], prod["pods"], prod["canary"]) == (
        "web-primary",
        "1.1.0",
        "2/2",
        True,
    )


def test_get_applications_table_and_yaml(shop: Shop, tmp_path: Path) -> None:
    config = canary_shop(shop, tmp_path)
    table = progdel(shop, "get", "applications", config=config)
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.split() == ["APPLICATION", "ENVIRONMENT", "CLUSTER", "VERSION", "PODS", "VERIFIED", "URL"]
    cells = {row.split()[1]: row.split() for row in rows}
    assert list(cells) == ["dev", "staging", "production", "sandbox"]
    assert cells["dev"][:5] == ["web", "dev", "progdel-sandbox", "1.2.0", "2/2"]
    assert cells["production"][3:5] == ["1.1.0", "2/2"], "production serves the primary's version"
    assert "1.2.0" not in cells["production"], "the canary target's candidate is not what production serves"
    data = yaml.safe_load(
        progdel(shop, "-o", "yaml", "get", "applications", "-e", "production", config=config).stdout
    )
    assert data == [
        {
            "app": "web",
            "environment": "production",
            "cluster": "progdel-sandbox",
            "reachable": True,
            "error": None,
            "namespace": shop.namespaces["production"],
            "deployment": "web-primary",
            "version": "1.1.0",
            "image": f"{IMAGE}:1.1.0",
            "pods": "2/2",
            "ready": 2,
            "desired": 2,
            "healthy": True,
            "canary": True,
            "verification": None,
            "url": f"https://web.production.example.com/{shop.namespaces['production']}",
        }
    ]
