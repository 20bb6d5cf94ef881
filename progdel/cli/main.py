"""The ``progdel`` entry point: global flags, command groups, error handling.

``progdel --help`` must stay fast: a command group's module is imported only
when that group is used (the top-level help lists the groups from ``GROUPS``),
and heavy modules (the ``kubernetes`` client above all) only inside the
commands that need them.
"""

from __future__ import annotations

import importlib
import sys
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from progdel import __version__
from progdel.cli.options import GlobalOptions, OutputFormat
from progdel.errors import ExitCode, InvalidInput, ProgdelError, printable

#: name -> (module, attribute: a Typer app or a command function, the one line `progdel --help` shows)
GROUPS: dict[str, tuple[str, str, str]] = {
    "demo": (
        "progdel.cli.demo",
        "demo",
        "Run progdel's main job on this machine: real traffic through a real Envoy, real metrics.",
    ),
    "canary": (
        "progdel.cli.canary",
        "app",
        "Drive Flagger-compatible canaries from the client: no controller in the cluster.",
    ),
    "promote": (
        "progdel.cli.promote",
        "app",
        "Promote a version into an environment (or list past promotions: promote history).",
    ),
    "env": ("progdel.cli.env", "app", "The environments versions move through (from progdel.yaml)."),
    "get": ("progdel.cli.get", "app", "Show what runs in the environments."),
    "addon": (
        "progdel.cli.addon",
        "app",
        "Install, inspect and remove the mesh (istio), metrics (prometheus), flagger, its dashboards "
        "(grafana) and its load tester (loadtester), idempotently.",
    ),
    "sandbox": (
        "progdel.cli.sandbox",
        "app",
        "Run progdel's sandbox cluster: a local Kubernetes API server that kubectl and progdel can use.",
    ),
}


def load_group(name: str) -> Any:
    """The click command for ``GROUPS[name]``, importing its module now."""
    module, attribute, _ = GROUPS[name]
    target = getattr(importlib.import_module(module), attribute)
    command: Any
    if isinstance(target, typer.Typer):
        target.rich_markup_mode = None
        command = typer.main.get_group(target)
    else:  # a single command
        single = typer.Typer(add_completion=False, rich_markup_mode=None)
        single.command(name=name)(target)
        command = typer.main.get_command(single)
    command.name = name
    return command


class _LazyGroup(TyperGroup):
    """The top-level group: lists ``GROUPS`` without importing them."""

    def list_commands(self, ctx: Any) -> list[str]:
        return [*super().list_commands(ctx), *GROUPS]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in GROUPS:
            return load_group(cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        rows = [(name, self.commands[name].get_short_help_str(200)) for name in super().list_commands(ctx)]
        rows += [(name, text) for name, (_, _, text) in GROUPS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


app = typer.Typer(
    cls=_LazyGroup,
    name="progdel",
    help="Progressive delivery on Kubernetes: addons, promotion and client-side canaries.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _complete_contexts(ctx: typer.Context, incomplete: str) -> list[str]:
    from progdel.cli.complete import contexts

    return contexts(ctx, incomplete)


@app.callback()
def main(
    ctx: typer.Context,
    kubeconfig: Annotated[
        str | None, typer.Option("--kubeconfig", help="Path to the kubeconfig file (default: $KUBECONFIG).")
    ] = None,
    context: Annotated[
        str | None,
        typer.Option(
            "--context",
            help="The kubeconfig context to use (for environments that name no context of their own).",
            autocompletion=_complete_contexts,
        ),
    ] = None,
    namespace: Annotated[
        str | None, typer.Option("-n", "--namespace", help="Namespace (default: the context's).")
    ] = None,
    config: Annotated[
        str | None, typer.Option("--config", help="Path to progdel.yaml (default: ./progdel.yaml).")
    ] = None,
    output: Annotated[
        OutputFormat,
        typer.Option(
            "-o", "--output", help="Output format: table, json, yaml, ndjson (html, md: canary report)."
        ),
    ] = OutputFormat.table,
    verbose: Annotated[
        int, typer.Option("-v", "--verbose", count=True, help="More detail; -v also shows tracebacks.")
    ] = 0,
    mesh_provider: Annotated[
        str | None,
        typer.Option(
            "--mesh-provider",
            help="Provider of Canaries that set no spec.provider (istio, gatewayapi:v1, gatewayapi:v1beta1), "
            "like Flagger's -mesh-provider (default: progdel.yaml's defaults.meshProvider, else "
            "gatewayapi:v1 with spec.service.gatewayRefs, else istio).",
        ),
    ] = None,
) -> None:
    ctx.obj = GlobalOptions(
        kubeconfig=kubeconfig,
        context=context,
        namespace=namespace,
        config=config,
        output=output,
        verbose=verbose,
        mesh_provider=mesh_provider,
    )


@app.command()
def version(ctx: typer.Context) -> None:
    """Print progdel's version."""
    from progdel.cli.options import global_options
    from progdel.ui.output import emit

    opts = global_options(ctx)
    data = {"version": __version__, "python": sys.version.split()[0]}
    emit(opts, data, lambda d: f"progdel {d['version']}")


def run() -> None:
    """Console-script entry: map errors to one line and their exit code.

    Usage errors are reported by typer itself (exit 2); everything else a user
    can cause arrives here as a ``ProgdelError``.
    """
    from progdel.cli.options import hoist_global_flags

    args = hoist_global_flags(sys.argv[1:])
    verbose = any(a in ("-v", "--verbose") or a.startswith("-vv") for a in args)
    try:
        _check_encoding(sys.argv[1:])
        app(args=args, prog_name="progdel")
    except ProgdelError as err:
        if verbose:
            import traceback

            traceback.print_exc()
        _print_error(str(err))
        sys.exit(int(err.exit_code))
    except KeyboardInterrupt:
        _print_error("interrupted")
        sys.exit(130)
    except Exception as err:  # a bug: still one line unless -v
        if verbose:
            import traceback

            traceback.print_exc()
        _print_error(f"internal error: {type(err).__name__}: {err} (run with -v for details)")
        sys.exit(int(ExitCode.INTERNAL))


def _check_encoding(args: list[str]) -> None:
    """Refuse an argument that is not valid UTF-8 (Python hands its bytes over as lone
    surrogates, which nothing downstream can encode), naming the flag it belongs to."""
    for i, arg in enumerate(args):
        if not any("\udc80" <= ch <= "\udcff" for ch in arg):
            continue
        if arg.startswith("--") and "=" in arg:
            what = f"the value of {arg.split('=', 1)[0]}"
        elif i and args[i - 1].startswith("-") and "=" not in args[i - 1]:
            what = f"the value of {args[i - 1]}"
        else:
            what = f"argument {i + 1}"
        raise InvalidInput(f"{printable(what)} is not valid UTF-8")


def _print_error(message: str) -> None:
    print(f"error: {printable(message)}", file=sys.stderr)
