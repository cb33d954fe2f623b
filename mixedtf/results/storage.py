"""The file format of saved fits: ``res.save(path)`` writes it, ``mixedtf.load(path)``
reads it (:func:`save` and :func:`read` here hold the format; the results object only
calls them).

The file is a NumPy ``.npz`` archive (a zip of ``.npy`` arrays) read with
``allow_pickle=False``, so loading a file never runs code. It holds:

* ``meta``: one JSON string -- format name and version, formula, family, method, scalars
  (sigma, logLik, deviance), the fit information, and how each data column is encoded;
* the estimates (``beta``, ``beta_cov``, ``theta``, ``cov_<j>``, ``mode_<j>``,
  ``condcov_<j>``) and the MCEM trace, as float64 arrays;
* the used columns of the training rows (``data_<column>``; categoricals as int32 codes
  with their categories in ``meta``), from which ``load`` rebuilds the design -- formula
  parsing, contrasts and level order are deterministic, so the rebuilt design is the
  fitted one, and ``predict(newdata)`` works as before saving.

No TensorFlow object is stored; loading does not import TensorFlow.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import pandas as pd

from mixedtf import families
from mixedtf._version import __version__
from mixedtf.design import build_design
from mixedtf.design.builder import WEIGHTS
from mixedtf.errors import MixedTFError
from mixedtf.results.info import AnalyticCheck, FitInfo

FORMAT = "mixedtf-results"
_INFO_FIELDS = tuple(f.name for f in fields(FitInfo) if f.name != "extra")  # JSON values
VERSION = 2  # 2: FitInfo's link, n_agq, loglik_method, vcov_method, warnings as fields


_NO_JSON = object()  # marks a value with no JSON form


def _json_safe(value: Any) -> Any:
    """``value`` as plain JSON types, or ``_NO_JSON``."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value)
    if isinstance(value, dict):
        items = {str(k): _json_safe(v) for k, v in value.items()}
        return _NO_JSON if any(v is _NO_JSON for v in items.values()) else items
    if isinstance(value, list | tuple):
        seq = [_json_safe(v) for v in value]
        return _NO_JSON if any(v is _NO_JSON for v in seq) else seq
    return _NO_JSON


def _encode_column(name: str, col: pd.Series, arrays: dict[str, np.ndarray]) -> dict:
    key = f"data_{len(arrays)}"
    if isinstance(col.dtype, pd.CategoricalDtype):
        categories = _json_safe(col.cat.categories.tolist())
        if categories is not _NO_JSON:
            arrays[key] = col.cat.codes.to_numpy(np.int32)
            return {
                "name": name,
                "key": key,
                "kind": "category",
                "categories": categories,
                "ordered": bool(col.cat.ordered),
            }
    if pd.api.types.is_bool_dtype(col.dtype) or pd.api.types.is_numeric_dtype(col.dtype):
        arrays[key] = col.to_numpy()
        return {"name": name, "key": key, "kind": "array"}
    arrays[key] = col.astype(str).to_numpy(dtype=str)
    return {"name": name, "key": key, "kind": "string"}


def _decode_column(spec: dict, arrays: Any) -> pd.Series:
    values = arrays[spec["key"]]
    if spec["kind"] == "category":
        dtype = pd.CategoricalDtype(spec["categories"], ordered=spec["ordered"])
        return pd.Series(pd.Categorical.from_codes(values, dtype=dtype), name=spec["name"])
    return pd.Series(values, name=spec["name"])


