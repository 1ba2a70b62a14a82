"""A run ends cleanly whatever happens inside it, resumes to identical files whenever it was killed, never
writes into a folder that is not its own, and never shares its folder with a second process.

Kill points are injected in a subprocess with ``os._exit`` (no buffers flushed, no cleanup: as kill -9).
"""
import csv
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch

from conftest import PRESETS, REPO, tiny_config
from workbench import cli
from workbench.core.errors import ConfigError
from workbench.services.runlock import RunLock, is_locked
from workbench.core.storage import load_tensors, save_tensors
from workbench.services.trainer import Trainer

TESTS = Path(__file__).parent


def _status(run: Path) -> dict:
    return json.loads((run / "status.json").read_text())


def _rows(path: Path, drop_timing: bool = False) -> list[list[str]]:
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    if drop_timing:  # elapsed seconds and it/s differ between any two runs
        rows = [[r[0], *r[3:]] for r in rows]
    return rows


def _same_results(a: Path, b: Path) -> None:
    for name in ("eval.csv", "eval_tasks.csv"):
        assert _rows(a / name) == _rows(b / name), name
    assert _rows(a / "metrics.csv", True) == _rows(b / "metrics.csv", True)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted 50-iteration run: what every interrupted one must end up identical to."""
    run = tmp_path_factory.mktemp("ref") / "run"
    assert Trainer(tiny_config(iterations=50), run).run().status == "finished"
    return run


KILLER = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, {tests!r})
    from conftest import tiny_config
    from workbench.services import trainer as T

    run_dir, point = sys.argv[1], sys.argv[2]
    if point == "before-bundle":  # after the final checkpoint, before the bundle and the final status
        T.Trainer.export = lambda self, path=None: os._exit(9)
    elif point == "after-checkpoint":  # the checkpoint renamed into place, nothing after it
        save = T.save_tensors
        def save_then_die(*a, **k):
            save(*a, **k)
            os._exit(9)
        T.save_tensors = save_then_die
    elif point == "before-first-checkpoint":
        step = T.ALGORITHMS.get("maml").meta_step
        def step_then_die(self, batch, iteration):
            if iteration == 10:
                os._exit(9)
            return step(self, batch, iteration)
        T.ALGORITHMS.get("maml").meta_step = step_then_die
    T.Trainer(tiny_config(iterations=50), run_dir).run()
""")


