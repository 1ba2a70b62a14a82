"""Hostile or broken files: bundle metadata of the wrong type or asking for huge resources, FIFOs and devices
given as presets or bundles or lying in the runs folder, and a broken preset among good ones.

Every one is refused with one line naming the file (and the key and value), exits 2 from the CLI, never
hangs, never reads without limit and never allocates what the metadata asks for before checking it."""
import contextlib
import os
import resource
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import workbench
from conftest import PRESETS, tiny_config
from workbench.cli import main
from workbench.services import runs
from workbench.services.bundle import MAX_ADAPT_STEPS
from workbench.core.errors import BundleError, ConfigError
from workbench.services.presets import list_presets, resolve_preset
from workbench.core.storage import UnreadableFile, load_tensors, read_regular_bytes, save_tensors
from workbench.services.trainer import Trainer

DATA = Path(__file__).resolve().parent / "data"
RL_BUNDLE = DATA / "navigation-maml-trpo.safetensors"
needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
needs_dev_zero = pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny regression run (its folder and bundle), trained once for the module."""
    run = tmp_path_factory.mktemp("hostile") / "maml-run"
    result = Trainer(tiny_config("maml", iterations=5, eval_interval=5, checkpoint_interval=5), run).run()
    return run, Path(result.bundle_path)


def crafted(tmp_path, source, change, name="crafted.safetensors"):
    tensors, meta = load_tensors(source)
    change(tensors, meta)
    out = tmp_path / name
    save_tensors(out, tensors, meta)
    return out


def finishes(fn, seconds=10.0, unblock: Path | None = None):
    """Run ``fn`` in a thread; assert it returns within ``seconds`` and give back its result (or raise its
    error).  A FIFO ``unblock`` is opened for writing afterwards, so a reader stuck on it ends."""
    box = {}

    def target():
        try:
            box["result"] = fn()
        except BaseException as e:  # noqa: BLE001 - re-raised below
            box["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    alive = t.is_alive()
    if alive and unblock is not None:
        try:
            os.close(os.open(unblock, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass
        t.join(5)
    assert not alive, f"still running after {seconds} s (blocked on a FIFO or a device?)"
    if "error" in box:
        raise box["error"]
    return box["result"]


def one_line_error(capsys, argv, *must_contain, seconds=30.0, unblock=None):
    rc = finishes(lambda: main(argv), seconds, unblock)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2, err
    assert len(lines) == 1 and lines[0].startswith("workbench: error: "), err
    for text in must_contain:
        assert str(text) in lines[0], lines[0]
    return lines[0]


# -- bundle metadata of the wrong type, or inconsistent ------------------------------------------------------
REGRESSION_CASES = [
    (lambda t, m: m.update(task=[1]), "task = [1]"),
    (lambda t, m: m.update(algorithm_config=[1, 2]), "algorithm_config = [1, 2]"),
    (lambda t, m: m.update(model=[1]), "model = [1]"),
    (lambda t, m: m["model"].update(hidden="40"), "model.hidden = '40'"),
    (lambda t, m: m["model"].update(hidden=[40, 0]), "model.hidden"),
    (lambda t, m: m["model"].update(in_shape="1"), "model.in_shape = '1'"),
    (lambda t, m: m["model"].update(kwargs=[1]), "model.kwargs = [1]"),
    (lambda t, m: m["model"].update(module=7), "model.module = 7"),
    (lambda t, m: m.update(adaptation=[1]), "adaptation = [1]"),
    (lambda t, m: m["adaptation"].update(steps=1e12), "adaptation.steps = 1000000000000.0"),
    (lambda t, m: m["adaptation"].update(steps=10**12), f"at most {MAX_ADAPT_STEPS}"),
    (lambda t, m: m["adaptation"].update(steps=True), "adaptation.steps = True"),
    (lambda t, m: m["adaptation"].update(lr="fast"), "adaptation.lr = 'fast'"),
    (lambda t, m: m["adaptation"].update(first=None), "adaptation.first = None"),
    (lambda t, m: (m["adaptation"].pop("first"), m["adaptation"].update(first_layer=None)),
     "adaptation.first_layer = None"),
    (lambda t, m: m.update(family=5), "family"),
    (lambda t, m: m.update(algorithm=["maml"]), "algorithm"),
    (lambda t, m: m.update(algorithm="maml-trpo"), "algorithm = 'maml-trpo'"),
    (lambda t, m: m.update(kind="rl"), "kind = 'rl'"),
    (lambda t, m: m.update(kind=[1]), "kind = [1]"),
    (lambda t, m: m.update(training=[1]), "training = [1]"),
    (lambda t, m: m["training"].update(iterations="many"), "training.iterations = 'many'"),
    (lambda t, m: m.update(preset=3), "preset = 3"),
    (lambda t, m: m["preset"].update(name=[1]), "preset.name = [1]"),
    (lambda t, m: m.update(created=7), "created = 7"),
    (lambda t, m: m.update(format_version=True), "format version True"),
    (lambda t, m: t.update({"param.0": t["param.0"].to(torch.int64)}), "param.0: dtype int64"),
    (lambda t, m: t.pop("param.3"), "param.3: missing"),
    (lambda t, m: m.pop("model"), "model: missing"),
]


@pytest.mark.parametrize("change, expected", REGRESSION_CASES)
def test_regression_metadata_of_the_wrong_type_is_one_bundle_error(trained, tmp_path, capsys, change, expected):
    p = crafted(tmp_path, trained[1], change)
    with pytest.raises(BundleError) as e:
        workbench.load_model(p)
    message = str(e.value)
    assert "\n" not in message and str(p) in message and expected in message, message
    one_line_error(capsys, ["eval", str(p), "--tasks", "2"], p, expected)


RL_CASES = [
    (lambda t, m: m.update(task=[1]), "task = [1]"),
    (lambda t, m: m.update(algorithm_config=[1, 2]), "algorithm_config = [1, 2]"),
    (lambda t, m: m["algorithm_config"].update(inner_steps="two"), "inner_steps = 'two'"),
    (lambda t, m: m.pop("kind"), "kind = None"),  # an RL family read as a regression model
    (lambda t, m: m.update(family="sinusoid"), "kind = 'rl'"),  # an RL kind with a regression family
    (lambda t, m: m.update(algorithm="maml"), "algorithm = 'maml'"),
    (lambda t, m: m.update(algorithm="pearl", algorithm_config={}), "parameters"),  # another network than the file
    (lambda t, m: m.update(n_params="7"), "n_params = '7'"),
    (lambda t, m: m.update(n_params=10**9), "n_params = 1000000000"),
    (lambda t, m: m["model"].update(activation="gelu"), "unknown activation 'gelu'"),
    (lambda t, m: m["model"].update(hidden=[64, 65]), "param.2 must be finite with shape (64, 65)"),
]


@pytest.mark.parametrize("change, expected", RL_CASES)
def test_rl_metadata_of_the_wrong_type_is_one_bundle_error(tmp_path, capsys, change, expected):
    p = crafted(tmp_path, RL_BUNDLE, change)
    with pytest.raises(BundleError) as e:
        workbench.load_model(p)
    message = str(e.value)
    assert "\n" not in message and str(p) in message and expected in message, message
    one_line_error(capsys, ["export", str(p), "--format", "onnx", "--out", str(tmp_path / "x.onnx")], p, expected)
    assert not (tmp_path / "x.onnx").exists()


def test_the_shipped_rl_bundles_still_load():
    for p in sorted(DATA.glob("*.safetensors")):
        assert workbench.load_model(p).meta["kind"] == "rl"


# -- metadata that asks for huge resources: refused before anything is allocated --------------------------------
def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


@contextlib.contextmanager
def memory_cap(extra: int = 2**30):
    """At most ``extra`` more bytes of heap (RLIMIT_DATA) while inside: code that allocates what hostile
    metadata asks for fails with an error instead of exhausting the machine (Linux; elsewhere no cap)."""
    try:
        with open("/proc/self/status") as f:
            vmdata = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmData:"))
        soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    except (OSError, StopIteration, ValueError, AttributeError):
        yield
        return
    cap = vmdata + extra if hard == resource.RLIM_INFINITY else min(vmdata + extra, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))


@pytest.mark.parametrize("source, change, expected", [
    ("rl", lambda t, m: m["model"].update(hidden=[4096] * 300), "model.hidden = [4096, 4096, 4096, ...] (300 entries)"),
    # fits in memory, but not the parameters the file holds: refused before the policy is built
    ("rl", lambda t, m: m["model"].update(hidden=[4096] * 5), "the bundle has"),
    ("rl", lambda t, m: m.update(algorithm="rl2", algorithm_config={}, n_params=8,
                                 model={**m["model"], "hidden": [64] + [4096] * 299}), "model.hidden"),
    ("rl", lambda t, m: m.update(algorithm="rl2", algorithm_config={}, n_params=7,
                                 model={**m["model"], "hidden": [4096]}), "model.hidden"),
    ("regression", lambda t, m: m["model"].update(hidden=[4096] * 300), "model.hidden"),
    ("regression", lambda t, m: m["model"].update(hidden=[1] * 100_000), "model.hidden"),
    ("regression", lambda t, m: m["adaptation"].update(steps=10**12), "adaptation.steps"),
])
def test_huge_sizes_in_the_metadata_are_refused_before_allocating(trained, tmp_path, capsys, source, change,
                                                                   expected):
    p = crafted(tmp_path, RL_BUNDLE if source == "rl" else trained[1], change)
    before = _peak_rss_mb()
    start = time.monotonic()
    with pytest.raises(BundleError) as e, memory_cap():
        finishes(lambda: workbench.load_model(p), 20)
    assert expected in str(e.value) and str(p) in str(e.value)
    assert time.monotonic() - start < 10
    assert _peak_rss_mb() - before < 500, "allocated what the metadata asked for before refusing it"
    with memory_cap():
        one_line_error(capsys, ["eval", str(p), "--tasks", "2"], p, expected)


def test_pearl_replay_buffers_are_bounded(tmp_path):
    from workbench.core.config import ExperimentConfig

    cfg = ExperimentConfig.load(PRESETS / "pearl-navigation.toml", ["run.iterations=0", "algorithm.train_tasks=2",
                                                                      "algorithm.buffer_size=10"])
    bundle = Trainer(cfg).export(tmp_path / "pearl.safetensors")
    assert workbench.load_model(bundle).algorithm == "pearl"
    p = crafted(tmp_path, bundle, lambda t, m: m["algorithm_config"].update(train_tasks=10_000, buffer_size=1_000_000))
    before = _peak_rss_mb()
    with pytest.raises(BundleError, match="algorithm_config.buffer_size = 1000000: expected replay buffers"), \
            memory_cap():
        finishes(lambda: workbench.load_model(p), 20)
    assert _peak_rss_mb() - before < 500


def test_adapt_and_evaluate_bound_their_steps_and_sizes(trained):
    model = workbench.load_model(trained[1])
    x = np.linspace(-5, 5, 10)[:, None]
    for bad in (10**12, MAX_ADAPT_STEPS + 1, -1, 2.5, True, "3"):
        with pytest.raises(ValueError, match="steps must be"):
            finishes(lambda: model.adapt(x, np.sin(x), steps=bad), 5)
    assert model.adapt(x, np.sin(x), steps=np.int64(2)).predict(x).shape == (10, 1)
    assert model.adapt(x, np.sin(x), steps=3.0).predict(x).shape == (10, 1)
    for kwargs in ({"steps": [0, 10**12]}, {"tasks": 10**9}, {"tasks": 0}, {"shots": 10**9}, {"steps": []}):
        with pytest.raises(ValueError):
            finishes(lambda: model.evaluate(**kwargs), 5)
    with pytest.raises(ValueError, match="steps must be"):
        model.evaluation_events(tasks=2, steps=10**12)
    rl = workbench.load_model(RL_BUNDLE)
    with pytest.raises(ValueError, match="steps must be"):
        rl.evaluate(tasks=2, steps=[0, 10**12])


# -- FIFOs, devices and huge files given as bundles or presets ----------------------------------------------------
@needs_fifo
def test_a_fifo_given_as_bundle_or_preset_is_refused_at_once(tmp_path, capsys):
    fifo = tmp_path / "model.safetensors"
    os.mkfifo(fifo)
    one_line_error(capsys, ["eval", str(fifo)], fifo, "FIFO", unblock=fifo)
    one_line_error(capsys, ["export", str(fifo), "--format", "onnx"], fifo, "FIFO", unblock=fifo)
    with pytest.raises(BundleError, match="FIFO"):
        finishes(lambda: workbench.load_model(fifo), unblock=fifo)
    preset = tmp_path / "preset.toml"
    os.mkfifo(preset)
    one_line_error(capsys, ["train", str(preset), "--quiet"], preset, "FIFO", unblock=preset)
    # a run folder whose model.safetensors is a FIFO: not taken for the bundle
    run = tmp_path / "run"
    run.mkdir()
    os.mkfifo(run / "model.safetensors")
    with pytest.raises(BundleError):
        finishes(lambda: workbench.load_model(run), unblock=run / "model.safetensors")


@needs_dev_zero
def test_dev_zero_given_as_bundle_or_preset_is_refused(tmp_path, capsys):
    link = tmp_path / "zero.toml"
    link.symlink_to("/dev/zero")
    with memory_cap():  # reading it without a limit fails here instead of exhausting the machine
        one_line_error(capsys, ["eval", "/dev/zero"], "/dev/zero", "character device")
        one_line_error(capsys, ["train", "/dev/zero", "--quiet"], "/dev/zero", "character device")
        one_line_error(capsys, ["train", str(link), "--quiet"], link, "character device")
        with pytest.raises(UnreadableFile, match="character device"):
            read_regular_bytes("/dev/zero")


def test_files_over_the_limit_are_not_read(tmp_path):
    big = tmp_path / "big.json"
    with open(big, "wb") as f:
        f.truncate(9 * 2**20)  # sparse: nothing is written
    with pytest.raises(UnreadableFile, match="too large"):
        read_regular_bytes(big)
    with pytest.raises(UnreadableFile, match="too large"):
        load_tensors(big, limit=2**20)
    with pytest.raises(ConfigError, match="at most"):
        resolve_preset(str(big.rename(tmp_path / "big.toml")))


# -- the runs folder: a FIFO or device where a run's file should be -------------------------------------------------
@needs_fifo
@pytest.mark.parametrize("name", ["status.json", "config.toml", "metrics.csv", "eval.csv", "eval_tasks.csv",
                                  "sweep.json"])
def test_a_fifo_in_a_run_folder_never_blocks_the_scan(trained, tmp_path, name):
    root = tmp_path / "runs"
    shutil.copytree(trained[0], root / "good")
    shutil.copytree(trained[0], root / "bad")
    (root / "bad" / name).unlink(missing_ok=True)
    os.mkfifo(root / "bad" / name)
    listed = finishes(lambda: runs.scan_runs(root), 10, unblock=root / "bad" / name)
    by_name = {r.name: r for r in listed}
    assert by_name["good"].readable
    bad = by_name["bad"]
    if name in ("status.json", "config.toml", "metrics.csv"):
        assert not bad.readable and "FIFO" in bad.error, bad.error
    elif name == "sweep.json":
        assert "FIFO" in (bad.warning or ""), bad.warning
    if bad.readable:  # the curves are read from the CSVs: a RunError, not a hang
        try:
            finishes(lambda: runs.load_curves(bad), 10, unblock=root / "bad" / name)
        except runs.RunError as e:
            assert "FIFO" in str(e)
    assert finishes(lambda: runs.run_bundle(bad), 5) in (None, root / "bad" / "model.safetensors")


@needs_fifo
def test_a_fifo_named_status_json_is_listed_as_unreadable(tmp_path):
    root = tmp_path / "runs"
    (root / "trap").mkdir(parents=True)
    os.mkfifo(root / "trap" / "status.json")
    listed = finishes(lambda: runs.scan_runs(root), 10, unblock=root / "trap" / "status.json")
    assert [r.name for r in listed] == ["trap"]
    assert not listed[0].readable and "FIFO" in listed[0].error


@needs_dev_zero
def test_a_link_to_a_device_in_a_run_folder_is_not_read(trained, tmp_path):
    root = tmp_path / "runs"
    shutil.copytree(trained[0], root / "r")
    (root / "r" / "status.json").unlink()
    (root / "r" / "status.json").symlink_to("/dev/zero")
    (listed,) = finishes(lambda: runs.scan_runs(root), 10)
    assert not listed.readable and "character device" in listed.error


# -- a broken preset among good ones ---------------------------------------------------------------------------------
@pytest.fixture
def presets_dir(tmp_path, monkeypatch):
    d = tmp_path / "presets"
    d.mkdir()
    monkeypatch.setenv("WORKBENCH_PRESETS", str(d))
    return d


@pytest.mark.parametrize("text, why", [
    ("meta = 3\n", "meta = 3"),
    ("[task]\nfamily = 3\n[algorithm]\nname = 'maml'\n", "family = 3"),
    ("[task]\nfamily = 'sinusoid'\n", "[algorithm] needs a 'name'"),
    ("[meta]\ndescription = [1]\n", "description = [1]"),
    ("[[[ not toml", "malformed TOML"),
    ("bogus = {}\n", "unknown section [bogus]"),
])
def test_a_bad_preset_is_listed_as_unreadable_and_the_others_still_work(presets_dir, capsys, text, why):
    (presets_dir / "broken.toml").write_text(text)
    listed = {p.name: p for p in list_presets()}
    assert not listed["broken"].readable and why in listed["broken"].error
    assert "unreadable" in listed["broken"].description
    assert listed["maml-sinusoid"].readable and listed["maml-sinusoid"].family == "sinusoid"
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("broken"))
    assert "unreadable" in line and why in line
    assert "maml-sinusoid" in out
    assert resolve_preset("maml-sinusoid") == listed["maml-sinusoid"].path
    one_line_error(capsys, ["train", "broken", "--quiet"], presets_dir / "broken.toml")


def test_train_of_a_good_preset_works_beside_a_bad_one(presets_dir, tmp_path, capsys):
    (presets_dir / "broken.toml").write_text("meta = 3\n")
    rc = main(["train", "maml-sinusoid", "--quiet", "--iterations", "2", "--out", str(tmp_path / "run"),
               "--set", "run.eval_tasks=2", "--set", "run.eval_interval=2", "--set", "run.eval_steps=1"])
    assert rc == 0, capsys.readouterr().err
    assert (tmp_path / "run" / "model.safetensors").is_file()


@needs_fifo
def test_a_fifo_among_the_presets_is_listed_as_unreadable(presets_dir, capsys):
    os.mkfifo(presets_dir / "trap.toml")
    listed = {p.name: p for p in finishes(list_presets, 10, unblock=presets_dir / "trap.toml")}
    assert not listed["trap"].readable and "FIFO" in listed["trap"].error
    assert finishes(lambda: main(["presets"]), 10, unblock=presets_dir / "trap.toml") == 0
    one_line_error(capsys, ["train", "trap", "--quiet"], "trap.toml", "FIFO", unblock=presets_dir / "trap.toml")


# -- the GUI's entry points ------------------------------------------------------------------------------------------
def test_the_playground_and_open_model_refuse_hostile_bundles(qtbot, trained, tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("WORKBENCH_SETTINGS", str(tmp_path / "settings.ini"))
    from workbench.gui import MainWindow
    from workbench.gui.playground import PlaygroundTab

    p = crafted(tmp_path, RL_BUNDLE, lambda t, m: m.update(task=[1]))
    q = crafted(tmp_path, trained[1], lambda t, m: m["adaptation"].update(steps=1e12), "q.safetensors")
    tab = PlaygroundTab(tmp_path / "runs")
    qtbot.addWidget(tab)
    for bad in (p, q):
        assert not tab.set_model(bad)
        assert "Cannot open" in tab.message_text() and str(bad) in tab.message_text()
    assert not tab.set_baseline(p)
    win = MainWindow()
    qtbot.addWidget(win)
    shown = []
    monkeypatch.setattr(win, "show_error", lambda title, text: shown.append((title, text)))
    for bad in (p, q):
        assert not win.open_model(bad)
    assert [t for t, _ in shown] == ["Cannot open model"] * 2 and all("\n" not in text for _, text in shown)
    if hasattr(os, "mkfifo"):  # File > Open preset on a FIFO: refused on the GUI thread without blocking it
        fifo = tmp_path / "preset.toml"
        os.mkfifo(fifo)
        watchdog = threading.Timer(5, lambda: os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)))
        watchdog.start()
        start = time.monotonic()
        try:
            assert not win.load_preset(fifo)
        finally:
            watchdog.cancel()
        assert time.monotonic() - start < 5 and "FIFO" in shown[-1][1]


def test_an_evaluation_the_metadata_makes_too_large_is_refused_before_the_rollouts(tmp_path, capsys):
    """trajectories x horizon inside their ranges, but far more than memory holds for 100 tasks: one line
    naming the bundle's keys, as `workbench train` refuses the same sizes (budget.check_memory)."""
    def huge(t, m):
        m["algorithm_config"]["trajectories"] = 10_000
        m["task"]["horizon"] = 10_000

    bundle = crafted(tmp_path, RL_BUNDLE, huge)
    one_line_error(capsys, ["eval", str(bundle), "--tasks", "100"], "algorithm_config.trajectories=10000",
                   "task.horizon=10000", "memory")
