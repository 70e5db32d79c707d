"""File helpers used at the edges (CLI, dataset storage, model files): atomic writes, reads
that fail with one line."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "check_writable", "read_text"]


def read_text(path: str | os.PathLike, what: str) -> str:
    """The text of a file, or a one-line :class:`lacbed.errors.LacbedError` ("PATH is not
    WHAT: reason") when it cannot be read."""
    from lacbed.errors import LacbedError

    try:
        return Path(path).read_text()
    except OSError as exc:
        raise LacbedError(f"{path} is not {what}: {exc}") from None


def check_writable(path: str | os.PathLike) -> Path:
    """Check before any work that :func:`atomic_path` will be able to write ``path``.

    The nearest existing folder of ``path`` (missing folders are created when writing) must be a
    folder in which a file can be created; this is tried, not inferred from permission bits, so
    read-only file systems are caught too.

    Raises
    ------
    lacbed.errors.SettingsError
        One line naming ``path`` and the reason.
    """
    from lacbed.errors import SettingsError

    path = Path(path)
    if path.is_dir():
        raise SettingsError(f"cannot write {path}: it is a directory")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise SettingsError(f"cannot write {path}: {folder} is not a directory")
    try:
        fd, probe = tempfile.mkstemp(prefix=".lacbed-write-check.", dir=folder)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise SettingsError(f"cannot write {path}: {folder} is not writable ({reason})") from None
    os.close(fd)
    os.unlink(probe)
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    If the body raises, the temporary file is removed and ``path`` is untouched, so a failed
    command never leaves a partial output file. The temporary name keeps the suffix of ``path``
    (libraries such as matplotlib and numpy choose the format from it).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix if suffix is None else suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".part{suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.is_file():
            # mkstemp creates 0600; give the output the permissions of a normal new file
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise
