"""CI: the executed documentation pages hold their figures and outputs.

    python .ci/check_site.py SITE_DIR

Fails when a page that runs code at build time (markdown-exec) shows fewer figures than
it draws, or an error trace instead of output.
"""

from __future__ import annotations

import sys
from pathlib import Path

FIGURES = {"getting-started": 5, "inference": 2, "insteval": 6}


def main(site: Path) -> int:
    bad = []
    for page, want in FIGURES.items():
        text = (site / page / "index.html").read_text()
        got = text.count('<img alt="') - text.count('<img alt=""')
        if got < want or "Traceback" in text:
            bad.append(
                f"{page}: {got} of {want} figures{', a traceback' if 'Traceback' in text else ''}"
            )
    for line in bad:
        print(line, file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1])))
