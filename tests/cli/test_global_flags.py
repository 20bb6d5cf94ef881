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


@pytest.mark.parametrize("name", sorted(__import__("progdel.cli.main", fromlist=["GROUPS"]).GROUPS))
def test_the_top_level_help_says_what_each_group_says(name: str) -> None:
    """`progdel --help` lists the groups without importing them; their lines must not drift."""
    from progdel.cli.main import GROUPS, load_group

    assert load_group(name).get_short_help_str(1000) == GROUPS[name][2]


def test_top_level_help_imports_no_group_module() -> None:
    code = (
        "import sys; sys.argv = ['progdel', '--help']\n"
        "from progdel.cli.main import run\n"
        "try:\n    run()\nexcept SystemExit:\n    pass\n"
        "loaded = [m for m in sys.modules if m.startswith('progdel.cli.') and m != 'progdel.cli.main']\n"
        "assert loaded == ['progdel.cli.options'], loaded\n"
        "assert 'kubernetes' not in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
