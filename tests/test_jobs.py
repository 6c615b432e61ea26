"""The job system: records and the liveness rule, the machine-wide queue, thread shares, services.

Real worker processes on the tiny config; every wait polls a condition with a generous timeout.
"""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from apptest import open_page
from aelab import jobs
from aelab.jobs.queue import BACKGROUND, Queue, fair_threads
from aelab.runs import FINAL, Run, RunStore, pid_alive
from aelab.train import YIELD_REASON
from aelab.worker import start_run

LONG = {"train.epochs": 2000}  # stopped by the test, never run to the end


@pytest.fixture(autouse=True)
def own_queue(tmp_path, monkeypatch):
    monkeypatch.setenv("AELAB_QUEUE_DIR", str(tmp_path / "queue"))


def until(cond, timeout=120, what="condition"):
    t = time.time()
    while time.time() - t < timeout:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def epoch_of(run):
    return run.status().get("epoch", 0)


def test_killed_worker_reads_interrupted_and_its_config_runs_again(tmp_path, tiny_cfg):
    run, proc = start_run(tiny_cfg.with_overrides(LONG), tmp_path)
    until(lambda: jobs.state(run.dir) == "running" and epoch_of(run) >= 1, what="first epoch")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert jobs.state(run.dir) == "interrupted"  # dead pid, though the record still says running
    assert jobs.read(run.dir)["state"] == "running"
    assert run.status()["status"] == "interrupted" and run.summary()["status"] == "interrupted"
    assert run.summary()["epochs_completed"] >= 1 and RunStore(tmp_path).get(run.id).epochs()  # still readable
    again, proc2 = start_run(run.config, tmp_path)  # the Train page's Re-run
    assert again.config == run.config and again.id != run.id
    until(lambda: epoch_of(again) >= 1, what="the re-run's first epoch")
    again.request("stop")
    assert proc2.wait(timeout=120) == 0 and again.summary()["status"] == "stopped"
    assert jobs.state(again.dir) == "completed"


def test_heartbeat_goes_on_while_paused_and_a_silent_job_is_interrupted(tmp_path, tiny_cfg):
    run, proc = start_run(tiny_cfg.with_overrides(LONG), tmp_path)
    until(lambda: epoch_of(run) >= 1, what="first epoch")
    run.request("pause")
    until(lambda: run.status()["status"] == "paused", what="paused")
    h0 = jobs.read(run.dir)["heartbeat"]
    until(lambda: jobs.read(run.dir)["heartbeat"] > h0, timeout=60, what="a heartbeat while paused")
    rec = jobs.read(run.dir)
    assert jobs.judge(rec, now=rec["heartbeat"] + 5) == "running"
    assert jobs.judge(rec, now=rec["heartbeat"] + jobs.STALE_S + 1) == "interrupted"  # pid alive, silent
    assert jobs.state(run.dir, stale_s=0.0) == "interrupted"
    run.request("stop")
    assert proc.wait(timeout=120) == 0


def test_a_run_whose_heartbeat_stopped_is_shown_interrupted(tmp_path, tiny_cfg):
    run = RunStore(tmp_path).create(tiny_cfg)
    (run.dir / "status.json").write_text(json.dumps({"status": "running", "pid": os.getpid()}))
    rec = jobs.prepare(run.dir, "train", pid=os.getpid())  # this live process, silent for 31 s
    rec.update(state="running", heartbeat=time.time() - jobs.STALE_S - 1)
    (run.dir / "job.json").write_text(json.dumps(rec))
    assert Run(run.dir).status()["status"] == "interrupted"


def test_queue_tickets_slots_and_shares_in_process(tmp_path):
    q = Queue(tmp_path / "q", slots=2)
    folders = []
    for i in range(3):
        d = tmp_path / f"job{i}"
        d.mkdir()
        jobs.prepare(d, "train", queue=q, pid=os.getpid())
        folders.append(d)
    tickets = [jobs.read(d)["ticket"] for d in folders]
    assert tickets == sorted(tickets) and len(set(tickets)) == 3
    assert [q.ahead(t) for t in tickets] == [0, 1, 2]
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    rec = jobs.read(folders[0])
    rec["pid"] = dead.pid  # the first job's process died while it waited: it no longer holds a place
    (folders[0] / "job.json").write_text(json.dumps(rec))
    assert q.ahead(tickets[2]) == 1 and not (q.root / "tickets" / f"{tickets[0]:012d}").exists()
    a, b = q.try_slot(), q.try_slot()
    assert a and b and q.try_slot() is None and q.running() == 2
    a[1].close()  # as when its process exits
    assert q.running() == 1
    assert [fair_threads(n, 8) for n in (1, 2, 3, 8, 16)] == [8, 4, 2, 1, 1]


