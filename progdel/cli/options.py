"""Global options shared by every command, as kubectl users expect them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from progdel.ui.output import OutputFormat

if TYPE_CHECKING:
    from progdel.config.project import Defaults
    from progdel.kube.client import Kube
    from progdel.promote.clusters import Clusters


#: the formats only ``canary report`` writes
DOCUMENT_FORMATS = (OutputFormat.html, OutputFormat.md)


@dataclass
class GlobalOptions:
    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None
    config: str | None = None
    output: OutputFormat = OutputFormat.table
    verbose: int = 0
    mesh_provider: str | None = None


def global_options(ctx: typer.Context, *, documents: bool = False) -> GlobalOptions:
    """The options given before the command (``progdel -n demo canary list``). ``-o html`` and
    ``-o md`` are refused (exit 2) unless the command writes ``documents``."""
    obj = ctx.find_root().obj
    opts = obj if isinstance(obj, GlobalOptions) else GlobalOptions()
    if opts.output in DOCUMENT_FORMATS and not documents:
        from progdel.errors import InvalidInput

        raise InvalidInput(
            f"-o {opts.output}: only `canary report` writes {opts.output}; "
            "use -o table, json, yaml or ndjson here"
        )
    return opts


def connect(opts: GlobalOptions) -> Kube:
    """A ``progdel.kube.client.Kube`` for the global flags (imports the kubernetes client lazily)."""
    from progdel.kube.client import connect as kube_connect

    return kube_connect(opts.kubeconfig, opts.context, opts.namespace)


def connect_clusters(opts: GlobalOptions) -> Clusters:
    """The clusters of progdel.yaml's environments: an environment's ``context``, else ``--context``,
    else the kubeconfig's current one (connections are made when first used)."""
    from progdel.kube.client import connect as kube_connect
    from progdel.promote.clusters import Clusters

    return Clusters(lambda context: kube_connect(opts.kubeconfig, context or opts.context, opts.namespace))


def project_defaults(opts: GlobalOptions) -> Defaults | None:
    """progdel.yaml's defaults (Prometheus URL, alerts), when there is a progdel.yaml."""
    path = Path(opts.config) if opts.config else Path.cwd() / "progdel.yaml"
    if not path.exists():
        return None
    from progdel.config.project import load_project

    return load_project(str(path), Path.cwd()).defaults


_GLOBAL_WITH_VALUE = {
    "-n",
    "--namespace",
    "-o",
    "--output",
    "--context",
    "--kubeconfig",
    "--config",
    "--mesh-provider",
}
_GLOBAL_FLAGS = {"-v", "--verbose"}


def hoist_global_flags(args: list[str]) -> list[str]:
    """Move global flags given after the command to the front, as kubectl accepts them anywhere.

    ``progdel canary list -n test -o json`` becomes ``progdel -n test -o json canary list``.
    Everything after ``--`` is left alone; no command defines these flags itself.
    """
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        name = arg.split("=", 1)[0]
        if name in _GLOBAL_WITH_VALUE:
            if "=" in arg or i + 1 >= len(args):
                front.append(arg)
            else:
                front.extend(args[i : i + 2])
                i += 1
        elif len(arg) > 2 and arg[:2] in ("-n", "-o") and not arg.startswith("--"):
            front.append(arg)  # -njson style: value attached
        elif arg in _GLOBAL_FLAGS or (arg.startswith("-v") and set(arg[1:]) == {"v"}):
            front.append(arg)
        else:
            rest.append(arg)
        i += 1
    return front + rest
