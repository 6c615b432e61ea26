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


def test_pca_prints_json_for_the_same_split(capsys):
    from aelab.cli import main

    assert main(["pca", "--k", "8", "--set", "data.name=digits"]) == 0  # in-process: no second torch + sklearn import
    res = json.loads(capsys.readouterr().out)
    assert res["k"] == 8 and res["val_sq_err_per_image"] > 0


def _hand_made_run(root: Path, run_id: str, **files) -> Path:
    """A finished run folder written by hand: config, status, summary and one epoch record."""
    from aelab.config import RunConfig

    d = root / run_id
    d.mkdir(parents=True)
    epoch = {"kind": "epoch", "stage": 1, "stage_name": "end-to-end", "epoch": 1, "step": 4, "samples": 128,
             "seconds": 0.5, "train_loss": 0.3, "val_loss": 0.3, "val_pixel_loss": 0.3, "val_sq_err": 12.5}
    contents = {"config.json": json.dumps(RunConfig(name="hand").to_dict()),
                "status.json": json.dumps({"status": "completed"}),
                "summary.json": json.dumps({"status": "completed", "weights": False, "test_sq_err_per_image": 12.5}),
                "metrics.jsonl": json.dumps(epoch) + "\n", **files}
    for name, text in contents.items():
        (d / name).write_bytes(text if isinstance(text, bytes) else text.encode())
    return d


def test_runs_lists_broken_runs_with_the_reason_and_every_other_run(tmp_path, capsys):
    from aelab.cli import main

    _hand_made_run(tmp_path, "r1-good")
    _hand_made_run(tmp_path, "r2-list", **{"summary.json": "[1, 2]"})
    _hand_made_run(tmp_path, "r3-garbage", **{"status.json": bytes(range(256))})
    _hand_made_run(tmp_path, "r4-line", **{"metrics.jsonl": b'{"kind": "epoch", "epo\n'})
    assert main(["runs", "--runs-dir", str(tmp_path)]) == 0
    rows = {ln.split()[0]: ln for ln in capsys.readouterr().out.splitlines()}
    assert set(rows) == {"r1-good", "r2-list", "r3-garbage", "r4-line"}
    assert rows["r1-good"].split()[1] == "completed" and "test_full_sq_err=12.50" in rows["r1-good"]
    assert "damage:" not in rows["r1-good"]
    assert rows["r2-list"].split()[1] == "damaged"
    assert rows["r2-list"].endswith("damage: summary.json: holds an array, not an object")
    assert "damage: status.json: not valid JSON" in rows["r3-garbage"]
    assert rows["r4-line"].endswith("damage: metrics.jsonl: 1 unreadable line skipped (line 1)")


def test_train_on_a_full_disk_exits_nonzero_with_the_reason(tmp_path, monkeypatch, capsys):
    """The worker process gets a save that fails as on a full disk (a `sitecustomize` on its path)."""
    from aelab.cli import main

    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import errno\nimport safetensors.torch\n\n\n"
        "def save_model(model, filename, *args, **kwargs):\n"
        "    open(filename, 'wb').write(b'part')\n"
        "    raise OSError(errno.ENOSPC, 'No space left on device', filename)\n\n\n"
        "safetensors.torch.save_model = save_model\n")
    monkeypatch.setenv("PYTHONPATH", str(hook))
    code = main(["train", "--set", "data.name=shapes", "--set", "model.layers=16,4", "--set", "train.epochs=1",
                 "--set", "train.batch_size=32", "--runs-dir", str(tmp_path / "r")])
    out, err = capsys.readouterr()
    assert code == 1 and "status=failed" in err and "disk full while saving weights: [Errno 28]" in err
    run_dir = Path(out.strip().splitlines()[-1])
    s = json.loads((run_dir / "summary.json").read_text())
    assert s["error"] == {"kind": "disk_full", "during": "saving weights", "errno": 28}
    assert s["epochs_completed"] == 1 and not (run_dir / "weights.safetensors").exists()
    assert [p.name for p in run_dir.iterdir() if p.name.startswith(".")] == []  # no temporary left behind
