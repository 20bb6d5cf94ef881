"""Pull-request clients at the HTTP boundary, and waiting for a merge."""

from __future__ import annotations

import json

import httpx
import pytest

from progdel.config.project import PullRequestConfig
from progdel.errors import ExitCode, InvalidInput, ProgdelError, TimedOut, Unreachable
from progdel.promote.gitops import wait_for_merge
from progdel.promote.pullrequest import (
    GitHubClient,
    GitLabClient,
    PullRequest,
    client_for,
    repository_path,
)

GH_REPO = "git@github.com:shop/env-production.git"
GL_REPO = "https://gitlab.com/shop/platform/env-production.git"


def test_repository_path_from_https_and_ssh():
    assert repository_path("https://github.com/shop/env.git") == "shop/env"
    assert repository_path("git@github.com:shop/env.git") == "shop/env"
    assert repository_path("ssh://git@gitlab.example.com:2222/a/b/c.git") == "a/b/c"
    with pytest.raises(InvalidInput):
        repository_path("/srv/git/env.git")


def test_github_open(httpx_mock):
    httpx_mock.add_response(
        method="POST",
        url="https://api.github.com/repos/shop/env-production/pulls",
        status_code=201,
        json={"number": 12, "html_url": "https://github.com/shop/env-production/pull/12", "state": "open"},
    )
    pr = GitHubClient("tok").open(GH_REPO, head="promote-web-1.2.0", base="main", title="T", body="B")
    assert pr == PullRequest(12, "https://github.com/shop/env-production/pull/12", "open")
    request = httpx_mock.get_request()
    assert json.loads(request.read()) == {
        "title": "T",
        "head": "promote-web-1.2.0",
        "base": "main",
        "body": "B",
    }
    assert request.headers["Authorization"] == "Bearer tok"


def test_github_open_reuses_an_existing_pull_request(httpx_mock):
    httpx_mock.add_response(
        method="POST",
        status_code=422,
        json={
            "message": "Validation Failed",
            "errors": [{"message": "A pull request already exists for shop:x."}],
        },
    )
    httpx_mock.add_response(
        method="GET",
        url="https://api.github.com/repos/shop/env-production/pulls?head=shop%3Apromote-web-1.2.0&base=main&state=open",
        json=[{"number": 3, "html_url": "https://github.com/shop/env-production/pull/3", "state": "open"}],
    )
    pr = GitHubClient("tok").open(GH_REPO, head="promote-web-1.2.0", base="main", title="T", body="B")
    assert pr.number == 3


@pytest.mark.parametrize(
    ("payload", "state"),
    [
        ({"state": "open", "merged": False}, "open"),
        ({"state": "closed", "merged": True}, "merged"),
        ({"state": "closed", "merged": False}, "closed"),
    ],
)
def test_github_get_state(httpx_mock, payload, state):
    httpx_mock.add_response(
        url="https://api.github.com/repos/shop/env-production/pulls/12",
        json={"number": 12, "html_url": "https://github.com/shop/env-production/pull/12", **payload},
    )
    assert GitHubClient("tok").get(GH_REPO, 12).state == state


def test_gitlab_open_and_get(httpx_mock):
    base = "https://gitlab.example.com/api/v4/projects/shop%2Fplatform%2Fenv-production/merge_requests"
    httpx_mock.add_response(
        method="POST",
        url=base,
        status_code=201,
        json={
            "iid": 5,
            "web_url": "https://gitlab.com/shop/platform/env-production/-/merge_requests/5",
            "state": "opened",
        },
    )
    for state in ("opened", "merged", "closed"):
        httpx_mock.add_response(
            method="GET", url=f"{base}/5", json={"iid": 5, "web_url": "u", "state": state}
        )
    client = GitLabClient("gl-tok", api_url="https://gitlab.example.com/api/v4")
    pr = client.open(GL_REPO, head="promote-web-1.2.0", base="main", title="T", body="B")
    assert pr.number == 5 and pr.state == "open"
    post = httpx_mock.get_requests()[0]
    assert post.headers["PRIVATE-TOKEN"] == "gl-tok"
    assert json.loads(post.read()) == {
        "source_branch": "promote-web-1.2.0",
        "target_branch": "main",
        "title": "T",
        "description": "B",
    }
    assert [client.get(GL_REPO, 5).state for _ in range(3)] == ["open", "merged", "closed"]