def test_the_apps_workers_leave_a_core_to_its_live_view(monkeypatch):
    """AELAB_RESERVED_CORES (what the app's workers get) comes off the cores before they are shared out."""
    from aelab.ui import state

    monkeypatch.setattr(os, "environ", {**os.environ, **state.WORKER_ENV})
    assert state.WORKER_ENV == {jobs.RESERVED_ENV: "1"}
    assert [fair_threads(n, 2) for n in (1, 2, 3)] == [1, 1, 1]  # 2 cores: one trains, one draws
    assert [fair_threads(n, 16) for n in (1, 2, 3, 15, 20)] == [15, 7, 5, 1, 1]


def test_launches_at_once_share_two_slots_in_order(tmp_path, tiny_cfg, monkeypatch):
    monkeypatch.setenv("AELAB_MAX_JOBS", "2")
    launched = [start_run(tiny_cfg.with_overrides(LONG), tmp_path) for _ in range(4)]
    runs, procs = [r for r, _ in launched], [p for _, p in launched]

    def states():
        return [(jobs.state(r.dir), (jobs.read(r.dir) or {}).get("position")) for r in runs]
    until(lambda: states() == [("running", None)] * 2 + [("queued", 1), ("queued", 2)],
          what=f"two running, two in line; last {states()}")
    jobs.cancel(runs[3].dir)  # the Train page's Cancel
    assert procs[3].wait(timeout=60) == 0
    assert jobs.state(runs[3].dir) == "cancelled" and runs[3].status()["status"] == "cancelled"
    assert not runs[3].epochs()
    for r in runs[:2]:
        until(lambda: epoch_of(r) >= 1, what="first epoch")
        r.request("stop")
    until(lambda: states()[2][0] == "running", what="the one in line starts")
    until(lambda: epoch_of(runs[2]) >= 1, what="first epoch")
    runs[2].request("stop")
    assert [p.wait(timeout=120) for p in procs[:3]] == [0] * 3
    recs = [jobs.read(r.dir) for r in runs[:3]]
    assert all(r.summary()["status"] == "stopped" for r in runs[:3])
    for rec in recs:  # the worker set its threads to the fair share of the jobs running beside it
        assert 1 <= rec["sharing"] <= 2 and rec["threads"] == fair_threads(rec["sharing"])
    events = sorted([(rec["started"], 1) for rec in recs] + [(rec["ended"], -1) for rec in recs])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    assert peak == 2
    assert recs[2]["started"] >= min(recs[0]["ended"], recs[1]["ended"])  # in line until a slot was free


SERVICES = {  # what the app server starts: the warm standby worker and the UMAP projector
    "standby": "from aelab.worker import WorkerPool; pid = WorkerPool(root)._standby.pid",
    "projector": "from aelab import jobs; pid = jobs.spawn('aelab.embed', '--serve', root, service=True).pid"}


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_exits_when_the_process_that_started_it_dies(tmp_path, service):
    code = f"import sys, time; root = sys.argv[1]; {SERVICES[service]}; print(pid, flush=True); time.sleep(600)"
    parent = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE)
    child = int(parent.stdout.readline())
    assert pid_alive(child)
    parent.kill()
    parent.wait()
    until(lambda: not pid_alive(child), timeout=60, what=f"the {service} to exit")


def buttons(at) -> set:
    return {b.key for b in at.button}


