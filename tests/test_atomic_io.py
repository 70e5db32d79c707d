"""lacbed._io.atomic_path: all-or-nothing output files with normal permissions."""

import os
import stat

import pytest

from lacbed._io import atomic_path


def test_success_renames_with_umask_permissions(tmp_path):
    out = tmp_path / "sub" / "x.npy"
    with atomic_path(out) as tmp:
        assert tmp.suffix == ".npy" and tmp.parent == out.parent
        tmp.write_bytes(b"data")
    assert out.read_bytes() == b"data"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask
    assert list(out.parent.iterdir()) == [out]


def test_failure_leaves_nothing(tmp_path):
    out = tmp_path / "x.png"
    with pytest.raises(RuntimeError), atomic_path(out) as tmp:
        tmp.write_bytes(b"partial")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
