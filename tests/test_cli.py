"""The command line as scripts use it: exit codes, the last stdout line, --json keys, clean errors."""
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import PRESETS

TINY = ["--set", "run.eval_tasks=10", "--set", "run.eval_steps=2", "--set", "run.eval_interval=10",
        "--set", "run.checkpoint_interval=10", "--set", "run.threads=1"]


def wb(*args, cwd=None, timeout=120):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "workbench", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    r = wb("train", PRESETS / "maml-sinusoid.toml", "--iterations", 30, "--seed", 3, "--out", out, *TINY)
    assert r.returncode == 0, r.stderr
    return out, r


def test_train_prints_the_bundle_path_last(bundle):
    out, r = bundle
    last = r.stdout.strip().splitlines()[-1]
    assert Path(last) == out / "model.safetensors" and Path(last).is_file()
    assert "it/s" in r.stderr and "ETA" in r.stderr  # progress on stderr
    config = (out / "config.toml").read_text()
    assert "iterations = 30" in config and "seed = 3" in config


def test_train_by_preset_name_and_default_run_directory(tmp_path):
    r = wb("train", "maml-sinusoid", "--iterations", 3, *TINY, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    path = Path(tmp_path, r.stdout.strip().splitlines()[-1])
    assert path.is_file() and path.parent.parent.name == "runs" and path.parent.name.startswith("maml-sinusoid-")


def test_eval_json_contract(bundle):
    out, _ = bundle
    r = wb("eval", out / "model.safetensors", "--tasks", 12, "--seed", 5, "--steps", "0,1,10", "--shots", 5, "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["metric"] == "mse" and res["steps"] == [0, 1, 10] and res["tasks"] == 12 and res["shots"] == 5
    assert len(res["mean"]) == 3 and len(res["ci95"]) == 3 and all(c >= 0 for c in res["ci95"])
    again = json.loads(wb("eval", out, "--tasks", 12, "--seed", 5, "--steps", "0,1,10", "--shots", 5, "--json").stdout)
    assert again["mean"] == res["mean"]  # same seed, same tasks


def test_eval_table(bundle):
    out, _ = bundle
    r = wb("eval", out / "model.safetensors", "--tasks", 10)
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert "± 95% CI" in lines[1] and [ln.split()[0] for ln in lines[2:]] == ["0", "1", "10"]


def test_export_onnx(bundle, tmp_path):
    pytest.importorskip("onnx")
    out, _ = bundle
    r = wb("export", out / "model.safetensors", "--format", "onnx", "--out", tmp_path / "m.onnx")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "m.onnx").stat().st_size > 1000


def test_resume_continues_the_run(bundle):
    out, _ = bundle
    r = wb("train", "--resume", out, "--iterations", 40)
    assert r.returncode == 0, r.stderr
    assert "iterations 30..40" in r.stderr
    assert r.stdout.strip().splitlines()[-1] == str(out / "model.safetensors")


def test_presets_lists_every_shipped_preset():
    r = wb("presets")
    assert r.returncode == 0
    names = {ln.split()[0] for ln in r.stdout.splitlines()}
    assert {p.stem for p in PRESETS.glob("*.toml")} == names


@pytest.mark.parametrize("args, expected", [
    (["train", "nosuch.toml"], "nosuch.toml: no such file"),
    (["train", "maml-sinusiod"], "did you mean 'maml-sinusoid'?"),
    (["train", "maml-sinusoid", "--set", "algorithm.inner_lrr=1"],
     "--set algorithm.inner_lrr=1: [algorithm]: unknown key 'inner_lrr' (did you mean 'inner_lr'?)"),
    (["train", "maml-sinusoid", "--set", "run.iterations=-4"], "--set run.iterations=-4: [run]: iterations = -4: out of range"),
    (["train", "maml-sinusoid", "--device", "cuda:7"], "device 'cuda:7'"),
    (["train", "maml-sinusoid", "--iterations", "many"], "argument --iterations: invalid int value: 'many'"),
    (["train", "--resume", "nowhere"], "nowhere: no such run directory"),
    (["eval", "nosuch.safetensors"], "nosuch.safetensors: cannot load model bundle: no such file"),
    (["eval", "README.md"], "README.md: cannot load model bundle"),
    (["eval", "README.md", "--steps", "0,x"], "--steps '0,x': expected comma-separated"),
    (["export", "README.md", "--format", "pdf"], "invalid choice: 'pdf'"),
    (["train", "maml-sinusoid", "--out", "README.md"], "README.md"),
    (["train", "maml-sinusoid", "--device", "gpu"], "run.device: device 'gpu': expected auto, cpu"),
    (["eval", "README.md", "--seed", "99999999999999999999"], "--seed 99999999999999999999: expected an integer"),
    (["eval", "README.md", "--tasks", "100000000"], "--tasks 100000000: expected 1 to 100000 tasks"),
])
def test_bad_input_exits_2_with_one_clear_line(args, expected):
    r = wb(*args, cwd=Path(__file__).resolve().parents[1])
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert expected in r.stderr
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("workbench: error:")


def test_ctrl_c_stops_cleanly_with_a_checkpoint(tmp_path):
    out = tmp_path / "run"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "workbench", "train", str(PRESETS / "maml-sinusoid.toml"),
                             "--iterations", "10000000", "--out", str(out), *TINY], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 60
    while not (out / "checkpoint.safetensors").exists():
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "resume with" in stderr
    assert stdout.strip().splitlines()[-1] == str(out / "model.safetensors")
    assert json.loads((out / "status.json").read_text())["status"] == "stopped"


