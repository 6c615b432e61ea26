"""Measure the lab's UI latency in headless Chromium (Debian's /usr/bin/chromium via Playwright).

    .venv/bin/python -m scripts.bench_ui [--repeats 3]

For each repeat: start the app as ./run_app.sh does (`python -m aelab.ui.serve`: its first warm worker, then
`streamlit run app.py`) on a fresh port and an empty runs folder, and report
  baseline:     process start -> a one-page Streamlit app (a title and a button) is interactive, measured
                in the same repeat: the floor any Streamlit app pays
  cold start:   process start -> the Train page is interactive (its Launch button is enabled), and its
                ratio to the baseline
  first loss:   click Launch -> the live loss chart shows its first training point, in the page's clock (1st click,
                right after the page came up; the warm worker may still be importing torch)
  start to loss: process start -> that first loss point, in this process's clock (it also counts Playwright's
                checks before its click, 0.1-0.2 s): what a lecturer waits from starting the app to seeing training
  first UMAP:   process start -> the first run's live code map is a UMAP layout (not PCA); the first run
                trains long enough (train.epochs=300 from the URL) and is stopped once the map is UMAP
  first loss 2: the same for a second Launch once the app has settled (the first run stopped and
                SETTLE_S passed: the warm worker is ready, the UMAP warm-up is done or under way)
  relaunch:     the same for a third Launch RELAUNCH_S after the second run was stopped (a lecturer changes one
                setting and goes again: the next warm worker must be ready by then)
  UMAP refresh: after the repeats, in this process: a warm projector maps each stored frame of the last
                first run (2,000 codes) from the previous frame's layout, as the projection process does
                for a live run; the median seconds a frame, and the last layout's trustworthiness against a
                fresh fit's
  loop with the live view (--loop-epochs N, 0 to skip; --loop-rounds R, default 3): keras-deep at batch 256
                launched from the Train page of a fresh server and watched in Chromium (1280x720) until it
                completes: its samples/s (the run's summary) against a bare PyTorch loop doing the same per-epoch
                validation pass in this process at one thread fewer than the cores (what the app's worker gets,
                a core being left to the view; bench_train.bare: as many epochs, subnormals flushed as in aelab's
                loop), measured just before and just after each watched run with no server up; the median of R
                such ratios (the upper of the two middle ones when R is even). With
                the median round: the cores each kind of process used (worker, UMAP process, server, browser;
                from /proc). Once: the bare loop at every thread and the same run headless (`python -m aelab train`)
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

from aelab.ui import server

SETTLE_S = 15
RELAUNCH_S = 8  # Stop, change a setting, Launch again
ENABLED = """() => { const b = document.querySelectorAll('.st-key-launch button');
                     return b.length && !b[0].disabled; }"""
FIRST_POINT = """(old) => {
  const t = [...document.querySelectorAll('.st-key-live_loss .gtitle')].map(e => e.textContent);
  const m = t.length ? t[t.length - 1].match(/loss: (\\d+) steps/) : null;
  const ok = m && +m[1] > 0 && location.search.includes('run=') && !location.search.includes(old);
  if (ok && window.__aelab_seen == null) window.__aelab_seen = performance.now();
  return ok; }"""
# The page's own clock: from the click event to the moment the chart shows the point (polled every 20 ms), so
# Playwright's actionability checks before it clicks (0.1-0.17 s) are not counted as the app's time. The click's
# time is the event's own timestamp (when the browser got it), not when the page's busy main thread got round to it.
CLICK_CLOCK = """() => { window.__aelab_click = window.__aelab_seen = null;
                         document.addEventListener('click', (e) => { window.__aelab_click ??= e.timeStamp; },
                                                   {capture: true, once: true}); }"""


FIRST_RUNS: list[Path] = []  # each repeat's first run (its stored frames feed the UMAP refresh measurement)
UMAP_SHOWN = """() => /UMAP from the warm projection process|UMAP of epoch/.test(document.body.innerText)"""


def click_to_first_loss(pg, old_run: str) -> float:
    """Seconds from the click on Launch to the live loss chart showing its first training point, in the page."""
    pg.wait_for_function(ENABLED)
    pg.evaluate(CLICK_CLOCK)
    pg.locator(".st-key-launch button").first.click()
    pg.wait_for_function(FIRST_POINT, arg=old_run or "@@none@@", polling=20, timeout=120_000)
    return pg.evaluate("() => (window.__aelab_seen - window.__aelab_click) / 1000")


ONE_PAGE = 'import streamlit as st\nst.title("one page")\nst.button("Launch", key="launch")\n'


def baseline(pw, runs: Path) -> float:
    """Process start -> a one-page Streamlit app's button is enabled."""
    app = runs / "one_page.py"
    app.write_text(ONE_PAGE)
    t0 = time.perf_counter()
    proc, base = server.start(runs, log=runs / "baseline.log", app=app)
    try:
        browser = pw.chromium.launch(executable_path=server.CHROMIUM, args=server.CHROMIUM_ARGS)
        server.wait_healthy(base, proc)
        pg = browser.new_page(viewport={"width": 1500, "height": 1200})
        pg.goto(base)
        pg.wait_for_function(ENABLED, polling=20, timeout=120_000)
        took = time.perf_counter() - t0
        browser.close()
        return took
    finally:
        server.stop(proc)


