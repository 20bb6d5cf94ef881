"""Global options shared by every command, as kubectl users expect them."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from progdel.kube.client import Kube


class OutputFormat(StrEnum):
    table = "table"
    json = "json"
    yaml = "yaml"
    ndjson = "ndjson"


@dataclass
class GlobalOptions:
    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None
    config: str | None = None
    output: OutputFormat = OutputFormat.table
    verbose: int = 0


def global_options(ctx: typer.Context) -> GlobalOptions:
    """The options given before the command (``progdel -n demo canary list``)."""
    obj = ctx.find_root().obj
    if isinstance(obj, GlobalOptions):
        return obj
    return GlobalOptions()


def connect(opts: GlobalOptions) -> Kube:
    """A ``progdel.kube.client.Kube`` for the global flags (imports the kubernetes client lazily)."""
    from progdel.kube.client import connect as kube_connect

    return kube_connect(opts.kubeconfig, opts.context, opts.namespace)
