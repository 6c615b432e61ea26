"""Sweeps (aelab/sweep.py, `python -m aelab sweep`): cells, the no-op check, re-runs, group statistics by hand."""
import json
import math
import statistics

import pytest

from aelab import sweep as S
from aelab.cli import main
from aelab.config import RunConfig
from aelab.race import equal_compute_epochs
from aelab.runs import RunStore, atomic_write_json

GREEDY = RunConfig(name="g").with_overrides({"data.name": "shapes", "model.layers": "32,8", "train.strategy": "greedy",
                                             "train.epochs": 2, "train.finetune_epochs": 3, "noise.kind": "masking",
                                             "noise.level": 0.2, "train.seed": 7})


def test_a_grid_expands_to_every_cell_and_seed_with_equal_compute_end_to_end():
    grid = S.parse_grid(["train.strategy=greedy,end_to_end", "noise.level=0.1,0.3"])
    cells = S.expand(GREEDY, grid, 3, (1, 16, 16))
    assert len(cells) == 2 * 2 * 3
    assert [c.seed for c in cells[:3]] == [7, 8, 9] and all(c.config.train.seed == c.seed for c in cells)
    e2e = [c for c in cells if dict(c.values)["train.strategy"] == "end_to_end"]
    twin_epochs = equal_compute_epochs(GREEDY, (1, 16, 16))
    assert all(c.config.train.finetune_epochs == 0 and c.config.train.epochs == twin_epochs for c in e2e)
    assert {c.config.noise.level for c in e2e} == {0.1, 0.3}
    assert len({S.sweep_id(cells), S.sweep_id(list(reversed(cells)))}) == 2  # the id is of the cells, in order
    assert S.sweep_id(cells) == S.sweep_id(S.expand(GREEDY, grid, 3, (1, 16, 16)))  # asked again: the same sweep


def test_a_grid_value_that_changes_nothing_is_an_error():
    plain = GREEDY.with_overrides({"noise.kind": "none", "noise.level": 0.0})
    with pytest.raises(ValueError, match=r"noise.level: the values 0.1, 0.3 change nothing \(noise.kind is none\)"):
        S.expand(plain, S.parse_grid(["noise.level=0.1,0.3"]), 2)
    l1 = plain.with_overrides({"sparsity.kind": "l1", "sparsity.weight": 0.01})
    with pytest.raises(ValueError, match=r"sparsity.target: .* change nothing \(it is used by KL sparsity only\)"):
        S.expand(l1, S.parse_grid(["sparsity.target=0.05,0.1"]), 1)
    S.expand(l1.with_overrides({"sparsity.kind": "kl", "model.activation": "sigmoid"}),
             S.parse_grid(["sparsity.target=0.05,0.1"]), 1)  # with KL it matters
    with pytest.raises(ValueError, match="use --seeds"):
        S.expand(plain, S.parse_grid(["train.seed=1,2"]), 1)
    with pytest.raises(ValueError, match="model.layers: cannot read"):
        S.expand(plain, S.parse_grid(["model.layers=a/b"]), 1)


def _fake(store, cfg, status="completed", err=None, curve=()):
    """A run folder as the worker leaves it, with a made-up outcome (and validation curve)."""
    run = store.create(cfg)
    atomic_write_json(run.dir / "status.json", {"status": status})
    if status == "completed":
        atomic_write_json(run.dir / "summary.json", {"status": status, "test_full_sq_err": err})
    lines = [json.dumps({"kind": "epoch", "stage": 1, "stage_name": "end-to-end", "epoch": e, "step": 10 * e,
                         "samples": 320 * e, "seconds": 0.1 * e, "gflop": 0.5 * e, "val_full_sq_err": v})
             for e, v in enumerate(curve, 1)]
    (run.dir / "metrics.jsonl").write_text("".join(line + "\n" for line in lines))
    return run


def test_group_statistics_match_a_hand_computation(tmp_path):
    store = RunStore(tmp_path)
    a_vals, b_vals = [10.0, 12.0, 11.0], [9.0, 12.5, 9.5]
    base = GREEDY.with_overrides({"train.strategy": "end_to_end", "train.finetune_epochs": 0})
    runs = [_fake(store, base.with_overrides({"train.seed": s}), err=v) for s, v in enumerate(a_vals)]
    runs += [_fake(store, base.with_overrides({"train.seed": s, "noise.level": 0.4}), err=v)
             for s, v in enumerate(b_vals)]
    runs.append(_fake(store, base.with_overrides({"train.seed": 5}), status="failed"))  # not counted
    a, b = S.groups(runs)
    assert (a["n"], b["n"]) == (3, 3)
    assert a["mean"] == pytest.approx(11.0) and a["sd"] == pytest.approx(statistics.stdev(a_vals))
    assert (b["min"], b["max"]) == (9.0, 12.5)
    d = [y - x for x, y in zip(a_vals, b_vals)]  # -1, +0.5, -1.5
    half = 4.302652729911275 * statistics.stdev(d) / math.sqrt(3)  # t(0.975, 2 df) from a table
    p = S.paired(b, a)
    assert p["diff_mean"] == pytest.approx(statistics.mean(d))
    assert (p["ci_low"], p["ci_high"]) == pytest.approx((statistics.mean(d) - half, statistics.mean(d) + half))
    assert p["verdict"] == "no measurable difference"