def one(pw) -> dict:
    runs = Path(tempfile.mkdtemp(prefix="aelab-bench-"))
    floor = baseline(pw, runs)
    t0 = time.perf_counter()
    proc, base = server.start(runs, log=runs / "server.log")
    try:
        browser = pw.chromium.launch(executable_path=server.CHROMIUM, args=server.CHROMIUM_ARGS)
        server.wait_healthy(base, proc)
        pg = browser.new_page(viewport={"width": 1500, "height": 1200})
        pg.goto(base + "/Train?train.epochs=300")  # long enough for its map to turn UMAP
        pg.wait_for_function(ENABLED, polling=20, timeout=120_000)
        cold = time.perf_counter() - t0
        first = click_to_first_loss(pg, "")
        to_loss = time.perf_counter() - t0
        run1 = re.search(r"run=([^&]+)", pg.url).group(1)
        pg.wait_for_function(UMAP_SHOWN, polling=100, timeout=300_000)
        umap_s = time.perf_counter() - t0
        pg.locator(".st-key-stop button").first.click()
        pg.wait_for_timeout(SETTLE_S * 1000)
        pg.goto(base + "/Train")  # a fresh page view, as a user starting the next experiment
        second = click_to_first_loss(pg, run1)
        run2 = re.search(r"run=([^&]+)", pg.url).group(1)
        pg.locator(".st-key-stop button").first.click()
        pg.wait_for_timeout(RELAUNCH_S * 1000)
        pg.goto(base + "/Train?noise.kind=gaussian&noise.level=0.3")
        third = click_to_first_loss(pg, run2)
        pg.locator(".st-key-stop button").first.click()
        browser.close()
        FIRST_RUNS.append(runs / run1)
        return {"baseline_one_page_s": floor, "cold_start_s": cold, "cold_vs_baseline": cold / floor,
                "click_to_first_loss_s": first, "start_to_first_loss_s": to_loss, "start_to_first_umap_map_s": umap_s,
                "click_to_first_loss_warm_s": second, "click_to_first_loss_relaunch_s": third}
    finally:
        server.stop(proc)


COMPLETED = """() => /\\bcompleted\\b/.test(document.body.innerText)"""


