"""GitOps promotion against a real bare git repository."""

from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path

import pytest
import yaml

from progdel.config.project import App, Environment
from progdel.errors import ExitCode, InvalidInput, ProgdelError
from progdel.promote.git import GitError, PushRejected
from progdel.promote.gitops import promote_via_git
from progdel.promote.pullrequest import GitHubClient

from .conftest import ENV_FILE, Remote, git

WEB = App(name="web", image="registry.example.com/shop/web")


def environment(repository: str, pull_request: dict | None = None) -> Environment:
    gitops = {"repository": repository, "file": "env/values.yaml", "key": "apps.{app}.version"}
    if pull_request:
        gitops["pullRequest"] = pull_request
    return Environment.model_validate(
        {
            "name": "production",
            "namespace": "prod",
            "order": 300,
            "promotionStrategy": "Manual",
            "kind": "gitops",
            "gitops": gitops,
        }
    )


def numstat(remote: Remote, ref: str) -> str:
    return remote.git("diff", "--numstat", f"{ref}~1", ref).strip()


def test_push_to_branch_is_one_commit_changing_one_line(env_remote: Remote, tmp_path: Path):
    before = env_remote.head()
    result = promote_via_git(environment(str(env_remote.path)), WEB, "1.2.0", workdir=tmp_path / "work")
    assert result.changed and result.previous_version == "1.1.0" and result.branch == "main"
    assert env_remote.head() == result.commit != before
    assert (
        env_remote.git("log", "-1", "--format=%s", "main").strip()
        == "chore: promote web to 1.2.0 in production"
    )
    assert numstat(env_remote, "main") == "1\t1\tenv/values.yaml"
    text = env_remote.show("main", "env/values.yaml")
    assert text == ENV_FILE.replace('version: "1.1.0"', 'version: "1.2.0"')
    assert yaml.safe_load(text)["apps"]["api"]["version"] == "2.0.0"
    assert "1.2.0" in result.message


def test_already_at_version_is_a_no_op(env_remote: Remote, tmp_path: Path):
    before = env_remote.head()
    result = promote_via_git(environment(str(env_remote.path)), WEB, "1.1.0", workdir=tmp_path / "work")
    assert not result.changed and result.commit is None
    assert "already at 1.1.0" in result.message
    assert env_remote.head() == before


def test_rejected_push_is_clear_and_leaves_nothing_behind(env_remote: Remote, tmp_path: Path):
    env_remote.reject_pushes()
    before = env_remote.head()
    work = tmp_path / "work"
    with pytest.raises(PushRejected) as err:
        promote_via_git(environment(str(env_remote.path)), WEB, "1.2.0", workdir=work)
    msg = str(err.value)
    assert f"push to {env_remote.path} branch main was rejected" in msg
    assert "main is protected" in msg and "\n" not in msg
    assert env_remote.head() == before and env_remote.branches() == ["main"]
    # The local clone is back at the remote branch: no stray commit, no modified file.
    assert git("rev-parse", "HEAD", cwd=work).strip() == before
    assert git("status", "--porcelain", cwd=work) == ""


def test_workdir_is_reused_after_the_remote_moved(env_remote: Remote, tmp_path: Path):
    env = environment(str(env_remote.path))
    work = tmp_path / "work"
    promote_via_git(env, WEB, "1.2.0", workdir=work)
    other = tmp_path / "other"
    git("clone", "-q", str(env_remote.path), str(other))
    (other / "README.md").write_text("changed by someone else\n")
    git("commit", "-q", "-am", "docs", cwd=other)
    git("push", "-q", "origin", "main", cwd=other)
    result = promote_via_git(env, WEB, "1.3.0", workdir=work)
    assert result.previous_version == "1.2.0"
    assert numstat(env_remote, "main") == "1\t1\tenv/values.yaml"
    assert env_remote.git("log", "-1", "--format=%s", "main~1").strip() == "docs"


