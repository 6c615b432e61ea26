"""Make every page run inside app.py's st.navigation frame, even on a deep link to a fresh server.

Streamlit 1.67 decides at a server's first session (and AppTest at every run) whether the app uses
the legacy `pages/` directory mode; then a visit straight to /Train runs pages/1_Train.py without
app.py (no wide layout, no Home page, no warm worker). A page that finds itself in that mode runs
app.py in its place (app.py's st.navigation picks this same page from the URL) and stops.
"""
from __future__ import annotations

import runpy

import streamlit as st


def ensure() -> None:
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    if PagesManager.uses_pages_directory:
        ctx = get_script_run_ctx()
        runpy.run_path(ctx.main_script_path, run_name="__main__")
        st.stop()