def test_cell_states(tmp_path):
    store = RunStore(tmp_path)
    assert S.cell_state(None) == "start"
    assert S.cell_state(_fake(store, GREEDY)) == "done"
    assert S.cell_state(_fake(store, GREEDY, "failed")) == "start"
    killed = _fake(store, GREEDY, "interrupted")
    assert S.cell_state(killed) == "start"  # nothing to continue from
    (killed.dir / "checkpoint.pt").write_bytes(b"x")
    assert S.cell_state(killed) == "resume"


def test_sweep_command_runs_the_cells_then_skips_them(tmp_path, capsys, monkeypatch):
    args = ["sweep", "--set", "data.name=shapes", "--set", "model.layers=16", "--set", "train.epochs=1",
            "--grid", "train.lr=0.001,0.003", "--seeds", "1", "--jobs", "2", "--runs-dir", str(tmp_path)]
    assert main(args) == 0
    out = capsys.readouterr()
    record = json.loads(open(out.out.strip().splitlines()[-1]).read())
    assert [c["label"] for c in record["cells"]] == ["train.lr=0.001", "train.lr=0.003"]
    assert set(record) == {"id", "grid", "seeds", "cells", "created", "tuning"}  # no reader cache saved
    runs = [RunStore(tmp_path).get(c["run_id"]) for c in record["cells"]]
    assert all(r.status()["status"] == "completed" and r.config.name == record["id"] for r in runs)
    assert "train.lr=0.003 − train.lr=0.001" in out.err
    monkeypatch.setattr("aelab.worker.start_run", lambda *a: pytest.fail("a finished cell was started again"))
    assert main(args) == 0
    assert "(0 to run" in capsys.readouterr().err


def test_bands_match_a_hand_computation():
    b = S.band([([1, 2, 3], [10.0, 8.0, 7.0]), ([1, 2], [12.0, 6.0]), ([1, 2, 3], [11.0, 7.0, 5.0])])
    assert b["x"] == [1, 2] and b["n"] == 3  # up to the shortest curve
    assert b["mean"] == pytest.approx([11.0, 7.0])
    assert b["sd"] == pytest.approx([statistics.stdev([10, 12, 11]), statistics.stdev([8, 6, 7])])
    assert (b["min"], b["max"]) == ([10.0, 6.0], [12.0, 8.0])


def test_compare_reads_a_sweep_as_seed_groups(tmp_path, monkeypatch):
    from apptest import lab_env, open_page

    lab_env(monkeypatch, tmp_path)
    store = RunStore(tmp_path)
    base = GREEDY.with_overrides({"train.strategy": "end_to_end", "train.finetune_epochs": 0})
    cells = S.expand(base, S.parse_grid(["train.lr=0.001,0.003"]), 2)
    sweep = S.Sweep.open(tmp_path, {"train.lr": ["0.001", "0.003"]}, 2, cells)
    for cell, err in zip(sweep.cells, (20.0, 22.0, 18.0, 19.0)):
        cell["run_id"] = _fake(store, RunConfig.from_dict(cell["config"]), err=err, curve=(err + 5, err)).id
    sweep.save(tmp_path)
    at = open_page("app_pages/2_Compare.py", sweep=sweep.id)
    assert sorted(at.multiselect(key="compare.runs").value) == sorted(c["run_id"] for c in sweep.cells)
    assert [h.value for h in at.subheader][0].startswith("Seed groups")
    table = at.dataframe[0].value  # before the runs' own table
    assert list(table["seeds"]) == [2, 2] and list(table["group"].str.endswith(("lr=0.001", "lr=0.003"))) == [True] * 2
    assert table.iloc[:, 2].tolist() == pytest.approx([21.0, 18.5])
    assert float(table.iloc[1]["paired difference vs " + table.iloc[0]["group"]]) == pytest.approx(-2.5)
    assert "seed groups" in at.get("plotly_chart")[0].proto.spec


