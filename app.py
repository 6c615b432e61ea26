"""aelab: `streamlit run app.py` (./run_app.sh runs it through aelab.ui.serve) serves the lab (lab.py: the pages).

An st.App, for its lifespan hook: the services that make the first Launch fast start with the server, before
any browser connects: the warm training worker (it imports torch and warms up for seconds: it starts as the server
imports this file, the longest wait first) and the UMAP projection process; meanwhile a thread pays the first
page's imports (aelab/ui/warm.py). lab.py asks for the same services on each page view; they are started once per
server."""
from contextlib import asynccontextmanager

import streamlit as st

from aelab import standby

standby.prestart()  # the first warm worker (unless aelab.ui.serve started it already): its torch import goes first


@asynccontextmanager
async def lifespan(_app):
    from aelab.ui import state, warm

    state.serve()
    warm.start()  # the pages' imports and Plotly's first figure, while the first browser loads the page's scripts
    yield


app = st.App("lab.py", lifespan=lifespan)
