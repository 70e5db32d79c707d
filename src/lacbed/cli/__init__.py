"""The ``lacbed`` command line.

Every user error (:class:`lacbed.errors.LacbedError`, a missing file, ...) becomes a one-line
message on stderr and exit status 2, with no traceback and no output file written.
"""

from __future__ import annotations

import logging
import sys

from lacbed.cli import dataset as _dataset  # noqa: F401,E402
from lacbed.cli import ml as _ml  # noqa: F401,E402

# Command modules register their commands on ``app`` when imported.
from lacbed.cli import potential as _potential  # noqa: F401,E402
from lacbed.cli import refine as _refine  # noqa: F401,E402
from lacbed.cli import simulate as _simulate  # noqa: F401,E402
from lacbed.cli import structures as _structures  # noqa: F401,E402
from lacbed.cli.app import app

__all__ = ["app", "main"]


def _user_error_types() -> tuple[type[BaseException], ...]:
    from lacbed.errors import LacbedError

    return (LacbedError, FileNotFoundError, IsADirectoryError, PermissionError)


def _click_exception_types() -> tuple[type[BaseException], ...]:
    """Click's exception base classes: typer >= 0.20 vendors click as ``typer._click``."""
    types: list[type[BaseException]] = []
    for mod in ("typer._click.exceptions", "click.exceptions"):
        try:
            m = __import__(mod, fromlist=["ClickException"])
        except ImportError:
            continue
        types.append(m.ClickException)
    return tuple(types)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``lacbed`` console script."""
    import typer

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        rv = app(args=argv, prog_name="lacbed", standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(getattr(exc, "exit_code", 0))
    except typer.Abort:
        print("lacbed: aborted", file=sys.stderr)
        sys.exit(1)
    except _click_exception_types() as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":
            # ``lacbed`` or ``lacbed dataset`` alone: show the help, as click does.
            ctx = getattr(exc, "ctx", None)
            print(ctx.get_help() if ctx is not None else exc.format_message())
            sys.exit(0)
        # Usage errors (unknown option, bad value, missing argument): one line, exit 2.
        msg = " ".join(exc.format_message().split())
        print(f"lacbed: error: {msg}", file=sys.stderr)
        sys.exit(getattr(exc, "exit_code", 2) or 2)
    except _user_error_types() as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, FileNotFoundError) and getattr(exc, "filename", None):
            msg = f"no such file: {exc.filename}"
        print(f"lacbed: error: {msg}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("lacbed: interrupted", file=sys.stderr)
        sys.exit(130)
    # like click's standalone mode: always leave through SystemExit
    sys.exit(rv if isinstance(rv, int) else 0)
