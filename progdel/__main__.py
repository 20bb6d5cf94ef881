"""``python -m progdel``: the same as the ``progdel`` command."""

from progdel.cli.main import run

run()
