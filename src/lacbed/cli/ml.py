"""CLI commands: ml (see the module's owner issue)."""

from lacbed.cli.app import app  # noqa: F401
