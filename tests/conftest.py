"""Tiny seeded CPU data shared by the library tests (seconds, no network, no GPU)."""
import os

import pytest
from aelab.config import RunConfig
from aelab.data import Data, make_shapes

# No app started by a test (AppTest, a browser test's server, their subprocesses) builds the example runs in
# the background: minutes of training beside the tests. tests/test_examples.py builds tiny ones itself.
os.environ["AELAB_EXAMPLES"] = "0"


@pytest.fixture(scope="session")
def shapes() -> Data:
    return make_shapes(200, size=12, seed=1)


@pytest.fixture
def tiny_cfg() -> RunConfig:
    """A small dense AE on the synthetic shapes set: trains in well under a second."""
    return RunConfig(name="tiny").with_overrides({
        "data.name": "shapes", "model.layers": "32,8", "train.epochs": 2, "train.batch_size": 32,
        "train.lr": 3e-3})