def save(res: Any, path: str | os.PathLike) -> None:
    """Write the fit ``res`` to ``path`` (see the module docstring for the format)."""
    d = res.design
    if d.data is None:
        raise MixedTFError(
            "this fit's design does not keep its training data, so it cannot be saved; "
            "build the model with MixedLM.from_formula(formula, data)."
        )
    arrays: dict[str, np.ndarray] = {}
    columns = [_encode_column(str(c), d.data[c], arrays) for c in d.data.columns]
    index = np.asarray(d.index)
    arrays["index"] = index if index.dtype.kind in "iufb" else index.astype(str)
    has_condcov = _store_estimates(res, arrays)
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "mixedtf_version": __version__,
        "formula": d.formula.text,
        "family": d.family,
        "link": d.link,
        "family_theta": getattr(d.family_spec, "theta", None),
        "family_params": res.family_params,
        "family_params_se": {k: _json_safe(v) for k, v in res.family_params_se.items()},
        "method": res.method,
        "fixed_names": list(d.fixed_names),
        "theta_names": res.theta.index.tolist(),
        "n_groupings": len(d.groupings),
        "sigma": res.sigma,
        "loglik": res.loglik,
        "deviance": res.deviance,
        "reml_criterion": None if res.reml_criterion is None else float(res.reml_criterion),
        "n_dropped": d.n_dropped,
        "columns": columns,
        "fit_info": _store_info(res.fit_info, arrays),
        "check": _store_check(res.check, arrays),
        "has_condcov": has_condcov,
    }
    arrays["meta"] = np.array(json.dumps(meta))
    with open(path, "wb") as fh:  # np.savez would append ".npz" to a name without it
        np.savez_compressed(fh, **arrays)


def _store_estimates(res: Any, arrays: dict[str, np.ndarray]) -> bool:
    """The estimates as float64 arrays; returns whether the conditional covariances are in."""
    arrays["beta"], arrays["beta_cov"] = res._beta, res._beta_cov
    arrays["theta"] = res.theta.to_numpy()
    if res.cutpoints is not None:
        arrays["cutpoints"] = res.cutpoints
    for j, draws in enumerate(res.draws or []):
        arrays[f"draws_{j}"] = np.asarray(draws)
    try:
        condcov = res._condcov
    except NotImplementedError:
        condcov = None
    for j, (cov, mode) in enumerate(zip(res.covariances, res._modes, strict=True)):
        arrays[f"cov_{j}"], arrays[f"mode_{j}"] = np.asarray(cov), np.asarray(mode)
        if condcov is not None:
            arrays[f"condcov_{j}"] = np.asarray(condcov[j])
    return condcov is not None


def _store_info(info: FitInfo, arrays: dict[str, np.ndarray]) -> dict:
    """``FitInfo`` as JSON; its DataFrames (the MCEM trace) as arrays."""
    extra_json, frames = {}, []
    for key, value in info.extra.items():
        if isinstance(value, pd.DataFrame):
            arrays[f"extra_{key}"] = value.to_numpy()  # homogeneous numeric: dtype kept
            frames.append({"key": key, "columns": [str(c) for c in value.columns]})
        elif (safe := _json_safe(value)) is not _NO_JSON:
            extra_json[key] = safe
    fixed = {k: _json_safe(getattr(info, k)) for k in _INFO_FIELDS}
    fixed = {k: (None if v is _NO_JSON else v) for k, v in fixed.items()}
    return {**fixed, "extra": extra_json, "frames": frames}


def _store_check(check: AnalyticCheck | None, arrays: dict[str, np.ndarray]) -> dict | None:
    if check is None:
        return None
    table = check.table
    arrays["check_table"] = table.drop(columns="parameter").to_numpy(np.float64)
    return {
        "loglik_mcem": check.loglik_mcem,
        "loglik_exact": check.loglik_exact,
        "gap": check.gap,
        "parameters": table["parameter"].tolist(),
        "columns": [c for c in table.columns if c != "parameter"],
    }


@dataclass(frozen=True)
class Stored:
    """A fit read back: the results' constructor ``arguments`` and its ``check``."""

    arguments: dict[str, Any]
    check: AnalyticCheck | None


