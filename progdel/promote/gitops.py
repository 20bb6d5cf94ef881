"""Promotion through an environment git repository.

One promotion is one commit that changes one line: the version at the key
configured for the environment. Without a ``pullRequest`` block the commit is
pushed to the environment branch; with one, to ``promote-APP-VERSION``, and a
pull request is opened. ``wait_for_merge`` then follows the pull request with an
overall deadline and tells apart "merged", "closed without merging" and "still
open when time ran out", so a promotion never hangs silently.

Waiting for the cluster to run the version after the merge belongs to the
caller (the same rollout check as a direct promotion).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from progdel.config.project import App, Environment
from progdel.errors import ExitCode, InvalidInput, ProgdelError, TimedOut, Unreachable, printable
from progdel.promote.git import Clone, PushRejected, open_clone
from progdel.promote.pullrequest import PullRequest, PullRequestClient, client_for
from progdel.promote.yamledit import set_value

# A non-fast-forward push (someone pushed to the branch meanwhile) is retried
# on the new tip this many times in all; other refusals are not retried.
PUSH_ATTEMPTS = 3


@dataclass(frozen=True)
class GitOpsResult:
    environment: str
    app: str
    version: str
    repository: str
    file: str
    changed: bool
    """False when the file already had the version: nothing committed or pushed."""
    previous_version: str | None
    branch: str | None = None
    """The branch pushed to (the environment branch, or ``promote-APP-VERSION``)."""
    commit: str | None = None
    pull_request: PullRequest | None = None

    @property
    def message(self) -> str:
        if not self.changed:
            return f"{self.app} is already at {self.version} in {self.environment} ({self.repository})"
        where = f"{self.repository} branch {self.branch}"
        if self.pull_request:
            pr_url = self.pull_request.url
            return f"opened {pr_url} to promote {self.app} to {self.version} in {self.environment}"
        return (
            f"pushed {self.app} {self.version} for {self.environment} to {where} ({(self.commit or '')[:12]})"
        )


def commit_message(app: str, version: str, env: str) -> str:
    return f"chore: promote {app} to {version} in {env}"


def promotion_branch(app: str, version: str) -> str:
    """``promote-APP-VERSION`` (a digest's ``:`` becomes ``-``). A version that is a valid image
    tag but not part of a valid branch name (``1..2``, ``1.``, ``x.lock``) is refused (exit 2)."""
    name = f"promote-{app}-{version.replace(':', '-')}"
    if ".." in name or name.endswith((".", ".lock")):
        raise InvalidInput(
            f"version {version} cannot be part of a git branch name ({name}): no '..', and not "
            "ending with '.' or '.lock'"
        )
    return name


def promote_via_git(
    env: Environment,
    app: App,
    version: str,
    *,
    workdir: Path,
    pr_client: PullRequestClient | None = None,
) -> GitOpsResult:
    """Change ``app``'s version in ``env``'s repository, push, and open a pull request if configured.

    ``workdir`` is progdel's own clone of the repository (created, or fetched
    and reset if it is already there). When a pull request is configured and no
    ``pr_client`` is given, one is made from progdel.yaml's ``pullRequest`` block.
    On any failure the clone is reset to the remote branch: nothing half-done
    stays behind, locally or remotely.
    """
    if env.gitops is None:
        raise InvalidInput(f"environment {env.name} is not a gitops environment")
    cfg = env.gitops
    if cfg.pull_request is not None and pr_client is None:
        pr_client = client_for(cfg.pull_request)
    use_pr = cfg.pull_request is not None
    target = promotion_branch(app.name, version) if use_pr else cfg.branch
    clone = open_clone(cfg.repository, cfg.branch, Path(workdir))
    message = commit_message(app.name, version, env.name)
    try:
        for attempt in range(1, PUSH_ATTEMPTS + 1):
            previous, changed, written = _edit(clone, cfg.file, cfg.key, app.name, version)
            if not changed:
                return GitOpsResult(
                    env.name, app.name, version, cfg.repository, cfg.file, False, previous, branch=None
                )
            commit = clone.commit_all(message, [written])
            try:
                # The promotion branch belongs to progdel: a re-run replaces it.
                clone.push(target, force=use_pr)
                break
            except PushRejected as err:
                if not err.non_fast_forward or attempt == PUSH_ATTEMPTS:
                    raise
                clone.git("fetch", "-q", "origin")
                clone.reset_to_remote()
        pr: PullRequest | None = None
        if use_pr and pr_client is not None:
            body = (
                f"Promote **{app.name}** to **{version}** in **{env.name}** "
                f"(was {previous or 'unset'}).\n\nChanged `{cfg.key.replace('{app}', app.name)}` "
                f"in `{cfg.file}`. Opened by progdel."
            )
            try:
                pr = pr_client.open(cfg.repository, head=target, base=cfg.branch, title=message, body=body)
            except BaseException:
                # no pull request, no branch: a promotion branch nobody will look at must not stay
                clone.delete_remote_branch(target)
                raise
        return GitOpsResult(
            env.name, app.name, version, cfg.repository, cfg.file, True, previous, target, commit, pr
        )
    finally:
        _leave_clean(clone)


def resolve_in_clone(clone: Clone, file: str) -> Path:
    """The real path of ``file`` in the clone, refused (exit 2) unless it is a regular file inside
    the clone's work tree: a symlink, or a symlinked directory, leading elsewhere (another file of
    the user's, the clone's own ``.git``) would have progdel write there."""
    root = clone.path.resolve()
    path = (clone.path / file).resolve()
    if path != root and root not in path.parents:
        raise InvalidInput(
            f"{clone.url}: {file} leads outside the repository (to {path}); refusing to edit it"
        )
    relative = path.relative_to(root)
    if relative.parts[:1] == (".git",):
        raise InvalidInput(
            f"{clone.url}: {file} leads into the repository's .git directory; refusing to edit it"
        )
    if path.exists() and not path.is_file():
        raise InvalidInput(f"{clone.url}: {file} is not a regular file")
    return path


def _edit(clone: Clone, file: str, key: str, app: str, version: str) -> tuple[str | None, bool, str]:
    """Set the version in ``file``; the previous value, whether it changed, and the path (relative
    to the clone) of the file really written."""
    path = resolve_in_clone(clone, file)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise InvalidInput(f"{clone.url}: no file {file} on branch {clone.branch}") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{clone.url}: {file} is not UTF-8 text") from None
    edit = set_value(text, key, version, app=app, source=file)
    if edit.changed:
        path.write_text(edit.text)
    # the old value is only shown (in the pull request, the record), and a file may hold anything
    previous = None if edit.previous is None else printable(edit.previous)
    return previous, edit.changed, str(path.relative_to(clone.path.resolve()))


def _leave_clean(clone: Clone) -> None:
    # Best effort: the next run resets the clone again anyway.
    with contextlib.suppress(ProgdelError):
        clone.reset_to_remote()


def wait_for_merge(
    client: PullRequestClient,
    repository_url: str,
    pr: PullRequest,
    *,
    timeout: float,
    poll_interval: float = 20.0,
    once: bool = False,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    on_poll: Callable[[PullRequest], None] | None = None,
) -> PullRequest:
    """Poll ``pr`` until it is merged; the merged pull request.

    - closed without merging: ``ProgdelError`` exit 4 (ABORTED): a person
      rejected the promotion; the message has the URL;
    - still open after ``timeout`` seconds: ``TimedOut`` (exit 7), with the URL;
    - ``once``: look a single time; still open gives exit 5 (WAITING).

    A provider that cannot be reached for a moment does not end the wait; the last
    such error is part of the time-out message. ``on_poll`` sees every state read.
    """
    deadline = clock() + timeout
    last_error: str | None = None
    while True:
        try:
            current = client.get(repository_url, pr.number)
            last_error = None
        except Unreachable as err:
            current, last_error = pr, err.message
        if on_poll is not None:
            on_poll(current)
        if current.state == "merged":
            return current
        if current.state == "closed":
            raise ProgdelError(f"pull request {current.url} was closed without merging", ExitCode.ABORTED)
        if once:
            raise ProgdelError(f"pull request {current.url} is still open", ExitCode.WAITING)
        remaining = deadline - clock()
        if remaining <= 0:
            tail = f" (last error: {last_error})" if last_error else ""
            raise TimedOut(
                f"timed out after {_duration(timeout)} waiting for pull request {current.url} to merge{tail}"
            )
        sleep(min(poll_interval, remaining))


def _duration(seconds: float) -> str:
    s = int(seconds)
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return "".join(f"{n}{u}" for n, u in ((h, "h"), (m, "m"), (sec, "s")) if n) or "0s"