def _killed_run(run: Path, point: str) -> None:
    code = KILLER.format(tests=str(TESTS))
    proc = subprocess.run([sys.executable, "-c", code, str(run), point], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 9, proc.stderr


@pytest.mark.parametrize("point", ["before-bundle", "after-checkpoint", "before-first-checkpoint"])
def test_resume_after_a_kill_at_any_moment_gives_identical_files(tmp_path, reference, point):
    run = tmp_path / "run"
    _killed_run(run, point)
    assert _status(run)["status"] == "running"
    assert cli.main(["train", "--resume", str(run), "--quiet"]) == 0
    _same_results(run, reference)
    assert _status(run)["status"] == "finished"
    assert (run / "model.safetensors").is_file()


def test_rerunning_the_same_out_of_a_killed_run_points_to_resume(tmp_path, capsys):
    run = tmp_path / "run"
    _killed_run(run, "before-first-checkpoint")
    assert cli.main(["train", str(PRESETS / "maml-sinusoid.toml"), "--out", str(run), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--resume" in err[0]


def _finished_run(tmp_path) -> Path:
    run = tmp_path / "run"
    t = Trainer(tiny_config(iterations=50, checkpoint_interval=25), run)
    t.run()
    return run


@pytest.mark.parametrize("key,value", [("iteration", "abc"), ("iteration", -10), ("iteration", 2.5),
                                       ("iteration", True), ("elapsed", "x"), ("evaluated", "yes")])
def test_corrupt_checkpoint_metadata_is_refused_and_changes_nothing(tmp_path, capsys, key, value):
    run = _finished_run(tmp_path)
    tensors, meta = load_tensors(run / "checkpoint.safetensors")
    meta[key] = value
    save_tensors(run / "checkpoint.safetensors", tensors, meta)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    assert cli.main(["train", "--resume", str(run), "--iterations", "75", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and key in err[0] and "checkpoint.safetensors" in err[0], err
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before  # no history lost


def test_wrong_generator_state_and_undecodable_csv_are_refused(tmp_path, capsys):
    run = _finished_run(tmp_path)
    tensors, meta = load_tensors(run / "checkpoint.safetensors")
    save_tensors(run / "checkpoint.safetensors", {**tensors, "task_generator": tensors["task_generator"].float()}, meta)
    assert cli.main(["train", "--resume", str(run), "--iterations", "75", "--quiet"]) == 2
    assert "task_generator" in capsys.readouterr().err
    save_tensors(run / "checkpoint.safetensors", tensors, meta)
    (run / "eval.csv").write_bytes(b"iteration,step,mean,ci95\n\xff\xfe\x00garbage\n")
    metrics = (run / "metrics.csv").read_bytes()
    assert cli.main(["train", "--resume", str(run), "--iterations", "75", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "eval.csv" in err[0] and "UTF-8" in err[0]
    assert (run / "metrics.csv").read_bytes() == metrics


def test_leftover_temporary_files_are_cleaned_and_others_kept(tmp_path):
    run = _finished_run(tmp_path)
    (run / ".checkpoint.safetensors.k2j4_x9a.tmp").write_bytes(b"half a checkpoint")
    (run / ".metrics.csv.abcdefgh.tmp").write_bytes(b"half")
    Trainer.from_run_dir(run, iterations=60).run()
    assert not list(run.glob(".checkpoint.safetensors.*.tmp")) and not list(run.glob(".metrics.csv.*.tmp"))


# -- failures inside a run -------------------------------------------------------------------------
def test_an_error_inside_a_run_fails_it_cleanly_and_keeps_the_checkpoint(tmp_path, capsys, monkeypatch):
    from workbench.core.registry import ALGORITHMS

    maml = ALGORITHMS.get("maml")
    step = maml.meta_step

    def step_then_fail(self, batch, iteration):
        if iteration == 30:
            raise torch.linalg.LinAlgError("linalg.solve: The solver failed because the input matrix is singular.")
        return step(self, batch, iteration)

    monkeypatch.setattr(maml, "meta_step", step_then_fail)
    run = tmp_path / "run"
    args = ["train", str(PRESETS / "maml-sinusoid.toml"), "--out", str(run), "--iterations", "50", "--quiet",
            "--set", "run.checkpoint_interval=25", "--set", "run.eval_interval=25", "--set", "run.eval_tasks=10"]
    assert cli.main(args) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "LinAlgError" in err and "singular" in err
    status = _status(run)
    assert status["status"] == "failed" and "LinAlgError" in status["message"] and "kept" in status["message"]
    assert load_tensors(run / "checkpoint.safetensors")[1]["iteration"] == 25
    assert not is_locked(run)


def test_a_full_disk_fails_the_run_naming_the_file(tmp_path, capsys):
    if os.geteuid() != 0 or sys.platform != "linux":
        pytest.skip("mounting a small tmpfs needs root on Linux")
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        run = disk / "run"
        # a checkpoint and the CSVs fit at first; the metrics rows of 20000 iterations do not
        args = ["train", str(PRESETS / "maml-sinusoid.toml"), "--out", str(run), "--iterations", "20000", "--quiet",
                "--set", "run.checkpoint_interval=500", "--set", "run.eval_interval=100000",
                "--set", "run.eval_tasks=5", "--set", "run.eval_steps=1"]
        assert cli.main(args) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert err and "No space left on device" in err[-1] and str(run) in err[-1], err
        status = _status(run)
        assert status["status"] == "failed" and "No space left on device" in status["message"]
        assert load_tensors(run / "checkpoint.safetensors")[1]["iteration"] > 0  # the last good one
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_sizes_that_cannot_fit_in_memory_are_refused_before_the_run(tmp_path, capsys):
    for sets in (["task.eval_query=100000", "run.eval_tasks=100000"],
                 ["model.hidden=[4096, 4096, 4096, 4096, 4096, 4096, 4096, 4096]"],
                 ["task.shots=10000", "task.query=10000", "algorithm.meta_batch=10000"]):
        run = tmp_path / "run"
        args = ["train", str(PRESETS / "maml-sinusoid.toml"), "--out", str(run), "--quiet"]
        for s in sets:
            args += ["--set", s]
        t0 = time.monotonic()
        assert cli.main(args) == 2
        assert time.monotonic() - t0 < 10
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "memory" in err[0] and sets[0].split("=")[0] in err[0], err
        assert not run.exists()


def test_the_linear_baseline_survives_identical_feature_columns():
    from workbench.rl.returns import linear_baseline
    from workbench.rl.rollout import Episodes

    b, n, h = 3, 20, 100
    obs = torch.ones(b, n, h, 2)  # o, o^2 and the constant feature are the same column
    rewards = -torch.rand(b, n, h)
    mask = torch.ones(b, n, h)
    ep = Episodes(obs=obs, actions=torch.zeros(b, n, h, 2), rewards=rewards, mask=mask)
    values = linear_baseline(ep, rewards.flip(-1).cumsum(-1).flip(-1))
    assert torch.isfinite(values).all()


# -- the run folder ------------------------------------------------------------------------------------
def test_a_folder_that_is_not_a_run_is_never_written_into(tmp_path, capsys):
    folder = tmp_path / "thesis"
    folder.mkdir()
    (folder / "thesis.tex").write_text("\\documentclass{article}")
    (folder / "model.safetensors").write_bytes(b"my own model")
    (folder / "metrics.csv").write_text("epoch,accuracy\n1,0.5\n")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert cli.main(["train", "maml-sinusoid", "--out", str(folder), "--iterations", "5", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not empty" in err[0] and str(folder) in err[0]
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # not even a lock file


def test_a_second_process_cannot_take_a_run_folder(tmp_path, capsys):
    run = _finished_run(tmp_path)
    lock = RunLock(run).acquire()  # as a live trainer holds it
    try:
        assert cli.main(["train", "--resume", str(run), "--iterations", "75", "--quiet"]) == 2
        assert "in use by another workbench process" in capsys.readouterr().err
        empty = tmp_path / "empty"
        empty.mkdir()
        other = RunLock(empty).acquire()
        with pytest.raises(ConfigError, match="in use"):
            Trainer(tiny_config(iterations=5), empty)
        other.release()
    finally:
        lock.release()
    assert Trainer.from_run_dir(run, iterations=60).run().status == "finished"


def test_two_trainings_started_together_on_one_out_never_both_run(tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "workbench", "train", "maml-sinusoid", "--out", str(run), "--iterations", "300",
           "--quiet", "--set", "run.eval_tasks=10", "--set", "run.eval_interval=100"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen(cmd + ["--seed", str(seed)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env) for seed in (1, 2)]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, err in results if code == 2)
    assert "in use" in loser or "already holds a run" in loser
    assert sum(1 for r in _rows(run / "metrics.csv") if r[0] == "iteration") == 1
    config_seed = [line for line in (run / "config.toml").read_text().splitlines() if line.startswith("seed")]
    bundle_seed = load_tensors(run / "model.safetensors")[1]["training"]["seed"]
    assert config_seed == [f"seed = {bundle_seed}"]


def test_default_run_names_are_unique(tmp_path):
    base = tmp_path / "runs" / "maml-sinusoid-20261130-101010"
    trainers = [Trainer(tiny_config(iterations=5), base, unique_name=True) for _ in range(3)]
    folders = {t.run_dir for t in trainers}
    assert len(folders) == 3 and all(f.parent == base.parent for f in folders)
    for t in trainers:
        t.release()


# -- stopping during an evaluation ---------------------------------------------------------------------
def test_a_stop_during_a_long_evaluation_ends_the_run_promptly(tmp_path, reference):
    run = tmp_path / "run"
    config = tiny_config(iterations=50).replace(["run.eval_tasks=5000", "run.eval_steps=100"])
    trainer = Trainer(config, run)
    threading.Timer(0.5, trainer.stop).start()
    t0 = time.monotonic()
    finished = trainer.run()
    took = time.monotonic() - t0
    assert finished.status == "stopped" and took < 5, took
    meta = load_tensors(run / "checkpoint.safetensors")[1]
    assert meta["iteration"] == 0 and meta["evaluated"] is False
    # resumed (with the reference's evaluation size), the cancelled evaluation is done first
    from workbench.core.config import ExperimentConfig

    (run / "config.toml").write_text(tiny_config(iterations=50).to_toml())
    assert isinstance(ExperimentConfig.load(run / "config.toml"), ExperimentConfig)
    assert Trainer.from_run_dir(run).run().status == "finished"
    _same_results(run, reference)


def test_the_apps_trainer_process_reports_a_failure_as_a_failed_run(tmp_path, monkeypatch):
    """The app's trainer process (services/remote.py) sends a RunFinished("failed") with the reason, and
    status.json says failed: not a bare "Training failed" with the run left "running"."""
    import multiprocessing as mp

    from workbench.core import events as ev
    from workbench.core.registry import ALGORITHMS
    from workbench.services.remote import train_in_child

    maml = ALGORITHMS.get("maml")
    monkeypatch.setattr(maml, "meta_step", lambda self, batch, iteration: (_ for _ in ()).throw(
        RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 68719476736 bytes")))
    receive, send = mp.Pipe(duplex=False)
    run = tmp_path / "run"
    train_in_child(tiny_config(iterations=5).to_dict(), str(run), False, send, threading.Event(), threading.Event())
    messages = []
    while receive.poll(0.1):
        try:
            messages.append(receive.recv())
        except EOFError:  # the trainer's end of the pipe is closed
            break
    assert not [m for m in messages if m[0] == "error"], messages
    events = [e for m in messages if m[0] == "events" for e in m[1]]
    finished = [e for e in events if isinstance(e, ev.RunFinished)]
    assert len(finished) == 1 and finished[0].status == "failed" and "out of memory" in finished[0].message
    assert _status(run)["status"] == "failed"


def test_resume_refuses_a_csv_that_is_a_fifo_or_a_device(tmp_path, capsys):
    run = _finished_run(tmp_path)
    (run / "eval.csv").unlink()
    os.mkfifo(run / "eval.csv")
    done = []
    worker = threading.Thread(target=lambda: done.append(
        cli.main(["train", "--resume", str(run), "--iterations", "75", "--quiet"])), daemon=True)
    worker.start()
    worker.join(20)
    assert done == [2], "resume blocked on a FIFO"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "eval.csv" in err[0] and "FIFO" in err[0]
    (run / "eval.csv").unlink()
    (run / "eval.csv").symlink_to("/dev/zero")
    assert cli.main(["train", "--resume", str(run), "--iterations", "75", "--quiet"]) == 2
    assert "eval.csv" in capsys.readouterr().err


def test_a_failure_after_the_last_iteration_names_the_file_it_could_not_write(tmp_path, capsys):
    run = tmp_path / "run"
    trainer = Trainer(tiny_config(iterations=20), run)
    real_export = trainer.export

    def export_into_a_folder(path=None):  # the bundle's name is taken by a folder
        (run / "model.safetensors").mkdir()
        return real_export(path)

    trainer.export = export_into_a_folder
    finished = trainer.run()
    assert finished.status == "failed"
    assert "after iteration 20" in finished.message and str(run / "model.safetensors") in finished.message
    assert ".tmp" not in finished.message
    assert _status(run)["status"] == "failed"
