"""tests/reference must be an exact copy of the shared oracle (``shared/oracle`` beside the
checkout, as in CI and on the developers' machines, or ``$MIXEDTF_SHARED/oracle``): a
missing oracle is a failure, not a skip, so the check cannot pass by not running."""

from __future__ import annotations

from references import REFERENCE, shared_oracle


def test_reference_files_equal_shared_oracle():
    oracle = shared_oracle()
    assert oracle is not None, (
        "shared/oracle was not found beside the checkout (set MIXEDTF_SHARED)"
    )
    shared = sorted(
        p.relative_to(oracle / "visible") for p in (oracle / "visible").rglob("*") if p.is_file()
    )
    assert shared, "no oracle files found"
    for rel in shared:
        assert (REFERENCE / rel).read_bytes() == (oracle / "visible" / rel).read_bytes(), rel
