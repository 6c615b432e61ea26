"""Export as code (aelab/codegen.py): the standalone program, run without aelab, ends where the run ended.

Every preset family (plus the branches between them: tied, cosine, optimisers, every noise kind, L1 and KL,
both forms of the contractive penalty, conv) is trained by aelab's worker on the synthetic shapes set, its
script exported and run in a subprocess in which `import aelab` fails; the script's final validation error
must match the run's (the issue asks for 2 %; on the CPU it is float rounding). Its weights must load into
aelab's model, and aelab's own evaluation of them must give the error the script printed.
"""
import ast
import json
import re
import subprocess
import sys

import pytest
import torch

from aelab import codegen
from aelab.cli import main
from aelab.config import RunConfig
from aelab.runs import Run, RunStore
from aelab.train import evaluate
from aelab.worker import execute

TINY = {"data.name": "shapes", "train.batch_size": 32, "train.epochs": 2}
FAMILIES = {
    "dense-end-to-end": {"model.layers": "32,8", "model.code_activation": "linear", "train.weight_decay": 1e-4},
    "greedy-fine-tune": {"model.layers": "32,8", "model.tied": True, "train.strategy": "greedy", "train.epochs": 1,
                         "train.finetune_epochs": 2, "train.schedule": "cosine", "train.optimizer": "sgd",
                         "train.lr": 0.05},
    "denoising": {"model.layers": "32,8", "noise.kind": "masking", "noise.level": 0.3, "train.strategy": "greedy",
                  "train.epochs": 1, "train.finetune_epochs": 1},
    "sparse-kl": {"model.layers": "16", "model.activation": "sigmoid", "sparsity.kind": "kl",
                  "sparsity.weight": 0.05, "train.lr": 3e-3},
    "sparse-l1": {"model.layers": "32,8", "sparsity.kind": "l1", "sparsity.weight": 1e-3, "noise.kind": "salt_pepper",
                  "noise.level": 0.1, "train.optimizer": "rmsprop"},
    "contractive": {"model.layers": "16", "model.activation": "sigmoid", "contractive.weight": 5e-4,
                    "train.lr": 3e-3},
    "contractive-deep": {"model.layers": "32,8", "contractive.weight": 1e-3, "train.strategy": "greedy",
                         "train.epochs": 1, "train.finetune_epochs": 1},
    "conv": {"model.kind": "conv", "model.layers": "4,4", "train.loss": "mse"},
    "conv-greedy-tied": {"model.kind": "conv", "model.layers": "4,4", "model.tied": True, "noise.kind": "gaussian",
                         "noise.level": 0.2, "train.strategy": "greedy", "train.epochs": 1,
                         "train.finetune_epochs": 1},
}
# One process runs every exported script, each as __main__ in its own folder, in turn (one torch import for all),
# and in it `import aelab` fails, whatever the working directory or sys.path. Each script's output goes to its
# folder's out.txt; a script that raises leaves its traceback there.
RUNNER = """
import contextlib, os, runpy, sys, traceback
sys.modules["aelab"] = None
for folder in sys.stdin:
    os.chdir(folder.strip())
    with open("out.txt", "w") as out, contextlib.redirect_stdout(out):
        try:
            runpy.run_path("train.py", run_name="__main__")
        except BaseException:
            traceback.print_exc(file=out)
"""
DATA_PACKAGES = {"mlxtend", "sklearn", "torchvision", "pandas"}
ALLOWED = {"math", "gzip", "pathlib", "numpy", "torch", "safetensors"}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """{family: (run, script path, its output)}; each script is handed to the runner as soon as its run is
    done, so the scripts run while the next runs train."""
    root = tmp_path_factory.mktemp("codegen")
    store = RunStore(root / "runs")
    mp = pytest.MonkeyPatch()
    mp.setattr("signal.signal", lambda *a: None)  # execute() would take over pytest's SIGTERM
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one core for the runs, the other for the scripts: no oversubscription
    runner = subprocess.Popen([sys.executable, "-c", RUNNER], stdin=subprocess.PIPE, text=True,
                              env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    runs = {}
    try:
        for family, overrides in FAMILIES.items():
            run = store.create(RunConfig(name=family).with_overrides({**TINY, **overrides}))
            assert execute(run)["status"] == "completed", family
            runs[family] = run
            (root / family).mkdir()
            assert main(["export", str(run.dir), "--script", str(root / family / "train.py")]) == 0
            runner.stdin.write(f"{root / family}\n")
            runner.stdin.flush()
        runner.stdin.close()
        assert runner.wait(timeout=240) == 0
    finally:
        mp.undo()
        torch.set_num_threads(threads)
        runner.kill()
    return {family: (run, root / family / "train.py", (root / family / "out.txt").read_text())
            for family, run in runs.items()}


def _final_error(stdout: str) -> float:
    return float(re.search(r"final validation error: ([0-9.]+)", stdout).group(1))


@pytest.mark.parametrize("family", FAMILIES)
def test_the_script_ends_where_the_run_ended(exported, family):
    run, path, stdout = exported[family]
    assert "weights saved to" in stdout, stdout[-3000:]
    aelab_err = run.epochs()[-1]["val_full_sq_err"]
    script_err = _final_error(stdout)
    # the issue asks for 2 %; the same seeds, order and arithmetic give float rounding
    assert script_err == pytest.approx(aelab_err, rel=1e-4), (family, script_err, aelab_err)
    # its weights are aelab's model: aelab evaluates them to the error the script printed
    weights = path.parent / f"{family}.safetensors"
    from safetensors.torch import load_model

    model = Run(run.dir).load_model()
    load_model(model, str(weights))  # strict: the same parameter names and shapes
    data = __import__("aelab.data", fromlist=["load_data"]).load_data(run.config.data)
    val, _ = evaluate(model, data.x_val, model.n_stages, run.config.train.loss, torch.device("cpu"))
    assert val["val_full_sq_err"] == pytest.approx(script_err, rel=1e-5)


def test_the_script_imports_only_torch_numpy_safetensors_and_its_data(exported):
    for family, (_, path, _) in exported.items():
        tree = ast.parse(path.read_text())
        top = {a.name.split(".")[0] for n in tree.body if isinstance(n, ast.Import) for a in n.names}
        top |= {n.module.split(".")[0] for n in tree.body if isinstance(n, ast.ImportFrom)}
        inner = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        inner |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert top <= ALLOWED, (family, top)
        assert inner - top <= DATA_PACKAGES, (family, inner)


def test_the_script_says_only_what_the_config_uses(exported):
    plain = exported["dense-end-to-end"][1].read_text()
    for absent in ("corrupt", "sparsity_penalty", "contractive_penalty", "pretraining", "fine-tuning", "cosine",
                   "TiedDense"):
        assert absent not in plain
    greedy = exported["greedy-fine-tune"][1].read_text()
    for present in ("pretraining layer", "fine-tuning", "TiedDense", "math.cos", "torch.optim.SGD"):
        assert present in greedy
    deep = exported["contractive-deep"][1].read_text()
    assert "layer.linear.weight" in deep and "torch.randn_like" in deep  # exact per stage, estimated when stacked


def test_the_notebook_runs_and_prints_the_same_error(exported, tmp_path):
    import nbformat
    from nbclient import NotebookClient

    run, _, stdout = exported["denoising"]
    assert main(["export", str(run.dir), "--notebook", str(tmp_path / "run.ipynb")]) == 0
    nb = nbformat.read(tmp_path / "run.ipynb", as_version=4)
    assert [c.cell_type for c in nb.cells[1:3]] == ["markdown", "code"]
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert _final_error(text) == pytest.approx(_final_error(stdout), rel=1e-6)
    assert (tmp_path / "denoising.safetensors").stat().st_size > 0


def test_every_preset_and_dataset_exports_valid_python():
    from aelab.presets import PRESETS

    for preset in PRESETS.values():
        compile(codegen.script(preset.config(), (1, 28, 28)), preset.name, "exec")
    for name in ("digits", "fashion_mnist", "mnist", "cifar10", "file"):
        cfg = RunConfig().with_overrides({"data.name": name, "data.path": "x.npz", "data.max_train": 100})
        compile(codegen.script(cfg), name, "exec")
        json.loads(codegen.notebook(cfg))
