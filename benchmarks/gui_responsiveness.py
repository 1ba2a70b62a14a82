"""The desktop app while it trains at full speed: responsiveness, redraw rate, throughput, memory, start-up.

All in one run, offscreen (no display needed):
  * start-up: wall time from launching `python -m workbench` to the main window being visible;
  * headless throughput: the Trainer alone, same preset, same thread settings as the app (the app runs
    the Trainer in a process of its own, driven from a QThread);
  * the window (1400x900) training the MAML sinusoid preset for 20,000 iterations, with a 5 ms QTimer
    probe on the GUI thread: event-loop stall = probe interval - 5 ms (p50 / p99 / max), plot redraws
    per second, training it/s with the GUI vs headless, and resident memory growth over the run.

    python benchmarks/gui_responsiveness.py [--iterations 20000] [--startup-runs 3]

Targets: stall p99 <= 20 ms and max <= 100 ms; >= 25 redraws/s; >= 85% of headless it/s; < 100 MB growth;
window visible <= 3 s after launch.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
REPO = Path(__file__).resolve().parents[1]
PRESET = REPO / "presets" / "maml-sinusoid.toml"


def rss_mb(pid: int | str = "self") -> float:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return float("nan")


def startup_seconds(runs: int) -> list[float]:
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, WORKBENCH_STARTUP_PROBE="1", WORKBENCH_SETTINGS=str(Path(tmp) / "s.ini"),
                   QT_QPA_PLATFORM="offscreen")
        for _ in range(runs):
            t0 = time.perf_counter()
            proc = subprocess.Popen([sys.executable, "-m", "workbench"], stdout=subprocess.PIPE, text=True, env=env,
                                    stderr=subprocess.DEVNULL)
            for line in proc.stdout:
                if line.startswith("window-visible"):
                    out.append(time.perf_counter() - t0)
                    break
            proc.wait(30)
    return out


def headless_its(seconds: float) -> float:
    from workbench.core.config import ExperimentConfig
    from workbench.core.trainer import Trainer

    cfg = ExperimentConfig.load(PRESET, ["run.iterations=10000000"])
    trainer = Trainer(cfg)
    threading.Timer(seconds, trainer.stop).start()
    trainer.run()
    return trainer.iteration / trainer.elapsed


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q / 100 * len(values)))]


def gui_run(iterations: int) -> dict:
    from PySide6.QtCore import QTimer

    from workbench.gui.app import make_app
    from workbench.gui.main_window import MainWindow

    tmp = tempfile.mkdtemp()
    os.environ["WORKBENCH_RUNS"] = str(Path(tmp) / "runs")
    os.environ["WORKBENCH_SETTINGS"] = str(Path(tmp) / "settings.ini")
    app = make_app()
    window = MainWindow(PRESET)
    window.resize(1400, 900)
    window.show()
    window.run_form.editors["iterations"].setValue(iterations)
    for _ in range(20):
        app.processEvents()

    gaps: list[float] = []
    last = [time.perf_counter()]

    def probe():
        now = time.perf_counter()
        gaps.append((now - last[0]) * 1000 - 5.0)
        last[0] = now

    probe_timer = QTimer()
    probe_timer.setInterval(5)
    probe_timer.timeout.connect(probe)
    marks = {}

    def mark_start():
        worker = window.worker
        if worker is None or worker.iteration < 200:
            QTimer.singleShot(50, mark_start)
            return
        marks["t0"], marks["i0"], marks["r0"] = time.perf_counter(), worker.iteration, window.redraws
        marks["worker"] = worker
        marks["child0"] = rss_mb(worker.pid)
        marks["gui0"] = rss_mb()
        gaps.clear()
        last[0] = time.perf_counter()
        probe_timer.start()

    def watch():
        if window.running:
            worker = marks.get("worker")
            if worker is not None:
                marks["t1"], marks["i1"], marks["r1"] = time.perf_counter(), worker.iteration, window.redraws
                marks["child1"] = rss_mb(worker.pid)
            QTimer.singleShot(100, watch)
        else:
            probe_timer.stop()
            app.quit()

    window.start()
    QTimer.singleShot(50, mark_start)
    QTimer.singleShot(100, watch)
    app.exec()
    span = marks["t1"] - marks["t0"]
    result = {
        "its": (marks["i1"] - marks["i0"]) / span,
        "redraws": (marks["r1"] - marks["r0"]) / span,
        "p50": percentile(gaps, 50), "p99": percentile(gaps, 99), "max": max(gaps),
        "gui_growth": rss_mb() - marks["gui0"], "trainer_growth": marks["child1"] - marks["child0"],
    }
    window.close()
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iterations", type=int, default=20000)
    ap.add_argument("--startup-runs", type=int, default=3)
    ap.add_argument("--headless-seconds", type=float, default=10.0)
    args = ap.parse_args()

    starts = startup_seconds(args.startup_runs)
    print(f"start-up to visible window: {', '.join(f'{s:.2f}' for s in starts)} s "
          f"(best {min(starts):.2f} s, target <= 3 s)")
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))
    head = headless_its(args.headless_seconds)
    print(f"headless training: {head:.0f} it/s")
    g = gui_run(args.iterations)
    print(f"with the window open: {g['its']:.0f} it/s = {100 * g['its'] / head:.0f}% of headless (target >= 85%)")
    print(f"event-loop stall (5 ms probe): p50 {g['p50']:.1f} ms, p99 {g['p99']:.1f} ms, max {g['max']:.1f} ms "
          f"(targets p99 <= 20, max <= 100)")
    print(f"plot redraws: {g['redraws']:.1f} per second (target >= 25)")
    print(f"resident memory growth over {args.iterations} iterations: GUI process {g['gui_growth']:.1f} MB, "
          f"trainer process {g['trainer_growth']:.1f} MB (target < 100 MB)")


if __name__ == "__main__":
    main()
