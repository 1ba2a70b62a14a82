"""Sweeps on Ray: refused before anything starts when the grid is wrong, four runs from 2 seeds x 2 values,
retries of a failing trial, a clean stop, and the command line."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import PRESETS

from workbench import cli
from workbench.core.errors import ConfigError
from workbench.services.sweep import RAY_MISSING, plan_sweep, run_sweep, split_values

TINY = ["run.eval_tasks=10", "run.eval_steps=2", "run.eval_interval=10", "run.checkpoint_interval=10"]
PRESET = PRESETS / "maml-sinusoid.toml"


# -- before anything starts (no Ray needed) -------------------------------------------------------------
def test_plan_is_the_cross_product_with_resolved_configs():
    trials = plan_sweep(PRESET, 2, ["algorithm.inner_lr=0.01,0.02", "model.hidden=[20,20],[8]"],
                        TINY + ["run.iterations=7", "run.seed=5"])
    assert len(trials) == 8 and len({t.name for t in trials}) == 8
    assert {t.seed for t in trials} == {5, 6}
    assert {(t.values["algorithm.inner_lr"], tuple(t.values["model.hidden"])) for t in trials} == {
        (0.01, (20, 20)), (0.01, (8,)), (0.02, (20, 20)), (0.02, (8,))}
    for t in trials:
        assert t.config["algorithm"]["inner_lr"] == t.values["algorithm.inner_lr"]
        assert t.config["model"]["hidden"] == t.values["model.hidden"]
        assert t.config["run"]["seed"] == t.seed and t.config["run"]["iterations"] == 7
        assert t.config["run"]["threads"] == 1 and t.num_cpus == 1 and t.num_gpus == 0


def test_plan_takes_the_experiment_itself_as_a_config_or_a_dict():
    from workbench.core.config import ExperimentConfig, read_toml

    grid, overrides = ["algorithm.inner_lr=0.01,0.02"], TINY + ["run.iterations=7"]
    expected = [(t.name, t.seed, t.values, t.config) for t in plan_sweep(PRESET, 2, grid, overrides)]
    config, raw = ExperimentConfig.load(PRESET), read_toml(PRESET)
    before_config, before_raw = config.to_dict(), json.loads(json.dumps(raw))
    for source in (config, raw, config.to_dict()):  # what the app's forms hold, saved to no file
        trials = plan_sweep(source, 2, grid, overrides)
        assert [(t.name, t.seed, t.values, t.config) for t in trials] == expected
        assert all(t.preset == "" for t in trials)
    assert config.to_dict() == before_config and raw == before_raw  # neither is changed
    with pytest.raises(ConfigError) as info:
        plan_sweep(config, 1, ["algorithm.nope=1,2"])
    assert "--grid algorithm.nope=1: config 'maml-sinusoid': [algorithm]: unknown key 'nope'" in str(info.value)
    with pytest.raises(ConfigError, match="out of range"):
        plan_sweep(raw, 1, ["algorithm.inner_lr=0.01,-1"])


def test_split_values_keeps_lists_and_quoted_strings_whole():
    assert split_values("0.01, 0.02") == ["0.01", "0.02"]
    assert split_values("[40,40],[20]") == ["[40,40]", "[20]"]
    assert split_values("'a,b',tanh") == ["'a,b'", "tanh"]


@pytest.mark.parametrize("grid, expected", [
    (["algorithm.inner_lrr=0.01,0.02"], "unknown key 'inner_lrr' (did you mean 'inner_lr'?)"),
    (["algorithmm.inner_lr=0.01"], "unknown section 'algorithmm'"),
    (["run.iterations=5,-4"], "--grid run.iterations=-4"),
    (["model.activation=relu,tahn"], "did you mean 'tanh'?"),
    (["algorithm.inner_lr"], "expected section.key=v1,v2"),
    (["algorithm.inner_lr=0.01,"], "empty value"),
    (["run.seed=1,2"], "--seeds N"),
    (["algorithm.inner_lr=0.1", "algorithm.inner_lr=0.2"], "already in the grid"),
    (["run.device=gpu"], "device = 'gpu'"),
])
def test_a_bad_grid_is_refused_naming_the_key_or_value(grid, expected):
    with pytest.raises(ConfigError) as info:
        plan_sweep(PRESET, 1, grid, TINY)
    assert expected in str(info.value)


def test_unknown_grid_key_is_refused_by_the_cli_before_ray_starts(monkeypatch, capsys):
    ray = pytest.importorskip("ray")
    import workbench.services.sweep as sweep

    started = []
    monkeypatch.setattr(sweep, "run_sweep", lambda *a, **k: started.append(1))
    code = cli.main(["sweep", str(PRESET), "--seeds", "2", "--grid", "algorithm.inner_lrr=0.01,0.02"])
    err = capsys.readouterr().err
    assert code == 2 and not started and not ray.is_initialized()
    assert "--grid algorithm.inner_lrr=0.01" in err and "unknown key 'inner_lrr'" in err
    assert err.strip().splitlines()[-1].startswith("workbench: error:") and len(err.strip().splitlines()) == 1
    assert cli.main(["sweep", str(PRESET), "--seeds", "0"]) == 2
    assert "--seeds 0: expected 1 to" in capsys.readouterr().err


def test_without_ray_the_sweep_command_says_what_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # "import ray" now raises ImportError
    code = cli.main(["sweep", str(PRESET), "--seeds", "2"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == f"workbench: error: {RAY_MISSING}"
    assert "pip install 'workbench[cluster]'" in err


# -- on a local Ray ------------------------------------------------------------------------------------
def test_two_seeds_by_two_values_make_four_runs_and_a_grouped_result(tmp_path):
    ray = pytest.importorskip("ray")
    trials = plan_sweep(PRESET, 2, ["algorithm.inner_lr=0.01,0.02"], TINY + ["run.iterations=20"])
    events = []
    result = run_sweep(trials, tmp_path, num_cpus=2, callback=events.append)
    assert not ray.is_initialized()  # the sweep started a local Ray and shut it down again

    assert [t.status for t in result.trials] == ["finished"] * 4, [t.message for t in result.trials]
    runs = sorted(p for p in tmp_path.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert len(runs) == 4 and all(p.name.startswith(result.sweep_id + "-") for p in runs)
    plan = json.loads((tmp_path / ".sweeps" / result.sweep_id / "plan.json").read_text())  # what --resume reads
    assert [t["name"] for t in plan["trials"]] == [t.name for t in trials]
    seen = set()
    for run in runs:
        meta = json.loads((run / "sweep.json").read_text())
        assert meta["sweep_id"] == result.sweep_id and run.name == f"{result.sweep_id}-{meta['trial']}"
        assert json.loads((run / "status.json").read_text())["status"] == "finished"
        assert (run / "model.safetensors").is_file() and (run / "config.toml").is_file()
        config = (run / "config.toml").read_text()
        assert f"seed = {meta['seed']}" in config and f"inner_lr = {meta['values']['algorithm.inner_lr']}" in config
        seen.add((meta["seed"], meta["values"]["algorithm.inner_lr"]))
    assert seen == {(0, 0.01), (1, 0.01), (0, 0.02), (1, 0.02)}

    assert [g.values for g in result.groups] == [{"algorithm.inner_lr": 0.01}, {"algorithm.inner_lr": 0.02}]
    for g in result.groups:
        assert sorted(g.seeds) == [0, 1] and g.finished == 2 and g.metric == "mse"
        afters = [t.after for t in g.trials]
        assert g.mean == pytest.approx(sum(afters) / 2) and g.std is not None
    table = result.table().splitlines()
    assert table[0].split()[0] == "algorithm.inner_lr" and [r.split()[0] for r in table[1:]] == ["0.01", "0.02"]
    for t in trials:  # the callback saw every trial run and finish
        statuses = [e.status for e in events if e.trial.index == t.index]
        assert statuses[0] == "queued" and "running" in statuses and statuses[-1] == "finished"
    assert result.startup_seconds is not None and result.startup_seconds < result.wall_seconds


def test_cli_sweep_prints_the_grouped_table_and_the_sweep_id_last(tmp_path):
    pytest.importorskip("ray")
    sets = [a for s in TINY + ["run.threads=1"] for a in ("--set", s)]
    r = subprocess.run([sys.executable, "-m", "workbench", "sweep", "maml-sinusoid", "--seeds", "2", "--grid",
                        "algorithm.inner_lr=0.01,0.02", "--iterations", "5", "--out", str(tmp_path), *sets],
                       capture_output=True, text=True, timeout=120, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    sweep_id = lines[-1]
    assert len([p for p in tmp_path.iterdir() if p.name.startswith(sweep_id + "-")]) == 4
    assert "4 finished" in lines[0]
    assert lines[1].split()[:3] == ["algorithm.inner_lr", "seeds", "finished"]
    assert [ln.split()[:3] for ln in lines[2:4]] == [["0.01", "0,1", "2/2"], ["0.02", "0,1", "2/2"]]
    assert r.stderr.count("started") == 4 and "[4/4]" in r.stderr


def test_cli_ctrl_c_stops_the_sweep_cleanly(tmp_path):
    pytest.importorskip("ray")

    sets = [a for s in TINY + ["run.threads=1", "run.eval_interval=1000000"] for a in ("--set", s)]
    proc = subprocess.Popen([sys.executable, "-m", "workbench", "sweep", "maml-sinusoid", "--iterations", "10000000",
                             "--out", str(tmp_path), *sets], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        for line in proc.stderr:  # wait until the trial runs
            if "started" in line:
                break
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "stopping the sweep" in err and "Traceback" not in err
    assert "1 stopped" in out.splitlines()[0]
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert json.loads((run / "status.json").read_text())["status"] == "stopped"
    assert (run / "checkpoint.safetensors").is_file() and (run / "sweep.json").is_file()


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_a_failing_trial_is_retried_then_reported_failed(tmp_path, local_ray):
    trials = plan_sweep(PRESET, 1, ["algorithm.inner_lr=0.01,0.02"], TINY + ["run.iterations=5"])
    (tmp_path / f"s-{trials[1].name}").write_text("in the way")  # the second trial cannot make its run folder
    events = []
    result = run_sweep(trials, tmp_path, callback=events.append, sweep_id="s", max_retries=1)
    assert local_ray.is_initialized()  # an instance the caller started is left running
    ok, bad = result.trials
    assert ok.status == "finished" and ok.attempts == 1
    assert bad.status == "failed" and bad.attempts == 2 and "FileExistsError" in bad.message
    assert any(e.status == "retrying" and e.trial.index == 1 for e in events)
    assert [g.finished for g in result.groups] == [1, 0] and result.groups[1].mean is None


def test_stop_keeps_checkpoints_of_running_trials_and_drops_the_others(tmp_path, local_ray):
    trials = plan_sweep(PRESET, 3, [], TINY + ["run.iterations=1000000", "run.eval_interval=1000000"])
    stop = threading.Event()
    progressed = set()

    def on_event(e):  # stop once both running trials are past iteration 0 (the third waits in the queue)
        if e.iteration > 0:
            progressed.add(e.trial.index)
        if len(progressed) >= 2:
            stop.set()

    result = run_sweep(trials, tmp_path, sweep_id="s", stop_event=stop, callback=on_event)
    assert result.interrupted
    statuses = sorted(t.status for t in result.trials)
    assert statuses == ["cancelled", "stopped", "stopped"], [t.message for t in result.trials]
    for t in result.trials:
        if t.status == "stopped":
            run = Path(t.run_dir)
            assert json.loads((run / "status.json").read_text())["status"] == "stopped"
            assert (run / "checkpoint.safetensors").is_file() and 0 < t.iteration < 1000000
        else:
            assert t.run_dir is None and not (tmp_path / f"s-{t.trial.name}").exists()


def test_force_event_cancels_running_trials_now(tmp_path, local_ray):
    trials = plan_sweep(PRESET, 1, [], TINY + ["run.iterations=1000000", "run.eval_interval=1000000"])
    stop, force = threading.Event(), threading.Event()

    def on_event(e):
        if e.iteration > 0:
            stop.set()  # the dialog's Stop, then its "Cancel now"
            force.set()

    result = run_sweep(trials, tmp_path, sweep_id="s", stop_event=stop, force_event=force, callback=on_event)
    (t,) = result.trials
    assert result.interrupted and t.status == "stopped" and t.run_dir is not None
    assert t.message == "cancelled by force: the sweep was cancelled"
    assert json.loads((Path(t.run_dir) / "status.json").read_text())["status"] == "stopped"


def test_ship_mode_copies_the_run_back_as_from_another_node(tmp_path, local_ray):
    trials = plan_sweep(PRESET, 1, [], TINY + ["run.iterations=3"])
    result = run_sweep(trials, tmp_path, sweep_id="s", _ship=True)
    (t,) = result.trials
    assert t.status == "finished" and Path(t.bundle) == tmp_path / "s-0-seed0" / "model.safetensors"
    assert Path(t.bundle).is_file() and (tmp_path / "s-0-seed0" / "sweep.json").is_file()
    assert json.loads((tmp_path / "s-0-seed0" / "status.json").read_text())["bundle"] == t.bundle


# -- Ray Tune: search, early stopping, resume ---------------------------------------------------------
def test_a_random_search_of_four_samples_leaves_four_runs_with_values_in_range(tmp_path, local_ray):
    from workbench.services.sweep import plan_search

    plan = plan_search(PRESET, 1, [], TINY + ["run.iterations=4", "run.eval_interval=2"],
                       loguniform=["algorithm.outer_lr=0.0001,0.01"], choice=["algorithm.inner_lr=0.005,0.02"],
                       samples=4, search="random")
    assert plan.total == 4 and plan.trials is None
    result = run_sweep(plan, tmp_path, sweep_id="r")
    assert [t.status for t in result.trials] == ["finished"] * 4, [t.message for t in result.trials]
    runs = sorted(p for p in tmp_path.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert len(runs) == 4
    drawn = set()
    for run in runs:
        meta = json.loads((run / "sweep.json").read_text())
        lr, inner = meta["values"]["algorithm.outer_lr"], meta["values"]["algorithm.inner_lr"]
        assert 1e-4 <= lr <= 1e-2 and inner in (0.005, 0.02)
        config = (run / "config.toml").read_text()
        assert f"outer_lr = {lr!r}" in config and f"inner_lr = {inner!r}" in config
        assert json.loads((run / "status.json").read_text())["status"] == "finished"
        drawn.add(lr)
    assert len(drawn) == 4  # four independent samples
    assert sorted(t.trial.index for t in result.trials) == [0, 1, 2, 3]


def test_asha_stops_the_arm_that_cannot_learn(tmp_path, local_ray):
    """Seeded toy sweep: the second arm's outer learning rate is too small to move; ASHA (one trial at a
    time, so the good arm has reported at the first rung before the bad one gets there) stops it there."""
    from workbench.services.sweep import plan_search

    plan = plan_search(PRESET, 1, ["algorithm.outer_lr=0.01,1e-9"], TINY + ["run.iterations=12", "run.eval_interval=3"],
                       scheduler="asha", max_concurrent=1)
    result = run_sweep(plan, tmp_path, sweep_id="a")
    good, bad = result.trials
    assert good.status == "finished" and good.iteration == 12, good.message
    assert bad.status == "stopped early" and bad.iteration < 12 and "ASHA" in bad.message
    status = json.loads((Path(bad.run_dir) / "status.json").read_text())
    assert status["status"] == "stopped early" and "ASHA" in status["message"]
    assert status["iteration"] == bad.iteration


def test_resume_of_a_killed_sweep_runs_every_trial_exactly_once_and_prints_the_grouped_table(tmp_path):
    """A CLI sweep killed (with its local Ray) while its second trial runs; ``--resume`` keeps the finished
    trial, runs the second on from its checkpoint, and prints the grouped table and the sweep id last."""
    pytest.importorskip("ray")
    sets = [a for s in TINY + ["run.threads=1", "run.eval_interval=10", "run.checkpoint_interval=5"]
            for a in ("--set", s)]
    runs, total = tmp_path / "runs", 300
    cmd = [sys.executable, "-m", "workbench", "sweep", "maml-sinusoid", "--iterations", str(total), "--grid",
           "algorithm.inner_lr=0.01,0.02", "--max-concurrent", "1", "--out", str(runs), *sets]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    err = []
    try:
        for line in proc.stderr:  # the first trial has finished and the second is under way
            err.append(line)
            if "trial 1-seed0" in line and "started" in line:
                break
        deadline = time.monotonic() + 60
        while not list(runs.glob("*-1-seed0-*/checkpoint.safetensors")) and time.monotonic() < deadline:
            time.sleep(0.02)  # the second trial's first checkpoint (iteration 5)
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and its local Ray, mid-way
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    err = "".join(err)
    assert "trial 0-seed0-inner_lr0.01 (seed 0, inner_lr=0.01) started" in err
    (sweep_id,) = [p.name for p in (runs / ".sweeps").iterdir()]
    names = [f"{sweep_id}-0-seed0-inner_lr0.01", f"{sweep_id}-1-seed0-inner_lr0.02"]
    first, second = (runs / n for n in names)
    assert json.loads((first / "status.json").read_text())["status"] == "finished"
    killed = json.loads((second / "status.json").read_text())
    done = len((second / "metrics.csv").read_text().splitlines()) - 1
    assert killed["status"] == "running" and 0 < done < total, killed  # killed mid-way
    assert (second / "checkpoint.safetensors").is_file()
    before = (first / "metrics.csv").read_bytes()
    out = subprocess.run([sys.executable, "-m", "workbench", "sweep", "--resume", sweep_id, "--out", str(runs)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[-1] == sweep_id and "2 finished" in lines[0]
    assert lines[1].split()[:3] == ["algorithm.inner_lr", "seeds", "finished"]
    assert [ln.split()[:3] for ln in lines[2:4]] == [["0.01", "0", "1/1"], ["0.02", "0", "1/1"]]
    assert out.stderr.count("started") == 1  # only the killed trial ran again
    assert sorted(p.name for p in runs.iterdir() if not p.name.startswith(".")) == names
    assert (first / "metrics.csv").read_bytes() == before  # the finished trial was kept, not run again
    for run, lr in zip((first, second), ("0.01", "0.02")):
        status = json.loads((run / "status.json").read_text())
        assert status["status"] == "finished" and status["iteration"] == total
        assert f"inner_lr = {lr}" in (run / "config.toml").read_text()
        iterations = [int(line.split(",")[0]) for line in (run / "metrics.csv").read_text().splitlines()[1:]]
        assert iterations == list(range(1, total + 1))  # each once: the second went on from its checkpoint


def _fake_run(runs: Path, sweep_id: str, trial, status: str, sample: int) -> None:
    run = runs / f"{sweep_id}-{trial.name}"
    run.mkdir(parents=True)
    (run / "sweep.json").write_text(json.dumps({"sweep_id": sweep_id, "trial": trial.name, "values": trial.values,
                                                "seed": trial.seed, "index": trial.index, "sample": sample}))
    (run / "status.json").write_text(json.dumps({"status": status}))


def test_resume_plans_what_is_left_by_sample_and_keeps_trials_that_ended_for_good(tmp_path):
    """Samples with equal values stay apart (their sample number); finished, stopped-early and failed trials
    are kept, a stopped one goes on; the missing seed of a drawn sample is run with its values; the samples
    not drawn yet are searched from another random state, numbered after the others."""
    from workbench.services.sweep import _known_trials, _phases, _search_and_scheduler, plan_search

    plan = plan_search(PRESET, 2, [], TINY, choice=["model.activation=relu,tanh"], samples=4)
    t = [plan.trial(i, {"model.activation": a}, s) for i, (a, s) in
         enumerate([("relu", 0), ("relu", 1), ("tanh", 0), ("tanh", 1), ("relu", 0)])]
    for trial, status, sample in zip(t, ["finished", "stopped early", "failed", "finished", "stopped"], [0, 0, 1, 1, 2]):
        _fake_run(tmp_path, "s", trial, status, sample)
    phases, kept = _phases(plan, _known_trials(tmp_path, "s"), 0)
    assert sorted(k.index for k in kept) == [0, 1, 2, 3]
    fixed, search = phases
    assert [(x.index, x.values["model.activation"], x.seed) for x in fixed.trials] == [(4, "relu", 0), (5, "relu", 1)]
    assert fixed.sample_ids == {4: 2, 5: 2} and fixed.trials[1].name.startswith("5-seed1")
    assert search.samples == 1 and search.drawn == 3 and search.sweep_total == 8
    assert _search_and_scheduler(search, None)[0]._random_state != _search_and_scheduler(plan, None)[0]._random_state


def test_a_searched_range_is_checked_at_every_grid_point():
    from workbench.services.sweep import plan_search

    with pytest.raises(ConfigError, match=r"--uniform task.amp_min=2,3 with task.amp_max=1: .*amp_min"):
        plan_search(PRESET, 1, ["task.amp_max=5,1"], TINY, uniform=["task.amp_min=2.0,3.0"])


def test_resume_takes_no_plan_of_its_own(capsys):
    assert cli.main(["sweep", "--resume", "some-sweep", "--max-concurrent", "2"]) == 2
    assert "--resume some-sweep: the sweep's own plan is resumed" in capsys.readouterr().err
