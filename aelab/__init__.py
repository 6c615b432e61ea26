"""aelab: an interactive lab for autoencoders (library; the Streamlit UI lives in aelab.ui, app.py, app_pages/).

Data flows one way: config -> data -> model -> objectives -> train (strategies) -> runs (store) -> views.
"""
__version__ = "0.1.0"
