"""save / load: a fit read back gives lme4's numbers again, predicts the same, and the file is
a plain npz archive that loads without pickle."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from references import reference

import mixedtf as mtf
from mixedtf import MixedTFError


def test_reml_fit_round_trips_with_lme4s_numbers(sleep_reml, sleepstudy, tmp_path):
    ref = reference("sleepstudy_slope_REML")  # lmer(Reaction ~ Days + (Days | Subject), sleepstudy)
    path = tmp_path / "sleep.mtf"
    sleep_reml.save(path)
    back = mtf.load(path)
    # fixef(fit), logLik(fit), sigma(fit), vcov(fit) of lme4 1.1-31
    lme4_fixef = [fe["estimate"] for fe in ref["fixed_effects"]]
    np.testing.assert_allclose(back.fixef(), lme4_fixef, rtol=1e-5)
    np.testing.assert_allclose(back.loglik, ref["logLik"], rtol=1e-7)
    np.testing.assert_allclose(back.sigma, ref["residual_sd"], rtol=1e-4)
    np.testing.assert_allclose(back.vcov(), ref["fixed_effects_vcov"]["values"], rtol=1e-3)
    assert back.method == "reml" and back.reml_criterion == sleep_reml.reml_criterion
    assert back.nobs == 180 and back.ngroups == {"Subject": 18}
    pd.testing.assert_frame_equal(back.varcorr(), sleep_reml.varcorr())
    pd.testing.assert_frame_equal(back.ranef(condvar=True), sleep_reml.ranef(condvar=True))
    new = sleepstudy.iloc[[0, 5, 17]].copy()
    new["Subject"] = new["Subject"].cat.add_categories(["999"])
    new.iloc[2, new.columns.get_loc("Subject")] = "999"
    pd.testing.assert_series_equal(back.predict(new), sleep_reml.predict(new))
    pd.testing.assert_series_equal(back.fitted(), sleep_reml.fitted())
    assert back.summary().as_text() == sleep_reml.summary().as_text()


def test_mcem_fit_keeps_trace_check_and_diagnostics(sleep_mcem, tmp_path):
    path = tmp_path / "mcem.npz"
    sleep_mcem.save(path)
    back = mtf.load(path)
    info, orig = back.fit_info, sleep_mcem.fit_info
    assert (info.method, info.seed, info.iterations, info.device) == (
        "mcem",
        orig.seed,
        orig.iterations,
        orig.device,
    )
    pd.testing.assert_frame_equal(info.extra["trace"], orig.extra["trace"])
    assert info.extra["mcse"] == pytest.approx(orig.extra["mcse"])
    pd.testing.assert_frame_equal(back.check.table, sleep_mcem.check.table)
    assert back.check.gap == sleep_mcem.check.gap
    assert back.summary().as_text() == sleep_mcem.summary().as_text()


def test_file_is_an_npz_without_pickle(sleep_reml, tmp_path):
    path = tmp_path / "fit.npz"
    sleep_reml.save(path)
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        assert all(z[k].dtype != object for k in z.files)
    assert (
        meta["format"] == "mixedtf-results"
        and meta["formula"] == "Reaction ~ Days + (Days|Subject)"
    )


def test_loading_does_not_import_tensorflow(sleep_reml, tmp_path):
    path = tmp_path / "fit.npz"
    sleep_reml.save(path)
    code = (
        "import sys, mixedtf as mtf; r = mtf.load(sys.argv[1]); "
        "print(round(r.loglik, 4), 'tensorflow' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == [f"{sleep_reml.loglik:.4f}", "False"]


def test_rows_dropped_for_missing_values_stay_dropped(sleepstudy, tmp_path):
    data = sleepstudy.copy()
    data.loc[data.index[:3], "Reaction"] = np.nan
    with pytest.warns(mtf.MissingValuesWarning):
        fit = mtf.MixedLM.from_formula("Reaction ~ Days + (1|Subject)", data).fit(method="ml")
    fit.save(tmp_path / "na.npz")
    back = mtf.load(tmp_path / "na.npz")
    assert back.nobs == 177 and back.design.n_dropped == 3
    assert list(back.fitted().index) == list(fit.fitted().index)
    assert back.loglik == fit.loglik


def test_not_a_results_file(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, x=np.arange(3))
    with pytest.raises(MixedTFError, match="not a mixedtf results file"):
        mtf.load(path)
    meta = {"format": "mixedtf-results", "version": 99}
    with open(tmp_path / "future.npz", "wb") as fh:
        np.savez(fh, meta=np.array(json.dumps(meta)))
    with pytest.raises(MixedTFError, match="Upgrade mixedtf"):
        mtf.load(tmp_path / "future.npz")
