"""One rule for a held-out task whose loss overflows, everywhere: that step has no mean (NaN / null /
"diverged"), and the tasks that diverged are named with the step from which they did."""
import csv
import json
import math

import numpy as np
import pytest

from conftest import PRESETS
from workbench import cli
from workbench.core.stats import divergence, mean_ci95


def test_a_step_with_a_diverged_task_has_no_mean():
    per_task = np.array([[1.0, 0.5, 0.2], [2.0, np.inf, np.nan], [1.5, 0.7, np.inf]])
    mean, ci = mean_ci95(per_task)
    assert math.isfinite(mean[0]) and math.isfinite(ci[0])
    assert np.isnan(mean[1:]).all() and np.isnan(ci[1:]).all()  # never inf, never a mean of the survivors
    assert divergence(per_task, [0, 1, 10]) == {1: 1, 2: 10}


@pytest.fixture(scope="module")
def diverged_run(tmp_path_factory):
    """An evaluation far past what the inner learning rate allows: every task overflows after a few steps."""
    run = tmp_path_factory.mktemp("div") / "run"
    args = ["train", str(PRESETS / "maml-sinusoid.toml"), "--out", str(run), "--iterations", "0", "--quiet",
            "--set", "algorithm.inner_lr=10", "--set", "run.eval_steps=40", "--set", "run.eval_tasks=12"]
    return run, args


def test_train_names_the_diverged_tasks_and_the_files_say_nan(diverged_run, capsys):
    run, args = diverged_run
    assert cli.main(args) == 0
    err = capsys.readouterr().err
    assert "of 12 tasks diverged" in err and "from step" in err
    with (run / "eval.csv").open() as f:
        rows = list(csv.DictReader(f))
    means = [r["mean"] for r in rows]
    assert "inf" not in " ".join(means) and means[-1] == "nan" and float(means[0]) > 0
    with (run / "eval_tasks.csv").open() as f:
        assert "inf" not in f.read()
    last = json.loads((run / "status.json").read_text())["last_eval"]
    assert last["diverged"] and all(isinstance(s, int) and s > 0 for s in last["diverged"].values())


def test_eval_and_the_python_api_follow_the_same_rule(diverged_run, capsys):
    import workbench
    from workbench.core.errors import WorkbenchError

    run, args = diverged_run
    if not (run / "model.safetensors").exists():
        assert cli.main(args) == 0
    capsys.readouterr()
    assert cli.main(["eval", str(run), "--tasks", "10", "--steps", "0,40", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["mean"][0] is not None and result["mean"][1] is None and result["diverged"][1] > 0
    # named with the inner step each task overflowed at, also one between the reported steps
    assert result["diverged_tasks"] and all(1 <= s <= 40 for s in result["diverged_tasks"].values())
    assert min(result["diverged_tasks"].values()) < 40
    assert cli.main(["eval", str(run), "--tasks", "10", "--steps", "0,40"]) == 0
    out = capsys.readouterr().out
    assert "diverged" in out and "tasks diverged" in out and "from step" in out
    model = workbench.load_model(run / "model.safetensors")
    x = np.linspace(-5, 5, 10, dtype=np.float32).reshape(-1, 1)
    with pytest.raises(WorkbenchError, match=r"diverged at inner step \d+"):
        model.adapt(x, np.sin(x), steps=40)
    assert np.isfinite(model.adapt(x, np.sin(x), steps=1).predict(x)).all()
