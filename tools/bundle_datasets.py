"""Copy the R-exported data sets from ../shared/oracle/data into the package, xz-compressed,
and write mixedtf/datasets/SOURCES.md with each file's origin, licence and sha256.

Run from the repository root: ``python tools/bundle_datasets.py [path/to/oracle/data]``.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import sys
from pathlib import Path

from mixedtf.datasets import names

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "mixedtf" / "datasets" / "data"
NAMES = names()
ORIGIN = {
    "InstEval": "University lecture evaluations by students at ETH Zurich (lme4::InstEval)",
    "sleepstudy": "Reaction times in a sleep deprivation study, Belenky et al. 2003 (lme4::sleepstudy)",
    "Penicillin": "Variation in penicillin testing, Davies & Goldsmith 1972 (lme4::Penicillin)",
    "Pastes": "Paste strength by delivery batch and cask, Davies & Goldsmith 1972 (lme4::Pastes)",
    "cbpp": "Contagious bovine pleuropneumonia, Lesnoff et al. 2004 (lme4::cbpp)",
    "Dyestuff": "Yield of dyestuff by batch, Davies & Goldsmith 1972 (lme4::Dyestuff)",
    "grouseticks": "Ticks on red grouse chicks, Elston et al. 2001 (lme4::grouseticks)",
    "VerbAgg": "Verbal aggression item responses, De Boeck & Wilson 2004 (lme4::VerbAgg)",
    "wine": "Bitterness of wine, Randall 1989 (ordinal::wine)",
}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def main(source: Path) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in NAMES:
        csv = (source / f"{name}.csv").read_bytes()
        meta = json.loads((source / f"{name}.columns.json").read_text())
        packed = lzma.compress(csv, preset=9 | lzma.PRESET_EXTREME)
        (OUT / f"{name}.csv.xz").write_bytes(packed)
        columns = json.dumps(meta, separators=(",", ":")).encode()
        (OUT / f"{name}.columns.json.xz").write_bytes(lzma.compress(columns, preset=9))
        package = meta.get("package", "lme4")
        rows.append(
            f"| {name} | {ORIGIN[name]} | R package {package} {meta.get('package_version', '')} | "
            f"{meta['rows']} | `{sha256(csv)}` |"
        )
    text = "\n".join(
        [
            "# Bundled data sets",
            "",
            "Exported from R 4.2.2 with `write.csv(d, row.names = FALSE, na = '')` by",
            "`shared/oracle/R/export_data.R` (lme4 1.1-31, ordinal 2022.11.16), with a",
            "`<name>.columns.json` per data set giving R's column classes and factor level order.",
            "Both are stored here xz-compressed; `tools/bundle_datasets.py` regenerates them and this",
            "file. The sha256 is that of the uncompressed CSV, which `tests/test_datasets.py` checks.",
            "",
            "Licence: the data sets are distributed with the R packages lme4 and ordinal under the",
            "GPL (>= 2); see each package's documentation for the original publications.",
            "",
            "| name | origin | source | rows | sha256 of CSV |",
            "|---|---|---|---|---|",
            *rows,
            "",
        ]
    )
    (ROOT / "mixedtf" / "datasets" / "SOURCES.md").write_text(text)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "oracle" / "data")
