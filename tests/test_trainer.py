"""Trainer: events, pause / resume / stop, checkpoints, resume equals uninterrupted, NaN guard."""
import csv
import json
import threading
import time

import numpy as np
import pytest
import torch

from conftest import tiny_config
from workbench.core import events as ev
from workbench.core.errors import ConfigError
from workbench.core.storage import load_tensors
from workbench.services.trainer import Trainer, resolve_device


def rows(path, drop=("elapsed", "its_per_sec")):
    with open(path, newline="") as f:
        data = list(csv.DictReader(f))
    return [{k: v for k, v in r.items() if k not in drop} for r in data]


def test_events_and_run_directory(tmp_path):
    seen = []
    trainer = Trainer(tiny_config("maml", 50), tmp_path / "run", [seen.append])
    result = trainer.run()
    kinds = [type(e).__name__ for e in seen]
    assert kinds[0] == "RunStarted" and kinds[-1] == "RunFinished"
    assert kinds.count("IterationMetrics") == 50
    evals = [e for e in seen if isinstance(e, ev.Evaluation)]
    assert [e.iteration for e in evals] == [0, 25, 50]
    assert evals[-1].per_task.shape == (20, 4) and evals[-1].steps == [0, 1, 2, 3]
    render = [e for e in seen if isinstance(e, ev.Render)][-1].payload
    assert render.view == "regression-1d"
    assert render.pred.shape == (4, 4, 200) and render.y_true.shape == (4, 200)
    assert render.x_support.shape == (4, 10) and render.x.dtype == np.float64
    # the true function in the payload is the task's sinusoid
    amp, phase = render.task_params[0]
    np.testing.assert_allclose(render.y_true[0], amp * np.sin(render.x - phase), atol=1e-4)
    assert [e.iteration for e in seen if isinstance(e, ev.CheckpointSaved)] == [25, 50]
    run = tmp_path / "run"
    assert result.bundle_path == str(run / "model.safetensors")
    for name in ("config.toml", "metrics.csv", "eval.csv", "eval_tasks.csv", "checkpoint.safetensors",
                 "model.safetensors", "status.json"):
        assert (run / name).is_file(), name
    assert len(rows(run / "metrics.csv")) == 50
    assert len(rows(run / "eval.csv")) == 3 * 4
    assert json.loads((run / "status.json").read_text())["status"] == "finished"


@pytest.mark.parametrize("algorithm", ["maml", "metasgd", "reptile", "anil"])
def test_resume_equals_uninterrupted(tmp_path, algorithm):
    full = Trainer(tiny_config(algorithm, 60), tmp_path / "full")
    full.run()

    def stop_at_30(event):
        if isinstance(event, ev.IterationMetrics) and event.iteration == 30:
            part.stop()

    part = Trainer(tiny_config(algorithm, 60), tmp_path / "part", [stop_at_30])
    assert part.run().status == "stopped"
    resumed = Trainer.from_run_dir(tmp_path / "part")
    assert resumed.iteration == 30
    assert resumed.run().status == "finished"
    for a, b in zip(full.learner.meta_parameters(), resumed.learner.meta_parameters()):
        assert torch.equal(a, b)
    for name in ("metrics.csv", "eval.csv", "eval_tasks.csv"):
        assert rows(tmp_path / "full" / name) == rows(tmp_path / "part" / name), name


def test_resume_after_a_crash_drops_rows_past_the_checkpoint(tmp_path):
    full = Trainer(tiny_config("maml", 60), tmp_path / "full")
    full.run()

    def stop_at_30(event):
        if isinstance(event, ev.IterationMetrics) and event.iteration == 30:
            part.stop()

    run = tmp_path / "part"
    part = Trainer(tiny_config("maml", 60), run, [stop_at_30])
    part.run()
    # a crash after the checkpoint at 30: rows 31..33 logged, a row cut in half, status left "running"
    with open(run / "metrics.csv", "a") as f:
        f.write("31,0.1,100,9.9\r\n32,0.1,100,9.9\r\n33,0.1,100,9.9\r\n3")
    (run / "status.json").write_text('{"status": "running"}')
    resumed = Trainer.from_run_dir(run)
    assert len(rows(run / "metrics.csv")) == 30
    resumed.run()
    assert rows(run / "metrics.csv") == rows(tmp_path / "full" / "metrics.csv")


