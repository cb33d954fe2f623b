"""The formula and design layers must not import TensorFlow."""

from __future__ import annotations

import subprocess
import sys


def test_formula_and_design_do_not_import_tensorflow():
    code = (
        "import sys, mixedtf.formula, mixedtf.design, mixedtf.datasets\n"
        "import mixedtf as mtf\n"
        "mtf.MixedLM.from_formula('Reaction ~ Days + (Days | Subject)', mtf.datasets.load('sleepstudy'))\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tensorflow_probability'))\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
