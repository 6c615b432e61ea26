"""`python -m aelab.ui.serve [streamlit options]`: what ./run_app.sh runs: the app's first warm worker starts,
then `streamlit run app.py` in this same process.

Streamlit's own start-up takes the first ~0.5 s of the process on one thread before app.py runs; started here,
the warm worker's torch import (the longest job of a cold start, and the one a first Launch waits for) uses the
other core meanwhile. app.py's pool takes it (aelab.standby)."""
from __future__ import annotations

import sys
from pathlib import Path

from .. import standby

APP = Path(__file__).resolve().parents[2] / "app.py"


def main(argv: list[str]) -> int:
    standby.prestart()
    from streamlit.web import cli

    sys.argv = ["streamlit", "run", str(APP), *argv]
    return cli.main(prog_name="streamlit")  # as `python -m streamlit` does: its help and errors name `streamlit`


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