def test_refused_token_and_unreachable_do_not_leak_the_token(httpx_mock):
    httpx_mock.add_response(status_code=401, json={"message": "Bad credentials"})
    with pytest.raises(InvalidInput, match=r"refused the token") as err:
        GitHubClient("s3cret-token").get(GH_REPO, 1)
    assert "s3cret" not in str(err.value)
    httpx_mock.add_exception(httpx.ConnectError("refused"))
    with pytest.raises(Unreachable, match=r"GitHub API https://api.github.com unreachable"):
        GitHubClient("s3cret-token").get(GH_REPO, 1)


def test_token_from_env_or_file(tmp_path, httpx_mock):
    cfg = PullRequestConfig(provider="gitlab", tokenEnv="MY_TOKEN")
    with pytest.raises(InvalidInput, match=r"set the environment variable MY_TOKEN"):
        client_for(cfg, environ={})
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    client = client_for(PullRequestConfig(provider="github", tokenFile=str(token_file)), environ={})
    httpx_mock.add_response(json={"number": 1, "html_url": "u", "state": "open"})
    client.get(GH_REPO, 1)
    assert httpx_mock.get_request().headers["Authorization"] == "Bearer from-file"


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _pr(httpx_mock, state: str, merged: bool = False) -> None:
    httpx_mock.add_response(
        url="https://api.github.com/repos/shop/env-production/pulls/12",
        json={
            "number": 12,
            "html_url": "https://github.com/shop/env-production/pull/12",
            "state": state,
            "merged": merged,
        },
    )


OPEN = PullRequest(12, "https://github.com/shop/env-production/pull/12", "open")


def test_wait_returns_when_merged(httpx_mock):
    _pr(httpx_mock, "open")
    _pr(httpx_mock, "open")
    _pr(httpx_mock, "closed", merged=True)
    clock = FakeClock()
    pr = wait_for_merge(
        GitHubClient("t"), GH_REPO, OPEN, timeout=3600, poll_interval=20, clock=clock, sleep=clock.sleep
    )
    assert pr.state == "merged" and clock.sleeps == [20, 20]


def test_wait_closed_unmerged_is_aborted_with_url(httpx_mock):
    _pr(httpx_mock, "open")
    _pr(httpx_mock, "closed")
    clock = FakeClock()
    with pytest.raises(ProgdelError, match=r"pull/12 was closed without merging") as err:
        wait_for_merge(GitHubClient("t"), GH_REPO, OPEN, timeout=3600, clock=clock, sleep=clock.sleep)
    assert err.value.exit_code == ExitCode.ABORTED


def test_wait_times_out_with_url(httpx_mock):
    httpx_mock.add_response(
        url="https://api.github.com/repos/shop/env-production/pulls/12",
        json={"number": 12, "html_url": "https://github.com/shop/env-production/pull/12", "state": "open"},
        is_reusable=True,
    )
    clock = FakeClock()
    with pytest.raises(TimedOut, match=r"timed out after 1m waiting for pull request .*/pull/12 to merge"):
        wait_for_merge(
            GitHubClient("t"), GH_REPO, OPEN, timeout=60, poll_interval=20, clock=clock, sleep=clock.sleep
        )
    assert clock.now == 60 and clock.sleeps == [20, 20, 20]


def test_wait_once_is_waiting_and_outages_are_retried(httpx_mock):
    _pr(httpx_mock, "open")
    with pytest.raises(ProgdelError, match=r"still open") as err:
        wait_for_merge(GitHubClient("t"), GH_REPO, OPEN, timeout=60, once=True)
    assert err.value.exit_code == ExitCode.WAITING
    httpx_mock.add_response(status_code=502)
    _pr(httpx_mock, "closed", merged=True)
    clock = FakeClock()
    pr = wait_for_merge(
        GitHubClient("t"), GH_REPO, OPEN, timeout=60, poll_interval=5, clock=clock, sleep=clock.sleep
    )
    assert pr.state == "merged"
