"""Tiny seeded CPU data shared by the library tests (seconds, no network, no GPU)."""
import os
import tempfile

import pytest
from aelab.config import RunConfig
from aelab.data import Data, make_shapes

# No app started by a test (AppTest, a browser test's server, their subprocesses) builds the example runs in
# the background: minutes of training beside the tests. tests/test_examples.py builds tiny ones itself.
os.environ["AELAB_EXAMPLES"] = "0"
# One warm worker per test server: a second is one more torch import beside the next test (tests/test_worker.py
# checks the pool of two the app keeps).
os.environ["AELAB_WARM_WORKERS"] = "1"
# The job queue's slots are files shared by every process of a user on this machine: the test process gets its own
# queue folder, so tests never wait on an app running beside them (nor on another test process).
os.environ["AELAB_QUEUE_DIR"] = tempfile.mkdtemp(prefix="aelab-test-queue-")


# Modules whose tests share one Ray instance (the ray_local fixture): under pytest-xdist they run in one worker.
RAY_MODULES = {"tests/test_payoff.py", "tests/test_sweep_ray.py"}


def pytest_xdist_make_scheduler(config, log):
    """Under pytest-xdist (run_tests.sh: `-n 2`) a module's tests run in one worker, sharing its fixtures (one app
    server and one Chromium for the browser tests), and the Ray modules share one worker. xdist's own
    `--dist loadgroup` does not group with pytest 9 (it renames node ids, which pytest 9 no longer reads)."""
    from xdist.scheduler import LoadScopeScheduling

    class ByModule(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return "ray" if module in RAY_MODULES else module

    return ByModule(config, log)


def pytest_collection_modifyitems(items):
    """A module that uses Ray but is missing from RAY_MODULES would start a second Ray instance in another worker."""
    missing = {str(item.path.relative_to(item.config.rootpath)) for item in items
               if "ray_local" in getattr(item, "fixturenames", ())} - RAY_MODULES
    assert not missing, f"add {sorted(missing)} to RAY_MODULES in tests/conftest.py"


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