def cpu_seconds() -> dict[str, float]:
    """CPU seconds used so far by this machine's lab processes, by kind (from /proc: Linux only): the training
    worker(s), the UMAP process, the Streamlit server, the browser."""
    hz, out = os.sysconf("SC_CLK_TCK"), {}
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="ignore")
            fields = (p / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        kind = ("worker" if "aelab.worker" in cmd else "projector" if "aelab.embed" in cmd else
                "server" if "streamlit" in cmd or "aelab.ui.serve" in cmd else
                "chromium" if "chromium" in cmd else None)
        if kind:
            out[f"{kind}:{p.name}"] = (int(fields[11]) + int(fields[12])) / hz
    return out


def steal_ticks() -> int:
    """CPU time this virtual machine lost to its host so far (/proc/stat's steal column), in clock ticks."""
    return int(Path("/proc/stat").read_text().split("\n", 1)[0].split()[8])


def cpu_share(before: dict, after: dict, wall: float) -> dict[str, float]:
    """Cores used on average over `wall` seconds, by kind."""
    used: dict[str, float] = {}
    for key, t in after.items():
        kind = key.split(":")[0]
        used[kind] = used.get(kind, 0.0) + t - before.get(key, 0.0)
    return {f"cores_{k}": v / wall for k, v in sorted(used.items())}


def watched_run(pw, epochs: int, env: dict | None = None) -> tuple[float, dict]:
    """keras-deep launched from the Train page of a fresh server and watched in Chromium (1280x720) until it
    completes: its samples/s (the run's summary) and the cores each kind of process used meanwhile. The server and
    everything it started are stopped before this returns."""
    import json

    runs = Path(tempfile.mkdtemp(prefix="aelab-bench-loop-"))
    proc, base = server.start(runs, log=runs / "server.log", env=env)
    try:
        browser = pw.chromium.launch(executable_path=server.CHROMIUM, args=server.CHROMIUM_ARGS)
        server.wait_healthy(base, proc)
        pg = browser.new_page(viewport={"width": 1280, "height": 720})
        pg.goto(f"{base}/Train?preset=keras-deep&train.batch_size=256&train.epochs={epochs}")
        pg.wait_for_function(ENABLED, polling=20, timeout=120_000)
        pg.wait_for_timeout(SETTLE_S * 1000)  # the warm worker and the UMAP warm-up settled, as in a class
        before, stolen, t = cpu_seconds(), steal_ticks(), time.perf_counter()
        pg.locator(".st-key-launch button").first.click()
        pg.wait_for_function(FIRST_POINT, arg="@@none@@", polling=100, timeout=120_000)
        run_id = re.search(r"run=([^&]+)", pg.url).group(1)
        seen = cpu_seconds()  # sampled while waiting: the worker's process is gone once its run has completed
        while not pg.evaluate(COMPLETED) and time.perf_counter() - t < 600:
            seen.update(cpu_seconds())
            pg.wait_for_timeout(500)
        wall = time.perf_counter() - t
        seen.update(cpu_seconds())
        shares = cpu_share(before, seen, wall)
        shares["cores_stolen_by_host"] = (steal_ticks() - stolen) / os.sysconf("SC_CLK_TCK") / wall
        browser.close()
        return json.loads((runs / run_id / "summary.json").read_text())["samples_per_second"], shares
    finally:
        server.stop(proc)  # before the next bare loop: the next warm worker would import torch beside it


def loop_with_view(pw, epochs: int, rounds: int = 3, env: dict | None = None) -> dict:
    """aelab's loop with the live view open in a browser against a bare loop + validation at one thread fewer than the
    cores (samples/s), interleaved: bare, watched, bare, watched, ..., bare. This machine's speed drifts by 10-20 %
    between runs a minute apart, so each watched run is divided by the mean of the bare loops just before and after
    it, and the row is the median of those ratios. Then, once: the bare loop at every thread and the same run
    headless."""
    import json
    import subprocess

    import torch

    from aelab.data import load_data
    from aelab.presets import PRESETS
    from aelab.train import flush_subnormals
    from scripts.bench_train import bare

    flush_subnormals()  # before torch's thread pool starts, as the worker does
    cfg = PRESETS["keras-deep"].config().with_overrides({"train.batch_size": 256, "train.epochs": epochs})
    data = load_data(cfg.data)
    bare(cfg, data, 1)  # the first optimizer step imports torch._dynamo

    def bare_one_thread() -> float:  # the threads the app gives its worker on 2 cores (a core for the view)
        n = torch.get_num_threads()
        torch.set_num_threads(max(1, n - 1))
        try:
            return bare(cfg, data, epochs, validate=True)  # as many epochs: a long run's later epochs are not its first
        finally:
            torch.set_num_threads(n)
    bares, watched, shares = [bare_one_thread()], [], []
    for i in range(rounds):
        sps, used = watched_run(pw, epochs, env)
        watched.append(sps)
        shares.append(used)
        bares.append(bare_one_thread())
        print(f"  loop round {i + 1}: bare {bares[-2]:.0f}, watched {sps:.0f}, bare {bares[-1]:.0f} samples/s, "
              + ", ".join(f"{k} {v:.2f}" for k, v in used.items()), flush=True)
    ratios = [w / ((a + b) / 2) for w, a, b in zip(watched, bares, bares[1:])]
    mid = ratios.index(statistics.median_high(ratios))  # the median round (the upper one of two when even)
    full = bare(cfg, data, epochs, validate=True)
    runs = Path(tempfile.mkdtemp(prefix="aelab-bench-cli-"))
    out = subprocess.run([sys.executable, "-m", "aelab", "train", "--preset", "keras-deep", "--set",
                          "train.batch_size=256", "--set", f"train.epochs={epochs}", "--runs-dir", str(runs)],
                         capture_output=True, text=True, check=True)
    headless = json.loads((Path(out.stdout.strip().splitlines()[-1]) / "summary.json").read_text())
    return {"viewed_vs_bare_val_one_core_less": ratios[mid],
            "viewed_vs_bare_val_one_core_less_min": min(ratios), "viewed_vs_bare_val_one_core_less_max": max(ratios),
            "median_round_aelab_viewed_samples_s": watched[mid],
            "median_round_bare_loop_val_one_core_less_samples_s": (bares[mid] + bares[mid + 1]) / 2,
            **shares[mid], "bare_loop_val_samples_s": full,
            "aelab_headless_samples_s": headless["samples_per_second"],
            # these two against one bare loop at every thread, measured once after the rounds: not drift-corrected
            "viewed_vs_bare_val": watched[mid] / full, "headless_vs_bare_val": headless["samples_per_second"] / full}


def umap_refresh(run_dir: Path) -> tuple[float, float, float]:
    """A warm projector maps each stored frame of a live run (<= 2,000 codes) from the previous frame's layout, as
    the projection process does: the median seconds a frame, and how faithful the last chained layout is against a
    fresh fit of the same frame (scikit-learn's trustworthiness, 10 neighbours: 1 keeps every neighbourhood)."""
    from sklearn.manifold import trustworthiness

    from aelab.embed import Projector, load_codes

    frames = [c for p in sorted((run_dir / "snapshots").glob("[0-9]*.npz")) if (c := load_codes(p)) is not None]
    proj = Projector()
    proj.warm()
    xy, times = proj.fit(frames[0]), []
    for codes in frames[1:]:
        t = time.perf_counter()
        xy = proj.fit(codes, init=xy)
        times.append(time.perf_counter() - t)
    print(f"UMAP refresh: {len(times)} frames of {len(frames[0])} codes", flush=True)
    last = frames[-1]
    return (statistics.median(times), trustworthiness(last, xy, n_neighbors=10),
            trustworthiness(last, proj.fit(last), n_neighbors=10))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--loop-epochs", type=int, default=150, help="epochs of the loop-with-live-view run (0: skip)")
    ap.add_argument("--loop-rounds", type=int, default=3, help="watched runs, each between two bare loops")
    args = ap.parse_args()
    if args.loop_rounds < 1:
        ap.error("--loop-rounds: at least 1")
    from playwright.sync_api import sync_playwright

    rows = []
    with sync_playwright() as pw:
        for i in range(args.repeats):
            rows.append(one(pw))
            print(f"repeat {i + 1}: " + ", ".join(f"{k} {v:.2f}" for k, v in rows[-1].items()), flush=True)
        loop = loop_with_view(pw, args.loop_epochs, args.loop_rounds) if args.loop_epochs else {}
    if rows:
        refresh, chained, fresh = umap_refresh(FIRST_RUNS[-1])
        print(f"UMAP trustworthiness of the last frame: chained refreshes {chained:.3f}, a fresh fit {fresh:.3f}")
        for r in rows:
            r["umap_refresh_s"] = refresh
    if loop:
        print("training loop, keras-deep batch 256 (samples/s): " + ", ".join(f"{k} {v:.2f}" for k, v in loop.items()))
    for k in rows[0] if rows else ():
        vals = [r[k] for r in rows]
        unit = "" if k.endswith("baseline") else " s"
        print(f"{k}: median {statistics.median(vals):.2f}{unit} (min {min(vals):.2f}, max {max(vals):.2f}, "
              f"n={len(vals)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
