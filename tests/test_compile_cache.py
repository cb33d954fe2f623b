"""The persistent XLA compilation cache: where it lives, how it is turned off, and that a
fit writes its compiled chunk there."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from mixedtf.model import compile_cache


@pytest.mark.parametrize(
    ("env", "want"),
    [
        ({"MIXEDTF_CACHE_DIR": "/data/cache"}, "/data/cache/xla"),
        ({"MIXEDTF_CACHE_DIR": "none"}, None),
        ({"XDG_CACHE_HOME": "/xdg"}, "/xdg/mixedtf/xla"),
    ],
)
def test_cache_directory(monkeypatch, env, want):
    monkeypatch.delenv("MIXEDTF_CACHE_DIR", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    got = compile_cache.cache_directory()
    assert (None if got is None else str(got)) == want


def test_a_user_flag_wins(monkeypatch):
    monkeypatch.setattr(compile_cache, "ACTIVE", compile_cache.ACTIVE)  # restored after
    monkeypatch.setenv("TF_XLA_FLAGS", "--tf_xla_persistent_cache_directory=/mine --other")
    assert compile_cache.enable() == "/mine"
    assert os.environ["TF_XLA_FLAGS"] == "--tf_xla_persistent_cache_directory=/mine --other"


@pytest.mark.slow  # two processes, ~13 s
def test_a_fit_fills_the_cache(tmp_path):
    code = (
        "import json, mixedtf as mtf\n"
        "d = mtf.datasets.load('sleepstudy')\n"
        "r = mtf.MixedLM.from_formula('Reaction ~ Days + (1|Subject)', d).fit(\n"
        "    seed=1, progress=False, max_iterations=20, burnin=5, min_averaged=10, check=False)\n"
        "print(json.dumps(r.fit_info.extra['compile_cache']))\n"
    )
    env = {**os.environ, "MIXEDTF_CACHE_DIR": str(tmp_path), "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("TF_XLA_FLAGS", None)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == str(tmp_path / "xla")
    assert any((tmp_path / "xla").iterdir())  # the compiled chunk, kept for the next process
