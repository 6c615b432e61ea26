"""Pay what the first page view would pay, while the first browser is still loading Streamlit's JavaScript.

A fresh server's first run of lab.py + the Train page imported pandas and the pages' modules (~0.8 s on an idle
core, more beside the warm worker's imports), and the first Plotly figure a process builds and serialises costs
~0.15 s more than later ones (Plotly builds its validators on first use): a cold start and a first Launch paid
both. app.py's lifespan starts this in a thread when the server starts: the browser needs a second or two to
fetch and parse the page's scripts, time in which the server is otherwise idle. Nothing here imports torch,
umap or scikit-learn (tests/test_startup.py checks sys.modules after the first page)."""
from __future__ import annotations

import importlib
import threading

# What lab.py and the Train page import: Home's examples table pulls pandas, the Train page's take-home code
# codegen, the worker pool aelab.worker and jobs.launch. tests/test_startup.py fails when the first pages import an
# aelab, pandas or plotly module that warm() did not.
PAGE_MODULES = ("aelab.ui.home", "aelab.ui.examples", "aelab.ui.build", "aelab.ui.arch", "aelab.ui.live",
                "aelab.ui.present", "aelab.ui.race", "aelab.ui.views", "aelab.codegen", "aelab.worker",
                "aelab.jobs.launch")


def warm() -> None:
    """Import the pages' modules and build + serialise the figures a first Train page and a first Launch draw
    (as st.plotly_chart does: plotly.io.to_json without validation)."""
    for name in PAGE_MODULES:
        importlib.import_module(name)
    import numpy as np
    import plotly.io as pio
    from streamlit import delta_generator

    from .. import viz

    metrics = [{"kind": "step", "epoch": 0, "samples": 100, "loss": 0.5},
               {"kind": "epoch", "epoch": 1, "samples": 200, "stage": 0, "train_loss": 0.4, "val_loss": 0.4}]
    xy = np.zeros((4, 2))
    for fig in (viz.loss_figure(metrics), viz.code_map_figure(xy, np.arange(4) % 2, None, "codes"),
                viz.arch_figure("dense", (1, 28, 28), (64, 2), True, 1, 2)):
        pio.to_json(fig, validate=False)
    # A process's first Streamlit element checks once whether it runs in a REPL (inspect.stack() with every
    # frame's source looked up: 0.22 s of the first page run with pandas and plotly imported). Paid here, by the
    # check itself: a private function, skipped if it goes away (st.empty() here would log "missing
    # ScriptRunContext" from this thread).
    check = getattr(delta_generator, "_maybe_print_use_warning", None)
    if callable(check):
        check()


def start() -> threading.Thread:
    t = threading.Thread(target=warm, name="aelab-warm", daemon=True)
    t.start()
    return t
