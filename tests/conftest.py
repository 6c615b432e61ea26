"""Tiny seeded CPU data shared by the library tests (seconds, no network, no GPU)."""
import os
import tempfile

import pytest
from aelab.config import RunConfig
from aelab.data import Data, make_shapes

# No app started by a test (AppTest, a browser test's server, their subprocesses) builds the example runs in
# the background: minutes of training beside the tests. tests/test_examples.py builds tiny ones itself.
os.environ["AELAB_EXAMPLES"] = "0"
# The job queue's slots are files shared by every process of a user on this machine: the test process gets its own
# queue folder, so tests never wait on an app running beside them (nor on another test process).
os.environ["AELAB_QUEUE_DIR"] = tempfile.mkdtemp(prefix="aelab-test-queue-")


def pytest_collection_modifyitems(items):
    """Under pytest-xdist (run_tests.sh: `-n 2 --dist loadgroup`) a module's tests stay in one worker, sharing its
    fixtures (one app server and one Chromium for the browser tests), and every Ray test shares one worker's
    Ray instance."""
    ray_modules = {item.module for item in items if "ray_local" in getattr(item, "fixturenames", ())}
    for item in items:
        group = "ray" if item.module in ray_modules else item.module.__name__
        item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(scope="session")
def shapes() -> Data:
    return make_shapes(200, size=12, seed=1)


@pytest.fixture
def tiny_cfg() -> RunConfig:
    """A small dense AE on the synthetic shapes set: trains in well under a second."""
    return RunConfig(name="tiny").with_overrides({
        "data.name": "shapes", "model.layers": "32,8", "train.epochs": 2, "train.batch_size": 32,
        "train.lr": 3e-3})


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray instance (2 CPUs) for every Ray test."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


