"""Open pull requests and read their state: GitHub and GitLab, over httpx.

The token comes from an environment variable or a file named in progdel.yaml,
never from a flag (it would land in shell history and CI logs), and it is never
part of a message. Both providers are reduced to one small interface:
``open`` and ``get``, with three states: open, merged, closed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import quote

import httpx

from progdel.config.project import PullRequestConfig
from progdel.errors import ExitCode, InvalidInput, ProgdelError, Unreachable, check_credential

PRState = Literal["open", "merged", "closed"]

GITHUB_API = "https://api.github.com"
GITLAB_API = "https://gitlab.com/api/v4"


@dataclass(frozen=True)
class PullRequest:
    number: int
    url: str
    """The page people open in a browser."""
    state: PRState


class PullRequestClient(Protocol):
    def open(self, repository_url: str, *, head: str, base: str, title: str, body: str) -> PullRequest: ...

    def get(self, repository_url: str, number: int) -> PullRequest: ...


def repository_path(url: str) -> str:
    """``owner/repo`` (GitLab: ``group/subgroup/repo``) from an https, ssh or scp-like git URL."""
    text = url.strip()
    m = re.match(r"^[\w.-]+@[\w.-]+:(?P<path>.+)$", text)
    if m and "://" not in text:
        path = m["path"]
    elif "://" in text:
        path = text.split("://", 1)[1].partition("/")[2]
    else:
        raise InvalidInput(
            f"cannot tell owner and repository from {url!r}: a pull request needs a hosted URL"
        )
    path = path.strip("/")
    path = path.removesuffix(".git")
    if path.count("/") < 1:
        raise InvalidInput(f"cannot tell owner and repository from {url!r}")
    return path


class _HTTPClient:
    provider = ""

    def __init__(self, api_url: str, http: httpx.Client | None = None) -> None:
        self.api_url = api_url.rstrip("/")
        self._http = http or httpx.Client(timeout=30)

    def _headers(self) -> dict[str, str]:
        raise NotImplementedError

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        url = self.api_url + path
        try:
            response = self._http.request(method, url, headers=self._headers(), **kwargs)
        except httpx.TransportError as err:
            raise Unreachable(
                f"{self.provider} API {self.api_url} unreachable: {type(err).__name__}"
            ) from None
        if response.status_code in (401, 403):
            raise InvalidInput(
                f"{self.provider} API {url} refused the token (HTTP {response.status_code}): "
                "check the token and its scopes"
            )
        if response.status_code >= 500:
            raise Unreachable(f"{self.provider} API {url} answered HTTP {response.status_code}")
        return response

    def _fail(self, response: httpx.Response, what: str) -> ProgdelError:
        detail = ""
        try:
            body = response.json()
            detail = str(body.get("message") or body.get("error") or "")
            errors = body.get("errors")
            if errors:
                detail += " " + "; ".join(
                    str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in errors
                )
        except (ValueError, AttributeError):
            detail = response.text[:200]
        return ProgdelError(
            f"{self.provider}: {what} failed: HTTP {response.status_code} {detail.strip()}".strip(),
            ExitCode.INTERNAL,
        )


class GitHubClient(_HTTPClient):
    """GitHub (and GitHub Enterprise: ``apiUrl: https://HOST/api/v3``)."""

    provider = "GitHub"

    def __init__(self, token: str, api_url: str = GITHUB_API, http: httpx.Client | None = None) -> None:
        super().__init__(api_url, http)
        self._token = token

    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self._token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        }

    @staticmethod
    def _from_json(data: dict[str, Any]) -> PullRequest:
        state: PRState
        if data.get("merged") or data.get("merged_at"):
            state = "merged"
        elif data.get("state") == "closed":
            state = "closed"
        else:
            state = "open"
        return PullRequest(number=int(data["number"]), url=str(data["html_url"]), state=state)

    def open(self, repository_url: str, *, head: str, base: str, title: str, body: str) -> PullRequest:
        path = repository_path(repository_url)
        response = self._request(
            "POST", f"/repos/{path}/pulls", json={"title": title, "head": head, "base": base, "body": body}
        )
        if response.status_code == 422 and "already exists" in response.text:
            # A re-run of the same promotion: reuse the open pull request.
            owner = path.split("/")[0]
            existing = self._request(
                "GET",
                f"/repos/{path}/pulls",
                params={"head": f"{owner}:{head}", "base": base, "state": "open"},
            )
            if existing.status_code == 200 and existing.json():
                return self._from_json(existing.json()[0])
        if response.status_code != 201:
            raise self._fail(response, f"opening a pull request on {path}")
        return self._from_json(response.json())

    def get(self, repository_url: str, number: int) -> PullRequest:
        path = repository_path(repository_url)
        response = self._request("GET", f"/repos/{path}/pulls/{number}")
        if response.status_code != 200:
            raise self._fail(response, f"reading pull request {number} of {path}")
        return self._from_json(response.json())


