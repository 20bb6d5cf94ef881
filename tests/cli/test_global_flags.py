"""Global flags are accepted anywhere on the command line, as kubectl accepts them."""

import subprocess
import sys

import pytest

from progdel.cli.options import hoist_global_flags


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (["canary", "list", "-o", "json"], ["-o", "json", "canary", "list"]),
        (
            ["canary", "status", "web", "-n", "prod", "--context=c1"],
            ["-n", "prod", "--context=c1", "canary", "status", "web"],
        ),
        (["-n", "a", "get", "applications", "-ojson"], ["-n", "a", "-ojson", "get", "applications"]),
        (["canary", "watch", "web", "-vv", "--once"], ["-vv", "canary", "watch", "web", "--once"]),
        (
            ["promote", "web", "--version", "1.2.0", "-e", "prod"],
            ["promote", "web", "--version", "1.2.0", "-e", "prod"],
        ),
        (["canary", "list", "--", "-o", "json"], ["canary", "list", "--", "-o", "json"]),
    ],
)
def test_hoist(given: list[str], expected: list[str]) -> None:
    assert hoist_global_flags(given) == expected


def test_output_flag_after_the_command_works_end_to_end() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "progdel", "version", "-o", "json"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert '"version": "0.1.0"' in proc.stdout
