"""Tiny seeded CPU data shared by the library tests (seconds, no network, no GPU)."""
import pytest
from aelab.config import RunConfig
from aelab.data import Data, make_shapes


@pytest.fixture(scope="session")
def shapes() -> Data:
    return make_shapes(200, size=12, seed=1)


@pytest.fixture
def tiny_cfg() -> RunConfig:
    """A small dense AE on the synthetic shapes set: trains in well under a second."""
    return RunConfig(name="tiny").with_overrides({
        "data.name": "shapes", "model.layers": "32,8", "train.epochs": 2, "train.batch_size": 32,
        "train.lr": 3e-3})