def test_tuning_gives_each_cell_the_same_trials_resumes_and_settles_on_the_best(tmp_path):
    from aelab import tune as T

    with pytest.raises(ValueError, match="train.epochs: not tunable"):
        T.parse(["train.epochs=1:9"], GREEDY)
    with pytest.raises(ValueError, match="LO < HI"):
        T.parse(["train.lr=1e-2:1e-4:log"], GREEDY)
    spaces = T.parse(["train.lr=1e-4:1e-1:log"], GREEDY)
    store = RunStore(tmp_path)
    cells = S.expand(GREEDY, S.parse_grid(["train.strategy=greedy,end_to_end"]), 1, (1, 16, 16))
    sweep = S.Sweep.open(tmp_path, {}, 2, cells, ([s.describe() for s in spaces], 6))
    calls = []

    def fake(cfg, store_, name):  # a validation error whose best lr is 1e-2 (and end-to-end 1 worse)
        calls.append(cfg.train.strategy)  # (the cells' studies run side by side, in two threads)
        if calls.count("greedy") == 4 and cfg.train.strategy == "greedy":
            raise KeyboardInterrupt  # interrupted mid-tuning
        return f"run{len(calls)}", (math.log10(cfg.train.lr) + 2) ** 2 + (cfg.train.strategy == "end_to_end")
    with pytest.raises(KeyboardInterrupt):
        T.tune(sweep, store, spaces, train=fake)
    again = S.Sweep.load(tmp_path, sweep.id)  # what the record kept: 3 finished trials of the first cell
    kept = [len(c["trials"]) for c in again.tuning["cells"].values()]
    assert kept[0] == 3 and kept[1] == calls.count("end_to_end") <= 6  # the other cell stopped at a trial's end
    best = T.tune(again, store, spaces, train=fake)
    assert calls.count("greedy") == 7 and calls.count("end_to_end") == 6  # 6 each, + the interrupted one
    assert all(len(c["trials"]) == 6 for c in again.tuning["cells"].values())
    for label, params in best.items():  # each cell's best is its lowest recorded trial
        trials = again.tuning["cells"][label]["trials"]
        assert params == min(trials, key=lambda t: t["value"])["params"]
    again.settle(tmp_path, best)
    assert len(again.cells) == 2 * 2 and [c["seed"] for c in again.cells] == [7, 8, 7, 8]
    assert {c["config"]["train"]["lr"] for c in again.cells} == {p["train.lr"] for p in best.values()}


def test_sweep_page_runs_the_cli_command_and_shows_the_cells(tmp_path, monkeypatch):
    """The page builds the same `python -m aelab sweep` command a terminal would (run here in-process, with the
    cells' training made up), then shows the cells, the groups and the link to Compare."""
    import os

    from apptest import lab_env, open_page

    lab_env(monkeypatch, tmp_path)
    commands = []

    def made_up_training(sweep, store, jobs=None, on_change=None, **kw):
        for i, cell in enumerate(sweep.cells):
            cell["run_id"] = _fake(store, RunConfig.from_dict(cell["config"]), err=10.0 + i, curve=(12.0, 10.0 + i)).id
        sweep.save(store.root)

    def spawn(args, log):
        commands.append(args)
        monkeypatch.setattr("aelab.sweep.run_local", made_up_training)
        assert main(args) == 0
        return type("Proc", (), {"pid": os.getpid()})()
    monkeypatch.setattr("aelab.ui.sweeps.spawn_sweep", spawn)
    at = open_page("app_pages/5_Sweep.py")
    at.selectbox(key="sweep.key1").set_value("noise.level").run()
    at.text_input(key="sweep.values1").set_value("0.1,0.3").run()
    assert "noise.level: the values 0.1, 0.3 change nothing (noise.kind is none)" in at.error[0].value
    assert at.button(key="sweep.run").disabled
    at.selectbox(key="sweep.key1").set_value("").run()
    at.number_input(key="sweep.seeds").set_value(2).run()
    assert not at.error and "4 cells (2 settings × 2 seeds)" in [c.value for c in at.caption]
    at.button(key="sweep.run").click().run()
    assert not at.exception, at.exception
    assert commands[0][:2] == ["sweep", "--config"] and "train.lr=0.001,0.003" in commands[0]
    table = at.dataframe[0].value
    assert list(table["status"]) == ["completed"] * 4 and list(table["seed"]) == [0, 1, 0, 1]
    assert any("train.lr=0.003 − train.lr=0.001" in m.value for m in at.markdown)
    sid = at.query_params["sweep"]
    sid = sid[0] if isinstance(sid, list) else sid
    assert len(S.Sweep.load(tmp_path, sid).cells) == 4  # the URL names the sweep the command recorded
    # on a Ray cluster: the same command with --ray-address (and no --jobs: Ray places the cells by CPUs)
    on_ray = []
    monkeypatch.setattr("aelab.sweep_ray.run_ray", lambda sweep, store, address=None, **kw: on_ray.append(address))
    at.radio(key="sweep.where").set_value("cluster").run()
    assert "Ray address: give the cluster's address" in at.error[0].value and at.button(key="sweep.run").disabled
    at.text_input(key="sweep.ray_address").set_value("ray://head:10001").run()
    at.button(key="sweep.run").click().run()
    assert not at.exception and not at.error
    assert commands[1][-2:] == ["--ray-address", "ray://head:10001"] and "--jobs" not in commands[1]
    assert on_ray == ["ray://head:10001"]
