"""Promotion records: ConfigMaps in the environment's namespace, found by label, newest first."""

from __future__ import annotations

from progdel.kube.resources import CONFIGMAPS
from progdel.promote import history

from .test_direct import Shop, kube_fixture, shop_fixture  # noqa: F401  (fixtures)


def record(shop: Shop, env: str, to: str) -> history.PromotionRecord:
    return history.PromotionRecord(
        app="web",
        environment=env,
        namespace=shop.namespaces[env],
        kind="direct",
        from_version="1.1.0",
        to_version=to,
    )


def test_record_is_pending_then_finished_and_labelled(shop: Shop) -> None:
    rec = history.start(shop.kube, record(shop, "production", "1.2.0"))
    cm = shop.kube.get(CONFIGMAPS, rec.name, shop.namespaces["production"])
    assert cm["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "progdel",
        "progdel.dev/promotion": "true",
        "progdel.dev/app": "web",
        "progdel.dev/environment": "production",
    }
    assert cm["data"]["result"] == "pending" and cm["data"]["finishedAt"] == ""
    history.finish(shop.kube, rec, "failed", "push rejected", 1)
    cm = shop.kube.get(CONFIGMAPS, rec.name, shop.namespaces["production"])
    assert (cm["data"]["result"], cm["data"]["message"], cm["data"]["exitCode"]) == (
        "failed",
        "push rejected",
        "1",
    )
    assert cm["data"]["finishedAt"] >= cm["data"]["startedAt"]


def test_list_is_newest_first_and_filters(shop: Shop) -> None:
    first = history.start(shop.kube, record(shop, "staging", "1.2.0"))
    second = history.start(shop.kube, record(shop, "production", "1.2.0"))
    other = record(shop, "production", "2.0.0")
    other.app = "api"
    history.start(shop.kube, other)
    project = shop.project
    assert [r.name for r in history.list_records(shop.kube, project, "web")] == [second.name, first.name]
    assert [r.name for r in history.list_records(shop.kube, project, "web", "staging")] == [first.name]
    assert len(history.list_records(shop.kube, project)) == 3
    as_json = history.list_records(shop.kube, project, "web")[0].to_dict()
    assert as_json["from"] == "1.1.0" and as_json["to"] == "1.2.0" and as_json["result"] == "pending"
