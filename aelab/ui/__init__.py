"""The Streamlit layer of aelab: the only part of the package that imports streamlit.

state (shared processes and caches), build (the Train page's knobs), arch (architecture diagram),
live (the live panel), views/compare/inspect (the other pages' pieces), home (the Home page),
server (start/stop the app headless, for the browser test and the benchmark), serve (what ./run_app.sh runs),
warm (the first page's imports and Plotly's first figure, paid while the first browser loads).
"""
