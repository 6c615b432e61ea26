"""Does unsupervised pretraining pay off when labels are scarce? Accuracy vs number of labels, on the test split.

    classifiers.py  the classifiers and the one training rule that brings each to its own optimum
    grid.py         the experiment: label budgets x repeats x methods, results.json / results.csv
    stats.py        mean ± sd, paired differences with 95 % intervals, the plain-language reading
    job.py          the grid in its own process, with liveness (`python -m aelab.payoff.job DIR`)
    report.py       the CLI face: progress bar and text tables
"""
from .classifiers import Classifier, TrainingRule
from .grid import (DEFAULT_BUDGETS, LABELS, PayoffConfig, balanced_indices, build_classifier, run_cell,
                   run_payoff)
from .job import cached, job_status, payoff_dir, start_payoff
from .report import run_payoff_cli
from .stats import paired_differences, reading

__all__ = ["Classifier", "TrainingRule", "DEFAULT_BUDGETS", "LABELS", "PayoffConfig", "balanced_indices",
           "build_classifier", "run_cell", "run_payoff", "cached", "job_status", "payoff_dir", "start_payoff",
           "run_payoff_cli", "paired_differences", "reading"]
