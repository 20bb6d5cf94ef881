"""The ``progdel`` entry point: global flags, command groups, error handling.

Heavy modules (the ``kubernetes`` client above all) are imported inside the
commands that need them so that ``progdel --help`` stays fast.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from progdel import __version__
from progdel.cli.options import GlobalOptions, OutputFormat
from progdel.errors import ExitCode, ProgdelError

app = typer.Typer(
    name="progdel",
    help="Progressive delivery on Kubernetes: addons, promotion and client-side canaries.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback()
def main(
    ctx: typer.Context,
    kubeconfig: Annotated[
        str | None, typer.Option("--kubeconfig", help="Path to the kubeconfig file (default: $KUBECONFIG).")
    ] = None,
    context: Annotated[str | None, typer.Option("--context", help="The kubeconfig context to use.")] = None,
    namespace: Annotated[
        str | None, typer.Option("-n", "--namespace", help="Namespace (default: the context's).")
    ] = None,
    config: Annotated[
        str | None, typer.Option("--config", help="Path to progdel.yaml (default: ./progdel.yaml).")
    ] = None,
    output: Annotated[
        OutputFormat, typer.Option("-o", "--output", help="Output format: table, json, yaml, ndjson.")
    ] = OutputFormat.table,
    verbose: Annotated[
        int, typer.Option("-v", "--verbose", count=True, help="More detail; -v also shows tracebacks.")
    ] = 0,
) -> None:
    ctx.obj = GlobalOptions(
        kubeconfig=kubeconfig,
        context=context,
        namespace=namespace,
        config=config,
        output=output,
        verbose=verbose,
    )


@app.command()
def version(ctx: typer.Context) -> None:
    """Print progdel's version."""
    from progdel.cli.options import global_options
    from progdel.ui.output import emit

    opts = global_options(ctx)
    data = {"version": __version__, "python": sys.version.split()[0]}
    emit(opts, data, lambda d: f"progdel {d['version']}")


def _register() -> None:
    """Every command group; each module imports its heavy dependencies inside its commands."""
    from progdel.cli import addon, canary, demo, env, get, promote, sandbox

    app.command(name="demo")(demo.demo)
    app.add_typer(canary.app, name="canary")
    app.add_typer(promote.app, name="promote")
    app.add_typer(env.app, name="env")
    app.add_typer(get.app, name="get")
    app.add_typer(addon.app, name="addon")
    app.add_typer(sandbox.app, name="sandbox")


_register()


def run() -> None:
    """Console-script entry: map errors to one line and their exit code.

    Usage errors are reported by typer itself (exit 2); everything else a user
    can cause arrives here as a ``ProgdelError``.
    """
    from progdel.cli.options import hoist_global_flags

    args = hoist_global_flags(sys.argv[1:])
    verbose = any(a in ("-v", "--verbose") or a.startswith("-vv") for a in args)
    try:
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


def _print_error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
