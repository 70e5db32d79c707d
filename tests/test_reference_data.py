"""The reference data of the physics oracles ships with the tests and is the recorded data.

Every file listed in the SHA-256 table of ``tests/data/PROVENANCE.md`` must exist and match its
checksum, and no test may read reference data from outside the repository.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
DATA = TESTS / "data"


def _checksums() -> dict[str, str]:
    text = (DATA / "PROVENANCE.md").read_text(encoding="utf-8")
    return dict(re.findall(r"^\| `([^`]+)` \| `([0-9a-f]{64})` \|$", text, flags=re.MULTILINE))


def test_provenance_lists_the_reference_files():
    names = _checksums()
    # the Felix Si [001] run and the structure-factor table (see PROVENANCE.md)
    assert "structure_factors.json" in names
    assert "felix/Si_001/I_p0p0p0_stack.npy" in names and "felix/Si_001/felix.inp" in names
    assert "ml/default_model_Si.npy" in names and "ml/default_model_Si_estimate.json" in names
    # genuine Gatan DigitalMicrograph files from the HyperSpy 1.6.5 sdist (tests/test_refine_dm.py)
    assert "gatan/dm3_2D_data/test_diffraction_pattern.dm3" in names
    assert sum(n.startswith("gatan/") for n in names) == 7
    assert "felix/SrTiO3_001_b200/I_p0p0p0_stack.npy" in names
    assert "ml/hybrid_model_Si.npy" in names
    assert len(names) == 23


@pytest.mark.parametrize(("name", "sha256"), sorted(_checksums().items()))
def test_reference_file_matches_its_checksum(name, sha256):
    path = DATA / name
    assert path.is_file(), f"reference file missing: {path}"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == sha256


def test_no_test_reads_outside_the_repository():
    # paths outside the repository: the shared reference folder or the machine's /work tree
    pattern = re.compile("|".join(["shared" + "/reference", "/" + "work/", r"\.\./shared"]))
    offenders = [
        f"{p.name}:{i}"
        for p in sorted(TESTS.glob("*.py"))
        if p.name != Path(__file__).name
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []
