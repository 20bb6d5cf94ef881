"""Bad input on the command line, in a kubeconfig or in the environment: one line, exit 2, and
never a secret in it. Runs ``progdel`` as a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.config.test_hostile_yaml import alias_bomb

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
  - name: c
    cluster: {server: "http://127.0.0.1:1"}
contexts:
  - name: c
    context: {cluster: c, user: u, namespace: test}
current-context: c
users:
  - name: u
    user: {token: TOKEN}
"""


def progdel(
    *args: str | bytes, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "progdel", *args],
        capture_output=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=120,
    )


def one_line_exit_2(proc: subprocess.CompletedProcess[bytes]) -> str:
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and "internal error" not in err
    return err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x00\x01\xff\xfe", "not UTF-8 text"),
        (b"a: [\n", ":2: invalid YAML"),
        (b"- a\n- b\n", "expected a mapping (apiVersion, clusters, contexts, users), got a list"),
        (b"hello\n", "got a string"),
        (b"clusters: {a: 1}\n", "clusters: expected a list of mappings, got a mapping"),
        (b"users: [{name: u, user: [1]}]\n", "users 'u': user: expected a mapping"),
        (KUBECONFIG.encode() + b"users: []\n", ":13: duplicate key 'users' (first at line 10)"),
        (alias_bomb().encode(), "YAML aliases expand this document"),
        (None, "is a directory, not a file"),
    ],
    ids=["binary", "bad-yaml", "list", "scalar", "clusters-mapping", "user-list", "dup-key", "bomb", "dir"],
)
def test_a_broken_kubeconfig_is_one_line_exit_2(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "kubeconfig"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    err = one_line_exit_2(progdel("--kubeconfig", str(path), "canary", "list"))
    assert f"kubeconfig {path}" in err and message in err


@pytest.mark.parametrize("via", ["flag", "KUBECONFIG"])
def test_a_kubeconfig_token_with_a_control_character_is_refused_unprinted(tmp_path: Path, via: str) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG.replace("token: TOKEN", 'token: "s3cret-tok\\nX-Injected: 1"'))
    args = ["--kubeconfig", str(path)] if via == "flag" else []
    env = {"KUBECONFIG": str(path)} if via == "KUBECONFIG" else {}
    err = one_line_exit_2(progdel(*args, "canary", "list", env=env))
    assert "user 'u': token contains a control character" in err
    assert "s3cret" not in err


def test_an_argument_that_is_not_utf8_is_one_line() -> None:
    err = one_line_exit_2(progdel("addon", "install", "istio", "--dry-run", "--set", b"a=\xff"))
    assert err == "error: the value of --set is not valid UTF-8\n"


def test_a_values_file_alias_bomb_is_one_line(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(alias_bomb())
    err = one_line_exit_2(progdel("addon", "install", "istio", "--dry-run", "--values", str(values)))
    assert f"--values {values}:" in err and "YAML aliases expand" in err


def test_a_values_file_that_is_a_directory_is_one_line(tmp_path: Path) -> None:
    err = one_line_exit_2(progdel("addon", "install", "istio", "--dry-run", "--values", str(tmp_path)))
    assert f"--values {tmp_path}: is a directory" in err


@pytest.mark.parametrize(
    "command",
    [["canary", "check", "--no-cluster", "-f", "FILE"], ["--config", "FILE", "env", "list"]],
    ids=["canary-file", "progdel.yaml"],
)
def test_an_alias_bomb_in_a_user_file_is_one_line(tmp_path: Path, command: list[str]) -> None:
    path = tmp_path / "file.yaml"
    path.write_text("apiVersion: flagger.app/v1beta1\nkind: Canary\n" + alias_bomb())
    err = one_line_exit_2(progdel(*[str(path) if a == "FILE" else a for a in command]))
    assert f"{path}:" in err and "YAML aliases expand this document" in err
