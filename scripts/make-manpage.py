"""Write tcptune/man/tcptune.1 from the click help (run after changing any --help text).

    python3 scripts/make-manpage.py

tests/output/test_manpage.py fails while the shipped page differs from what this writes.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tcptune import __version__
from tcptune.cli import cli
from tcptune.output.manpage import render_manpage

PAGE = Path(__file__).resolve().parents[1] / "tcptune" / "man" / "tcptune.1"

if __name__ == "__main__":
    PAGE.write_text(render_manpage(cli, __version__))
    print(f"wrote {PAGE}")
