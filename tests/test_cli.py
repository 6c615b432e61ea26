import json
import subprocess
import sys
from pathlib import Path

from aelab.presets import PRESETS


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "aelab", *args], capture_output=True, text=True, timeout=300,
                          cwd=cwd)


def test_presets_lists_every_name_with_one_line():
    out = _cli("presets")
    assert out.returncode == 0
    lines = out.stdout.strip().splitlines()
    assert [ln.split()[0] for ln in lines] == list(PRESETS)
    for name in ("keras-simple", "keras-deep", "tied-stacked", "stacked-denoising", "sparse-kl", "contractive",
                 "linear-pca", "conv", "hinton-2006"):
        assert name in PRESETS


def test_every_preset_is_a_valid_config():
    for p in PRESETS.values():
        p.config()


def test_train_prints_the_run_folder_last_and_writes_the_summary(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"model": {"layers": [16, 4]}, "train": {"epochs": 1}}))
    out = _cli("train", "--preset", "tied-stacked", "--config", str(cfg), "--set", "data.name=shapes",
               "--set", "train.finetune_epochs=1", "--set", "train.batch_size=32", "--runs-dir", str(tmp_path / "r"))
    assert out.returncode == 0, out.stderr
    run_dir = Path(out.stdout.strip().splitlines()[-1])
    s = json.loads((run_dir / "summary.json").read_text())
    assert s["status"] == "completed" and s["strategy"] == "greedy" and s["epochs_completed"] == 3
    c = json.loads((run_dir / "config.json").read_text())
    assert c["model"]["layers"] == [16, 4] and c["model"]["tied"] is True  # preset, then file, then --set
    listed = _cli("runs", "--runs-dir", str(tmp_path / "r"))
    assert run_dir.name in listed.stdout and "completed" in listed.stdout


def test_invalid_config_exits_nonzero_with_one_line_naming_the_key(tmp_path):
    for args, key in ((["--set", "model.kind=lstm"], "model.kind"), (["--set", "train.epocs=3"], "train.epocs"),
                      (["--set", "sparsity.kind=kl", "--set", "sparsity.weight=1"], "sparsity.kind")):
        out = _cli("train", *args, "--runs-dir", str(tmp_path))
        assert out.returncode != 0
        assert key in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_pca_prints_json_for_the_same_split():
    out = _cli("pca", "--k", "8", "--set", "data.name=digits")
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert res["k"] == 8 and res["val_sq_err_per_image"] > 0