def test_nan_run_exits_with_a_message(tmp_path):
    # huge amplitudes and twenty inner steps of lr 10 overflow to inf, then NaN, at once
    r = wb("train", "maml-sinusoid", "--iterations", 200, "--out", tmp_path / "r", *TINY, "--set",
           "task.amp_min=9000", "--set", "task.amp_max=10000", "--set", "algorithm.inner_lr=10", "--set",
           "algorithm.inner_steps=20")
    assert r.returncode == 1, r.stderr
    assert "training stopped at iteration 1: the meta-loss became nan" in r.stderr
    assert "no checkpoint had been written yet" in r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""


def test_no_command_prints_help_or_opens_app():
    r = wb("--help")
    assert r.returncode == 0 and "train" in r.stdout and "eval" in r.stdout


def test_a_reader_that_goes_away_is_not_an_error(bundle):
    """`workbench eval ... --json | head -c 50`: quiet, with SIGPIPE's status, as standard tools."""
    out, _ = bundle
    proc = subprocess.Popen([sys.executable, "-m", "workbench", "eval", str(out), "--json", "--tasks", "3000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.read(50)
    proc.stdout.close()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 141 and err.decode().strip() == ""


class _Stream:
    """A stderr stand-in: collects what is written; a terminal or not."""

    def __init__(self, tty: bool):
        import io

        self.buf, self.tty = io.StringIO(), tty

    def isatty(self):
        return self.tty

    def write(self, text):
        return self.buf.write(text)

    def flush(self):
        pass


def _feed(progress):
    import numpy as np

    from workbench.core import events as ev

    progress(ev.RunStarted("runs/x", 0, 4, "cpu", "sinusoid", "maml"))
    per_task = np.array([[1.0, math.inf], [2.0, 0.5]])  # task 0 overflows at step 1
    progress(ev.Evaluation(0, "mse", [0, 1], per_task, per_task.mean(0), np.zeros(2)))
    for i in range(1, 5):
        progress(ev.IterationMetrics(i, {"loss": 0.5 / i}, 0.1 * i, 123.0))
    progress.close()
    progress.close()  # idempotent
    return progress.stream.buf.getvalue()


def test_progress_is_a_tqdm_bar_on_a_terminal_and_plain_lines_elsewhere():
    from workbench.cli import Progress

    tty = _feed(Progress(_Stream(tty=True)))
    assert tty.startswith("training maml on sinusoid, device cpu, iterations 0..4, run runs/x\n")
    assert "evaluation at iteration 0: 1 of 2 tasks diverged" in tty
    last = tty.rstrip("\n").split("\r")[-1]  # the bar as last drawn
    assert "100%|" in last and "4/4" in last and "it/s" in last and "ETA" in last and "loss 0.125" in last
    assert "held-out 1.500→diverged" in last
    plain = _feed(Progress(_Stream(tty=False)))
    assert "\r" not in plain and "\x1b" not in plain and "█" not in plain  # no bar in a log file
    lines = plain.splitlines()
    assert lines[0] == "training maml on sinusoid, device cpu, iterations 0..4, run runs/x"
    assert lines[1].startswith("evaluation at iteration 0: 1 of 2 tasks diverged")
    # the first iteration and the last one (the others fall within 10 s of it)
    assert len(lines) == 4 and lines[2].startswith("[######") and " 1/4 " in lines[2]
    assert lines[3] == ("[########################] 4/4 100%   123.0 it/s ETA 0:00:00 loss 0.125 "
                        "held-out 1.500→diverged")