def record_git_arguments(bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put a ``git`` first on PATH that writes its arguments, a line per call, then runs git."""
    real = shutil.which("git")
    assert real is not None
    bin_dir.mkdir()
    calls = bin_dir / "calls"
    calls.write_text("")
    wrapper = bin_dir / "git"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {shlex.quote(str(calls))}\nexec {shlex.quote(real)} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return calls


def test_pull_request_flow_pushes_a_promotion_branch(
    env_remote: Remote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, httpx_mock
):
    # The "hosted" URL resolves to the local bare repository through git's own insteadOf.
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", f"url.{tmp_path / 'remotes'}/.insteadOf")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", "https://github.example.com/")
    httpx_mock.add_response(
        method="POST",
        url="https://api.github.example.com/repos/shop/env-production/pulls",
        status_code=201,
        json={
            "number": 7,
            "html_url": "https://github.example.com/shop/env-production/pull/7",
            "state": "open",
        },
    )
    env = environment(
        "https://github.example.com/shop/env-production.git", {"provider": "github", "tokenEnv": "ENV_TOKEN"}
    )
    monkeypatch.setenv("ENV_TOKEN", "s3cret")
    client = GitHubClient("s3cret", api_url="https://api.github.example.com")
    before = env_remote.head()
    calls = record_git_arguments(tmp_path / "bin", monkeypatch)
    result = promote_via_git(env, WEB, "1.2.0", workdir=tmp_path / "work", pr_client=client)
    # git never sees the token in its arguments (nor in a remote URL it is given)
    arguments = calls.read_text()
    assert "\npush " in "\n" + arguments and "s3cret" not in arguments

    assert env_remote.head() == before  # main untouched until the PR merges
    assert "promote-web-1.2.0" in env_remote.branches()
    assert env_remote.head("promote-web-1.2.0") == result.commit
    assert numstat(env_remote, "promote-web-1.2.0") == "1\t1\tenv/values.yaml"
    assert result.pull_request is not None and result.pull_request.number == 7
    assert result.pull_request.url in result.message
    body = httpx_mock.get_request().read()
    request = yaml.safe_load(body)
    assert request["title"] == "chore: promote web to 1.2.0 in production"
    assert request["head"] == "promote-web-1.2.0" and request["base"] == "main"
    assert httpx_mock.get_request().headers["Authorization"] == "Bearer s3cret"


def test_pull_request_without_token_fails_before_any_push(
    env_remote: Remote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("ENV_TOKEN", raising=False)
    env = environment(str(env_remote.path), {"provider": "github", "tokenEnv": "ENV_TOKEN"})
    with pytest.raises(InvalidInput, match=r"set the environment variable ENV_TOKEN"):
        promote_via_git(env, WEB, "1.2.0", workdir=tmp_path / "work")
    assert env_remote.branches() == ["main"]


def test_missing_file_branch_and_foreign_workdir(env_remote: Remote, tmp_path: Path):
    env = environment(str(env_remote.path))
    env.gitops.file = "env/missing.yaml"  # type: ignore[union-attr]
    with pytest.raises(InvalidInput, match=r"no file env/missing.yaml on branch main"):
        promote_via_git(env, WEB, "1.2.0", workdir=tmp_path / "w1")
    env = environment(str(env_remote.path))
    env.gitops.branch = "release"  # type: ignore[union-attr]
    with pytest.raises(InvalidInput, match=r"has no branch 'release'"):
        promote_via_git(env, WEB, "1.2.0", workdir=tmp_path / "w2")
    foreign = tmp_path / "w3"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine\n")
    with pytest.raises(InvalidInput, match=r"is not a clone"):
        promote_via_git(environment(str(env_remote.path)), WEB, "1.2.0", workdir=foreign)
    assert (foreign / "notes.txt").read_text() == "mine\n"


def test_unreachable_remote_is_one_line(tmp_path: Path):
    with pytest.raises(GitError) as err:
        promote_via_git(environment(str(tmp_path / "nowhere.git")), WEB, "1.2.0", workdir=tmp_path / "w")
    assert "cannot clone" in str(err.value) and "\n" not in str(err.value)
    assert err.value.exit_code == ExitCode.INTERNAL
    assert isinstance(err.value, ProgdelError)


def test_someone_pushing_first_is_retried_on_the_new_tip(env_remote: Remote, tmp_path: Path):
    env = environment(str(env_remote.path))
    work = tmp_path / "work"
    promote_via_git(env, WEB, "1.2.0", workdir=work)
    # A local pre-push hook that lands another commit on the remote just before
    # progdel's push, once: a real race, so the first push is non-fast-forward.
    hook = work / ".git" / "hooks" / "pre-push"
    hook.write_text(
        "#!/bin/sh\n"
        "unset GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE\n"
        f"rm -f {hook}\n"
        f"git clone -q {env_remote.path} {tmp_path / 'racer'} &&\n"
        f"cd {tmp_path / 'racer'} && echo raced > README.md &&\n"
        "git -c user.name=R -c user.email=r@example.com commit -qam racing && git push -q origin main\n"
    )
    hook.chmod(0o755)
    result = promote_via_git(env, WEB, "1.3.0", workdir=work)
    assert result.changed and env_remote.head() == result.commit
    log = env_remote.git("log", "-3", "--format=%s", "main").split("\n")
    assert log[:3] == [
        "chore: promote web to 1.3.0 in production",
        "racing",
        "chore: promote web to 1.2.0 in production",
    ]
    assert numstat(env_remote, "main") == "1\t1\tenv/values.yaml"
