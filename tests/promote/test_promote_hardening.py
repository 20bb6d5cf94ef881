"""Versions and records that could carry an escape sequence, a shell word or a git option:
validated before anything is done, stored and shown without control characters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from progdel.errors import InvalidInput
from progdel.kube.resources import CONFIGMAPS, DEPLOYMENTS
from progdel.promote import history
from progdel.promote.plan import plan_promotion
from tests.cli.test_bad_input import one_line_exit_2
from tests.cli.test_bad_input import progdel as run_progdel

from .test_cli_promote import progdel
from .test_direct import IMAGE, Shop, kube_fixture, shop_fixture, write_config  # noqa: F401  (fixtures)
from .test_plan import project  # noqa: F401  (fixture)


@pytest.mark.parametrize("running", ["1.9.0\x1b]0;pwned\x07", "2.0.0;id", "-f", "9" * 200])
def test_a_version_picked_from_the_cluster_is_validated_too(project: Any, running: str) -> None:  # noqa: F811
    with pytest.raises(InvalidInput) as err:
        plan_promotion(
            project,
            project.app("web"),
            "staging",
            None,
            versions_by_env={"dev": [running]},
            healthy_by_env={"dev": True},
        )
    assert str(err.value).startswith("the newest in dev, web '")
    assert "\x1b" not in str(err.value) and "\x07" not in str(err.value)


def test_records_store_no_control_characters(shop: Shop) -> None:
    rec = history.start(
        shop.kube,
        history.PromotionRecord(
            app="web",
            environment="production",
            namespace=shop.namespaces["production"],
            kind="direct",
            from_version="1.1.0\x1b[2J",
            to_version="1.2.0",
        ),
    )
    history.finish(shop.kube, rec, "failed", "git said: \x1b[31mno\r\nway\x1b[0m", 1)
    data = shop.kube.get(CONFIGMAPS, rec.name, shop.namespaces["production"])["data"]
    assert data["from"] == "1.1.0\\x1b[2J"
    assert data["message"] == "git said: \\x1b[31mno\\r\\nway\\x1b[0m"


def test_history_renders_a_hand_written_record_defensively(shop: Shop) -> None:
    """A record progdel did not write (by hand, or by an older version) is shown with escapes."""
    ns = shop.namespaces["production"]
    labels = history.PromotionRecord("web", "production", ns, "direct", "", "").labels()
    shop.kube.create(
        CONFIGMAPS,
        {
            "metadata": {"name": "by-hand", "labels": labels},
            "data": {
                "app": "web",
                "environment": "production",
                "from": "1.0.0",
                "to": "6.6.6\x1b[2J\x1b]0;owned\x07",
                "result": "succeeded",
                "startedAt": "2024-01-01T00:00:00.000000Z",
                "by": "mallory\u202e@host",
            },
        },
        ns,
    )
    out = progdel(shop, "promote", "history", "web")
    assert out.returncode == 0, out.stderr
    assert "\x1b" not in out.stdout and "\x07" not in out.stdout and "\u202e" not in out.stdout
    assert "6.6.6\\x1b[2J\\x1b]0;owned\\x07" in out.stdout and "mallory\\u202e@host" in out.stdout


def test_a_pull_request_token_with_a_newline_is_refused_before_anything(shop: Shop, tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "gitops.yaml",
        shop.namespaces,
        production={
            "kind": "gitops",
            "gitops": {
                "repository": "https://github.example.com/shop/env.git",
                "file": "values.yaml",
                "key": "apps.{app}.version",
                "pullRequest": {"provider": "github", "tokenFile": str(tmp_path / "token")},
            },
        },
    )
    (tmp_path / "token").write_text("ghp_s3cret\nX-Evil: 1\n")
    out = progdel(shop, "promote", "--env", "production", "-b", config=config)
    assert out.returncode == 2, out.stderr
    assert "token contains a control character" in out.stderr and "s3cret" not in out.stderr
    assert (
        shop.kube.items(CONFIGMAPS, shop.namespaces["production"], label_selector="progdel.dev/promotion")
        == []
    )
    assert shop.image("production") == f"{IMAGE}:1.1.0"
    assert shop.kube.get(DEPLOYMENTS, "web", shop.namespaces["production"])


@pytest.mark.parametrize(
    ("version", "shown"),
    [
        ("9" * 5000, "9" * 40 + "..."),
        ("1.4.0;id", "1.4.0;id"),
        ("-f", "-f"),
        ("1.0\x1b[31m", "1.0\\x1b[31m"),
        ("1.0\n", "1.0\\n"),
        ("1.0.0+build", "1.0.0+build"),
    ],
)
def test_a_version_that_cannot_be_an_image_tag_is_refused_before_anything(
    tmp_path: Path, version: str, shown: str
) -> None:
    """Before progdel.yaml is even read: the version is checked first."""
    err = one_line_exit_2(run_progdel("promote", "web", "--env", "dev", f"--version={version}", cwd=tmp_path))
    assert err.startswith(f"error: --version '{shown}' is not a valid image tag"), err
    assert "\x1b" not in err