def test_resume_refuses_what_it_cannot_continue(tmp_path):
    run = tmp_path / "r"
    Trainer(tiny_config("maml", 30), run).run()
    with pytest.raises(ConfigError, match="at iteration 30 of 30; pass --iterations N with N > 30"):
        Trainer.from_run_dir(run)
    with pytest.raises(ConfigError, match="at iteration 30 of 20"):
        Trainer.from_run_dir(run, iterations=20)
    text = (run / "config.toml").read_text().replace('name = "maml"', 'name = "reptile"')
    text = text.replace("first_order = false\n", "").replace("outer_lr = 0.001\n", "")
    (run / "config.toml").write_text(text)
    with pytest.raises(ConfigError, match="the checkpoint is maml on sinusoid, but .* says reptile"):
        Trainer.from_run_dir(run, iterations=40)


def test_pause_resume_and_stop_from_another_thread():
    seen = []
    trainer = Trainer(tiny_config("maml", 100_000), None, [seen.append])
    thread = threading.Thread(target=trainer.run)
    thread.start()
    while not any(isinstance(e, ev.IterationMetrics) for e in seen):
        time.sleep(0.01)
    trainer.pause()
    deadline = time.time() + 5
    while not any(isinstance(e, ev.Paused) for e in seen):
        assert time.time() < deadline
        time.sleep(0.01)
    at = trainer.iteration
    time.sleep(0.2)
    assert trainer.iteration == at  # nothing happens while paused
    trainer.unpause()
    while trainer.iteration < at + 5:
        time.sleep(0.01)
    assert any(isinstance(e, ev.Resumed) for e in seen)
    trainer.stop()
    thread.join(5)
    assert not thread.is_alive()
    assert isinstance(seen[-1], ev.RunFinished) and seen[-1].status == "stopped"


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    run = tmp_path / "run"

    def poison(event):
        if isinstance(event, ev.IterationMetrics) and event.iteration == 30:
            with torch.no_grad():
                trainer.learner.params[0].fill_(float("nan"))

    trainer = Trainer(tiny_config("maml", 60), run, [poison])
    result = trainer.run()
    assert result.status == "failed" and result.bundle_path is None
    assert "nan" in result.message.lower() and "iteration 31" in result.message
    tensors, meta = load_tensors(run / "checkpoint.safetensors")
    assert meta["iteration"] == 25 and torch.isfinite(tensors["param.0"]).all()
    assert not (run / "model.safetensors").exists()
    assert json.loads((run / "status.json").read_text())["status"] == "failed"
    # and the run can be resumed from that good checkpoint
    assert Trainer.from_run_dir(run).iteration == 25


def test_overflowing_gradient_stops_the_run(tmp_path):
    """A finite but huge loss whose gradient overflows must not freeze Adam with inf state."""
    cfg = tiny_config("maml", 400, checkpoint_interval=50)
    cfg = cfg.replace(["algorithm.inner_lr=5", "algorithm.outer_lr=1"])
    trainer = Trainer(cfg, tmp_path / "r")
    result = trainer.run()
    assert result.status == "failed", result
    assert "overflowed" in result.message or "became" in result.message
    if (tmp_path / "r" / "checkpoint.safetensors").exists():
        tensors, _ = load_tensors(tmp_path / "r" / "checkpoint.safetensors")
        assert all(torch.isfinite(t).all() for k, t in tensors.items() if t.is_floating_point())


def test_events_share_no_memory_with_the_trainer():
    seen = []
    trainer = Trainer(tiny_config("maml", 5), None, [seen.append])
    trainer.run()
    held = trainer.eval_batch.params.clone()
    render = [e for e in seen if isinstance(e, ev.Render)][-1].payload
    for key in ("task_params", "x_support", "y_support", "pred", "y_true"):
        getattr(render, key)[...] = 0
    evaluation = [e for e in seen if isinstance(e, ev.Evaluation)][-1]
    evaluation.per_task[...] = 0
    evaluation.mean[...] = 0
    [e for e in seen if isinstance(e, ev.IterationMetrics)][-1].metrics["loss"] = -1.0
    assert torch.equal(trainer.eval_batch.params, held)
    assert trainer.last_eval.mean[0] > 0 and trainer.last_metrics["loss"] > 0
    with pytest.raises(Exception):
        evaluation.iteration = 3  # frozen


def test_existing_run_directory_is_not_overwritten(tmp_path):
    Trainer(tiny_config("maml", 5), tmp_path / "r").run()
    with pytest.raises(ConfigError, match="already holds a run"):
        Trainer(tiny_config("maml", 5), tmp_path / "r")


def test_device_selection():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(ConfigError, match="expected auto, cpu, cuda"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda:0")
    else:
        with pytest.raises(ConfigError, match="CUDA device"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_training_on_cuda(tmp_path):
    trainer = Trainer(tiny_config("maml", 50, device="cuda"), tmp_path / "r")
    assert trainer.run().status == "finished"
    assert trainer.learner.params[0].device.type == "cuda"
    assert trainer.last_eval.mean[1] < trainer.last_eval.mean[0] * 1.5
