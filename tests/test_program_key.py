"""The kept MCEM program (JAX backend): its key changes with anything the trace reads, a
second process loads it instead of tracing, and the fit it runs is the same."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import mixedtf as mtf
from mixedtf.fit.mcem.driver import build_kernel
from mixedtf.fit.mcem.gaussian_kernel import EMKernel
from mixedtf.fit.mcem.glmm_kernel import GLMMKernel
from mixedtf.fit.options import make_options
from mixedtf.model.program_key import UnkeyableError, program_key

pytest.importorskip("jax")

SLEEP = "Reaction ~ Days + (Days | Subject)"


def _key(data=None, **options) -> str:
    data = mtf.datasets.load("sleepstudy") if data is None else data
    design = mtf.MixedLM.from_formula(SLEEP, data).design
    opts = make_options("mcem", "gaussian", {"backend": "jax", **options})
    kernel = build_kernel(
        EMKernel,
        design,
        opts,
        "CPU",
        opts.chains or 8,
        fixed_sigma=opts.scale,
        sa_exponent=opts.sa_exponent,
        px_scale=opts.px_scale,
        pairs=[],
    )
    return program_key(kernel)


def test_the_key_follows_what_the_trace_reads():
    base = _key()
    assert _key() == base  # built again from the same inputs
    changed = mtf.datasets.load("sleepstudy")
    changed.loc[3, "Reaction"] += 1e-6  # data the program may hold as a constant
    for other in (
        _key(data=changed),
        _key(chains=16),
        _key(sa_exponent=0.5),
        _key(chunk_size=5),
        _key(dtype="float64"),
        _key(px_scale=False),
        _key(scale=30.0),
    ):
        assert other != base


def _glmm_key(**options) -> str:
    cbpp = mtf.datasets.load("cbpp")
    formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    design = mtf.MixedLM.from_formula(formula, cbpp, family="binomial").design
    opts = make_options("mcem", "binomial", {"backend": "jax", **options})
    return program_key(build_kernel(GLMMKernel, design, opts, "CPU", 8, pairs=[]))


def test_the_key_follows_the_hmc_settings():
    base = _glmm_key()
    assert _glmm_key() == base
    assert _glmm_key(n_leapfrog=4) != base and _glmm_key(target_accept=0.8) != base


def test_a_closure_is_keyed_by_what_it_holds():
    def holding(value):
        kept = np.array([value])
        return lambda: kept

    assert program_key([holding(1.0)]) == program_key([holding(1.0)])
    assert program_key([holding(1.0)]) != program_key([holding(2.0)])


def test_an_object_known_only_by_its_address_is_not_keyed():
    with pytest.raises(UnkeyableError):
        program_key({"x": object()})


KEPT = """
import json, warnings
import mixedtf as mtf
warnings.simplefilter("ignore")
data = mtf.datasets.load("sleepstudy")
out = []
for shift in {shifts}:
    d = data.copy()
    d["Reaction"] = d["Reaction"] + shift
    res = mtf.MixedLM.from_formula({formula!r}, d).fit(
        seed=2, progress=False, backend="jax", max_iterations=30, check=False
    )
    out.append([res.fit_info.extra["program"], list(res.fixef()), res.covariances[0].ravel().tolist()])
print("RESULT " + json.dumps(out))
"""


def _run(cache, shifts) -> list:
    env = {**os.environ, "MIXEDTF_CACHE_DIR": str(cache)}
    run = subprocess.run(
        [sys.executable, "-c", KEPT.format(shifts=shifts, formula=SLEEP)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads([ln for ln in run.stdout.splitlines() if ln.startswith("RESULT ")][-1][7:])


@pytest.mark.slow  # two fresh processes (~10 s); CI runs the slow set too
def test_a_second_process_loads_the_program_and_fits_the_same(tmp_path):
    (first,) = _run(tmp_path, [0.0])
    again, moved = _run(tmp_path, [0.0, 0.5])
    assert first[0] == "exported" and again[0] == "loaded"
    np.testing.assert_array_equal(again[1], first[1])
    np.testing.assert_array_equal(again[2], first[2])
    # other data: another key, traced afresh (not the kept program with old constants)
    assert moved[0] == "exported"
    assert abs(moved[1][0] - first[1][0] - 0.5) < 0.5
