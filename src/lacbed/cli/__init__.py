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
from lacbed.cli import simulate as _simulate  # noqa: F401,E402
from lacbed.cli import structures as _structures  # noqa: F401,E402
from lacbed.cli.app import app

__all__ = ["app", "main"]


def _user_error_types() -> tuple[type[BaseException], ...]:
    from lacbed.errors import LacbedError

    return (LacbedError, FileNotFoundError, IsADirectoryError, PermissionError)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``lacbed`` console script."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app(args=argv, prog_name="lacbed")
    except _user_error_types() as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, FileNotFoundError) and getattr(exc, "filename", None):
            msg = f"no such file: {exc.filename}"
        print(f"lacbed: error: {msg}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("lacbed: interrupted", file=sys.stderr)
        sys.exit(130)
