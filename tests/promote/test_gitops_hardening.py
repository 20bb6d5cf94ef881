"""A GitOps promotion against a hostile or broken environment repository: it writes only inside
its clone, removes a branch whose pull request could not be opened, and never names a branch
after a version git would refuse. Real git, a real bare repository; GitHub mocked at HTTP."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from progdel.errors import InvalidInput, ProgdelError
from progdel.promote.gitops import promote_via_git, promotion_branch
from progdel.promote.pullrequest import GitHubClient

from .conftest import ENV_FILE, Remote, git
from .test_gitops import WEB, environment


def push_change(remote: Remote, tmp_path: Path, change: Callable[[Path], None]) -> None:
    seed = tmp_path / "change"
    git("clone", "-q", str(remote.path), str(seed))
    change(seed)
    git("add", "-A", cwd=seed)
    git("commit", "-q", "-m", "change", cwd=seed)
    git("push", "-q", "origin", "main", cwd=seed)


@pytest.mark.parametrize(
    "target",
    [lambda outside: str(outside), lambda outside: os.path.relpath(outside, "/")],
    ids=["absolute", "relative-up"],
)
def test_a_symlink_leading_outside_the_clone_is_refused_before_writing(
    env_remote: Remote,
    tmp_path: Path,
    target: callable,  # type: ignore[valid-type]
) -> None:
    outside = tmp_path / "victim.yaml"
    outside.write_text(ENV_FILE)

    def link(seed: Path) -> None:
        (seed / "env" / "values.yaml").unlink()
        dest = target(outside)
        if not os.path.isabs(dest):  # as many '..' as it takes to reach / from env/
            dest = os.path.relpath(outside, seed / "env")
        (seed / "env" / "values.yaml").symlink_to(dest)

    push_change(env_remote, tmp_path, link)
    before = env_remote.head()
    with pytest.raises(InvalidInput) as err:
        promote_via_git(environment(str(env_remote.path)), WEB, "1.2.0", workdir=tmp_path / "work")
    assert "env/values.yaml leads outside the repository" in str(err.value)
    assert err.value.exit_code == 2
    assert outside.read_text() == ENV_FILE
    assert env_remote.head() == before


def test_a_symlinked_directory_leading_outside_is_refused(env_remote: Remote, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "values.yaml").write_text(ENV_FILE)

    def link(seed: Path) -> None:
        git("rm", "-q", "-r", "env", cwd=seed)
        (seed / "env").symlink_to(outside)

    push_change(env_remote, tmp_path, link)
    with pytest.raises(InvalidInput, match="leads outside the repository"):
        promote_via_git(environment(str(env_remote.path)), WEB, "1.2.0", workdir=tmp_path / "work")
    assert (outside / "values.yaml").read_text() == ENV_FILE


def test_a_symlink_into_git_metadata_is_refused(env_remote: Remote, tmp_path: Path) -> None:
    def link(seed: Path) -> None:
        (seed / "env" / "values.yaml").unlink()
        (seed / "env" / "values.yaml").symlink_to("../.git/config")

    push_change(env_remote, tmp_path, link)
    with pytest.raises(InvalidInput, match=r"leads into the repository's \.git directory"):
        promote_via_git(environment(str(env_remote.path)), WEB, "1.2.0", workdir=tmp_path / "work")


def test_a_symlink_inside_the_clone_edits_and_commits_its_target(env_remote: Remote, tmp_path: Path) -> None:
    def link(seed: Path) -> None:
        (seed / "env" / "real.yaml").write_text(ENV_FILE)
        (seed / "env" / "values.yaml").unlink()
        (seed / "env" / "values.yaml").symlink_to("real.yaml")

    push_change(env_remote, tmp_path, link)
    result = promote_via_git(environment(str(env_remote.path)), WEB, "1.2.0", workdir=tmp_path / "work")
    assert result.changed
    assert 'version: "1.2.0"' in env_remote.show("main", "env/real.yaml")


def test_a_pull_request_that_cannot_be_opened_takes_its_branch_away(
    env_remote: Remote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, httpx_mock: Any
) -> None:
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", f"url.{tmp_path / 'remotes'}/.insteadOf")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", "https://github.example.com/")
    httpx_mock.add_response(
        method="POST",
        url="https://api.github.example.com/repos/shop/env-production/pulls",
        status_code=422,
        json={"message": "Validation Failed", "errors": [{"message": "base branch is protected"}]},
    )
    env = environment(
        "https://github.example.com/shop/env-production.git", {"provider": "github", "tokenEnv": "T"}
    )
    client = GitHubClient("s3cret", api_url="https://api.github.example.com")
    with pytest.raises(ProgdelError, match="opening a pull request"):
        promote_via_git(env, WEB, "1.2.0", workdir=tmp_path / "work", pr_client=client)
    assert env_remote.branches() == ["main"]


@pytest.mark.parametrize("version", ["1..2", "1.2.", "1.2.lock"])
def test_a_tag_git_cannot_use_in_a_branch_name_is_refused(version: str) -> None:
    with pytest.raises(InvalidInput, match="cannot be part of a git branch name"):
        promotion_branch("web", version)


def test_a_digest_version_gets_a_valid_branch_name() -> None:
    assert promotion_branch("web", "sha256:" + "a" * 64) == "promote-web-sha256-" + "a" * 64
