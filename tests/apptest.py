"""Shared by the AppTest page tests: the app's path, a lab environment, opening a page as a visitor would.

AppTest does not fire `run_every` fragments, so tests that follow a live run poll with repeated `at.run()`.
"""
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "lab.py")  # the frame script (app.py serves it as an st.App)


def lab_env(mp: pytest.MonkeyPatch, runs_dir) -> None:
    """Point the app at runs_dir; no UMAP process (its warm-up takes a minute: maps stay PCA here)."""
    mp.setenv("AELAB_RUNS_DIR", str(runs_dir))
    mp.setenv("AELAB_UMAP", "0")


def open_page(page: str | None = None, **query) -> AppTest:
    """Run the lab (lab.py) with the URL's query parameters, switch to `page`, and check nothing raised."""
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update(query)
    at.run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def tab_for(at: AppTest, key: str) -> AppTest:
    """Open the Train page's settings tab that holds the widget of `key` (only the open tab's are drawn)."""
    from aelab.ui import build

    want = build.tab_of(key)
    if build.TAB not in at.session_state or at.session_state[build.TAB] != want:
        at.session_state[build.TAB] = want
        at.run()
        assert not at.exception, at.exception
    return at
