"""tests/reference must be an exact copy of the shared oracle (when the shared folder is present)."""

from __future__ import annotations

import pytest
from conftest import REFERENCE, SHARED_ORACLE


@pytest.mark.skipif(
    not SHARED_ORACLE.exists(), reason="../shared/oracle is not beside this checkout"
)
def test_reference_files_equal_shared_oracle():
    shared = sorted(
        p.relative_to(SHARED_ORACLE / "visible")
        for p in (SHARED_ORACLE / "visible").rglob("*")
        if p.is_file()
    )
    assert shared, "no oracle files found"
    for rel in shared:
        assert (REFERENCE / rel).read_bytes() == (SHARED_ORACLE / "visible" / rel).read_bytes(), rel
