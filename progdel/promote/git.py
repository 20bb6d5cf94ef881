"""A thin layer over the ``git`` command line, for environment repositories.

progdel works in its own clone (a cache or temporary directory), never in the
user's current repository. git's own credential helpers and SSH config apply;
prompts are disabled so that a missing credential fails instead of hanging.
Failures become one-line ``ProgdelError``s that keep git's own words.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from progdel.errors import ExitCode, InvalidInput, ProgdelError

DEFAULT_AUTHOR_NAME = "progdel"
DEFAULT_AUTHOR_EMAIL = "progdel@localhost"

# Variables that would point git at another repository than the one we name.
_REPO_VARIABLES = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_COMMON_DIR")


class GitError(ProgdelError):
    """A git command failed (exit 1 unless a subclass says otherwise)."""

    exit_code = ExitCode.INTERNAL


class PushRejected(GitError):
    """The remote refused a push: a protected branch, a hook, or someone pushed first."""

    def __init__(self, message: str, *, non_fast_forward: bool) -> None:
        super().__init__(message)
        self.non_fast_forward = non_fast_forward


def summarize(stderr: str, limit: int = 300) -> str:
    """git's stderr in one line: the lines that say what went wrong."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    keep = [
        ln
        for ln in lines
        if ln.startswith(("error:", "fatal:", "remote:", "!", "hint: Updates were rejected"))
        and ln not in ("remote:",)
    ]
    text = "; ".join(keep or lines[-2:]) or "no message"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _REPO_VARIABLES}
    env["GIT_TERMINAL_PROMPT"] = "0"
    env["LC_ALL"] = "C"
    env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
    return env


def run_git(args: list[str], cwd: Path | None = None, *, timeout: float = 300) -> str:
    """Run ``git ARGS`` in ``cwd``; its stdout, or ``GitError`` with stderr summarized."""
    try:
        proc = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            env=_env(),
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        raise GitError("git is not installed (or not on PATH); GitOps promotion needs it") from None
    except subprocess.TimeoutExpired:
        raise GitError(f"git {args[0]} did not finish within {timeout:.0f}s") from None
    if proc.returncode != 0:
        raise GitError(f"git {args[0]} failed: {summarize(proc.stderr)}")
    return proc.stdout


@dataclass
class Clone:
    """progdel's working clone of a remote repository, on one branch."""

    path: Path
    url: str
    branch: str

    def git(self, *args: str) -> str:
        return run_git(list(args), self.path)

    def head(self) -> str:
        return self.git("rev-parse", "HEAD").strip()

    def is_clean(self) -> bool:
        return self.git("status", "--porcelain").strip() == ""

    def reset_to_remote(self) -> None:
        """Drop local commits and changes: the clone equals ``origin/BRANCH`` again."""
        self.git("checkout", "-q", "-B", self.branch, f"origin/{self.branch}")
        self.git("reset", "-q", "--hard", f"origin/{self.branch}")
        self.git("clean", "-q", "-fdx")

    def commit_all(self, message: str, paths: list[str]) -> str:
        """Commit ``paths`` with ``message``; the new commit's id.

        The author comes from git config (repository, then global); when there is
        none, ``progdel <progdel@localhost>``.
        """
        self.git("add", "--", *paths)
        ident: list[str] = []
        if not _config(self.path, "user.name"):
            ident += ["-c", f"user.name={DEFAULT_AUTHOR_NAME}"]
        if not _config(self.path, "user.email"):
            ident += ["-c", f"user.email={DEFAULT_AUTHOR_EMAIL}"]
        run_git([*ident, "commit", "-q", "--no-verify", "-m", message], self.path)
        return self.head()

    def push(self, target_branch: str, *, force: bool = False) -> None:
        """Push HEAD to ``target_branch`` on origin.

        A refusal raises ``PushRejected`` naming remote and branch; the caller
        decides whether to reset the clone (``reset_to_remote``).
        """
        refspec = f"{'+' if force else ''}HEAD:refs/heads/{target_branch}"
        try:
            proc = subprocess.run(
                ["git", "push", "--porcelain", "origin", refspec],
                cwd=self.path,
                capture_output=True,
                text=True,
                env=_env(),
                timeout=300,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise GitError(
                f"git push to {self.url} branch {target_branch} did not finish within 300s"
            ) from None
        if proc.returncode == 0:
            return
        output = proc.stderr + "\n" + proc.stdout
        rejected = (
            "[rejected]" in output or "[remote rejected]" in output or "pre-receive hook declined" in output
        )
        if rejected:
            # "cannot lock ref ... but expected": the branch moved while we pushed.
            nff = any(m in output for m in ("non-fast-forward", "fetch first", "cannot lock ref"))
            reason = "someone else pushed first (non-fast-forward)" if nff else _rejection(output)
            raise PushRejected(
                f"push to {self.url} branch {target_branch} was rejected: {reason}; "
                "nothing was changed on the remote",
                non_fast_forward=nff,
            )
        raise GitError(f"git push to {self.url} branch {target_branch} failed: {summarize(proc.stderr)}")

    def delete_remote_branch(self, branch: str) -> None:
        """Best effort: remove ``branch`` from origin (a failure is left for the caller's error)."""
        with contextlib.suppress(GitError):
            run_git(["push", "-q", "origin", "--delete", f"refs/heads/{branch}"], self.path, timeout=60)


def _rejection(output: str) -> str:
    """Why the remote refused a push: its reason and what its hooks said."""
    reasons = re.findall(r"\[(?:remote )?rejected\]\s*\(([^)]*)\)", output)
    said = [
        ln.strip()[len("remote:") :].strip() for ln in output.splitlines() if ln.strip().startswith("remote:")
    ]
    parts = [*dict.fromkeys(reasons), *[s for s in said if s]]
    text = ": ".join(parts[:1]) + ("" if len(parts) < 2 else ": " + "; ".join(parts[1:]))
    return summarize(text) if text else summarize(output)


def _config(path: Path, name: str) -> str:
    try:
        return run_git(["config", "--get", name], path).strip()
    except GitError:
        return ""


def open_clone(url: str, branch: str, workdir: Path) -> Clone:
    """A clean clone of ``url`` at ``origin/BRANCH`` in ``workdir``: cloned, or fetched if there.

    ``workdir`` must be empty, missing, or an earlier clone of the same URL;
    anything else is refused rather than overwritten.
    """
    workdir = Path(workdir)
    if (workdir / ".git").exists():
        origin = _config(workdir, "remote.origin.url")
        if origin != url:
            raise InvalidInput(f"{workdir} is a clone of {origin or 'another repository'}, not of {url}")
        run_git(["fetch", "-q", "--prune", "origin"], workdir)
    elif workdir.exists() and any(workdir.iterdir()):
        raise InvalidInput(f"{workdir} exists and is not a clone of {url}; refusing to use it")
    else:
        workdir.parent.mkdir(parents=True, exist_ok=True)
        try:
            run_git(["clone", "-q", "--no-tags", url, str(workdir)])
        except GitError as err:
            raise GitError(f"cannot clone {url}: {err.message.removeprefix('git clone failed: ')}") from None
    clone = Clone(path=workdir, url=url, branch=branch)
    try:
        run_git(["rev-parse", "--verify", "-q", f"refs/remotes/origin/{branch}"], workdir)
    except GitError:
        raise InvalidInput(f"{url} has no branch {branch!r}") from None
    clone.reset_to_remote()
    return clone
