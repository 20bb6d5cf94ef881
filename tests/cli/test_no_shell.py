"""progdel runs every program it starts (git, helm, Envoy, Prometheus, the replicas)
from an argument list, never through a shell: no value from a spec, a flag or a cluster can
become a shell word. The one exception is the sandbox load tester's ``bash`` task, which runs a
Canary webhook's command with ``bash -c`` as Flagger's load tester does, and only when
``sandbox up --allow-commands`` says so."""

from __future__ import annotations

import ast
from pathlib import Path

import progdel

SOURCE = Path(progdel.__file__).parent
SHELL_CALLS = {
    ("os", "system"),
    ("os", "popen"),
    ("subprocess", "getoutput"),
    ("subprocess", "getstatusoutput"),
    ("asyncio", "create_subprocess_shell"),
}
SHELLS = {"sh", "bash", "/bin/sh", "/bin/bash", "zsh", "dash"}
# The load tester's `bash` webhook task (Flagger's task_shell.go), opt-in with --allow-commands.
ALLOWED_SHELL_LIST = {"sandbox/loadtester.py"}


def shell_uses(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = (
                (func.value.id, func.attr)
                if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
                else None
            )
            if name in SHELL_CALLS:
                found.append(f"{name[0]}.{name[1]}() at line {node.lineno}")
            for kw in node.keywords:
                if kw.arg == "shell" and not (isinstance(kw.value, ast.Constant) and kw.value.value is False):
                    found.append(f"shell={ast.unparse(kw.value)} at line {node.lineno}")
        if isinstance(node, ast.List | ast.Tuple) and len(node.elts) >= 2:
            first, second = node.elts[0], node.elts[1]
            if (
                isinstance(first, ast.Constant)
                and first.value in SHELLS
                and isinstance(second, ast.Constant)
                and second.value == "-c"
            ):
                found.append(f"[{first.value!r}, '-c', ...] at line {node.lineno}")
    return found


def test_the_checker_sees_each_form_of_shell(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import os, subprocess\n"
        "os.system('x')\n"
        "subprocess.run('x', shell=True)\n"
        "subprocess.run(['bash', '-c', 'x'])\n"
        "subprocess.run(['git', 'status'], shell=False)\n"
    )
    found = [u.split(" at ")[0] for u in shell_uses(sample)]
    assert found == ["os.system()", "shell=True", "['bash', '-c', ...]"]


def test_nothing_runs_through_a_shell() -> None:
    uses = {}
    for path in sorted(SOURCE.rglob("*.py")):
        rel = path.relative_to(SOURCE).as_posix()
        found = shell_uses(path)
        if found and rel not in ALLOWED_SHELL_LIST:
            uses[rel] = found
    assert uses == {}
    assert shell_uses(SOURCE / "sandbox/loadtester.py"), "the load tester's bash task moved: update this test"