def read(path: str | os.PathLike) -> Stored:
    """Read a file written by :func:`save`.

    Raises:
        MixedTFError: the file is not a mixedtf results file, or its data no longer rebuild
            the fitted design.
    """
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    if "meta" not in arrays:
        raise MixedTFError(f"{os.fspath(path)!r} is not a mixedtf results file (no 'meta' entry).")
    meta = json.loads(str(arrays["meta"]))
    if meta.get("format") != FORMAT or meta.get("version", 0) > VERSION:
        raise MixedTFError(
            f"{os.fspath(path)!r} holds format {meta.get('format')!r} version {meta.get('version')}; "
            f"this mixedtf reads {FORMAT!r} up to version {VERSION}. Upgrade mixedtf to read it."
        )
    J = meta["n_groupings"]
    condcov = [arrays[f"condcov_{j}"] for j in range(J)] if meta["has_condcov"] else None
    arguments = {
        "design": _rebuild_design(meta, arrays),
        "method": meta["method"],
        "beta": arrays["beta"],
        "beta_cov": arrays["beta_cov"],
        "theta": arrays["theta"],
        "theta_names": meta["theta_names"],
        "sigma": meta["sigma"],
        "covariances": [arrays[f"cov_{j}"] for j in range(J)],
        "modes": [arrays[f"mode_{j}"] for j in range(J)],
        "loglik": meta["loglik"],
        "deviance": meta["deviance"],
        "fit_info": _read_info(meta["fit_info"], arrays),
        "conditional_covariances": (lambda: condcov) if condcov is not None else None,
        "reml_criterion": meta["reml_criterion"],
        "cutpoints": arrays.get("cutpoints"),
        "draws": [arrays[f"draws_{j}"] for j in range(J)] if "draws_0" in arrays else None,
        "family_params": meta.get("family_params"),
        "family_params_se": {
            k: np.nan if v is None else v for k, v in (meta.get("family_params_se") or {}).items()
        },
    }
    return Stored(arguments, _read_check(meta["check"], arrays))


def _rebuild_design(meta: dict, arrays: dict[str, np.ndarray]):
    """The fitted design, rebuilt from the stored columns (and checked against the file)."""
    frame = pd.concat([_decode_column(c, arrays) for c in meta["columns"]], axis=1)
    frame.index = pd.Index(arrays["index"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rank or NA warnings were given at fit time
        weights = WEIGHTS if WEIGHTS in frame.columns else None
        family = meta["family"]
        link = meta.get("link") or meta["fit_info"].get("extra", {}).get("link")
        spec = families.get(family, link)
        if meta.get("family_theta") is not None:
            spec = families.NegativeBinomial(link=spec.link, theta=meta["family_theta"])
        design = build_design(meta["formula"], frame, spec, weights)
    if list(design.fixed_names) != meta["fixed_names"] or design.nobs != len(frame):
        raise MixedTFError(
            f"the stored data rebuild a different design (fixed effects {list(design.fixed_names)}, "
            f"{design.nobs} rows; stored {meta['fixed_names']}, {len(frame)} rows); the file was "
            "written by another version of the design code."
        )
    return replace(design, n_dropped=meta["n_dropped"])


def _read_info(fi: dict, arrays: dict[str, np.ndarray]) -> FitInfo:
    extra = dict(fi["extra"])
    for f in fi["frames"]:
        extra[f["key"]] = pd.DataFrame(arrays[f"extra_{f['key']}"], columns=f["columns"])
    fixed = {k: fi[k] for k in _INFO_FIELDS if k in fi and fi[k] is not None}
    for key in ("link", "n_agq", "loglik_method", "vcov_method", "warnings"):  # version 1
        if key not in fixed and key in extra:
            fixed[key] = extra.pop(key)
    if "vcov" in extra:  # version 1's name of vcov_method
        fixed.setdefault("vcov_method", extra.pop("vcov"))
    return FitInfo(**fixed, extra=extra)


def _read_check(check: dict | None, arrays: dict[str, np.ndarray]) -> AnalyticCheck | None:
    if check is None:
        return None
    table = pd.DataFrame(arrays["check_table"], columns=check["columns"])
    table.insert(0, "parameter", check["parameters"])
    return AnalyticCheck(check["loglik_mcem"], check["loglik_exact"], check["gap"], table)
