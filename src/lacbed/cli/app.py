"""The root ``lacbed`` Typer application; command modules register on it."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="lacbed",
    help="LACBED patterns of crystals: Bloch-wave simulation (any crystal system) and a neural surrogate (cubic).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        from lacbed import __version__

        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        help="Print the lacbed version and exit.",
        callback=_print_version,
        is_eager=True,
    ),
) -> None:
    """LACBED patterns of crystals: Bloch-wave simulation (any crystal system) and a neural surrogate (cubic)."""


@app.command("version")
def version() -> None:
    """Print the lacbed version."""
    from lacbed import __version__

    typer.echo(__version__)