class GitLabClient(_HTTPClient):
    """GitLab.com or a self-hosted GitLab (``apiUrl: https://HOST/api/v4``)."""

    provider = "GitLab"

    def __init__(self, token: str, api_url: str = GITLAB_API, http: httpx.Client | None = None) -> None:
        super().__init__(api_url, http)
        self._token = token

    def _headers(self) -> dict[str, str]:
        return {"PRIVATE-TOKEN": self._token}

    @staticmethod
    def _from_json(data: dict[str, Any]) -> PullRequest:
        raw = data.get("state")
        state: PRState = "merged" if raw == "merged" else "open" if raw == "opened" else "closed"
        return PullRequest(number=int(data["iid"]), url=str(data["web_url"]), state=state)

    def _project(self, repository_url: str) -> str:
        return "/projects/" + quote(repository_path(repository_url), safe="")

    def open(self, repository_url: str, *, head: str, base: str, title: str, body: str) -> PullRequest:
        project = self._project(repository_url)
        response = self._request(
            "POST",
            f"{project}/merge_requests",
            json={"source_branch": head, "target_branch": base, "title": title, "description": body},
        )
        if response.status_code == 409:
            existing = self._request(
                "GET",
                f"{project}/merge_requests",
                params={"source_branch": head, "target_branch": base, "state": "opened"},
            )
            if existing.status_code == 200 and existing.json():
                return self._from_json(existing.json()[0])
        if response.status_code != 201:
            raise self._fail(response, f"opening a merge request on {repository_path(repository_url)}")
        return self._from_json(response.json())

    def get(self, repository_url: str, number: int) -> PullRequest:
        project = self._project(repository_url)
        response = self._request("GET", f"{project}/merge_requests/{number}")
        if response.status_code != 200:
            raise self._fail(response, f"reading merge request {number} of {repository_path(repository_url)}")
        return self._from_json(response.json())


def read_token(config: PullRequestConfig, environ: Mapping[str, str] | None = None) -> str:
    """The provider token from ``tokenEnv`` or ``tokenFile`` (default env: GITHUB_TOKEN / GITLAB_TOKEN)."""
    env = os.environ if environ is None else environ
    if config.token_file:
        try:
            token = Path(config.token_file).read_text().strip()
        except OSError as err:
            raise InvalidInput(
                f"pullRequest.tokenFile {config.token_file}: cannot read: {err.strerror}"
            ) from None
        except UnicodeDecodeError:
            raise InvalidInput(f"pullRequest.tokenFile {config.token_file}: not UTF-8 text") from None
        if not token:
            raise InvalidInput(f"pullRequest.tokenFile {config.token_file} is empty")
        check_credential(token, f"pullRequest.tokenFile {config.token_file}")
        return token
    name = config.token_env or ("GITHUB_TOKEN" if config.provider == "github" else "GITLAB_TOKEN")
    token = env.get(name, "").strip()
    if not token:
        raise InvalidInput(f"no {config.provider} token: set the environment variable {name}")
    check_credential(token, f"the environment variable {name}")
    return token


def client_for(
    config: PullRequestConfig, *, environ: Mapping[str, str] | None = None, http: httpx.Client | None = None
) -> PullRequestClient:
    """The client for a ``pullRequest`` block of progdel.yaml."""
    token = read_token(config, environ)
    if config.provider == "github":
        return GitHubClient(token, config.api_url or GITHUB_API, http)
    return GitLabClient(token, config.api_url or GITLAB_API, http)
