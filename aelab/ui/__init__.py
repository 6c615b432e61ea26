"""The Streamlit layer of aelab: the only part of the package that imports streamlit.

state (shared processes and caches), build (the Train page's knobs), arch (architecture diagram),
live (the live panel), views/compare/inspect (the other pages' pieces), home (the Home page),
server (start/stop `streamlit run app.py` headless, for the browser test and the benchmark), warm (the first page's
imports and Plotly's first figure, paid while the first browser loads).
"""
