"""aelab: the Streamlit frame. Routes between the pages with st.navigation and starts the shared
background processes once per server (the warm training worker and the UMAP projection process, which app.py
starts with the server already, and, when some are missing, the build of the example runs).

The pages live in app_pages/, not pages/: a `pages/` folder beside the main script puts Streamlit in its
legacy multipage mode, where a deep link (/Train) runs the page without this frame."""
from pathlib import Path

import streamlit as st

from aelab.ui import examples, home, state

HERE = Path(__file__).parent

st.set_page_config(page_title="aelab", page_icon=":material/hub:", layout="wide")
state.start_services()  # a warm worker waits for the first Launch; UMAP compiles once, in its own process
examples.start()  # missing example runs: built in the background, behind anything a person launches
pages = [st.Page(home.page, title="Home", icon=":material/home:", default=True),
         st.Page(HERE / "app_pages/1_Train.py", title="Train", icon=":material/monitoring:"),
         st.Page(HERE / "app_pages/2_Compare.py", title="Compare", icon=":material/compare_arrows:"),
         st.Page(HERE / "app_pages/3_Inspect.py", title="Inspect", icon=":material/search:")]
if (HERE / "app_pages/4_Payoff.py").exists():  # does pretraining pay off with few labels?
    pages.append(st.Page(HERE / "app_pages/4_Payoff.py", title="Payoff", icon=":material/target:"))
pages.append(st.Page(HERE / "app_pages/5_Sweep.py", title="Sweep", icon=":material/grid_view:"))
st.navigation(pages).run()