def test_train_page_shows_queue_place_stopping_and_rerun(tmp_path, tiny_cfg, monkeypatch):

    monkeypatch.setenv("AELAB_RUNS_DIR", str(tmp_path))
    monkeypatch.setenv("AELAB_UMAP", "0")
    run = RunStore(tmp_path).create(tiny_cfg)  # a job record by hand: this test process plays its worker
    rec = jobs.prepare(run.dir, "train", pid=os.getpid())
    rec.update(heartbeat=time.time(), position=2)
    (run.dir / "job.json").write_text(json.dumps(rec))

    def page():
        at = open_page("app_pages/1_Train.py", run=run.id)
        return at, at.get("progress")[0].proto.text
    at, text = page()
    assert "2nd in queue" in text and buttons(at) >= {"cancel"} and not buttons(at) & {"pause", "stop"}
    at.button(key="cancel").click().run()
    assert (run.dir / "cancel.request").exists() and "cancelling" in at.get("progress")[0].proto.text

    (run.dir / "cancel.request").unlink()
    (run.dir / "status.json").write_text(json.dumps({"status": "running", "pid": os.getpid()}))
    rec.update(state="running", heartbeat=time.time())
    (run.dir / "job.json").write_text(json.dumps(rec))
    at, text = page()
    at.button(key="stop").click().run()
    assert "stopping" in at.get("progress")[0].proto.text and "stop" not in buttons(at)

    rec["heartbeat"] = time.time() - jobs.STALE_S - 1  # its "worker" fell silent
    (run.dir / "job.json").write_text(json.dumps(rec))
    at, text = page()
    assert "interrupted" in text and "rerun" in buttons(at)
    at.button(key="rerun").click().run()
    new_id = at.query_params["run"][-1] if isinstance(at.query_params["run"], list) else at.query_params["run"]
    assert new_id != run.id and Run(tmp_path / new_id).config == run.config
    again = Run(tmp_path / new_id)
    again.request("stop")  # it was launched: that is all this test needs of it
    until(lambda: again.status()["status"] in FINAL, what="the re-run to end")


def test_the_queue_orders_by_priority_then_arrival_and_background_work_keeps_off_the_cores(tmp_path):
    q = Queue(tmp_path / "q", slots=2)

    def queued(name, priority):
        d = tmp_path / name
        d.mkdir()
        jobs.prepare(d, "train", queue=q, pid=os.getpid(), priority=priority)
        return d, jobs.read(d)["ticket"]
    (ex1, t1), (ex2, t2), (user, tu) = queued("ex1", BACKGROUND), queued("ex2", BACKGROUND), queued("user", 0)
    assert [q.ahead(t1, BACKGROUND), q.ahead(t2, BACKGROUND), q.ahead(tu)] == [1, 2, 0]  # launched last, first
    assert q.busy_above(BACKGROUND) and not q.busy_above(0)
    slot = q.wait(tu, folder=user)
    rec = jobs.read(user)
    rec["state"] = "running"
    (user / "job.json").write_text(json.dumps(rec))
    assert q.held() == [0] and q.ahead(t1, BACKGROUND) == 0
    t0 = time.monotonic()  # a slot is free, but the person's run keeps every core: the example stays in line
    assert q.wait(t1, priority=BACKGROUND, folder=ex1, cancelled=lambda: time.monotonic() - t0 > 0.5) is None
    slot[1].close()
    rec["state"] = "completed"
    (user / "job.json").write_text(json.dumps(rec))
    assert not q.busy_above(BACKGROUND)
    assert q.wait(t2, priority=BACKGROUND, folder=ex2) is not None


def test_a_background_run_gives_the_cores_to_a_run_launched_later_then_goes_on(tmp_path, tiny_cfg):
    bg, bg_proc = start_run(tiny_cfg.with_overrides(LONG), tmp_path, priority=BACKGROUND)
    until(lambda: epoch_of(bg) >= 1, what="the background run's first epoch")
    user, user_proc = start_run(tiny_cfg.with_overrides(LONG), tmp_path)
    until(lambda: bg.status()["status"] == "paused" and jobs.state(bg.dir) == "queued", what="the background run to yield")
    assert bg.status()["message"] == YIELD_REASON
    until(lambda: (jobs.read(user.dir) or {}).get("threads") == fair_threads(1), what="the user's run on every core")
    held = epoch_of(bg)
    until(lambda: epoch_of(user) >= 2, what="the user's run to train")
    assert epoch_of(bg) == held
    user.request("stop")
    assert user_proc.wait(timeout=120) == 0
    until(lambda: bg.status()["status"] == "running" and jobs.state(bg.dir) == "running", what="the background run to go on")
    until(lambda: epoch_of(bg) > held, what="the background run's next epoch")
    assert jobs.read(bg.dir)["yielded"] == 1
    bg.request("stop")
    assert bg_proc.wait(timeout=120) == 0 and bg.summary()["status"] == "stopped"
