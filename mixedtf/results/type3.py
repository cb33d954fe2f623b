"""Type III hypotheses for the fixed effects, as lmerTest (after SAS's "estimable
functions"): each term's contrast is taken in the over-parametrised design (every level of
every factor) and made orthogonal to the contrasts of the terms that contain it, so a
main effect is tested averaged over the factors it interacts with.

Containment (SAS): a term F1 is contained in F2 when F2 has every variable of F1 and more,
and both involve the same numeric covariates.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from formulaic import model_matrix

from mixedtf.design.data import EVAL_CONTEXT
from mixedtf.design.naming import r_names


def _numeric_variables(spec: Any, variables: frozenset[str]) -> frozenset[str]:
    states = spec.encoder_state
    return frozenset(v for v in variables if v not in states or states[v][0].value != "categorical")


def type3_contrasts(design: Any) -> dict[Any, np.ndarray]:
    """Per fixed-effect term (formulaic's term), the contrast matrix ``L`` (rows: the
    hypotheses, columns: the fixed effects) of its type III test."""
    spec = design.fixed_spec
    frame = design.data
    X = design.X
    names = list(design.fixed_names)
    terms = [t for t in spec.formula if str(t) != "1"]
    # the over-parametrised design: an intercept, then each term with all its levels
    blocks, rd_names = [], []
    if "(Intercept)" in names:
        blocks.append(np.ones((X.shape[0], 1)))
        rd_names.append("(Intercept)")
    for term in terms:
        mm = model_matrix(
            f"0 + {term}", frame, ensure_full_rank=False, na_action="ignore", context=EVAL_CONTEXT
        )
        blocks.append(np.asarray(mm, dtype=np.float64))
        rd_names.extend(r_names(list(mm.columns)))
    rdX = np.column_stack(blocks)
    L = (np.linalg.pinv(X) @ rdX).T  # rows: over-parametrised columns, cols: coefficients
    L[np.abs(L) < 1e-10] = 0.0
    kept = {j: i for i, j in enumerate(design.fixed_keep)}
    columns = {t: [kept[j] for j in spec.term_indices[t] if j in kept] for t in terms}
    variables = {t: frozenset(str(f) for f in t.factors) for t in terms}
    numeric = {t: _numeric_variables(spec, variables[t]) for t in terms}

    def contains(big, small) -> bool:
        return variables[small] < variables[big] and numeric[small] == numeric[big]

    for term in sorted(terms, key=lambda t: -len(variables[t])):
        containing = [t for t in terms if t is not term and contains(t, term)]
        if not containing:
            continue
        other = L[:, [c for t in containing for c in columns[t]]]
        target = L[:, columns[term]]
        coef, *_ = np.linalg.lstsq(other, target, rcond=None)
        resid = target - other @ coef
        resid[np.abs(resid) < 1e-10] = 0.0
        L[:, columns[term]] = resid
    rows = [rd_names.index(n) for n in names]
    L = L[rows]  # rows: the model's coefficients
    out = {}
    for term in terms:
        Lt = L[:, columns[term]].T
        out[term] = Lt[np.abs(Lt).sum(axis=1) > 1e-8]
    return out
