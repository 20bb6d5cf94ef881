"""A real bare git repository as an environment remote."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ENV_FILE = """\
# Production environment for the shop.
# progdel promote edits the versions below; keep comments.
apps:
  web:
    image: registry.example.com/shop/web
    version: "1.1.0"  # set by progdel
  api:
    image: registry.example.com/shop/api
    version: 2.0.0
"""


def git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


class Remote:
    def __init__(self, path: Path) -> None:
        self.path = path

    def git(self, *args: str) -> str:
        return git("--git-dir", str(self.path), *args)

    def head(self, branch: str = "main") -> str:
        return self.git("rev-parse", f"refs/heads/{branch}").strip()

    def show(self, branch: str, file: str) -> str:
        return self.git("show", f"{branch}:{file}")

    def branches(self) -> list[str]:
        return self.git("for-each-ref", "--format=%(refname:short)", "refs/heads/").split()

    def reject_pushes(self) -> None:
        hook = self.path / "hooks" / "pre-receive"
        hook.write_text("#!/bin/sh\necho 'main is protected: use a pull request' >&2\nexit 1\n")
        hook.chmod(0o755)


@pytest.fixture
def env_remote(tmp_path: Path) -> Remote:
    """``tmp/remotes/shop/env-production.git`` with ``env/values.yaml`` on ``main``."""
    bare = tmp_path / "remotes" / "shop" / "env-production.git"
    bare.parent.mkdir(parents=True)
    git("init", "-q", "--bare", "-b", "main", str(bare))
    seed = tmp_path / "seed"
    git("clone", "-q", str(bare), str(seed))
    git("checkout", "-q", "-b", "main", cwd=seed)
    (seed / "env").mkdir()
    (seed / "env" / "values.yaml").write_text(ENV_FILE)
    (seed / "README.md").write_text("environment repository\n")
    git("add", ".", cwd=seed)
    git("commit", "-q", "-m", "initial", cwd=seed)
    git("push", "-q", "origin", "main", cwd=seed)
    return Remote(bare)


@pytest.fixture(autouse=True)
def _no_traffic(nothing_to_drain: None) -> None:
    """These tests run against sandboxes without a data plane: no traffic, nothing to drain."""
